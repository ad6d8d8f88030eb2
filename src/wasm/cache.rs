//! The persistent compilation cache (opt-in): compiled components kept as
//! `.cwasm` files in a directory the embedder names, so that the next
//! process loading the same component deserializes it instead of compiling.
//!
//! A `.cwasm` is machine code that runs in the host unchecked, so the cache
//! is exactly as trusted as the directory: it must belong to the user running
//! the host, and nobody else may write to it. A directory others can write
//! is refused; a file that is not a regular file owned by this user with
//! mode 0600 is never read, only replaced. Files are written to a fresh
//! name and renamed into place, so a reader never sees half a file. Anyone
//! who can write there as this user could as well replace the host's own
//! binary: that is the trust boundary, the same as for `$HOME`.
//!
//! Each entry is `FIDIUSC1`, the SHA-256 of the `.cwasm`, then the `.cwasm`:
//! a truncated or corrupted entry (a full disk, a crash mid-write on a
//! filesystem that reorders, a flipped bit) is caught before wasmtime sees
//! it, and compiled afresh and replaced with a warning. wasmtime's own
//! checks would not notice a changed byte inside the machine code.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, Status};

/// The largest `.cwasm` read back (a compiled component is a few MiB).
const MAX_ENTRY: u64 = 512 << 20;

/// What an entry starts with: the format, then the SHA-256 of the rest.
const MAGIC: &[u8; 8] = b"FIDIUSC1";
const HEADER: usize = MAGIC.len() + 32;

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// An entry's bytes for a `.cwasm`.
fn frame(cwasm: &[u8]) -> Vec<u8> {
    let mut entry = Vec::with_capacity(HEADER + cwasm.len());
    entry.extend_from_slice(MAGIC);
    entry.extend_from_slice(&sha256(cwasm));
    entry.extend_from_slice(cwasm);
    entry
}

/// A checked cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Use `dir` (made, 0700, when missing): refused unless it is a
    /// directory owned by this user that no one else can write.
    pub fn open(dir: &Path) -> Result<CompileCache> {
        if !dir.is_absolute() {
            return Err(Error::new(Status::InvalidArgument, format!("compile cache {}: the path must be absolute", dir.display())));
        }
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::new(Status::Io, format!("compile cache {}: cannot create it: {e}", dir.display())))?;
        }
        let cache = CompileCache { dir: dir.to_path_buf() };
        cache.check()?;
        Ok(cache)
    }

    /// The directory is still private (checked before every use: it may change).
    fn check(&self) -> Result<()> {
        // symlink_metadata: a link in the last component is refused too.
        let meta = std::fs::symlink_metadata(&self.dir)
            .map_err(|e| Error::new(Status::Io, format!("compile cache {}: {e}", self.dir.display())))?;
        let uid = unsafe { libc::geteuid() };
        let why = if !meta.is_dir() {
            Some("not a directory (a symbolic link is not accepted)".to_string())
        } else if meta.uid() != uid {
            Some(format!("owned by uid {}, not this user ({uid})", meta.uid()))
        } else if meta.permissions().mode() & 0o022 != 0 {
            Some(format!("writable by others (mode {:o})", meta.permissions().mode() & 0o777))
        } else {
            None
        };
        match why {
            None => Ok(()),
            Some(why) => Err(Error::new(
                Status::FileRefused,
                format!(
                    "compile cache {}: {why}; compiled components are machine code, so the cache must be private to this user",
                    self.dir.display()
                ),
            )),
        }
    }

    fn entry(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// The cached `.cwasm` for `key`, when there is one this user wrote
    /// (a private regular file) and the directory is still private.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.check()?;
        let path = self.entry(key);
        let file = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(_) => return Ok(None),
        };
        let meta = file.metadata().map_err(|e| Error::new(Status::Io, format!("{}: {e}", path.display())))?;
        let uid = unsafe { libc::geteuid() };
        if !meta.is_file() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 || meta.len() > MAX_ENTRY {
            return Ok(None);
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_ENTRY).read_to_end(&mut bytes).map_err(|e| Error::new(Status::Io, format!("{}: {e}", path.display())))?;
        let intact = bytes.len() >= HEADER && bytes[..MAGIC.len()] == *MAGIC && bytes[MAGIC.len()..HEADER] == sha256(&bytes[HEADER..]);
        if !intact {
            return Err(Error::new(
                Status::Io,
                format!("entry {} is truncated or corrupt (its checksum does not match): compiled afresh and replaced", path.display()),
            ));
        }
        bytes.drain(..HEADER);
        Ok(Some(bytes))
    }

    /// Store `cwasm` for `key`: written 0600 under a fresh name, then renamed
    /// over any earlier entry.
    pub fn put(&self, key: &str, cwasm: &[u8]) -> Result<()> {
        self.check()?;
        let path = self.entry(key);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let partial = self.dir.join(format!(".{key}.{}.{nanos:08x}.partial", std::process::id()));
        let io = |e: std::io::Error| Error::new(Status::Io, format!("compile cache {}: {e}", partial.display()));
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(libc::O_NOFOLLOW).open(&partial).map_err(io)?;
        let written = file.write_all(&frame(cwasm)).and_then(|()| file.sync_all());
        drop(file);
        if let Err(e) = written.and_then(|()| std::fs::rename(&partial, &path)) {
            let _ = std::fs::remove_file(&partial);
            return Err(io(e));
        }
        Ok(())
    }
}

/// A cache key: the component's content and the engine's compatibility
/// (wasmtime version and the settings that shape its code).
pub fn key(component_digest: &[u8; 32], engine: &wasmtime::Engine) -> String {
    use sha2::Digest;
    use std::hash::{Hash, Hasher};
    struct Sha(sha2::Sha256);
    impl Hasher for Sha {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut h = Sha(sha2::Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut h);
    let engine_digest = h.0.finalize();
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    format!("{}-{}", hex(component_digest), hex(&engine_digest[..8]))
}
