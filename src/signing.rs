//! Ed25519 signatures in the format `fidius sign` writes: a raw 64-byte
//! signature in `<file name>.sig`, over the whole file.

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{fail, Error, Result, Status};

/// A public key as `fidius keygen` writes it: exactly 32 raw bytes.
pub fn key_from_bytes(bytes: &[u8]) -> Result<VerifyingKey> {
    let raw: [u8; 32] = bytes.try_into().map_err(|_| {
        Error::new(Status::InvalidArgument, format!("a public key is 32 raw bytes, got {}", bytes.len()))
    })?;
    VerifyingKey::from_bytes(&raw)
        .map_err(|e| Error::new(Status::InvalidArgument, format!("not an Ed25519 public key: {e}")))
}

/// Read a `.public` key file.
pub fn key_from_file(path: &Path) -> Result<VerifyingKey> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::new(Status::Io, format!("cannot read key file {}: {e}", path.display())))?;
    key_from_bytes(&bytes).map_err(|e| e.context(path.display()))
}

/// `libfoo.so` -> `libfoo.so.sig` (as `Path::with_extension("so.sig")` in fidius-cli).
pub fn sig_path_for(path: &Path) -> PathBuf {
    let ext = path.extension().map(|e| e.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_extension(format!("{ext}.sig"))
}

/// Verify `message` against the detached signature file at `sig_path`:
/// accepted when any trusted key verifies it.
pub fn verify(message: &[u8], sig_path: &Path, keys: &[VerifyingKey]) -> Result<()> {
    let sig = match std::fs::read(sig_path) {
        Ok(sig) => sig,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return fail(Status::SignatureRequired, format!("signature file {} is missing", sig_path.display()))
        }
        Err(e) => return fail(Status::Io, format!("cannot read {}: {e}", sig_path.display())),
    };
    let sig: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
        Error::new(
            Status::SignatureInvalid,
            format!("{} is {} bytes, a signature is 64", sig_path.display(), sig.len()),
        )
    })?;
    let sig = Signature::from_bytes(&sig);
    if keys.iter().any(|k| k.verify_strict(message, &sig).is_ok()) {
        Ok(())
    } else if keys.is_empty() {
        fail(Status::SignatureInvalid, format!("{}: no trusted keys are configured", sig_path.display()))
    } else {
        fail(
            Status::SignatureInvalid,
            format!("{} is not a valid signature by any of the {} trusted keys", sig_path.display(), keys.len()),
        )
    }
}
