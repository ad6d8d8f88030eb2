//! Fidius package directories: `package.toml` as fidius-core 0.4/0.5 reads it.

use std::borrow::Cow;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{fail, Error, Result, Status};
use crate::files;
use crate::info::{PluginInfo, Runtime};
use crate::signing::PackageContent;

pub const MANIFEST: &str = "package.toml";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub package: Header,
    /// Required, free-form: hosts validate it against their own schema.
    pub metadata: toml::Value,
    pub python: Option<PythonSection>,
    pub wasm: Option<WasmSection>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Header {
    pub name: String,
    pub version: String,
    pub interface: String,
    pub interface_version: u32,
    pub extension: Option<String>,
    pub runtime: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PythonSection {
    pub entry_module: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WasmSection {
    pub component: String,
    pub precompiled: Option<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
}

/// `rust` packages are built into libraries that discovery finds as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageRuntime {
    Rust,
    Python,
    Wasm,
}

impl Manifest {
    /// Read and validate `dir/package.toml`.
    pub fn read(dir: &Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let bytes = files::read_regular(&path, files::MAX_MANIFEST_BYTES).map_err(|e| match e.status {
            Status::Io => Error::new(Status::InvalidManifest, e.message),
            _ => e,
        })?;
        Self::from_bytes(&bytes, &path)
    }

    /// Parse and validate the manifest `bytes` read from `path`.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Manifest> {
        let text = std::str::from_utf8(bytes)
            .map_err(|e| Error::new(Status::InvalidManifest, format!("{} is not UTF-8: {e}", path.display())))?;
        Self::parse(text).map_err(|e| e.context(path.display()))
    }

    /// The directory name a package is unpacked under, `<name>-<version>`
    /// (as `fidius package pack` names an archive's top directory), refusing
    /// names that would not stay one plain directory.
    pub fn dir_name(&self) -> Result<String> {
        let name = format!("{}-{}", self.package.name, self.package.version);
        let plain = |s: &str| !s.is_empty() && !s.starts_with('.') && !s.contains(['/', '\\', '\0']);
        if !plain(&self.package.name) || !plain(&self.package.version) {
            return fail(
                Status::InvalidManifest,
                format!("package name and version must be plain names (no /, \\ or leading .) to name a directory: {name:?}"),
            );
        }
        Ok(name)
    }

    pub fn parse(text: &str) -> Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| Error::new(Status::InvalidManifest, e.message().to_string()))?;
        manifest.runtime()?;
        Ok(manifest)
    }

    /// The runtime, with the cross-section rules of fidius-core.
    pub fn runtime(&self) -> Result<PackageRuntime> {
        let runtime = match self.package.runtime.as_deref() {
            None | Some("rust") => PackageRuntime::Rust,
            Some("python") => PackageRuntime::Python,
            Some("wasm") => PackageRuntime::Wasm,
            Some(other) => {
                return fail(
                    Status::InvalidManifest,
                    format!("unknown runtime \"{other}\" (expected \"rust\", \"python\" or \"wasm\")"),
                )
            }
        };
        let misplaced = |section: &str, owner: &str| {
            fail(Status::InvalidManifest, format!("[{section}] section is only valid when runtime = \"{owner}\""))
        };
        match runtime {
            PackageRuntime::Wasm if self.wasm.is_none() => {
                fail(Status::InvalidManifest, "runtime = \"wasm\" requires a [wasm] section with `component`")
            }
            PackageRuntime::Python if self.python.is_none() => {
                fail(Status::InvalidManifest, "runtime = \"python\" requires a [python] section with `entry_module`")
            }
            PackageRuntime::Rust | PackageRuntime::Python if self.wasm.is_some() => misplaced("wasm", "wasm"),
            PackageRuntime::Rust | PackageRuntime::Wasm if self.python.is_some() => misplaced("python", "python"),
            _ => Ok(runtime),
        }
    }

    /// What discovery reports for a package before it is loaded.
    pub fn info(&self, dir: &Path) -> Option<PluginInfo> {
        let runtime = match self.runtime().ok()? {
            PackageRuntime::Rust => return None,
            PackageRuntime::Python => Runtime::Python,
            PackageRuntime::Wasm => Runtime::Wasm,
        };
        Some(PluginInfo {
            name: self.package.name.clone(),
            interface_name: self.package.interface.clone(),
            interface_hash: 0,
            interface_version: self.package.interface_version,
            runtime,
            buffer_strategy: None,
            capabilities: 0,
            method_count: 0,
            abi_version: 0,
            path: dir.to_path_buf(),
        })
    }
}

/// Where a package's files are read from when it is loaded: its directory,
/// or memory (the files a package signature covered, read once and verified,
/// or a `.fid` archive's content), so that what was verified is what is used.
pub struct PackageFiles {
    origin: PathBuf,
    memory: Option<PackageContent>,
    verified: bool,
}

impl PackageFiles {
    /// Files read from the directory `dir` as they are needed.
    pub fn on_disk(dir: &Path) -> Self {
        PackageFiles { origin: dir.to_path_buf(), memory: None, verified: false }
    }

    /// Files held in memory; `origin` (a directory or a `.fid` file) names
    /// the package and prefixes the resolved paths. `verified`: a trusted
    /// key's package signature covers exactly these bytes.
    pub fn in_memory(origin: &Path, files: PackageContent, verified: bool) -> Self {
        PackageFiles { origin: origin.to_path_buf(), memory: Some(files), verified }
    }

    /// The package directory, or the archive it came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The manifest, from these files.
    pub fn manifest(&self) -> Result<Manifest> {
        match &self.memory {
            None => Manifest::read(&self.origin),
            Some(files) => {
                let path = self.origin.join(MANIFEST);
                let bytes = files.get(MANIFEST).ok_or_else(|| {
                    Error::new(Status::InvalidManifest, format!("{} is missing", path.display()))
                })?;
                Manifest::from_bytes(bytes, &path)
            }
        }
    }

    /// A manifest field's file, as a path under [`PackageFiles::origin`].
    pub fn resolve(&self, relative: &str, field: &str) -> Result<PathBuf> {
        resolve_in_package(&self.origin, relative, field)
    }

    fn key(&self, resolved: &Path) -> Option<String> {
        let rel = resolved.strip_prefix(&self.origin).ok()?;
        let parts: Vec<String> = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(p) => Some(p.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        Some(parts.join("/"))
    }

    /// Whether a resolved file exists.
    pub fn exists(&self, resolved: &Path) -> bool {
        match &self.memory {
            None => resolved.is_file(),
            Some(files) => self.key(resolved).is_some_and(|k| files.contains_key(&k)),
        }
    }

    /// The content of a resolved file.
    pub fn read(&self, resolved: &Path) -> Result<Cow<'_, [u8]>> {
        match &self.memory {
            None => files::read_regular(resolved, files::MAX_PACKAGE_BYTES).map(Cow::Owned),
            Some(content) => match self.key(resolved).and_then(|k| content.get(&k)) {
                Some(bytes) => Ok(Cow::Borrowed(bytes)),
                None => Err(Error::new(
                    Status::Io,
                    format!(
                        "{} is not in the package's signed content (files under target/ or .git/, and *.sig files, are not part of it)",
                        resolved.display()
                    ),
                )),
            },
        }
    }

    /// The files held in memory (None: read from the directory).
    pub fn content(&self) -> Option<&PackageContent> {
        self.memory.as_ref()
    }

    /// Whether these files were covered by a package signature that a
    /// trusted key verified (only then may a `.cwasm`, which is machine
    /// code, be taken from them without the embedder's explicit trust).
    pub fn verified(&self) -> bool {
        self.verified
    }
}

/// Resolve a file named in a manifest, refusing anything that leaves the package.
pub fn resolve_in_package(dir: &Path, relative: &str, field: &str) -> Result<PathBuf> {
    let rel = Path::new(relative);
    let escapes = relative.is_empty()
        || rel.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return fail(
            Status::InvalidManifest,
            format!("{field} = \"{relative}\" must be a relative path inside the package directory"),
        );
    }
    Ok(dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WASM: &str = r#"
[package]
name = "calc"
version = "1.0.0"
interface = "calc-api"
interface_version = 1
runtime = "wasm"
[metadata]
[wasm]
component = "calc.wasm"
"#;

    #[test]
    fn parses_a_wasm_manifest() {
        let m = Manifest::parse(WASM).unwrap();
        assert_eq!(m.runtime().unwrap(), PackageRuntime::Wasm);
        assert_eq!(m.wasm.unwrap().component, "calc.wasm");
    }

    #[test]
    fn rejects_what_fidius_core_rejects() {
        let no_meta = WASM.replace("[metadata]\n", "");
        assert!(Manifest::parse(&no_meta).unwrap_err().message.contains("metadata"));
        let unknown = WASM.replace("runtime = \"wasm\"", "runtime = \"node\"");
        assert!(Manifest::parse(&unknown).unwrap_err().message.contains("node"));
        let rust_with_wasm = WASM.replace("runtime = \"wasm\"", "runtime = \"rust\"");
        assert!(Manifest::parse(&rust_with_wasm).unwrap_err().message.contains("[wasm]"));
    }

    #[test]
    fn paths_may_not_escape() {
        let dir = Path::new("/pkg");
        assert!(resolve_in_package(dir, "a/b.wasm", "component").is_ok());
        for bad in ["../x.wasm", "/etc/passwd", "a/../../x", ""] {
            assert_eq!(resolve_in_package(dir, bad, "component").unwrap_err().status, Status::InvalidManifest, "{bad}");
        }
    }
}
