//! Ed25519 signatures in the formats the fidius 0.4/0.5 toolchain writes:
//! - a library: `fidius sign` writes a raw 64-byte signature in
//!   `<file name>.sig`, over the whole file;
//! - a package: `fidius package sign` writes `package.sig`, a raw 64-byte
//!   signature over the package digest ([`package_digest`]).
//!
//! Keys are 32 raw bytes (`fidius keygen`'s `.public` file).

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, VerifyingKey};

use crate::error::{fail, Error, Result, Status};
use crate::files;

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
    let bytes = files::read_regular(path, files::MAX_SMALL_FILE_BYTES).map_err(|e| e.context("key file"))?;
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
    let Some(sig) = files::read_optional(sig_path, files::MAX_SMALL_FILE_BYTES)? else {
        return fail(Status::SignatureRequired, format!("signature file {} is missing", sig_path.display()));
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
            format!(
                "{} is not a valid signature by any of the {} trusted keys: the file was changed since it was \
                 signed, or another key signed it",
                sig_path.display(),
                keys.len()
            ),
        )
    }
}

/// The file in a package directory that holds its signature.
pub const PACKAGE_SIG: &str = "package.sig";

/// Limits on what is read into memory to verify a package directory (the
/// same budget as a `.fid` archive's content).
const MAX_PACKAGE_FILES: usize = 10_000;
const MAX_PACKAGE_DEPTH: usize = 64;

/// A package's files as the signature covers them: relative `/`-separated
/// path -> content, sorted byte-wise by path.
pub type PackageContent = std::collections::BTreeMap<String, Vec<u8>>;

/// Whether the package signature covers the file at this relative path, as
/// `fidius package sign` decides: every file except `*.sig`, and nothing
/// under a directory named `target` or `.git` at any depth.
pub fn is_signed_path(relative: &str) -> bool {
    let mut parts: Vec<&str> = relative.split('/').collect();
    let Some(file) = parts.pop() else { return false };
    !file.ends_with(".sig") && !parts.iter().any(|d| *d == "target" || *d == ".git")
}

/// The digest a package signature signs (fidius-core's `package_digest`):
/// SHA-256 over, for each file in byte-wise order of its relative path,
/// `u64_le(path length) path u64_le(content length) content`.
pub fn package_digest(files: &PackageContent) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (path, content) in files {
        hasher.update((path.len() as u64).to_le_bytes());
        hasher.update(path.as_bytes());
        hasher.update((content.len() as u64).to_le_bytes());
        hasher.update(content);
    }
    hasher.finalize().into()
}

/// Read, once, every file of the package directory `dir` that its signature
/// covers (the walk of `fidius package sign`, which follows symbolic links),
/// so that exactly these bytes are verified and then used.
///
/// The walk is hostile-proof: only regular files are read (a FIFO would
/// block), sizes are checked before reading and capped in all, and no
/// directory is entered twice (links that loop, or that join so the walk
/// would grow exponentially, are refused).
pub fn read_package(dir: &Path) -> Result<PackageContent> {
    let mut walk = Walk { root: dir, files: PackageContent::new(), total: 0, visited: Default::default() };
    walk.dir(dir, 0)?;
    Ok(walk.files)
}

struct Walk<'a> {
    root: &'a Path,
    files: PackageContent,
    total: u64,
    /// Directories entered, by (device, inode).
    visited: std::collections::HashSet<(u64, u64)>,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, depth: usize) -> Result<()> {
        let io = |what: &Path, e: std::io::Error| Error::new(Status::Io, format!("cannot read {}: {e}", what.display()));
        if depth > MAX_PACKAGE_DEPTH {
            return fail(Status::FileRefused, format!("{}: directories nest deeper than {MAX_PACKAGE_DEPTH} levels", dir.display()));
        }
        let meta = std::fs::metadata(dir).map_err(|e| io(dir, e))?;
        if !self.visited.insert(file_id(&meta)) {
            return fail(
                Status::FileRefused,
                format!("{} is a directory the package walk already entered (symbolic links loop or join); refused", dir.display()),
            );
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            entries.push(entry.map_err(|e| io(dir, e))?.path());
            if entries.len() > MAX_PACKAGE_FILES {
                return fail(Status::FileRefused, format!("{}: more than {MAX_PACKAGE_FILES} entries", dir.display()));
            }
        }
        for path in entries {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // Links are followed, as `fidius package sign` does; the content read is what is verified.
            let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
            if meta.is_dir() {
                if name != "target" && name != ".git" {
                    self.dir(&path, depth + 1)?;
                }
                continue;
            }
            if name.ends_with(".sig") {
                continue;
            }
            let relative = path.strip_prefix(self.root).expect("walked from root").to_string_lossy().replace('\\', "/");
            if self.files.len() >= MAX_PACKAGE_FILES {
                return fail(Status::FileRefused, format!("{}: more than {MAX_PACKAGE_FILES} files", self.root.display()));
            }
            let left = files::MAX_PACKAGE_BYTES - self.total;
            let content = files::read_regular(&path, left).map_err(|e| {
                if e.status == Status::FileRefused && meta.is_file() {
                    e.context(format!("package {} holds more than {} bytes of files", self.root.display(), files::MAX_PACKAGE_BYTES))
                } else {
                    e
                }
            })?;
            self.total += content.len() as u64;
            if self.files.insert(relative.clone(), content).is_some() {
                return fail(
                    Status::InvalidManifest,
                    format!("{}: two files are both named {relative} once made UTF-8 and /-separated", self.root.display()),
                );
            }
        }
        Ok(())
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Verify a package signature (`package.sig`, 64 raw bytes, None when there
/// is none) over `files`, the package's signed files: accepted when any
/// trusted key verifies it. `origin` (the package directory or `.fid` file)
/// names the package in messages.
pub fn verify_package(origin: &Path, files: &PackageContent, sig: Option<&[u8]>, keys: &[VerifyingKey]) -> Result<()> {
    let sig_name = origin.join(PACKAGE_SIG);
    let Some(sig) = sig else {
        return fail(
            Status::SignatureRequired,
            format!(
                "package {} is not signed: {} is missing (sign it with `fidius package sign`)",
                origin.display(),
                sig_name.display()
            ),
        );
    };
    let sig: [u8; 64] = sig.try_into().map_err(|_| {
        Error::new(Status::SignatureInvalid, format!("{} is {} bytes, a signature is 64", sig_name.display(), sig.len()))
    })?;
    let sig = Signature::from_bytes(&sig);
    let digest = package_digest(files);
    if keys.iter().any(|k| k.verify_strict(&digest, &sig).is_ok()) {
        return Ok(());
    }
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    fail(
        Status::SignatureInvalid,
        format!(
            "{} does not verify package {} with any of the {} trusted keys: a file was changed, added or removed \
             since it was signed, or another key signed it (package digest {hex} over {} files: {})",
            sig_name.display(),
            origin.display(),
            keys.len(),
            names.len(),
            names.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector fidius-core 0.5.9's `package_digest` gives for this
    /// directory (docs: fidius-facts §3, re-derived independently).
    #[test]
    fn package_digest_matches_fidius_core() {
        let dir = std::env::temp_dir().join(format!("fidius-digest-vector-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (path, content) in [
            ("package.toml", "A"),
            ("b/c.txt", "BC"),
            ("x.sig", "ignored"),
            ("target/t", "ignored"),
            ("sub/target/t", "ignored"),
            ("sub/.git/g", "ignored"),
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        let files = read_package(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(files.keys().collect::<Vec<_>>(), ["b/c.txt", "package.toml"]);
        let hex: String = package_digest(&files).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "dc7bc2b3dfaa812e3296375cef192fc72718972c0f2d73106b84a7eabf532f6a");
    }

    #[test]
    fn signed_paths() {
        for yes in ["package.toml", "a/b.wasm", "target", "x/target", "sigs/a", "a.sig.txt"] {
            assert!(is_signed_path(yes), "{yes}");
        }
        for no in ["package.sig", "a/b.sig", "target/a", "a/target/b", ".git/x", "a/.git/b/c"] {
            assert!(!is_signed_path(no), "{no}");
        }
    }
}
