//! What is known about plugins and their methods: plain descriptions that
//! every layer uses and that import nothing from the runtimes above them.

use std::path::PathBuf;

use crate::value::Ty;

/// Key/value metadata pairs (`#[method_meta]`, `#[trait_meta]`).
pub type Meta = Vec<(String, String)>;

/// How a plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// A shared library built with the `fidius` crates.
    Native,
    /// A WebAssembly component in a Fidius package.
    Wasm,
    /// A Python package, run by a `python3` runner process per plugin.
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
    /// A JSON array of the arguments, converted by the method's types (a
    /// component's own, or a native plugin's interface schema).
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

/// A method's types, where the plugin's are known (a WASM component's
/// own, or a native plugin's interface schema).
#[derive(Debug, Clone, PartialEq)]
pub struct Signature {
    pub params: Vec<(String, Ty)>,
    pub result: Option<Ty>,
    /// `#[wire(raw)]`: wire calls take and return the bytes as they are.
    pub raw: bool,
    /// Returns a stream (a server-streaming or bidirectional method): not
    /// callable as a unary method.
    pub streaming: bool,
    /// A stream's item type, where known.
    pub item: Option<Ty>,
}

impl Signature {
    /// `list<u8> -> list<u8>` (or `-> result<list<u8>, plugin-error>`): the
    /// shape of a `#[wire(raw)]` method, which takes and returns bytes as they are.
    pub fn raw_shape(params: &[(String, Ty)], result: Option<&Ty>) -> bool {
        params.len() == 1
            && params[0].1.is_bytes()
            && result.is_some_and(|r| r.is_bytes() || (r.is_plugin_result() && r.outcome().is_some_and(Ty::is_bytes)))
    }

    /// `result<T, plugin-error>`: errors are the call's plugin error.
    pub fn fallible(&self) -> bool {
        self.result.as_ref().is_some_and(Ty::is_plugin_result)
    }

    /// What a successful call returns (T of a `result<T, plugin-error>`).
    pub fn outcome(&self) -> Option<&Ty> {
        self.result.as_ref().and_then(Ty::outcome)
    }
}

/// What is known about one method.
#[derive(Debug, Clone, Default)]
pub struct MethodInfo {
    /// From the component, or the native plugin's schema; None where unknown.
    pub name: Option<String>,
    /// `#[method_meta]` pairs (native plugins).
    pub metadata: Meta,
    pub signature: Option<Signature>,
    /// False for a method this plugin does not have: an optional method of a
    /// newer interface revision (its schema lists it, its descriptor does not).
    pub implemented: bool,
    /// Known to be optional (`#[optional]`); None where unknown.
    pub optional: Option<bool>,
}

