//! The fuzz targets' bodies, shared by the libFuzzer binaries
//! (fuzz/fuzz_targets/*.rs, nightly, `cargo fuzz run <target>`) and the
//! corpus replay in the normal test suite (tests/fuzz_corpus.rs, stable).
//! Each takes arbitrary bytes; a panic is a bug. Properties that must hold
//! (round trips) are asserted.

#![allow(dead_code)]

use std::path::Path;

use fidius::schema::Schema;
use fidius::value::json::{args_to_wire, output_to_json};

/// `WIT text \0 JSON`: the JSON arguments of every method of every
/// interface are converted to wire bytes; whatever converts must come back
/// through wire -> JSON -> wire unchanged, argument by argument.
pub fn json_wire(data: &[u8]) {
    let Some((wit, json)) = split(data) else { return };
    let Ok(wit) = std::str::from_utf8(wit) else { return };
    let Ok(schema) = Schema::parse(wit, "fuzz") else { return };
    for interface in &schema.interfaces {
        for method in &interface.methods {
            let Ok(wire) = args_to_wire(&method.params, json) else { continue };
            // Argument by argument: value -> JSON -> value is the identity.
            if let [(name, ty)] = method.params.as_slice() {
                let text = output_to_json(Some(ty), &wire).unwrap_or_else(|e| panic!("{name}: wire of valid JSON does not read back: {}", e.message));
                let again = args_to_wire(&method.params, &[b"[", text.as_slice(), b"]"].concat())
                    .unwrap_or_else(|e| panic!("{name}: JSON written does not read back: {}", e.message));
                assert_eq!(wire, again, "{name}: round trip changed the value");
            }
        }
    }
}

/// `WIT text \0 wire bytes`: the bytes read as each method's result type;
/// what reads must write back to the same bytes.
pub fn wire_json(data: &[u8]) {
    let Some((wit, wire)) = split(data) else { return };
    let Ok(wit) = std::str::from_utf8(wit) else { return };
    let Ok(schema) = Schema::parse(wit, "fuzz") else { return };
    for interface in &schema.interfaces {
        for method in &interface.methods {
            let Some(ty) = &method.result else { continue };
            let Ok(text) = output_to_json(Some(ty), wire) else { continue };
            let param = [("value".to_string(), ty.clone())];
            let again = args_to_wire(&param, &[b"[", text.as_slice(), b"]"].concat())
                .unwrap_or_else(|e| panic!("{}: JSON written does not read back: {}", method.name, e.message));
            assert_eq!(wire, again.as_slice(), "{}: wire -> JSON -> wire changed the bytes", method.name);
        }
    }
}

/// A `package.toml`: parsed and validated, then asked for its runtime and directory name.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = fidius::package::Manifest::parse(text) {
        let _ = m.runtime();
        if let Ok(dir) = m.dir_name() {
            assert!(!dir.contains('/') && dir != ".." && dir != ".", "unsafe directory name {dir:?}");
        }
        let _ = m.info(Path::new("/fuzz/pkg"));
    }
}

/// A `.fid` archive, extracted in memory (nothing is written).
pub fn fid(data: &[u8]) {
    let _ = fidius::fid::Archive::parse(Path::new("fuzz.fid"), data);
}

/// The pre-dlopen ELF checks on a file held in memory.
pub fn elf(data: &[u8]) {
    let header = &data[..data.len().min(64)];
    if fidius::native::arch::check(header).is_ok() {
        let _ = fidius::native::arch::check_complete(header, data.len() as u64, |offset, len| {
            let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
            data.get(start..start.saturating_add(len)).map(<[u8]>::to_vec).ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
        });
    }
}

/// A trusted-key file's bytes.
pub fn key(data: &[u8]) {
    let _ = fidius::signing::key_from_bytes(data);
}

fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = data.iter().position(|&b| b == 0)?;
    Some((&data[..at], &data[at + 1..]))
}

/// Every target, by name (the corpus directories are named the same).
pub const TARGETS: [(&str, fn(&[u8])); 6] =
    [("json_wire", json_wire), ("wire_json", wire_json), ("manifest", manifest), ("fid", fid), ("elf", elf), ("key", key)];
