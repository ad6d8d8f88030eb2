//! Host functions written in C: interfaces the embedder implements and
//! plugins call (fidius `#[host_interface]`).

use std::ffi::{c_char, c_void};
use std::ptr;
use std::sync::Arc;

use super::egress::{fidius_destroy_fn, UserData};
use super::host::{with_builder, with_options};
use super::{c_bytes, c_str, fidius_error, fidius_host_builder, fidius_load_options, guard, guard_value, out_param, Handle, Tagged};
use crate::error::{Error, PluginError, Result, Status};
use crate::host_fn::{HostFnResult, HostFunctions, HostInterface};

/// A host function callback: one per interface, dispatching on `index`
/// (the function's position in the `#[host_interface]` trait, from 0).
/// `input` (`input_len` bytes, never NULL) is the wire encoding of the
/// function's arguments as a tuple; `call` is valid only during the
/// callback. The callback answers through `call`: with
/// `fidius_host_call_set_output` (the wire bytes of the return value; a
/// function returning `()` or `Result<(), _>` answers nothing, which is
/// the empty output), `fidius_host_call_set_error` (the plugin sees the
/// function's `PluginError`), or `fidius_host_call_set_failure` (the
/// plugin sees the host panicking). libfidius answers an index past
/// `fn_count` itself, without calling.
///
/// Native plugins call it on whichever thread runs the plugin's code (the
/// caller's, or one the plugin started). WASM plugins call it on a thread
/// libfidius starts for that call, which ends when the callback returns,
/// while the guest waits: never on the guest's own (fiber) stack, which
/// managed runtimes cannot scan; and a WASM call's timeout or cancel token
/// stops the guest waiting for it (the callback itself runs on to its
/// end). So it runs concurrently when several threads call plugins, and
/// must not hold a lock across a plugin call that a host function may
/// need. It may call plugins itself, including the one calling it (host ->
/// plugin -> host -> plugin); a WASM plugin with a reused instance is busy
/// during its own call, so re-entering it fails with UNSUPPORTED (use fresh
/// instances for plugins that re-enter).
pub type fidius_host_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, index: u32, input: *const u8, input_len: usize, call: *mut fidius_host_call),
>;

/// A host interface: the identity plugins were built against and the C
/// callback implementing it. Created by `fidius_host_interface_new`; the
/// caller's reference is released with `fidius_host_interface_free`.
/// Builders, load options and plugins hold their own references, so it may
/// be freed right after registering it. Thread-safe.
pub struct fidius_host_interface {
    _opaque: [u8; 0],
}
super::handle!(fidius_host_interface => Arc<HostInterface>, 0x4649_4448_4f53_5446);

/// One host function call in progress, as its callback sees it. Borrowed:
/// valid only during the callback.
pub struct fidius_host_call {
    _opaque: [u8; 0],
}
super::handle!(fidius_host_call => Option<HostFnResult>, 0x4649_4448_4341_4c4c);

struct CHostFunctions {
    callback: unsafe extern "C" fn(*mut c_void, u32, *const u8, usize, *mut fidius_host_call),
    user: UserData,
}

impl HostFunctions for CHostFunctions {
    fn call(&self, index: u32, input: &[u8]) -> HostFnResult {
        let mut call = Tagged::new::<fidius_host_call>(None);
        // Never NULL, as fidius' own shims promise for inputs.
        let data = if input.is_empty() { ptr::NonNull::<u8>::dangling().as_ptr() as *const u8 } else { input.as_ptr() };
        unsafe {
            (self.callback)(self.user.get(), index, data, input.len(), &mut call as *mut Tagged<_> as *mut fidius_host_call)
        };
        // The call handle dies here; a kept pointer is detected as freed.
        call.tag = super::FREED;
        call.value.take().unwrap_or(HostFnResult::Output(Vec::new()))
    }
}

/// Make a host interface. `name` is the `#[host_interface]` trait's name
/// (e.g. "Kv"), and `hash`, `version` and `fn_count` the constants the
/// macro generates for it (`Kv_HOST_INTERFACE_HASH`, `..._VERSION`,
/// `Kv_HOST_FN_COUNT`); a native plugin's expectations are also listed by
/// `fidius_plugin_describe` ("host_imports"). `user_data` is passed to
/// every call of `callback` and must be usable from any thread; `destroy`
/// (may be NULL) is called exactly once with it, when no builder, host,
/// options or plugin references the interface any more. On failure,
/// `destroy` is not called. Errors: NULL_ARGUMENT, INVALID_UTF8,
/// INVALID_ARGUMENT (an empty name).
///
/// How plugins see it. Native: when a plugin whose library imports an
/// interface of this name is loaded, its version and hash are checked
/// (a mismatch fails the load with HOST_INTERFACE, naming both) and the
/// library is bound to it; binding is once per library in the process, so
/// a library bound to an interface still in use cannot be loaded with
/// another implementation of it (HOST_INTERFACE) until the first is
/// released. An import nothing provides is left unbound: the plugin's calls
/// fail with fidius' "not bound" error. WASM: every component may import
/// `fidius:host-call/host@0.1.0`; each call names the interface and the
/// version and hash it was built against, checked on every call: an
/// interface not provided answers "not bound" (-7), a version mismatch -8
/// and a hash mismatch -9, which the plugin's client reports as errors.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_interface_new(
    name: *const c_char,
    hash: u64,
    version: u32,
    fn_count: u32,
    callback: fidius_host_fn,
    user_data: *mut c_void,
    destroy: fidius_destroy_fn,
    interface: *mut *mut fidius_host_interface,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(interface, "interface")?;
        *out = ptr::null_mut();
        let name = c_str(name, "name")?;
        let callback = callback.ok_or_else(|| Error::new(Status::NullArgument, "callback is NULL"))?;
        if name.is_empty() {
            return Err(Error::new(Status::InvalidArgument, "name is empty"));
        }
        let functions = CHostFunctions { callback, user: UserData { data: user_data, destroy } };
        *out = fidius_host_interface::into_raw(Arc::new(HostInterface::new(name, hash, version, fn_count, functions)));
        Ok(())
    })
}

/// Release the caller's reference to a host interface. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_interface_free(interface: *mut fidius_host_interface) {
    guard_value((), || {
        fidius_host_interface::free(interface);
        Ok(())
    })
}

/// Offer a host interface to every plugin the host loads (one of the same
/// name registered before is replaced). The builder takes its own
/// reference. Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_builder_add_host_interface(
    builder: *mut fidius_host_builder,
    interface: *const fidius_host_interface,
    error: *mut *mut fidius_error,
) -> Status {
    with_builder(builder, error, |b| {
        b.host_interface(fidius_host_interface::get(interface)?.clone());
        Ok(())
    })
}

/// Offer a host interface to the plugin loaded with these options, before
/// the host's interface of the same name (one of the same name added
/// before to the options is replaced). The options take their own
/// reference. Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_load_options_add_host_interface(
    options: *mut fidius_load_options,
    interface: *const fidius_host_interface,
    error: *mut *mut fidius_error,
) -> Status {
    with_options(options, error, |o| {
        let interface = fidius_host_interface::get(interface)?.clone();
        o.host_interfaces.0.retain(|i| i.name != interface.name);
        o.host_interfaces.0.push(interface);
        Ok(())
    })
}

fn answer(call: *mut fidius_host_call, error: *mut *mut fidius_error, body: impl FnOnce() -> Result<HostFnResult>) -> Status {
    guard(error, || {
        let slot = unsafe { fidius_host_call::get_mut(call)? };
        *slot = Some(body()?);
        Ok(())
    })
}

/// Answer a host function call with the wire bytes of its return value
/// (copied). Replaces an earlier answer. Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_call_set_output(
    call: *mut fidius_host_call,
    output: *const u8,
    output_len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    answer(call, error, || Ok(HostFnResult::Output(c_bytes(output, output_len, "output")?.to_vec())))
}

/// Answer a host function call with an error: the plugin sees a
/// `PluginError` with this code, message and details (a JSON document, or
/// NULL), as it would from a host function returning `Err`. Copied.
/// Replaces an earlier answer. Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_call_set_error(
    call: *mut fidius_host_call,
    code: *const c_char,
    message: *const c_char,
    details: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    answer(call, error, || {
        let details = if details.is_null() { None } else { Some(c_str(details, "details")?.to_string()) };
        Ok(HostFnResult::Error(PluginError {
            code: c_str(code, "code")?.to_string(),
            message: c_str(message, "message")?.to_string(),
            details,
        }))
    })
}

/// Answer a host function call with a failure outside its contract (what
/// the bindings do with an exception): the plugin sees the host function
/// panicking, with this message (copied). Replaces an earlier answer.
/// Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_host_call_set_failure(
    call: *mut fidius_host_call,
    message: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    answer(call, error, || Ok(HostFnResult::Failed(c_str(message, "message")?.to_string())))
}
