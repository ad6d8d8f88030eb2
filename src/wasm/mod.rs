//! WASM-component plugins: Fidius packages (`runtime = "wasm"`) run in a
//! deny-all wasmtime sandbox opened by the package's capability list.

mod cache;
mod drive;
pub mod egress;
mod host_call;
mod options;
mod plugin;
mod runtime;
pub mod sandbox;
mod sockets;
mod stream;
mod types;
mod wire;

use std::sync::Arc;

pub use egress::{Destination, EgressPolicy, RequestParts, ResponseDirective, ResponseHead};
pub use crate::egress::{SocketRequest, SocketUse};
pub use options::WasmOptions;
pub use plugin::{Method as WasmMethod, WasmPlugin};
pub use cache::CompileCache;
pub use runtime::{engine_config, WasmRuntime};
pub use stream::WasmStream;

use crate::error::{fail, Error, Result, Status};
use crate::package::{Manifest, PackageFiles};

/// A package's component, compiled or deserialized, and what happened on the way.
pub struct Loaded {
    pub plugin: WasmPlugin,
    /// Things the host should know (e.g. a `.cwasm` that could not be used, and why).
    pub warnings: Vec<String>,
}

/// Load the WASM package whose files are `files` (its directory, or the
/// verified bytes in memory).
pub fn load_package(runtime: Arc<WasmRuntime>, files: &PackageFiles, manifest: &Manifest, options: WasmOptions) -> Result<Loaded> {
    let in_pkg = |e: Error| e.context(format!("package {}", manifest.package.name));
    let wasm = manifest.wasm.as_ref().ok_or_else(|| Error::new(Status::InvalidManifest, "no [wasm] section"))?;
    // The load's grants replace the manifest's list; otherwise every
    // capability the package asks for must be one the host allows.
    let granted = options.load.grants.clone().unwrap_or_else(|| wasm.capabilities.clone());
    let caps = match &options.load.grants {
        Some(grants) => sandbox::Capabilities::parse(grants).map_err(|e| e.context("granted capabilities"))?,
        None => {
            let caps = sandbox::Capabilities::parse(&wasm.capabilities).map_err(in_pkg)?;
            options.capabilities.check(&manifest.package.name, &wasm.capabilities)?;
            caps
        }
    };
    let component_path = files.resolve(&wasm.component, "[wasm].component").map_err(in_pkg)?;
    let precompiled = match &wasm.precompiled {
        Some(p) => Some(files.resolve(p, "[wasm].precompiled").map_err(in_pkg)?),
        None => Some(component_path.with_extension("cwasm")).filter(|p| files.exists(p)),
    };
    let mut warnings = caps.warnings();
    let mut component = None;
    match &precompiled {
        // A .cwasm is machine code that runs unchecked in the host: only
        // bytes a trusted key signed, or that the embedder said it trusts.
        Some(cwasm) if !files.verified() && !options.trust_precompiled => warnings.push(format!(
            "precompiled {} ignored: a .cwasm is machine code, and no trusted key's package signature covers it \
             (require signatures, or trust precompiled artifacts with fidius_host_builder_set_trust_precompiled); \
             compiled {} instead",
            cwasm.display(),
            wasm.component
        )),
        Some(cwasm) => match files.read(cwasm) {
            // Safety: signed by a trusted key, or trusted by the embedder (above).
            Ok(bytes) => match unsafe { runtime.deserialize(&bytes) } {
                Ok(c) => component = Some(c),
                Err(e) => warnings.push(format!(
                    "precompiled {} not used ({}); compiled {} instead",
                    cwasm.display(),
                    e.message,
                    wasm.component
                )),
            },
            Err(e) => warnings.push(format!("precompiled {} not read ({}); compiled {} instead", cwasm.display(), e.message, wasm.component)),
        },
        None => {}
    }
    let component = match component {
        Some(c) => c,
        None => {
            let bytes = files.read(&component_path).map_err(|e| in_pkg(e.context("component")))?;
            runtime
                .compile_cached(&bytes, options.compile_cache.as_ref(), &mut warnings)
                .map_err(|e| in_pkg(e.context(component_path.display())))?
        }
    };
    let mut plugin = WasmPlugin::new(runtime, &component, caps, options, files.origin()).map_err(in_pkg)?;
    plugin.granted = granted;
    Ok(Loaded { plugin, warnings })
}

/// Ahead-of-time compile a component for hosts of this libfidius build.
pub fn precompile(runtime: &WasmRuntime, wasm: &[u8]) -> Result<Vec<u8>> {
    if wasm.is_empty() {
        return fail(Status::InvalidArgument, "no component bytes given");
    }
    runtime.precompile(wasm)
}
