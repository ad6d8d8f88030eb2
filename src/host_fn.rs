//! Host functions: interfaces the embedder implements and plugins call
//! (fidius 0.5.7 `#[host_interface]`), whatever runtime the plugin runs in.
//! The native loader binds them into a library's function table
//! (`native::host_imports`); the WASM sandbox answers the
//! `fidius:host-call` import with them (`wasm::host_call`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::PluginError;
use crate::wire;

/// Fidius' status codes on the host-function channel (`fidius-guest`
/// `status` and `host_ffi`).
pub mod status {
    pub const OK: i32 = 0;
    pub const SERIALIZATION_ERROR: i32 = -2;
    pub const PLUGIN_ERROR: i32 = -3;
    pub const PANIC: i32 = -4;
    pub const INVALID_INDEX: i32 = -6;
    /// WASM only: no interface of that name is provided.
    pub const NOT_BOUND: i32 = -7;
    /// WASM only: payload bincode `(u32 plugin expects, u32 host provides)`.
    pub const VERSION_MISMATCH: i32 = -8;
    /// WASM only: payload bincode `(u64 plugin expects, u64 host provides)`.
    pub const HASH_MISMATCH: i32 = -9;
    /// WASM: the index that only checks the interface's identity.
    pub const PROBE_INDEX: u32 = u32::MAX;
}

/// What one host function call produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFnResult {
    /// The wire bytes of the function's return value.
    Output(Vec<u8>),
    /// The function's `PluginError` (its declared `Err`).
    Error(PluginError),
    /// The function failed outside its contract (an exception in a binding):
    /// the plugin sees it as the host panicking.
    Failed(String),
}

/// The embedder's implementation of one host interface: a dispatcher over
/// its functions by index, taking and returning wire bytes.
pub trait HostFunctions: Send + Sync {
    fn call(&self, index: u32, input: &[u8]) -> HostFnResult;
}

impl<F: Fn(u32, &[u8]) -> HostFnResult + Send + Sync> HostFunctions for F {
    fn call(&self, index: u32, input: &[u8]) -> HostFnResult {
        self(index, input)
    }
}

/// A host interface as the plugins see it: the identity a plugin was built
/// against (`#[host_interface(version = N)]` trait name, version and
/// signature hash, the generated `<Trait>_HOST_INTERFACE_*` constants) and
/// its implementation.
pub struct HostInterface {
    pub name: String,
    pub hash: u64,
    pub version: u32,
    pub fn_count: u32,
    functions: Box<dyn HostFunctions>,
}

impl std::fmt::Debug for HostInterface {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostInterface({} v{} {:#018x}, {} functions)", self.name, self.version, self.hash, self.fn_count)
    }
}

impl HostInterface {
    pub fn new(name: impl Into<String>, hash: u64, version: u32, fn_count: u32, functions: impl HostFunctions + 'static) -> Self {
        HostInterface { name: name.into(), hash, version, fn_count, functions: Box::new(functions) }
    }

    /// Call function `index` with the wire bytes of its arguments: the
    /// status and payload the plugin's client decodes. An index past the
    /// interface is answered without asking the implementation; a panic in
    /// it is caught and reported as one.
    pub fn dispatch(&self, index: u32, input: &[u8]) -> (i32, Vec<u8>) {
        if index >= self.fn_count {
            return (status::INVALID_INDEX, Vec::new());
        }
        let result = catch_unwind(AssertUnwindSafe(|| self.functions.call(index, input))).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            HostFnResult::Failed(format!("host function {}#{index} panicked: {what}", self.name))
        });
        match result {
            HostFnResult::Output(bytes) => (status::OK, bytes),
            HostFnResult::Error(e) => (status::PLUGIN_ERROR, wire::encode(&e)),
            HostFnResult::Failed(message) => (status::PANIC, wire::encode(&message)),
        }
    }

    /// The WASM `fidius:host-call` gate: the identity the guest was built
    /// against is checked on every call before anything is dispatched.
    pub fn gated_dispatch(&self, version: u32, hash: u64, index: u32, input: &[u8]) -> (i32, Vec<u8>) {
        if version != self.version {
            return (status::VERSION_MISMATCH, wire::encode(&(version, self.version)));
        }
        if hash != self.hash {
            return (status::HASH_MISMATCH, wire::encode(&(hash, self.hash)));
        }
        if index == status::PROBE_INDEX {
            return (status::OK, Vec::new());
        }
        self.dispatch(index, input)
    }
}

/// The host interfaces offered to one plugin: the load's, then the host's,
/// the first of a name winning.
#[derive(Debug, Clone, Default)]
pub struct HostInterfaces(pub Vec<Arc<HostInterface>>);

impl HostInterfaces {
    pub fn get(&self, name: &str) -> Option<&Arc<HostInterface>> {
        self.0.iter().find(|i| i.name == name)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// These, then those of `fallback` not named here.
    pub fn over(&self, fallback: &HostInterfaces) -> HostInterfaces {
        let mut all = self.0.clone();
        all.extend(fallback.0.iter().filter(|f| self.get(&f.name).is_none()).cloned());
        HostInterfaces(all)
    }

    /// The WASM import's answer for interface `name`.
    pub fn call(&self, name: &str, version: u32, hash: u64, index: u32, input: &[u8]) -> (i32, Vec<u8>) {
        match self.get(name) {
            Some(interface) => interface.gated_dispatch(version, hash, index, input),
            None => (status::NOT_BOUND, Vec::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> HostInterface {
        HostInterface::new("Kv", 0xabc, 1, 2, |index: u32, input: &[u8]| match index {
            0 => HostFnResult::Output(input.to_vec()),
            _ => panic!("boom"),
        })
    }

    #[test]
    fn dispatch_answers_with_fidius_codes() {
        let kv = kv();
        assert_eq!(kv.dispatch(0, b"hi"), (status::OK, b"hi".to_vec()));
        assert_eq!(kv.dispatch(2, b""), (status::INVALID_INDEX, vec![]));
        let (code, payload) = kv.dispatch(1, b"");
        assert_eq!(code, status::PANIC);
        assert!(wire::decode_string(&payload).unwrap().contains("boom"));
    }

    #[test]
    fn the_wasm_gate_checks_identity_first() {
        let all = HostInterfaces(vec![Arc::new(kv())]);
        assert_eq!(all.call("Nope", 1, 0xabc, 0, b""), (status::NOT_BOUND, vec![]));
        assert_eq!(all.call("Kv", 2, 0xabc, 0, b""), (status::VERSION_MISMATCH, wire::encode(&(2u32, 1u32))));
        assert_eq!(all.call("Kv", 1, 0xabd, 0, b""), (status::HASH_MISMATCH, wire::encode(&(0xabdu64, 0xabcu64))));
        assert_eq!(all.call("Kv", 1, 0xabc, status::PROBE_INDEX, b"x"), (status::OK, vec![]));
        assert_eq!(all.call("Kv", 1, 0xabc, 0, b"x"), (status::OK, b"x".to_vec()));
    }
}
