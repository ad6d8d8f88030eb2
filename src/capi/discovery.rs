//! Discovery results and plugin descriptions.

use std::ffi::{c_char, CString};
use std::ptr;

use super::{fidius_buffer_strategy, fidius_error, fidius_host, guard, guard_value, handle, out_param, to_cstring, Handle};
use crate::error::Status;
use crate::host::{Discovery, Skipped};
use crate::plugin::{PluginInfo, Runtime};

/// How a plugin runs.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum fidius_runtime {
    /// Not a plugin description (the accessor was given NULL or another handle).
    Unknown = 0,
    /// A shared library built with the `fidius` crates.
    Native = 1,
    /// A WebAssembly component in a Fidius package.
    Wasm = 2,
    /// A Python package, run by a `python3` runner process per plugin.
    Python = 3,
}

/// A plugin description with its strings made C-ready.
pub struct InfoBox {
    pub(crate) info: PluginInfo,
    name: CString,
    interface_name: CString,
    path: CString,
}

impl InfoBox {
    pub(crate) fn new(info: PluginInfo) -> Self {
        InfoBox {
            name: to_cstring(&info.name),
            interface_name: to_cstring(&info.interface_name),
            path: to_cstring(&info.path.to_string_lossy()),
            info,
        }
    }
}

struct SkippedBox {
    status: Status,
    path: CString,
    plugin: Option<CString>,
    reason: CString,
}

/// Discovery's result, C-ready.
pub struct DiscoveryBox {
    plugins: Vec<Tagged>,
    skipped: Vec<SkippedBox>,
}

/// Plugin infos handed out by a discovery are tagged like any handle.
type Tagged = super::Tagged<InfoBox>;

/// What a plugin is: name, interface, hash, runtime, ... Borrowed, never
/// freed by the caller: it belongs to the `fidius_discovery` or
/// `fidius_plugin` it came from and lives as long as that. Immutable and
/// thread-safe.
pub struct fidius_plugin_info {
    _opaque: [u8; 0],
}
handle!(fidius_plugin_info => InfoBox, 0x4649_4449_4e46_4f31);

/// The result of `fidius_host_discover`: the plugins found, and every file
/// or directory passed over with the reason. Owned by the caller, released
/// with `fidius_discovery_free`. Immutable and thread-safe.
pub struct fidius_discovery {
    _opaque: [u8; 0],
}
handle!(fidius_discovery => DiscoveryBox, 0x4649_4444_4953_4331);

/// Scan the host's search paths. Libraries are opened to read their
/// registries (their static constructors run), and closed again. With
/// signatures required, libraries and packages are verified first, and those
/// that fail are listed as skipped with the reason, never opened. On success
/// `*discovery` receives a new result owned by the caller. Errors:
/// NULL_ARGUMENT, INVALID_HANDLE; problems with individual files are not
/// errors but entries in the skipped list. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_discover(
    host: *const fidius_host,
    discovery: *mut *mut fidius_discovery,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(discovery, "discovery")?;
        *out = ptr::null_mut();
        let Discovery { plugins, skipped } = fidius_host::get(host)?.discover();
        let plugins = plugins.into_iter().map(|info| super::Tagged::new::<fidius_plugin_info>(InfoBox::new(info))).collect();
        let skipped = skipped
            .into_iter()
            .map(|Skipped { path, plugin, error }| SkippedBox {
                status: error.status,
                path: to_cstring(&path.to_string_lossy()),
                plugin: plugin.as_deref().map(to_cstring),
                reason: to_cstring(&error.message),
            })
            .collect();
        *out = fidius_discovery::into_raw(DiscoveryBox { plugins, skipped });
        Ok(())
    })
}

/// Release a discovery result and every `fidius_plugin_info` borrowed from it. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_free(discovery: *mut fidius_discovery) {
    guard_value((), || {
        fidius_discovery::free(discovery);
        Ok(())
    })
}

/// Number of plugins found; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_plugin_count(discovery: *const fidius_discovery) -> usize {
    guard_value(0, || Ok(fidius_discovery::get(discovery)?.plugins.len()))
}

/// The `index`-th plugin found, or NULL when out of range. Borrowed from `discovery`.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_plugin(
    discovery: *const fidius_discovery,
    index: usize,
) -> *const fidius_plugin_info {
    guard_value(ptr::null(), || {
        let d = fidius_discovery::get(discovery)?;
        Ok(d.plugins.get(index).map_or(ptr::null(), |t| t as *const Tagged as *const fidius_plugin_info))
    })
}

/// Number of files and directories passed over; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_skipped_count(discovery: *const fidius_discovery) -> usize {
    guard_value(0, || Ok(fidius_discovery::get(discovery)?.skipped.len()))
}

unsafe fn skipped<'a>(discovery: *const fidius_discovery, index: usize) -> crate::Result<&'a SkippedBox> {
    fidius_discovery::get(discovery)?
        .skipped
        .get(index)
        .ok_or_else(|| crate::Error::new(Status::InvalidArgument, "index out of range"))
}

/// Path of the `index`-th passed-over file or directory, or NULL when out of range. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_skipped_path(discovery: *const fidius_discovery, index: usize) -> *const c_char {
    guard_value(ptr::null(), || Ok(skipped(discovery, index)?.path.as_ptr()))
}

/// Name of the plugin that was passed over, when the library got far enough
/// to tell (e.g. a hash mismatch), else NULL. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_skipped_plugin(
    discovery: *const fidius_discovery,
    index: usize,
) -> *const c_char {
    guard_value(ptr::null(), || Ok(skipped(discovery, index)?.plugin.as_ref().map_or(ptr::null(), |p| p.as_ptr())))
}

/// Why the `index`-th entry was passed over, as a status (NOT_A_PLUGIN,
/// ABI_VERSION, INTERFACE_HASH_MISMATCH, ...); INVALID_ARGUMENT when out of range.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_skipped_status(discovery: *const fidius_discovery, index: usize) -> Status {
    guard_value(Status::InvalidArgument, || Ok(skipped(discovery, index)?.status))
}

/// Why the `index`-th entry was passed over, in words, with the values
/// involved; NULL when out of range. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_discovery_skipped_reason(
    discovery: *const fidius_discovery,
    index: usize,
) -> *const c_char {
    guard_value(ptr::null(), || Ok(skipped(discovery, index)?.reason.as_ptr()))
}

fn with_info<T>(info: *const fidius_plugin_info, fallback: T, f: impl FnOnce(&InfoBox) -> T) -> T {
    guard_value(fallback, || Ok(f(unsafe { fidius_plugin_info::get(info)? })))
}

/// The plugin's name: a native plugin's type name, or a package's name. Borrowed; NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_name(info: *const fidius_plugin_info) -> *const c_char {
    with_info(info, ptr::null(), |i| i.name.as_ptr())
}

/// The interface (trait) name, e.g. "Calc"; for packages, the manifest's `interface`. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_interface_name(info: *const fidius_plugin_info) -> *const c_char {
    with_info(info, ptr::null(), |i| i.interface_name.as_ptr())
}

/// The interface hash; 0 where not known (packages before loading).
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_interface_hash(info: *const fidius_plugin_info) -> u64 {
    with_info(info, 0, |i| i.info.interface_hash)
}

/// The interface version the plugin was built against.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_interface_version(info: *const fidius_plugin_info) -> u32 {
    with_info(info, 0, |i| i.info.interface_version)
}

/// How the plugin runs; FIDIUS_RUNTIME_UNKNOWN for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_runtime(info: *const fidius_plugin_info) -> fidius_runtime {
    with_info(info, fidius_runtime::Unknown, |i| match i.info.runtime {
        Runtime::Native => fidius_runtime::Native,
        Runtime::Wasm => fidius_runtime::Wasm,
        Runtime::Python => fidius_runtime::Python,
    })
}

/// The buffer strategy of a native plugin; None otherwise.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_buffer_strategy(info: *const fidius_plugin_info) -> fidius_buffer_strategy {
    with_info(info, fidius_buffer_strategy::None, |i| {
        fidius_buffer_strategy::from_core(i.info.buffer_strategy)
    })
}

/// Capability bits: bit N set means optional method N (counted among the
/// interface's optional methods only) is implemented.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_capabilities(info: *const fidius_plugin_info) -> u64 {
    with_info(info, 0, |i| i.info.capabilities)
}

/// Number of methods; 0 where not known before loading (packages).
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_method_count(info: *const fidius_plugin_info) -> u32 {
    with_info(info, 0, |i| i.info.method_count)
}

/// The native ABI version: 400 (fidius 0.4.x) or 500 (fidius 0.5.x); 0 for packages.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_abi_version(info: *const fidius_plugin_info) -> u32 {
    with_info(info, 0, |i| i.info.abi_version)
}

/// The library file or package directory. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_info_path(info: *const fidius_plugin_info) -> *const c_char {
    with_info(info, ptr::null(), |i| i.path.as_ptr())
}
