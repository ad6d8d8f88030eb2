//! A package held in memory (verified against its signature, or read from a
//! `.fid` archive), written out for the interpreter to import: exactly the
//! verified bytes, into a fresh directory only this user can read or
//! change, removed when the plugin goes. The interpreter then never reads
//! the original files, which could change after they were verified.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result, Status};
use crate::package::PackageFiles;

pub struct Staged {
    dir: PathBuf,
}

impl Staged {
    /// `None` for a package read from its directory as it is.
    pub fn of(files: &PackageFiles) -> Result<Option<Staged>> {
        let Some(content) = files.content() else { return Ok(None) };
        let staged = Staged::create()?;
        for (key, bytes) in content {
            let rel = Path::new(key);
            if key.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(Error::new(Status::Archive, format!("package file {key:?} is not a plain relative path")));
            }
            let path = staged.dir.join(rel);
            if let Some(parent) = path.parent() {
                DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(|e| io(&staged.dir, e))?;
            }
            let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path).map_err(|e| io(&path, e))?;
            file.write_all(bytes).map_err(|e| io(&path, e))?;
        }
        Ok(Some(staged))
    }

    fn create() -> Result<Staged> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
            let dir = base.join(format!("fidius-python-{}-{nanos:08x}{attempt:02x}", std::process::id()));
            // A fresh name only: an existing directory (someone else's) is never used.
            match DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(Staged { dir }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io(&dir, e)),
            }
        }
        Err(Error::new(Status::Io, format!("cannot make a private directory in {}", base.display())))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::new(Status::Io, format!("{}: {e}", path.display()))
}
