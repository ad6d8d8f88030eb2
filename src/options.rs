//! What an embedder sets for one load, and where the host's log lines go:
//! inputs every runtime reads, kept below them so no runtime reaches up
//! into the host.

use std::sync::Arc;
use std::time::Duration;

use crate::schema::Schema;
use crate::egress::EgressPolicy;
use crate::host_fn::HostInterfaces;

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error = 1,
    Warn = 2,
    Info = 3,
}

/// Where the host sends what it wants the embedder to know outside any call's
/// result: egress denials, load warnings.
pub struct LogHook(Box<dyn Fn(LogLevel, &str) + Send + Sync>);

impl LogHook {
    pub fn new(f: impl Fn(LogLevel, &str) + Send + Sync + 'static) -> Self {
        LogHook(Box::new(f))
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        (self.0)(level, message)
    }
}

/// Options for one `load`.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// WASM: the egress policy for this plugin, overriding the host's default.
    pub egress: Option<Arc<dyn EgressPolicy>>,
    /// Bincode of the plugin's config type, handed to its constructor
    /// (fidius 0.5 `#[plugin_impl(Trait, config = C)]`) or to a component's
    /// `fidius-configure`.
    pub config: Option<Vec<u8>>,
    /// WASM: the exported interface (e.g. `fidius:calc/calc@0.1.0`); detected when None.
    pub interface_export: Option<String>,
    /// WASM: wall-clock limit per call.
    pub timeout: Option<Duration>,
    /// WASM: maximum linear memory per instance, in bytes.
    pub memory_limit: Option<usize>,
    /// WASM: fuel (roughly, instructions) per call.
    pub fuel: Option<u64>,
    /// WASM: keep one instance across calls instead of a fresh one per call.
    pub reuse_instance: bool,
    /// WASM: per-method overrides of the raw-method rule (name, raw).
    pub raw_overrides: Vec<(String, bool)>,
    /// The interface hash this plugin must have (any runtime).
    pub interface_hash: Option<u64>,
    /// Packages: the capabilities granted for this load, replacing the
    /// manifest's list (fidius' "load with grants"). The embedder's own
    /// word, so the host's allow-list does not apply to them.
    pub grants: Option<Vec<String>>,
    /// Native plugins: the interface schema (WIT) describing the plugin's
    /// methods; it overrides a `<library>.wit` and the host's schemas.
    pub schema: Option<Arc<Schema>>,
    /// Host interfaces offered to this plugin, before the host's.
    pub host_interfaces: HostInterfaces,
}

