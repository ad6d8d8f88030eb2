//! Fidius package directories: `package.toml` as fidius-core 0.4/0.5 reads it.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use crate::error::{fail, Error, Result, Status};
use crate::plugin::{PluginInfo, Runtime};

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
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::new(Status::InvalidManifest, format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| e.context(path.display()))
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
