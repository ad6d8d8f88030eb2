//! Reading files that are hostile until verified: everything in a search
//! path, in a package, and signature, key and archive files.
//!
//! Only regular files are read. They are opened without blocking (opening a
//! FIFO for reading would otherwise wait for a writer forever), checked with
//! `fstat` on the open descriptor (so the file checked is the file read),
//! and their size is checked before anything is read; no more than the cap
//! is ever read, even from a file that grows meanwhile.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result, Status};

/// The largest native library read or loaded (a sparse multi-GB file would
/// otherwise be read into memory whole to verify it).
pub(crate) const MAX_LIBRARY_BYTES: u64 = 1 << 30;
/// The largest detached signature or key file read (they are 64 and 32 bytes).
pub(crate) const MAX_SMALL_FILE_BYTES: u64 = 4096;
/// The largest `package.toml` read.
pub(crate) const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The largest file in a package, and the most a package may hold in all
/// (the budget of a `.fid` archive's content).
pub(crate) const MAX_PACKAGE_BYTES: u64 = 500 * 1024 * 1024;

/// Open `path` for reading, refusing anything but a regular file of at most
/// `max` bytes. Returns the open file and its size.
pub fn open_regular(path: &Path, max: u64) -> Result<(File, u64)> {
    let file = open_nonblocking(path).map_err(|e| Error::new(Status::Io, format!("cannot open {}: {e}", path.display())))?;
    let meta = file.metadata().map_err(|e| Error::new(Status::Io, format!("cannot stat {}: {e}", path.display())))?;
    if !meta.file_type().is_file() {
        return Err(Error::new(
            Status::FileRefused,
            format!("{} is {}, not a regular file; only regular files are read", path.display(), kind(&meta)),
        ));
    }
    if meta.len() > max {
        return Err(too_large(path, meta.len(), max));
    }
    Ok((file, meta.len()))
}

/// The content of the regular file at `path`, at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Vec<u8>> {
    let (file, len) = open_regular(path, max)?;
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::new(Status::Io, format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() as u64 > max {
        return Err(too_large(path, bytes.len() as u64, max));
    }
    Ok(bytes)
}

/// As [`read_regular`], but a missing file is `None`.
pub fn read_optional(path: &Path, max: u64) -> Result<Option<Vec<u8>>> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        _ => read_regular(path, max).map(Some),
    }
}

fn too_large(path: &Path, len: u64, max: u64) -> Error {
    Error::new(Status::FileRefused, format!("{} is {len} bytes, more than the {max} bytes read from such a file", path.display()))
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// What kind of non-regular file this is, for messages.
pub fn kind(meta: &std::fs::Metadata) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    if meta.is_dir() {
        "a directory"
    } else if meta.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifos_devices_and_large_files_without_blocking() {
        let dir = std::env::temp_dir().join(format!("fidius-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("x.so");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo, 10).unwrap_err();
        assert_eq!(e.status, Status::FileRefused);
        assert!(e.message.contains("FIFO"), "{}", e.message);
        assert_eq!(read_regular(Path::new("/dev/zero"), 10).unwrap_err().status, Status::FileRefused);
        let big = dir.join("big");
        std::fs::write(&big, [0u8; 11]).unwrap();
        assert_eq!(read_regular(&big, 10).unwrap_err().status, Status::FileRefused);
        assert_eq!(read_regular(&big, 11).unwrap().len(), 11);
        assert!(read_optional(&dir.join("missing"), 10).unwrap().is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
