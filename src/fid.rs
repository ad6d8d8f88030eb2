//! `.fid` archives, as `fidius package pack` writes them: a tar stream,
//! bzip2-compressed, whose entries are `{name}-{version}/{relative path}`.
//!
//! An archive is read into memory once and checked entry by entry before any
//! of it is used: links, absolute paths and `..` are refused, and so are too
//! many entries and too much content (the limits of fidius-core's
//! `UnpackOptions::default()`). A host then verifies `package.sig` against
//! the extracted bytes and loads the package from those same bytes, without
//! writing them anywhere; [`Archive::unpack`] writes them out for hosts that
//! want a package directory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{fail, Error, Result, Status};
use crate::package::MANIFEST;
use crate::signing::{self, PackageContent, PACKAGE_SIG};

/// At most this many entries (fidius-core's default).
const MAX_ENTRIES: u64 = 10_000;
/// At most this much content, counted as the entries declare it (fidius-core's default).
const MAX_CONTENT_BYTES: u64 = 500 * 1024 * 1024;
/// And at most this many times the archive's own size (fidius-core's default).
const MAX_RATIO: u64 = 10;

/// What the decompressed tar stream may hold beyond the content: headers,
/// padding, pax records and long names (10,000 entries need under 10 MiB).
const STREAM_OVERHEAD: u64 = 16 * 1024 * 1024;

/// A reader that fails once more than `left` bytes would come out of it.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::Error::other("it decompresses to more than its content budget plus headers")),
            };
        }
        let max = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// A `.fid` archive's package, in memory.
pub struct Archive {
    /// The archive file.
    pub path: PathBuf,
    /// The top-level directory that holds `package.toml`, e.g. `calc-0.1.0`.
    pub top: String,
    /// Every file under `top`, by `/`-separated path relative to it
    /// (`package.sig` and anything else the archive holds included).
    pub files: BTreeMap<String, Vec<u8>>,
}

fn refuse<T>(path: &Path, why: impl std::fmt::Display) -> Result<T> {
    fail(Status::Archive, format!("{}: {why}", path.display()))
}

impl Archive {
    /// Read and check the archive at `path`. The file is read once; nothing
    /// is written.
    pub fn read(path: &Path) -> Result<Archive> {
        let bytes = crate::files::read_regular(path, MAX_CONTENT_BYTES)?;
        Self::parse(path, &bytes)
    }

    /// Check and extract the archive `bytes` (read from `path`) into memory.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Archive> {
        let broken = |e: std::io::Error| Error::new(Status::Archive, format!("{}: not a readable .fid archive (tar + bzip2): {e}", path.display()));
        let ratio_cap = (bytes.len() as u64).saturating_mul(MAX_RATIO);
        // The tar reader takes pax records and long names into memory before
        // it shows the entry they belong to, so the decompressed stream as a
        // whole is capped too: the content budget plus room for headers.
        let stream_cap = ratio_cap.min(MAX_CONTENT_BYTES) + STREAM_OVERHEAD;
        let stream = Capped { inner: bzip2::read::BzDecoder::new(bytes), left: stream_cap };
        let mut tar = tar::Archive::new(stream);
        let mut entries_seen = 0u64;
        let mut declared_total = 0u64;
        let mut all: BTreeMap<Vec<String>, Vec<u8>> = BTreeMap::new();
        for entry in tar.entries().map_err(broken)? {
            let mut entry = entry.map_err(broken)?;
            entries_seen += 1;
            if entries_seen > MAX_ENTRIES {
                return refuse(path, format!("more than {MAX_ENTRIES} entries"));
            }
            let name = entry.path().map_err(broken)?.into_owned();
            let shown = name.display().to_string();
            let kind = entry.header().entry_type();
            if kind.is_symlink() {
                return refuse(path, format!("entry {shown} is a symbolic link; links are refused"));
            }
            if kind.is_hard_link() {
                return refuse(path, format!("entry {shown} is a hard link; links are refused"));
            }
            if kind.is_pax_global_extensions() {
                continue;
            }
            let mut parts = Vec::new();
            for component in name.components() {
                match component {
                    Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
                    Component::CurDir => {}
                    Component::ParentDir => {
                        return refuse(path, format!("entry {shown} has a `..` component; paths must stay inside the package"))
                    }
                    Component::RootDir | Component::Prefix(_) => {
                        return refuse(path, format!("entry {shown} is an absolute path; paths must be relative"))
                    }
                }
            }
            // The size the tar reader will deliver (a pax `size` record overrides the header's).
            let declared = entry.size();
            declared_total = declared_total.saturating_add(declared);
            if declared_total > MAX_CONTENT_BYTES {
                return refuse(path, format!("content exceeds {MAX_CONTENT_BYTES} bytes (entry {shown} brings it to {declared_total})"));
            }
            if declared_total > ratio_cap {
                return refuse(
                    path,
                    format!(
                        "content exceeds {MAX_RATIO} times the archive's size of {} bytes (entry {shown} brings it to {declared_total})",
                        bytes.len()
                    ),
                );
            }
            if kind.is_dir() {
                continue;
            }
            if !kind.is_file() && !kind.is_contiguous() {
                return refuse(path, format!("entry {shown} is neither a file nor a directory (type {:?})", kind.as_byte() as char));
            }
            if parts.is_empty() {
                return refuse(path, format!("entry {shown} names no file"));
            }
            let mut content = Vec::new();
            entry.read_to_end(&mut content).map_err(broken)?;
            if all.insert(parts, content).is_some() {
                return refuse(path, format!("entry {shown} appears twice"));
            }
        }
        // A path may not be both a file and a directory.
        for parts in all.keys() {
            for depth in 1..parts.len() {
                if all.contains_key(&parts[..depth]) {
                    return refuse(path, format!("{} is both a file and a directory", parts[..depth].join("/")));
                }
            }
        }
        let mut tops: Vec<&String> = all
            .keys()
            .filter(|p| p.len() == 2 && p[1] == MANIFEST)
            .map(|p| &p[0])
            .collect();
        tops.dedup();
        let top = match tops.as_slice() {
            [top] => (*top).clone(),
            [] => return refuse(path, format!("no top-level directory holds a {MANIFEST}")),
            several => {
                let names: Vec<&str> = several.iter().map(|s| s.as_str()).collect();
                return refuse(path, format!("several top-level directories hold a {MANIFEST}: {}", names.join(", ")));
            }
        };
        // Other top-level content is not part of the package (as fidius-core's unpack discards it).
        let files = all
            .into_iter()
            .filter(|(p, _)| p.len() > 1 && p[0] == top)
            .map(|(p, content)| (p[1..].join("/"), content))
            .collect();
        Ok(Archive { path: path.to_path_buf(), top, files })
    }

    /// The files a package signature covers (see [`signing::is_signed_path`]):
    /// the package's content as it is loaded.
    pub fn signed_content(&self) -> PackageContent {
        self.files.iter().filter(|(p, _)| signing::is_signed_path(p)).map(|(p, c)| (p.clone(), c.clone())).collect()
    }

    /// The package's content (as [`Archive::signed_content`]) and its
    /// `package.sig`, without copying them.
    pub fn into_package(mut self) -> (PackageContent, Option<Vec<u8>>) {
        let sig = self.files.remove(PACKAGE_SIG);
        self.files.retain(|p, _| signing::is_signed_path(p));
        (self.files, sig)
    }

    /// The archive's `package.sig`, if it has one.
    pub fn signature(&self) -> Option<&[u8]> {
        self.files.get(PACKAGE_SIG).map(Vec::as_slice)
    }

    /// Write the package into `dest` (created if missing) as
    /// `dest/<dir_name>`, replacing any directory of that name, as `fidius
    /// package unpack` does. Only the package's content is written: the
    /// files a package signature covers, and `package.sig` (never `.git/`,
    /// `target/` or other `*.sig` files an archive may carry). Files are
    /// staged in a fresh directory inside `dest` and renamed into place, so
    /// a failure leaves nothing behind. Returns `dest/<dir_name>`.
    pub fn unpack(&self, dest: &Path, dir_name: &str) -> Result<PathBuf> {
        let io = |what: &Path, e: std::io::Error| Error::new(Status::Io, format!("cannot write {}: {e}", what.display()));
        std::fs::create_dir_all(dest).map_err(|e| io(dest, e))?;
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let staging = dest.join(format!(".fidius-unpack-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir(&staging).map_err(|e| io(&staging, e))?;
        let result = (|| {
            let staged = staging.join(dir_name);
            std::fs::create_dir(&staged).map_err(|e| io(&staged, e))?;
            let content = self.files.iter().filter(|(p, _)| signing::is_signed_path(p) || *p == PACKAGE_SIG);
            for (relative, content) in content {
                let file = staged.join(relative);
                if let Some(parent) = file.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
                }
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&file)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, content))
                    .map_err(|e| io(&file, e))?;
            }
            let target = dest.join(dir_name);
            if std::fs::symlink_metadata(&target).is_ok() {
                let removed = if target.is_dir() && !target.is_symlink() {
                    std::fs::remove_dir_all(&target)
                } else {
                    std::fs::remove_file(&target)
                };
                removed.map_err(|e| io(&target, e))?;
            }
            std::fs::rename(&staged, &target).map_err(|e| io(&target, e))?;
            Ok(target)
        })();
        let _ = std::fs::remove_dir_all(&staging);
        result
    }
}
