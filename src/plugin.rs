//! A loaded plugin of any runtime, and what is known about it.

use std::path::PathBuf;

use crate::error::{fail, Error, Result, Status};
use crate::native::library::Meta;
use crate::native::NativePlugin;
use crate::output::Output;
use crate::wasm::WasmPlugin;

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

/// What is known about one method.
#[derive(Debug, Clone, Default)]
pub struct MethodInfo {
    /// WASM plugins name their methods; native descriptors do not carry names.
    pub name: Option<String>,
    /// `#[method_meta]` pairs (native plugins).
    pub metadata: Meta,
}

/// A loaded plugin: one instance, callable from many threads at once.
pub struct Plugin {
    info: PluginInfo,
    methods: Vec<MethodInfo>,
    trait_metadata: Meta,
    warnings: Vec<String>,
    backend: Backend,
}

enum Backend {
    Native(NativePlugin),
    Wasm(WasmPlugin),
}

impl Plugin {
    pub(crate) fn native(plugin: NativePlugin) -> Self {
        let entry = plugin.entry();
        let methods = entry.method_metadata.iter().map(|m| MethodInfo { name: None, metadata: m.clone() }).collect();
        Plugin {
            info: entry.info.clone(),
            methods,
            trait_metadata: entry.trait_metadata.clone(),
            warnings: Vec::new(),
            backend: Backend::Native(plugin),
        }
    }

    pub(crate) fn wasm(mut info: PluginInfo, plugin: WasmPlugin, warnings: Vec<String>) -> Self {
        info.interface_hash = plugin.interface_hash;
        info.method_count = plugin.methods.len() as u32;
        let methods = plugin.methods.iter().map(|m| MethodInfo { name: Some(m.name.clone()), metadata: Vec::new() }).collect();
        Plugin { info, methods, trait_metadata: Vec::new(), warnings, backend: Backend::Wasm(plugin) }
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Call method `index` (its position in the interface) with `input` in `format`.
    #[inline]
    /// The output is the plugin's own buffer where it allocated one (native
    /// PluginAllocated), else bytes libfidius owns; either way it derefs to `[u8]`.
    pub fn call(&self, index: u32, format: Format, input: &[u8]) -> Result<Output> {
        match (&self.backend, format) {
            (Backend::Native(p), Format::Wire) => p.call(index, input),
            (Backend::Native(_), Format::Json) => fail(
                Status::Unsupported,
                format!(
                    "plugin {} is native: native plugins carry no type information, so calls take wire bytes, not JSON",
                    self.info.name
                ),
            ),
            (Backend::Wasm(p), format) => p.call(index, format, input).map(Output::Owned),
        }
    }

    pub fn methods(&self) -> &[MethodInfo] {
        &self.methods
    }

    pub fn method(&self, index: u32) -> Result<&MethodInfo> {
        self.methods.get(index as usize).ok_or_else(|| {
            Error::new(
                Status::MethodIndex,
                format!("method index {index} is out of range: plugin {} has {} methods", self.info.name, self.methods.len()),
            )
        })
    }

    /// The index of the method called `name` (kebab-case or snake_case).
    pub fn method_index(&self, name: &str) -> Result<u32> {
        let wanted = name.replace('_', "-");
        if let Some(i) = self.methods.iter().position(|m| m.name.as_deref().is_some_and(|n| n.replace('_', "-") == wanted)) {
            return Ok(i as u32);
        }
        let why = if matches!(self.backend, Backend::Native(_)) {
            "native plugin descriptors carry no method names: use the method's index (its declaration order)"
        } else {
            "no such method"
        };
        fail(Status::MethodIndex, format!("plugin {} has no method named {name}: {why}", self.info.name))
    }

    /// The interface-level metadata pairs.
    pub fn trait_metadata(&self) -> &Meta {
        &self.trait_metadata
    }

    /// Things the host should know about how the plugin was loaded
    /// (e.g. a precompiled `.cwasm` that could not be used, and why).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}
