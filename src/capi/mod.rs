//! The C surface: thin `extern "C"` wrappers over the safe core.
//!
//! Conventions, as in rustls-ffi and wasmtime's C API:
//! - every entry point runs inside [`guard`], so no panic unwinds into C;
//! - fallible functions return a `fidius_status` and take an optional
//!   `fidius_error **` (may be NULL) that receives the details on failure;
//! - handles are opaque pointers to a tagged box, so NULL, a handle of the
//!   wrong kind, or (where detectable) a freed handle gives
//!   `FIDIUS_STATUS_INVALID_HANDLE` instead of a crash.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use crate::error::{Error, Result, Status};

pub mod archive;
pub mod cancel;
pub mod discovery;
pub mod egress;
pub mod error;
pub mod host;
pub mod host_fn;
pub mod plugin;
pub mod response;
pub mod socket;
pub mod stream;

pub use archive::*;
pub use cancel::*;
pub use discovery::*;
pub use egress::*;
pub use error::*;
pub use host::*;
pub use host_fn::*;
pub use plugin::*;
pub use response::*;
pub use socket::*;
pub use stream::*;

/// The box behind every opaque handle. The tag comes first so that a handle
/// of another kind, or one whose memory was freed and reused, is detected.
#[repr(C)]
pub(crate) struct Tagged<T> {
    tag: u64,
    value: T,
}

impl<T> Tagged<T> {
    /// A tagged value that is not boxed on its own (e.g. an element of a handle's Vec).
    pub(crate) fn new<H: Handle<Target = T>>(value: T) -> Self {
        Tagged { tag: H::TAG, value }
    }
}

/// Tag value written over a handle as it is freed.
const FREED: u64 = 0xdead_dead_dead_dead;

/// An opaque C handle type and the Rust value behind it.
pub(crate) trait Handle: Sized {
    type Target;
    /// A value unique to this handle type.
    const TAG: u64;
    /// The C type name, for messages.
    const NAME: &'static str;

    fn into_raw(value: Self::Target) -> *mut Self {
        Box::into_raw(Box::new(Tagged { tag: Self::TAG, value })) as *mut Self
    }

    /// Borrow the value behind `ptr`, checking NULL and the tag.
    ///
    /// # Safety
    /// `ptr` is NULL or points to memory that was returned as some libfidius handle.
    unsafe fn get<'a>(ptr: *const Self) -> Result<&'a Self::Target> {
        Self::check(ptr)?;
        Ok(&(*(ptr as *const Tagged<Self::Target>)).value)
    }

    /// # Safety
    /// As [`Handle::get`]; and no other reference to the value is alive.
    unsafe fn get_mut<'a>(ptr: *mut Self) -> Result<&'a mut Self::Target> {
        Self::check(ptr)?;
        Ok(&mut (*(ptr as *mut Tagged<Self::Target>)).value)
    }

    unsafe fn check(ptr: *const Self) -> Result<()> {
        if ptr.is_null() {
            return Err(Error::new(Status::NullArgument, format!("{} is NULL", Self::NAME)));
        }
        match (*(ptr as *const Tagged<()>)).tag {
            tag if tag == Self::TAG => Ok(()),
            FREED => Err(Error::new(Status::InvalidHandle, format!("{} was used after it was freed", Self::NAME))),
            _ => Err(Error::new(
                Status::InvalidHandle,
                format!("pointer passed as {} is not one (wrong handle type, or freed)", Self::NAME),
            )),
        }
    }

    /// Free a handle; NULL and foreign pointers are ignored.
    ///
    /// # Safety
    /// As [`Handle::get`]; and no other reference to the value is alive.
    unsafe fn free(ptr: *mut Self) {
        if Self::check(ptr).is_err() {
            return;
        }
        let tagged = ptr as *mut Tagged<Self::Target>;
        (*tagged).tag = FREED;
        drop(Box::from_raw(tagged));
    }
}

/// Bind an opaque C type (declared by hand, so cbindgen sees it) to the Rust value behind it.
macro_rules! handle {
    ($name:ident => $target:ty, $tag:expr) => {
        impl $crate::capi::Handle for $name {
            type Target = $target;
            const TAG: u64 = $tag;
            const NAME: &'static str = stringify!($name);
        }
    };
}
pub(crate) use handle;

/// Run an entry point's body: catch panics, clear or fill `*error`, return the status.
#[inline(always)] // the success path stays in the entry point; failures go to `failed`
pub(crate) fn guard(error: *mut *mut fidius_error, body: impl FnOnce() -> Result<()>) -> Status {
    if !error.is_null() {
        unsafe { *error = ptr::null_mut() };
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => Status::Ok,
        Ok(Err(e)) => failed(error, e),
        Err(payload) => failed(error, panic_error(payload)),
    }
}

/// A failed or panicked entry point: its status, and its error object in `*error`.
#[cold]
#[inline(never)]
fn failed(error: *mut *mut fidius_error, e: Error) -> Status {
    let status = e.status;
    if !error.is_null() {
        unsafe { *error = fidius_error::into_raw(ErrorBox::new(e)) };
    }
    status
}

/// For entry points that return a value instead of a status: `fallback` on any failure.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    catch_unwind(AssertUnwindSafe(body)).ok().and_then(Result::ok).unwrap_or(fallback)
}

pub(crate) fn panic_error(payload: Box<dyn std::any::Any + Send>) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    Error::new(Status::InternalPanic, format!("libfidius panicked (a bug; please report it): {message}"))
}

/// A required NUL-terminated UTF-8 string argument.
pub(crate) unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::new(Status::NullArgument, format!("{what} is NULL")));
    }
    CStr::from_ptr(ptr)
        .to_str()
        .map_err(|e| Error::new(Status::InvalidUtf8, format!("{what} is not valid UTF-8 ({e})")))
}

/// A byte-buffer argument; `ptr` may be NULL only when `len` is 0.
pub(crate) unsafe fn c_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    match (ptr.is_null(), len) {
        (true, 0) => Ok(&[]),
        (true, _) => Err(Error::new(Status::NullArgument, format!("{what} is NULL but its length is {len}"))),
        (false, _) => Ok(std::slice::from_raw_parts(ptr, len)),
    }
}

/// A required out-parameter.
pub(crate) unsafe fn out_param<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T> {
    ptr.as_mut().ok_or_else(|| Error::new(Status::NullArgument, format!("{what} is NULL")))
}

/// A C string for text that may hold NUL bytes (plugin messages).
pub(crate) fn to_cstring(text: &str) -> CString {
    CString::new(text.replace('\0', "\\0")).expect("NULs were replaced")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_an_entry_point_becomes_a_status_and_an_error() {
        let mut error: *mut fidius_error = ptr::null_mut();
        let status = guard(&mut error, || panic!("deliberate"));
        assert_eq!(status, Status::InternalPanic);
        unsafe {
            let message = CStr::from_ptr(fidius_error_message(error)).to_str().unwrap();
            assert!(message.contains("deliberate"), "{message}");
            fidius_error_free(error);
        }
        assert_eq!(guard(ptr::null_mut(), || panic!("no error slot")), Status::InternalPanic);
        assert_eq!(guard_value(7, || panic!("value entry point")), 7);
    }
}
