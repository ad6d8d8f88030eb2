//! Error objects and the version query.

use std::ffi::{c_char, CString};
use std::ptr;

use super::{guard_value, handle, to_cstring, Handle};
use crate::error::{Error, Status};

/// What a `fidius_error` holds: the error and its strings, made C-ready once.
pub struct ErrorBox {
    status: Status,
    message: CString,
    plugin_code: Option<CString>,
    plugin_message: Option<CString>,
    plugin_details: Option<CString>,
}

impl ErrorBox {
    pub(crate) fn new(error: Error) -> Self {
        let plugin = error.plugin_error.as_deref();
        ErrorBox {
            status: error.status,
            message: to_cstring(&error.message),
            plugin_code: plugin.map(|p| to_cstring(&p.code)),
            plugin_message: plugin.map(|p| to_cstring(&p.message)),
            plugin_details: plugin.and_then(|p| p.details.as_deref()).map(to_cstring),
        }
    }
}

/// An error: a status, a message, and for `FIDIUS_STATUS_PLUGIN_ERROR` the
/// plugin's own code, message and details.
///
/// Created by libfidius in a function's `fidius_error **error` out-parameter;
/// owned by the caller, who releases it with `fidius_error_free`. Immutable:
/// safe to read from several threads at once.
pub struct fidius_error {
    _opaque: [u8; 0],
}
handle!(fidius_error => ErrorBox, 0x4649_4445_5252_4f52);

fn c_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// The status this error was returned with, or `FIDIUS_STATUS_NULL_ARGUMENT`
/// when `error` is NULL or not an error object.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_status(error: *const fidius_error) -> Status {
    guard_value(Status::NullArgument, || Ok(fidius_error::get(error)?.status))
}

/// A human-readable, NUL-terminated UTF-8 message; never NULL for a valid error.
/// Owned by `error`: valid until `fidius_error_free(error)`.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_message(error: *const fidius_error) -> *const c_char {
    guard_value(ptr::null(), || Ok(fidius_error::get(error)?.message.as_ptr()))
}

/// The plugin's error code (`PluginError.code`), or NULL when the error did
/// not come from the plugin. Owned by `error`.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_plugin_code(error: *const fidius_error) -> *const c_char {
    guard_value(ptr::null(), || Ok(c_ptr(&fidius_error::get(error)?.plugin_code)))
}

/// The plugin's error message (`PluginError.message`), or NULL when the error
/// did not come from the plugin. Owned by `error`.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_plugin_message(error: *const fidius_error) -> *const c_char {
    guard_value(ptr::null(), || Ok(c_ptr(&fidius_error::get(error)?.plugin_message)))
}

/// The plugin's error details (`PluginError.details`, a JSON document by
/// convention), or NULL when absent. Owned by `error`.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_plugin_details(error: *const fidius_error) -> *const c_char {
    guard_value(ptr::null(), || Ok(c_ptr(&fidius_error::get(error)?.plugin_details)))
}

/// Release an error. NULL is ignored. Not to be called twice.
#[no_mangle]
pub unsafe extern "C" fn fidius_error_free(error: *mut fidius_error) {
    guard_value((), || {
        fidius_error::free(error);
        Ok(())
    })
}

/// A static, NUL-terminated description of a status ("plugin error", ...),
/// for logs. Never NULL; a value that is not a status gives "unknown status".
#[no_mangle]
pub extern "C" fn fidius_status_name(status: u32) -> *const c_char {
    guard_value(c"unknown status".as_ptr(), || {
        let unknown = c"unknown status".as_ptr();
        Ok(Status::ALL.iter().find(|s| **s as u32 == status).map_or(unknown, |s| s.name().as_ptr()))
    })
}

/// The libfidius version as a static NUL-terminated string, "MAJOR.MINOR.PATCH".
/// Compare with `FIDIUS_VERSION_STRING` to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn fidius_version() -> *const c_char {
    guard_value(ptr::null(), || Ok(concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char))
}
