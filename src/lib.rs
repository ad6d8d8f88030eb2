//! libfidius: host [Fidius](https://crates.io/crates/fidius) plugins from C,
//! Go, C#, Python or any language with a C FFI.
//!
//! The safe Rust core ([`Host`], [`Plugin`]) is usable from Rust directly;
//! [`capi`] is the thin C surface over it, from which `include/fidius.h` is
//! generated.

pub mod cancel;
pub mod capability;
pub mod capi;
pub mod egress;
pub mod error;
pub mod fid;
pub mod files;
pub mod host;
pub mod host_fn;
pub mod info;
pub mod native;
pub mod net;
pub mod options;
pub mod output;
pub mod package;
pub mod plugin;
pub mod python;
pub mod schema;
pub mod signing;
pub mod stream;
pub mod value;
#[cfg(feature = "wasm")]
pub mod wasm;
#[cfg(not(feature = "wasm"))]
#[path = "wasm/disabled.rs"]
pub mod wasm;
pub mod wire;

pub use error::{Error, PluginError, Result, Status};
pub use output::Output;
pub use host::{Discovery, Host, HostBuilder, LoadOptions, LoadPolicy, Skipped};
pub use info::{BufferStrategy, Format, MethodInfo, PluginInfo, Runtime, Signature};
pub use plugin::{Plugin, PluginStream};
pub use stream::{ItemSource, StreamKind};

/// The library version, `MAJOR.MINOR.PATCH`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
