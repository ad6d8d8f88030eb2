//! The Fidius wire format: bincode 1.3 with its legacy defaults
//! (little-endian, fixed-width integers, u64 length prefixes).

use crate::error::PluginError;

/// Decode a `PluginError` payload (status -3). A payload that does not
/// decode is reported as such rather than dropped.
pub fn decode_plugin_error(bytes: &[u8]) -> PluginError {
    if bytes.is_empty() {
        return PluginError {
            code: "UNKNOWN".into(),
            message: "plugin reported an error without a payload".into(),
            details: None,
        };
    }
    bincode::deserialize(bytes).unwrap_or_else(|e| PluginError {
        code: "UNDECODABLE".into(),
        message: format!("plugin reported an error whose payload is not a PluginError ({e}, {} bytes)", bytes.len()),
        details: None,
    })
}

/// Decode a bincode `String` (a panic message).
pub fn decode_string(bytes: &[u8]) -> Option<String> {
    bincode::deserialize(bytes).ok()
}

/// Encode a value the way Fidius plugins expect their arguments and configs.
pub fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Vec<u8> {
    bincode::serialize(value).expect("bincode of an in-memory value cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_error_bytes_match_the_fact_sheet() {
        let bytes = [
            &1u64.to_le_bytes()[..], b"E", &1u64.to_le_bytes()[..], b"m", &[0u8][..],
        ]
        .concat();
        let e = decode_plugin_error(&bytes);
        assert_eq!((e.code.as_str(), e.message.as_str(), e.details.as_deref()), ("E", "m", None));
        assert_eq!(encode(&e), bytes);
    }

    #[test]
    fn garbage_error_payload_is_reported() {
        let e = decode_plugin_error(&[0xff; 3]);
        assert_eq!(e.code, "UNDECODABLE");
        assert!(e.message.contains("3 bytes"));
    }
}
