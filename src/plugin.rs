//! A loaded plugin of any runtime, and what is known about it.

use std::path::PathBuf;

use crate::error::{fail, Result, Status};
use crate::native::library::Meta;
use crate::native::NativePlugin;

/// How a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A shared library built with the `fidius` crates.
    Native,
    /// A WebAssembly component in a Fidius package.
    Wasm,
    /// A Python package (listed by discovery; libfidius does not run Python).
    Python,
}

/// Who allocates a native plugin's output buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufferStrategy {
    /// The plugin allocates; the host frees through the plugin's `free_buffer`.
    PluginAllocated = 1,
    /// The host lends a buffer; the plugin writes into it.
    Arena = 2,
}

/// The encoding of a call's input and output bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Fidius wire bytes: the bincode tuple of the arguments, or raw bytes for `#[wire(raw)]` methods.
    Wire,
    /// A JSON array of the arguments (WASM plugins only: native plugins carry no type information).
    Json,
}

/// What discovery and loading know about a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    pub name: String,
    pub interface_name: String,
    /// 0 where unknown (packages before loading).
    pub interface_hash: u64,
    pub interface_version: u32,
    pub runtime: Runtime,
    /// Native plugins only.
    pub buffer_strategy: Option<BufferStrategy>,
    /// Bit N set: optional method N (counted among optional methods) is present.
    pub capabilities: u64,
    pub method_count: u32,
    /// 400 or 500 for native plugins, 0 otherwise.
    pub abi_version: u32,
    /// The library file or package directory.
    pub path: PathBuf,
}

/// A loaded plugin: one instance, callable from many threads at once.
pub struct Plugin {
    info: PluginInfo,
    backend: Backend,
}

enum Backend {
    Native(NativePlugin),
}

impl Plugin {
    pub(crate) fn native(plugin: NativePlugin) -> Self {
        Plugin { info: plugin.entry().info.clone(), backend: Backend::Native(plugin) }
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Call method `index` (its position in the interface) with `input` in `format`.
    pub fn call(&self, index: u32, format: Format, input: &[u8]) -> Result<Vec<u8>> {
        match (&self.backend, format) {
            (Backend::Native(p), Format::Wire) => p.call(index, input),
            (Backend::Native(_), Format::Json) => fail(
                Status::Unsupported,
                format!(
                    "plugin {} is native: native plugins carry no type information, so calls take wire bytes, not JSON",
                    self.info.name
                ),
            ),
        }
    }

    /// The `#[method_meta]` pairs of method `index`.
    pub fn method_metadata(&self, index: u32) -> Result<&Meta> {
        let Backend::Native(p) = &self.backend;
        p.entry().method_metadata.get(index as usize).ok_or_else(|| {
            crate::error::Error::new(
                Status::MethodIndex,
                format!("method index {index} is out of range: plugin {} has {} methods", self.info.name, self.info.method_count),
            )
        })
    }

    /// The interface-level metadata pairs.
    pub fn trait_metadata(&self) -> &Meta {
        let Backend::Native(p) = &self.backend;
        &p.entry().trait_metadata
    }
}
