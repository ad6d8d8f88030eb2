//! Host builder, host, and load options.

use std::ffi::c_char;

use super::{c_bytes, c_str, guard, guard_value, handle, out_param, fidius_error, fidius_plugin, Handle, PluginBox};
use crate::error::{Error, Result, Status};
use crate::host::{Host, HostBuilder, LoadOptions, LoadPolicy};
use crate::plugin::BufferStrategy;
use crate::schema::Schema;
use crate::signing;
use std::sync::Arc;

/// Values for `fidius_host_builder_set_load_policy`.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum fidius_load_policy {
    /// Loading by name passes over broken libraries and keeps looking (default).
    Lenient = 0,
    /// Loading by name fails on the first library in the search paths that fails to open.
    Strict = 1,
}

/// Buffer strategies of native plugins.
#[repr(C)]
#[allow(non_camel_case_types)]
pub enum fidius_buffer_strategy {
    /// Not a native plugin (WASM and Python plugins have no buffer strategy).
    None = 0,
    /// The plugin allocates its output; libfidius copies it and frees it through the plugin.
    PluginAllocated = 1,
    /// libfidius lends the plugin a buffer to write into.
    Arena = 2,
}

impl fidius_buffer_strategy {
    pub(crate) fn from_core(s: Option<BufferStrategy>) -> Self {
        match s {
            None => Self::None,
            Some(BufferStrategy::PluginAllocated) => Self::PluginAllocated,
            Some(BufferStrategy::Arena) => Self::Arena,
        }
    }
}

/// Collects host settings. Created by `fidius_host_builder_new`, owned by
/// the caller, released with `fidius_host_builder_free`. Not thread-safe:
/// use one builder from one thread at a time.
pub struct fidius_host_builder {
    _opaque: [u8; 0],
}
handle!(fidius_host_builder => HostBuilder, 0x4649_4442_4c44_5231);

/// A plugin host: search paths and the checks plugins must pass. Created by
/// `fidius_host_builder_build`, owned by the caller, released with
/// `fidius_host_free`. Thread-safe: any number of threads may discover and
/// load through one host at once. Plugins loaded from it stay valid after
/// the host is freed.
pub struct fidius_host {
    _opaque: [u8; 0],
}
handle!(fidius_host => Host, 0x4649_4448_4f53_5431);

/// Options for one load (plugin configuration, ...). Created by
/// `fidius_load_options_new`, owned by the caller, released with
/// `fidius_load_options_free`; a load copies what it needs, so options may
/// be freed or reused right after. Not thread-safe while being modified.
pub struct fidius_load_options {
    _opaque: [u8; 0],
}
handle!(fidius_load_options => LoadOptions, 0x4649_444c_4f50_5431);

/// Create a host builder with no search paths and no requirements.
/// Returns NULL only if memory is exhausted. Release with `fidius_host_builder_free` (after
/// `fidius_host_builder_build`, which does not consume it).
#[no_mangle]
pub extern "C" fn fidius_host_builder_new() -> *mut fidius_host_builder {
    guard_value(std::ptr::null_mut(), || Ok(fidius_host_builder::into_raw(HostBuilder::new())))
}

/// Release a builder. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_free(builder: *mut fidius_host_builder) {
    guard_value((), || {
        fidius_host_builder::free(builder);
        Ok(())
    })
}

pub(crate) fn with_builder(
    builder: *mut fidius_host_builder,
    error: *mut *mut fidius_error,
    body: impl FnOnce(&mut HostBuilder) -> Result<()>,
) -> Status {
    guard(error, || body(unsafe { fidius_host_builder::get_mut(builder)? }))
}

/// Add a directory to scan for plugins (one level deep). Directories are
/// searched in the order added. `path` is a NUL-terminated UTF-8 string,
/// copied. Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_search_path(
    builder: *mut fidius_host_builder,
    path: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.search_path(c_str(path, "path")?);
        Ok(())
    })
}

/// Set what loading by name does with broken libraries (a `fidius_load_policy`
/// value). Errors: INVALID_ARGUMENT for an unknown value, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_load_policy(
    builder: *mut fidius_host_builder,
    policy: u32,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.load_policy(match policy {
            0 => LoadPolicy::Lenient,
            1 => LoadPolicy::Strict,
            other => return Err(Error::new(Status::InvalidArgument, format!("unknown load policy {other}"))),
        });
        Ok(())
    })
}

/// Require every plugin to carry a signature by a trusted key (default: off),
/// in the formats of the fidius toolchain: a library needs `<file name>.sig`
/// (`fidius sign`: 64 raw bytes over the whole file), a package directory or
/// `.fid` archive needs `package.sig` (`fidius package sign`: over the digest
/// of every file but `*.sig`, `target/` and `.git/`). Any trusted key
/// verifying is enough. Every load path and discovery verifies before a
/// library is mapped or a component (or `.cwasm`) is read for compiling, and
/// loads exactly the bytes it verified; discovery lists what fails as
/// skipped, with SIGNATURE_REQUIRED (no signature) or SIGNATURE_INVALID.
/// A library's interface schema beside it (`<file name>.wit`) needs its own
/// signature too (`<file name>.wit.sig`, `fidius sign` on the `.wit`).
/// With this on, `fidius_host_builder_build` fails unless a trusted key was added.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_require_signature(
    builder: *mut fidius_host_builder,
    require: bool,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.require_signature(require);
        Ok(())
    })
}

/// Keep compiled WASM components in the directory `dir` (absolute; made
/// with mode 0700 when missing), so that the next process loading the same
/// component deserializes it instead of compiling it (off by default).
/// Entries are named by the component's SHA-256 and the engine's
/// compatibility (wasmtime version and settings), so a libfidius of another
/// version never reads them as its own. A compiled component is machine
/// code that runs in the host unchecked, so the directory is the trust
/// boundary: it must be owned by the user running the host and writable by
/// no one else (FILE_REFUSED otherwise, here and, should it change, at each
/// load, which then compiles without it and says so in
/// `fidius_plugin_warning`); an entry is read only when it is a regular
/// file owned by this user with mode 0600; entries are written to a fresh
/// name with mode 0600 and renamed into place. Whoever can write there as
/// this user could as well change the host's own files. A corrupt or stale
/// entry is compiled afresh and replaced. Errors: NULL_ARGUMENT,
/// INVALID_UTF8, INVALID_ARGUMENT (a relative path), IO, FILE_REFUSED.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_compile_cache(
    builder: *mut fidius_host_builder,
    dir: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.compile_cache(std::path::Path::new(super::c_str(dir, "dir")?))?;
        Ok(())
    })
}

/// The Python interpreter that runs Python plugins (`runtime = "python"`
/// packages): a path, or a command name looked up on the PATH (default
/// `python3`). Each loaded Python plugin runs in a process of its own
/// started from it (`<interpreter> -I -c <runner>`); libfidius itself never
/// loads libpython, so hosts that load no Python plugin need no Python at
/// all, and a missing interpreter only fails Python loads (LIBRARY_LOAD,
/// naming it). Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (empty).
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_python_interpreter(
    builder: *mut fidius_host_builder,
    interpreter: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        let path = super::c_str(interpreter, "interpreter")?;
        if path.is_empty() {
            return Err(Error::new(Status::InvalidArgument, "interpreter is empty"));
        }
        b.python_interpreter(path);
        Ok(())
    })
}

/// Deserialize a package's precompiled `.cwasm` even when no trusted key's
/// package signature covers it (default: off). A `.cwasm` is machine code
/// that runs in the host process unchecked, past every capability and
/// limit, so by default it is used only from a package (directory or
/// `.fid`) whose signature a trusted key verified; otherwise it is ignored,
/// the `.wasm` is compiled instead, and `fidius_plugin_warning` (and the log
/// callback) says why. Turn this on only when whoever can write the search
/// paths is as trusted as the host itself.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_trust_precompiled(
    builder: *mut fidius_host_builder,
    trust: bool,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.trust_precompiled(trust);
        Ok(())
    })
}

/// Allow packages the capabilities matching `pattern` (copied): a
/// capability name (`stdout`, `http`, `network`, `env:HOME`) or a pattern
/// where `*` matches any run of characters (`env:LOG_*`, `*`).
///
/// The host has the last word on what a package gets: a package asking for
/// a capability the host does not allow fails to load with
/// FIDIUS_STATUS_CAPABILITY naming it. By default (no pattern added) every
/// capability is allowed except `env:*` (host environment variables, often
/// secrets), `args` (the host's command line), `network` (`sockets`: raw
/// sockets, still behind the SSRF floor) and `fs:*` (host directories,
/// `fs:ro:/PATH` read-only or `fs:rw:/PATH` read-write, preopened at the
/// same path in the guest), which must be allowed explicitly: allow
/// `fs:ro:/srv/data` for exactly that directory read-only (a `*` after
/// its trailing slash allows any directory below it). A package's `fs:` paths
/// must be absolute, without `.`, `..` or `//`, so the pattern that matched
/// is the directory granted; the directory is opened without following a
/// symbolic link anywhere on its path, and a missing one is not preopened
/// (a plugin warning says so).
/// The first pattern added replaces that default: from then on only what
/// some pattern matches is allowed (add `stdout`, `http`, ... as needed);
/// the pattern `@default` stands for the default allowance, so `@default`
/// plus `env:LOG_*` extends it by those variables.
/// A load's own grants (`fidius_load_options_set_grants`) replace the
/// package's list and are not checked against these patterns.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_ARGUMENT (empty pattern).
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_allow_capability(
    builder: *mut fidius_host_builder,
    pattern: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.allow_capability(c_str(pattern, "pattern")?)?;
        Ok(())
    })
}

/// Add an interface schema: WIT text (`len` bytes of UTF-8, copied), as
/// `fidius wit` or `fidius_build::emit_wit()` write it. Native plugins whose
/// interface it declares (matched by name: the trait `PriceEngine` is the
/// WIT interface `price-engine`) get method names and types from it, so they
/// can be called by name and with FIDIUS_FORMAT_JSON, and described; unless
/// their load options or a `<library file>.wit` beside the library give one.
/// Add as many as there are interfaces. Errors: INVALID_ARGUMENT (not valid
/// WIT, or no interface in it; the message says where), INVALID_UTF8,
/// NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_schema(
    builder: *mut fidius_host_builder,
    wit: *const u8,
    len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.schema(Schema::from_bytes(c_bytes(wit, len, "wit")?, "given to the host builder")?);
        Ok(())
    })
}

/// As `fidius_host_builder_add_schema`, reading the WIT from the file at
/// `path` (at most 1 MiB; read now). Errors: also IO, FILE_REFUSED.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_schema_file(
    builder: *mut fidius_host_builder,
    path: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.schema(Schema::read(std::path::Path::new(c_str(path, "path")?))?);
        Ok(())
    })
}

/// Trust an Ed25519 public key given as its 32 raw bytes (the content of the
/// `.public` file `fidius keygen` writes). The bytes are copied. Errors:
/// NULL_ARGUMENT, INVALID_ARGUMENT (not 32 bytes, not a valid key).
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_trusted_key(
    builder: *mut fidius_host_builder,
    key: *const u8,
    key_len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.trusted_key(signing::key_from_bytes(c_bytes(key, key_len, "key")?)?);
        Ok(())
    })
}

/// Trust the Ed25519 public key in a `.public` key file (32 raw bytes).
/// Errors: NULL_ARGUMENT, INVALID_UTF8, IO, INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_trusted_key_file(
    builder: *mut fidius_host_builder,
    path: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.trusted_key(signing::key_from_file(c_str(path, "path")?.as_ref())?);
        Ok(())
    })
}

/// Require native plugins to have this interface hash (the
/// `<Trait>_INTERFACE_HASH` constant of the interface crate). Plugins with
/// another hash are skipped by discovery and refused by load with
/// `FIDIUS_STATUS_INTERFACE_HASH_MISMATCH`, naming both hashes.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_interface_hash(
    builder: *mut fidius_host_builder,
    hash: u64,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.interface_hash(hash);
        Ok(())
    })
}

/// Require native plugins to use this buffer strategy (a
/// `fidius_buffer_strategy` value other than NONE). Errors: INVALID_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_buffer_strategy(
    builder: *mut fidius_host_builder,
    strategy: u32,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.buffer_strategy(match strategy {
            1 => BufferStrategy::PluginAllocated,
            2 => BufferStrategy::Arena,
            other => return Err(Error::new(Status::InvalidArgument, format!("unknown buffer strategy {other}"))),
        });
        Ok(())
    })
}

/// Register the host-wide default egress policy: the one WASM plugins'
/// outbound HTTP goes through unless a load gives its own
/// (`fidius_load_options_set_egress_policy`). `wasi:http` is linked only for
/// packages declaring the `http` capability when a policy is registered;
/// without one, such a component fails to load (FIDIUS_STATUS_CAPABILITY).
/// The builder takes its own reference to `policy`.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_egress_policy(
    builder: *mut fidius_host_builder,
    policy: *const super::fidius_egress_policy,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.egress_policy(super::egress::policy_ref(policy)?);
        Ok(())
    })
}

/// Receive the host's log lines: egress denials (with the reason), load
/// warnings. `user_data` must be usable from any thread. `destroy` (may be
/// NULL) is called exactly once, when the builder (or a later setting that
/// replaces this one), every host built from it, and every plugin loaded
/// from those are gone. On failure `destroy` is not called and `user_data`
/// stays the caller's. Errors: NULL_ARGUMENT (callback), INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_set_log_callback(
    builder: *mut fidius_host_builder,
    callback: super::fidius_log_fn,
    user_data: *mut std::ffi::c_void,
    destroy: super::fidius_destroy_fn,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.log_hook(std::sync::Arc::new(super::egress::log_hook(callback, user_data, destroy)?));
        Ok(())
    })
}

/// Build a host from the builder's current settings (the builder is not
/// consumed and may be reused or freed). On success `*host` receives a new
/// host owned by the caller (release with `fidius_host_free`); on failure it
/// is set to NULL. Errors: NULL_ARGUMENT, INVALID_HANDLE, INVALID_ARGUMENT
/// (signature required without trusted keys).
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_build(
    builder: *const fidius_host_builder,
    host: *mut *mut fidius_host,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(host, "host")?;
        *out = std::ptr::null_mut();
        *out = fidius_host::into_raw(fidius_host_builder::get(builder)?.build()?);
        Ok(())
    })
}

/// Release a host. NULL is ignored. Plugins loaded from it remain valid.
/// Must not race with other calls on the same host.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_free(host: *mut fidius_host) {
    guard_value((), || {
        fidius_host::free(host);
        Ok(())
    })
}

/// Create empty load options. Returns NULL only if memory is exhausted.
#[no_mangle]
pub extern "C" fn fidius_load_options_new() -> *mut fidius_load_options {
    guard_value(std::ptr::null_mut(), || Ok(fidius_load_options::into_raw(LoadOptions::default())))
}

/// Release load options. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_free(options: *mut fidius_load_options) {
    guard_value((), || {
        fidius_load_options::free(options);
        Ok(())
    })
}

/// Give the plugin a configuration: the bincode encoding of its config type
/// (fidius 0.5 `#[plugin_impl(Trait, config = C)]`), copied and handed to
/// the plugin's constructor (native) or `fidius-configure` export (WASM,
/// which then keeps one configured instance). `config` may be NULL when `config_len` is 0.
/// A plugin that cannot decode it fails to load with CONFIG_REJECTED.
/// Python plugins take JSON text instead, passed to the entry module's
/// `__fidius_configure__` (INVALID_ARGUMENT at load when it is not JSON).
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_config(
    options: *mut fidius_load_options,
    config: *const u8,
    config_len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.config = Some(c_bytes(config, config_len, "config")?.to_vec());
        Ok(())
    })
}

pub(crate) fn with_options(
    options: *mut fidius_load_options,
    error: *mut *mut fidius_error,
    body: impl FnOnce(&mut LoadOptions) -> Result<()>,
) -> Status {
    guard(error, || body(unsafe { fidius_load_options::get_mut(options)? }))
}

/// Expect this interface hash of the plugin, whatever its runtime: a native
/// plugin's descriptor hash, or a component's `fidius-interface-hash`.
/// A mismatch fails the load with INTERFACE_HASH_MISMATCH, naming both.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_interface_hash(
    options: *mut fidius_load_options,
    hash: u64,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.interface_hash = Some(hash);
        Ok(())
    })
}

/// WASM: the egress policy for this plugin, overriding the host's default
/// (the seed's `load_wasm_with_egress`). The options take their own
/// reference, and so does the loaded plugin.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_egress_policy(
    options: *mut fidius_load_options,
    policy: *const super::fidius_egress_policy,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.egress = Some(super::egress::policy_ref(policy)?);
        Ok(())
    })
}

/// WASM: the exported interface to use, e.g. "fidius:calc/calc@0.1.0"
/// (copied). Without it, the single exported interface that has
/// `fidius-interface-hash` is used; several are an error.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_interface_export(
    options: *mut fidius_load_options,
    export_name: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.interface_export = Some(c_str(export_name, "export_name")?.to_owned());
        Ok(())
    })
}

/// Packages: grant exactly these capabilities for this load (the `count`
/// strings are copied), replacing the list in the package's manifest, as
/// fidius' "load with grants" does. The embedder's own word for this load,
/// so the host's allow-list (`fidius_host_builder_allow_capability`) does
/// not apply to them. `count` 0 grants nothing (`grants` may then be NULL).
/// Errors: NULL_ARGUMENT (NULL `grants` with a count, or a NULL string),
/// INVALID_UTF8.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_grants(
    options: *mut fidius_load_options,
    grants: *const *const c_char,
    count: usize,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        let list = match (grants.is_null(), count) {
            (true, 0) => Vec::new(),
            (true, _) => return Err(Error::new(Status::NullArgument, format!("grants is NULL but count is {count}"))),
            (false, _) => (0..count)
                .map(|i| c_str(*grants.add(i), &format!("grants[{i}]")).map(str::to_owned))
                .collect::<Result<Vec<_>>>()?,
        };
        o.grants = Some(list);
        Ok(())
    })
}

/// Native plugins: the interface schema (WIT text, `len` bytes of UTF-8,
/// copied) describing this plugin's methods, overriding a `<library
/// file>.wit` and the host's schemas. A schema with one interface applies
/// whatever the plugin's interface is called; with several, the one named
/// like the plugin's interface is used. At load, the schema must list at
/// least the plugin's methods (else FIDIUS_STATUS_SCHEMA_MISMATCH, naming
/// both counts); methods it lists beyond the plugin's are optional methods
/// of a newer revision the plugin lacks (FIDIUS_STATUS_NOT_IMPLEMENTED when
/// called). The interface hash cannot be recomputed from WIT (it is over
/// the Rust spellings of the types, which WIT does not keep: a map and a
/// list of pairs are one WIT type), so pin it with
/// `fidius_load_options_set_interface_hash` where it matters. Ignored for
/// WASM plugins (their components carry their own types). Errors:
/// INVALID_ARGUMENT (not valid WIT), INVALID_UTF8, NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_schema(
    options: *mut fidius_load_options,
    wit: *const u8,
    len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.schema = Some(Arc::new(Schema::from_bytes(c_bytes(wit, len, "wit")?, "given in the load options")?));
        Ok(())
    })
}

/// As `fidius_load_options_set_schema`, reading the WIT from the file at
/// `path` (at most 1 MiB; read now). Errors: also IO, FILE_REFUSED.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_schema_file(
    options: *mut fidius_load_options,
    path: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.schema = Some(Arc::new(Schema::read(std::path::Path::new(c_str(path, "path")?))?));
        Ok(())
    })
}

/// WASM: stop any call that runs longer than `timeout_ms` milliseconds
/// (FIDIUS_STATUS_TIMEOUT), wherever it is: guest code is stopped at the
/// next 5 ms epoch tick, and a call blocked in a host function (a clock, a
/// stream such as stdin, an HTTP response that never comes) at the deadline;
/// its instance is discarded and the plugin serves the next call. 0 means
/// no timeout (the default). This is the only bound on blocking: fuel does
/// not count time spent in host calls. Python: the plugin's runner process
/// is killed at the deadline (its open streams end with it) and the next
/// call starts a fresh one; the import at load gets at least 60 s. Native
/// calls cannot be stopped.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_timeout_ms(
    options: *mut fidius_load_options,
    timeout_ms: u64,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.timeout = (timeout_ms > 0).then(|| std::time::Duration::from_millis(timeout_ms));
        Ok(())
    })
}

/// WASM: cap each instance's linear memory at `bytes`, all its memories
/// together (a component holds several core instances, each with memories
/// of its own); growing past it stops the call with
/// FIDIUS_STATUS_MEMORY_LIMIT. 0 means no cap beyond 4 GiB (the default).
/// Python: the runner process's address space (RLIMIT_AS); an allocation
/// past it is the plugin's MemoryError (PLUGIN_ERROR). 0: no limit.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_memory_limit(
    options: *mut fidius_load_options,
    bytes: u64,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.memory_limit = (bytes > 0).then_some(usize::try_from(bytes).unwrap_or(usize::MAX));
        Ok(())
    })
}

/// WASM: give each call this much fuel (about one unit per WebAssembly
/// instruction); running out stops the call with FIDIUS_STATUS_FUEL_EXHAUSTED.
/// A guest blocked in a host call runs no instructions, so fuel does not
/// bound blocking: set a timeout (or use a cancel token) for that.
/// 0 means unmetered (the default; metering costs some speed).
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_fuel(
    options: *mut fidius_load_options,
    fuel: u64,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.fuel = (fuel > 0).then_some(fuel);
        Ok(())
    })
}

/// WASM: keep one instance for all calls instead of a fresh instance per
/// call (the default). Faster, but calls see each other's state and are
/// serialized; after a trap the instance is rebuilt. A config (see
/// `fidius_load_options_set_config`) implies this mode.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_reuse_instance(
    options: *mut fidius_load_options,
    reuse: bool,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.reuse_instance = reuse;
        Ok(())
    })
}

/// WASM: say whether method `method_name` is a `#[wire(raw)]` method.
/// Components do not record this, so by default a method shaped
/// `list<u8> -> list<u8>` (or `-> result<list<u8>, plugin-error>`) is raw
/// for FIDIUS_FORMAT_WIRE calls; use this for a non-raw method of that shape.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_set_wire_raw(
    options: *mut fidius_load_options,
    method_name: *const c_char,
    raw: bool,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        o.raw_overrides.push((c_str(method_name, "method_name")?.to_owned(), raw));
        Ok(())
    })
}

/// Ahead-of-time compile WebAssembly component bytes into `.cwasm` bytes,
/// for a package's `[wasm].precompiled` file. The result is specific to this
/// libfidius build (its wasmtime version and settings); a package whose
/// `.cwasm` does not fit falls back to compiling its `.wasm`, with a load
/// warning saying why. On success `*output` receives a buffer owned by the
/// caller (`fidius_bytes_free`). Errors: INVALID_ARGUMENT (not a component),
/// NULL_ARGUMENT, INVALID_HANDLE. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_precompile_component(
    host: *const fidius_host,
    component: *const u8,
    component_len: usize,
    output: *mut super::fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(output, "output")?;
        *out = super::fidius_bytes::from_vec(Vec::new());
        let bytes = fidius_host::get(host)?.precompile_component(c_bytes(component, component_len, "component")?)?;
        *out = super::fidius_bytes::from_vec(bytes);
        Ok(())
    })
}

/// Fill a plugin out-parameter: NULL first, the new plugin on success.
pub(crate) unsafe fn load_into(plugin: *mut *mut fidius_plugin, load: impl FnOnce() -> Result<crate::Plugin>) -> Result<()> {
    let out = out_param(plugin, "plugin")?;
    *out = std::ptr::null_mut();
    *out = fidius_plugin::into_raw(PluginBox::new(load()?));
    Ok(())
}

pub(crate) unsafe fn options_or_default(options: *const fidius_load_options) -> Result<LoadOptions> {
    if options.is_null() {
        Ok(LoadOptions::default())
    } else {
        Ok(fidius_load_options::get(options)?.clone())
    }
}

/// Load the plugin named `name` from the search paths: a native plugin's
/// type name (e.g. "BasicCalc") or a package's name. `options` may be NULL.
///
/// On success `*plugin` receives a new plugin owned by the caller (release
/// with `fidius_plugin_free`); on failure it is set to NULL and the error
/// says which check failed, with the values involved. Errors include
/// PLUGIN_NOT_FOUND (listing what was passed over and why),
/// ARCHITECTURE_MISMATCH, INVALID_MAGIC, ABI_VERSION, INVALID_DESCRIPTOR,
/// BUFFER_STRATEGY, INTERFACE_HASH_MISMATCH, CONFIG_REJECTED,
/// SIGNATURE_REQUIRED, SIGNATURE_INVALID, LIBRARY_LOAD, UNSUPPORTED.
/// Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_load(
    host: *const fidius_host,
    name: *const c_char,
    options: *const fidius_load_options,
    plugin: *mut *mut fidius_plugin,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        load_into(plugin, || fidius_host::get(host)?.load(c_str(name, "name")?, &options_or_default(options)?))
    })
}

/// Load a native plugin from the library file at `path`, which need not be
/// in a search path. `name` picks one plugin of several in the library; it
/// may be NULL when the library holds exactly one. Signature and host
/// requirements apply as for `fidius_host_load`. Ownership and errors as
/// for `fidius_host_load`. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_load_path(
    host: *const fidius_host,
    path: *const c_char,
    name: *const c_char,
    options: *const fidius_load_options,
    plugin: *mut *mut fidius_plugin,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        load_into(plugin, || {
            let name = if name.is_null() { None } else { Some(c_str(name, "name")?) };
            fidius_host::get(host)?.load_path(c_str(path, "path")?.as_ref(), name, &options_or_default(options)?)
        })
    })
}
