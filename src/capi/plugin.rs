//! Loaded plugins: calls, output buffers, metadata.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use super::{c_bytes, fidius_error, fidius_plugin_info, guard, guard_value, handle, out_param, to_cstring, Handle, InfoBox, Tagged};
use crate::error::{Error, Result, Status};
use crate::output::Output;
use crate::plugin::{Format, Plugin};

/// The encoding of a call's input and output.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum fidius_format {
    /// Fidius wire bytes: the bincode (1.3, legacy config) tuple of the
    /// arguments, e.g. `(i64, i64)` is two little-endian i64; for
    /// `#[wire(raw)]` methods, the raw bytes. The output is the bincode of the
    /// return value (of `T` for `Result<T, PluginError>`), or raw bytes.
    /// The same bytes work for native and WASM plugins: for a component they
    /// are decoded by its WIT types (as the matching Rust types encode), and
    /// a method shaped `list<u8> -> list<u8>` (or `-> result<list<u8>,
    /// plugin-error>`) is taken as raw unless the load options say otherwise.
    Wire = 0,
    /// JSON, for plugins whose types are known: WASM plugins (the
    /// component's own types) and native plugins with an interface schema
    /// (`fidius_load_options_set_schema`, `<library>.wit`,
    /// `fidius_host_builder_add_schema`); a native plugin without one answers
    /// UNSUPPORTED. A JSON call is the wire call with the arguments converted
    /// to the exact wire bytes the plugin expects and its result converted
    /// back. The input is an array of the arguments in order, or an object
    /// keyed by parameter name; empty input means no arguments. The output
    /// is the JSON of the result (`null` for none). Conversion follows the
    /// interface's types:
    /// - integers must be whole and in range for their width (never wrapped);
    ///   64-bit integers also accept a decimal string, and are written as one
    ///   beyond ±2^53 so no reader loses precision;
    /// - floats are numbers or "NaN", "Infinity", "-Infinity"; `char` is a
    ///   one-character string; `list<T>` (also `list<u8>`) is an array;
    ///   `tuple` is an array of exactly its length; a Rust map
    ///   (`list<tuple<K, V>>`) is an array of `[key, value]` pairs;
    /// - records are objects with snake_case keys (kebab-case accepted); a
    ///   missing `option` field is none; unknown keys are errors;
    /// - variants are `{"Case": payload}` or `"Case"`, enums `"Case"`
    ///   (written PascalCase; PascalCase, snake_case or kebab-case accepted);
    /// - `option<T>`: `null` is none; `result<T, E>` is `{"ok": v}` or
    ///   `{"err": e}`, except a method's own `result<T, plugin-error>`: its
    ///   `ok` is the output and its `err` is FIDIUS_STATUS_PLUGIN_ERROR;
    /// - a raw method takes one argument, an array of bytes, and returns one;
    /// - `flags` have no Fidius wire form (fidius never emits them): refused.
    /// Errors name the argument path, e.g. "args.p.x: 300 is out of range for u8".
    Json = 1,
}

/// A byte buffer returned by libfidius and owned by the caller, who
/// releases it with `fidius_bytes_free`. `data` is NULL when `len` is 0.
/// `release` is libfidius' own record of how to free `data` (a native
/// plugin's output is handed on without a copy and freed by the plugin's
/// allocator): leave it alone. Initialize with `{0}` / `{NULL, 0, NULL}`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct fidius_bytes {
    pub data: *mut u8,
    pub len: usize,
    pub release: *mut c_void,
}

impl fidius_bytes {
    pub(crate) const EMPTY: fidius_bytes = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };

    pub(crate) fn from_vec(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Self::EMPTY;
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        fidius_bytes { data: Box::into_raw(boxed) as *mut u8, len, release: ptr::null_mut() }
    }

    pub(crate) fn from_output(output: Output) -> Self {
        match output {
            Output::Owned(v) => Self::from_vec(v),
            Output::Plugin(b) if b.is_empty() => {
                drop(b);
                Self::EMPTY
            }
            Output::Plugin(b) => {
                let (data, len, free) = b.into_raw();
                fidius_bytes { data, len, release: free as *mut c_void }
            }
        }
    }
}

/// A loaded plugin with its names and metadata made C-ready.
pub struct PluginBox {
    pub(crate) plugin: Plugin,
    info: Tagged<InfoBox>,
    method_names: Vec<Option<CString>>,
    method_metadata: Vec<Vec<(CString, CString)>>,
    trait_metadata: Vec<(CString, CString)>,
    warnings: Vec<CString>,
}

fn c_pairs(pairs: &[(String, String)]) -> Vec<(CString, CString)> {
    pairs.iter().map(|(k, v)| (to_cstring(k), to_cstring(v))).collect()
}

impl PluginBox {
    pub(crate) fn new(plugin: Plugin) -> Self {
        PluginBox {
            info: Tagged::new::<fidius_plugin_info>(InfoBox::new(plugin.info().clone())),
            method_names: plugin.methods().iter().map(|m| m.name.as_deref().map(to_cstring)).collect(),
            method_metadata: plugin.methods().iter().map(|m| c_pairs(&m.metadata)).collect(),
            trait_metadata: c_pairs(plugin.trait_metadata()),
            warnings: plugin.warnings().iter().map(|w| to_cstring(w)).collect(),
            plugin,
        }
    }
}

/// A loaded plugin instance. Created by `fidius_host_load` /
/// `fidius_host_load_path`, owned by the caller, released with
/// `fidius_plugin_free`. Thread-safe: any number of threads may call
/// methods on one plugin at once. The plugin's library stays loaded while
/// any plugin from it lives. Freeing must not race with calls.
pub struct fidius_plugin {
    _opaque: [u8; 0],
}
handle!(fidius_plugin => PluginBox, 0x4649_4450_4c55_4731);

/// Release a plugin: destroys its instance (fidius 0.5) and unloads its
/// library once no other plugin uses it. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_free(plugin: *mut fidius_plugin) {
    guard_value((), || {
        fidius_plugin::free(plugin);
        Ok(())
    })
}

/// What the plugin is. Borrowed from `plugin`: valid until `fidius_plugin_free`.
/// NULL for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_get_info(plugin: *const fidius_plugin) -> *const fidius_plugin_info {
    guard_value(ptr::null(), || {
        Ok(&fidius_plugin::get(plugin)?.info as *const Tagged<InfoBox> as *const fidius_plugin_info)
    })
}

/// Call method `method` (its index in the interface, in declaration order)
/// with `input` encoded as `format` (a `fidius_format` value).
///
/// `input` may be NULL when `input_len` is 0 (a method without arguments).
/// On success `*output` receives a new buffer owned by the caller (release
/// with `fidius_bytes_free`); on failure it is set to `{NULL, 0}`.
///
/// Errors: METHOD_INDEX; NOT_IMPLEMENTED (an optional method the plugin
/// lacks); PLUGIN_ERROR (the error carries the plugin's code, message and
/// details); PLUGIN_PANIC (with the panic message where the plugin sends
/// one); SERIALIZATION (input not the method's argument types);
/// UNKNOWN_STATUS; BUFFER_TOO_SMALL; UNSUPPORTED (JSON on a native plugin);
/// NULL_ARGUMENT; INVALID_HANDLE; INVALID_ARGUMENT. The plugin stays usable
/// after any of them. Thread-safe.
///
/// Arena plugins whose output outgrows the lent buffer are called a second
/// time with a larger one, as fidius-host does: the method runs twice.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_call(
    plugin: *const fidius_plugin,
    method: u32,
    format: u32,
    input: *const u8,
    input_len: usize,
    output: *mut fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || call(plugin, method, format, input, input_len, None, output))
}

/// The body of the call entry points.
#[inline(always)]
pub(crate) unsafe fn call(
    plugin: *const fidius_plugin,
    method: u32,
    format: u32,
    input: *const u8,
    input_len: usize,
    cancel: Option<std::sync::Arc<crate::cancel::Cancel>>,
    output: *mut fidius_bytes,
) -> Result<()> {
    let out = out_param(output, "output")?;
    *out = fidius_bytes::EMPTY;
    let format = parse_format(format)?;
    let plugin = &fidius_plugin::get(plugin)?.plugin;
    *out = fidius_bytes::from_output(plugin.call_cancellable(method, format, c_bytes(input, input_len, "input")?, cancel)?);
    Ok(())
}

/// A `fidius_format` value.
pub(crate) fn parse_format(format: u32) -> Result<Format> {
    match format {
        0 => Ok(Format::Wire),
        1 => Ok(Format::Json),
        other => Err(Error::new(Status::InvalidArgument, format!("unknown format {other}"))),
    }
}

/// Release a buffer returned by libfidius and reset it to `{NULL, 0}`.
/// NULL, and a buffer whose `data` is NULL, are ignored. Only for buffers
/// libfidius filled, exactly once.
#[no_mangle]
pub unsafe extern "C" fn fidius_bytes_free(bytes: *mut fidius_bytes) {
    guard_value((), || {
        if let Some(b) = bytes.as_mut() {
            if !b.data.is_null() {
                if b.release.is_null() {
                    drop(Box::from_raw(ptr::slice_from_raw_parts_mut(b.data, b.len)));
                } else {
                    // A native plugin's buffer: back to its allocator. Its
                    // library is never unmapped, so the function stays valid.
                    let free: crate::native::abi::FreeBufferFn = std::mem::transmute(b.release);
                    free(b.data, b.len);
                }
            }
            *b = fidius_bytes::EMPTY;
        }
        Ok(())
    })
}

fn pair<'a>(pairs: &'a [(CString, CString)], index: usize) -> Result<&'a (CString, CString)> {
    pairs.get(index).ok_or_else(|| {
        Error::new(Status::InvalidArgument, format!("metadata index {index} is out of range ({} entries)", pairs.len()))
    })
}

unsafe fn method_pairs<'a>(plugin: *const fidius_plugin, method: u32) -> Result<&'a [(CString, CString)]> {
    let p = fidius_plugin::get(plugin)?;
    p.method_metadata.get(method as usize).map(Vec::as_slice).ok_or_else(|| {
        Error::new(
            Status::MethodIndex,
            format!("method index {method} is out of range: plugin has {} methods", p.method_metadata.len()),
        )
    })
}

unsafe fn write_pair(pair: &(CString, CString), key: *mut *const c_char, value: *mut *const c_char) -> Result<()> {
    *out_param(key, "key")? = pair.0.as_ptr();
    *out_param(value, "value")? = pair.1.as_ptr();
    Ok(())
}

/// Number of `#[method_meta]` key/value pairs on method `method`.
/// Errors: METHOD_INDEX, NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_method_metadata_count(
    plugin: *const fidius_plugin,
    method: u32,
    count: *mut usize,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        *out_param(count, "count")? = method_pairs(plugin, method)?.len();
        Ok(())
    })
}

/// The `index`-th metadata pair of method `method`. `*key` and `*value`
/// receive NUL-terminated strings borrowed from `plugin`.
/// Errors: METHOD_INDEX, INVALID_ARGUMENT (index), NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_method_metadata_get(
    plugin: *const fidius_plugin,
    method: u32,
    index: usize,
    key: *mut *const c_char,
    value: *mut *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || write_pair(pair(method_pairs(plugin, method)?, index)?, key, value))
}

/// Number of interface-level metadata pairs; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_trait_metadata_count(plugin: *const fidius_plugin) -> usize {
    guard_value(0, || Ok(fidius_plugin::get(plugin)?.trait_metadata.len()))
}

/// The `index`-th interface-level metadata pair; strings borrowed from `plugin`.
/// Errors: INVALID_ARGUMENT (index), NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_trait_metadata_get(
    plugin: *const fidius_plugin,
    index: usize,
    key: *mut *const c_char,
    value: *mut *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || write_pair(pair(&fidius_plugin::get(plugin)?.trait_metadata, index)?, key, value))
}

/// The name of method `method` (kebab-case, as the component or the
/// interface schema names it), or NULL when out of range or unknown (a
/// native plugin without a schema: descriptors carry no method names).
/// Borrowed from `plugin`.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_method_name(plugin: *const fidius_plugin, method: u32) -> *const c_char {
    guard_value(ptr::null(), || {
        let p = fidius_plugin::get(plugin)?;
        Ok(p.method_names.get(method as usize).and_then(Option::as_ref).map_or(ptr::null(), |n| n.as_ptr()))
    })
}

/// Find a method's index by name (kebab-case or snake_case), for calls by
/// name. Errors: METHOD_INDEX (no such method; always for a native plugin
/// without an interface schema, whose descriptor carries no names),
/// NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_method_index(
    plugin: *const fidius_plugin,
    name: *const c_char,
    index: *mut u32,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let found = fidius_plugin::get(plugin)?.plugin.method_index(super::c_str(name, "name")?)?;
        *out_param(index, "index")? = found;
        Ok(())
    })
}

/// Number of load warnings: things the host should know about how the
/// plugin was loaded, e.g. a precompiled `.cwasm` that could not be used
/// (and was compiled from the `.wasm` instead). 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_warning_count(plugin: *const fidius_plugin) -> usize {
    guard_value(0, || Ok(fidius_plugin::get(plugin)?.warnings.len()))
}

/// The `index`-th load warning, or NULL when out of range. Borrowed from `plugin`.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_warning(plugin: *const fidius_plugin, index: usize) -> *const c_char {
    guard_value(ptr::null(), || Ok(fidius_plugin::get(plugin)?.warnings.get(index).map_or(ptr::null(), |w| w.as_ptr())))
}

/// Describe the plugin: `*description` receives a JSON document (UTF-8, not
/// NUL-terminated), owned by the caller: release with `fidius_bytes_free`.
/// Its shape (fields never removed; new ones may be added):
///
/// ```text
/// { "name": "calc", "interface": "calc", "interface_hash": "0x47b1890a3bc4686f",
///   "interface_version": 1, "runtime": "native" | "wasm" | "python",
///   "abi_version": 500 | 400 | null, "buffer_strategy": "plugin-allocated" | "arena" | null,
///   "capability_bits": 3 | null        (native: bit N = optional method N present),
///   "capabilities": ["stdout", ...] | null (packages: the capabilities granted),
///   "types_from": "component" | "<schema origin>" | null (null: types unknown;
///     a Python plugin without a schema lists its module's functions by name),
///   "host_imports": [ {"name": "Kv", "hash": "0x...", "version": 1, "bound": true} ] | null
///     (native: the host interfaces its library imports and whether one was
///     bound; null for packages, whose components name them on each call),
///   "metadata": {"key": "value", ...}  (trait metadata),
///   "methods": [ { "index": 0, "name": "add" | null,
///       "params": [{"name": "a", "type": "s64"}, ...] | null,
///       "result": "result<s64, plugin-error>" | null  (the declared WIT result),
///       "returns": "s64" | null           (what a successful call returns),
///       "fallible": true | false | null    (errors are FIDIUS_STATUS_PLUGIN_ERROR),
///       "raw": bool | null, "streaming": bool | null  (returns a stream: server or bidirectional),
///       "stream_item": "u64" | null         (a stream's item type, where known),
///       "optional": bool | null, "implemented": bool,
///       "metadata": {"key": "value", ...} } ],
///   "types": [ {"name": "point", "kind": "record", "fields": [{"name": "x", "type": "s32"}]},
///              {"name": "shape", "kind": "variant", "cases": [{"name": "circle", "type": "f64"},
///                                                             {"name": "empty", "type": null}]},
///              {"name": "color", "kind": "enum", "cases": ["red", "green"]},
///              {"name": "perms", "kind": "flags", "flags": ["read", "write"]} ] }
/// ```
///
/// Types are written as WIT writes them (`list<point>`, `option<u32>`,
/// `tuple<string, u32>`); `null` means unknown (a native plugin without an
/// interface schema knows its method count, metadata and which methods it
/// implements, but not their names or types). Errors: NULL_ARGUMENT,
/// INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_describe(
    plugin: *const fidius_plugin,
    description: *mut fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(description, "description")?;
        *out = fidius_bytes::EMPTY;
        let doc = fidius_plugin::get(plugin)?.plugin.describe();
        *out = fidius_bytes::from_output(Output::Owned(serde_json::to_vec(&doc).expect("JSON values serialize")));
        Ok(())
    })
}
