//! Cancel tokens: stop running calls from another thread.

use std::sync::Arc;

use super::{fidius_bytes, fidius_error, fidius_plugin, guard, guard_value, handle, Handle};
use crate::cancel::Cancel;
use crate::error::Status;

/// A cancel token. Any thread may trigger it (`fidius_cancel_trigger`);
/// every call given it (`fidius_plugin_call_cancellable`) then stops with
/// FIDIUS_STATUS_CANCELLED:
/// - a WASM call wherever it is: guest code is stopped at the next epoch
///   tick (5 ms), a call blocked in a host function (a clock, stdin, an HTTP
///   response) at once; its instance is discarded and the plugin serves the
///   next call;
/// - a native call only if the token was triggered before the call started:
///   native code cannot be interrupted safely, so a native call already
///   running finishes normally;
/// - a Python call wherever it is, within 20 ms: its runner process is
///   stopped (the plugin's open streams end with it) and the next call
///   starts a fresh one.
/// Once triggered it stays triggered (use a new token for new calls).
/// Created by `fidius_cancel_new`, released with `fidius_cancel_free`;
/// calls hold their own reference, so freeing it while a call runs is safe.
/// Thread-safe.
pub struct fidius_cancel {
    _opaque: [u8; 0],
}
handle!(fidius_cancel => Arc<Cancel>, 0x4649_4443_414e_4331);

/// A new, untriggered cancel token. Never NULL.
#[no_mangle]
pub extern "C" fn fidius_cancel_new() -> *mut fidius_cancel {
    guard_value(std::ptr::null_mut(), || Ok(fidius_cancel::into_raw(Arc::new(Cancel::new()))))
}

/// Trigger the token: cancel every call using it, now and later. Any
/// thread, any number of times. NULL and invalid handles are ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_cancel_trigger(cancel: *const fidius_cancel) {
    guard_value((), || {
        fidius_cancel::get(cancel)?.trigger();
        Ok(())
    })
}

/// Whether the token was triggered; false for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_cancel_is_triggered(cancel: *const fidius_cancel) -> bool {
    guard_value(false, || Ok(fidius_cancel::get(cancel)?.is_triggered()))
}

/// Release the caller's reference. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_cancel_free(cancel: *mut fidius_cancel) {
    guard_value((), || {
        fidius_cancel::free(cancel);
        Ok(())
    })
}

/// `fidius_plugin_call`, stopped with FIDIUS_STATUS_CANCELLED once `cancel`
/// is triggered (see `fidius_cancel` for when each runtime observes it).
/// `cancel` may be NULL (no cancellation). Errors: as `fidius_plugin_call`,
/// and CANCELLED.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_call_cancellable(
    plugin: *const fidius_plugin,
    method: u32,
    format: u32,
    input: *const u8,
    input_len: usize,
    cancel: *const fidius_cancel,
    output: *mut fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let token = if cancel.is_null() { None } else { Some(fidius_cancel::get(cancel)?.clone()) };
        super::plugin::call(plugin, method, format, input, input_len, token, output)
    })
}
