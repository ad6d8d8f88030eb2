//! What a WASM load takes: the load options, plus what the host resolves.
//! Shared by the runtime and by its stand-in without the `wasm` feature
//! (`disabled.rs`), whose `CompileCache` is its own.

use std::sync::Arc;

use super::CompileCache;
use crate::capability::CapabilityPolicy;
use crate::egress::EgressPolicy;
use crate::host_fn::HostInterfaces;
use crate::options::{LoadOptions, LogHook};

/// Per-plugin settings: the load options, plus what the host resolves.
#[derive(Clone, Default)]
pub struct WasmOptions {
    /// The plugin's name, for egress decisions and logs.
    pub name: String,
    /// The egress policy (the load's own, else the host's default).
    pub egress: Option<Arc<dyn EgressPolicy>>,
    pub log: Option<Arc<LogHook>>,
    /// What the host allows packages (the load's grants bypass it).
    pub capabilities: CapabilityPolicy,
    /// Deserialize a `.cwasm` no trusted signature covers.
    pub trust_precompiled: bool,
    /// What the `fidius:host-call` import dispatches to (the load's, then the host's).
    pub host_interfaces: HostInterfaces,
    /// Where compiled components persist across processes (opt-in).
    pub compile_cache: Option<CompileCache>,
    pub load: LoadOptions,
}
