//! The response callback of an egress policy: sees each HTTP response's
//! status and headers, and may have the request retried once.

use std::ffi::{c_char, c_void, CString};

use super::egress::{fidius_egress_policy, fidius_http_request, read_lock, CEgressPolicy, RequestView};
use super::{fidius_error, guard, guard_value, out_param, to_cstring, Handle, Tagged};
use crate::error::{Error, Result, Status};
use crate::egress::{Destination, RequestParts, ResponseDirective, ResponseHead};

/// What a response callback returns.
#[repr(C)]
pub enum fidius_response_directive {
    /// Hand the response to the guest. Zero, so a default value forwards.
    Forward = 0,
    /// Discard the response and send the request again, once: the egress
    /// callback is asked again with a fresh copy of the request as the
    /// guest made it (so it can put in a new credential), and the body is
    /// replayed. Honoured only when `fidius_http_response_retry_available`.
    RetryOnce = 1,
}

/// A response callback: called with the policy's `user_data` when the
/// head of a response to a request the policy allowed arrives, before the
/// guest sees it. `request` is the request as it was sent (read-only: the
/// edit functions fail with INVALID_ARGUMENT), `response` its status and
/// headers (never the body); both valid only during the call. Runs on a
/// thread libfidius starts for it, as the egress callback does. Returns a
/// `fidius_response_directive`; anything but RETRY_ONCE forwards. The
/// response to a retry is shown too (retry unavailable) and always forwarded.
pub type fidius_response_fn = Option<
    unsafe extern "C" fn(user_data: *mut c_void, request: *mut fidius_http_request, response: *const fidius_http_response) -> u32,
>;

/// The head of an HTTP response, as seen by a response callback. Borrowed:
/// valid only during the callback it was passed to.
pub struct fidius_http_response {
    _opaque: [u8; 0],
}
super::handle!(fidius_http_response => ResponseView, 0x4649_4448_5253_5031);

pub struct ResponseView {
    status: u16,
    headers: Vec<(CString, Vec<u8>)>,
    retry_available: bool,
}

/// Show the C callback a response (none set: forward).
pub(crate) fn observe(
    policy: &CEgressPolicy,
    plugin: &str,
    request: &RequestParts,
    destination: &Destination,
    response: &ResponseHead,
) -> ResponseDirective {
    let Some(callback) = read_lock(&policy.response) else { return ResponseDirective::Forward };
    let mut parts = request.clone();
    let mut request = Tagged::new::<fidius_http_request>(RequestView::new(plugin, &mut parts, destination, true));
    let mut view = Tagged::new::<fidius_http_response>(ResponseView {
        status: response.status,
        headers: response.headers.iter().map(|(n, v)| (to_cstring(n.as_str()), v.as_bytes().to_vec())).collect(),
        retry_available: response.retry_available,
    });
    let directive = unsafe {
        callback(
            policy.user.get(),
            &mut request as *mut Tagged<RequestView> as *mut fidius_http_request,
            &mut view as *const Tagged<ResponseView> as *const fidius_http_response,
        )
    };
    // Both handles die with this call; kept pointers are detected as freed.
    request.tag = super::FREED;
    view.tag = super::FREED;
    match directive {
        d if d == fidius_response_directive::RetryOnce as u32 && response.retry_available => ResponseDirective::RetryOnce,
        _ => ResponseDirective::Forward,
    }
}

/// Have this policy see every HTTP response (status and headers) to the
/// requests it allows, and choose to forward each or retry it once (for
/// example, after a 401, with a refreshed credential). `callback` gets the
/// policy's `user_data`; NULL removes it. Applies to requests made after
/// the call. Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_egress_policy_set_response_callback(
    policy: *mut fidius_egress_policy,
    callback: fidius_response_fn,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        *fidius_egress_policy::get(policy)?.response.write().unwrap_or_else(|p| p.into_inner()) = callback;
        Ok(())
    })
}

fn with_response<T>(response: *const fidius_http_response, fallback: T, f: impl FnOnce(&ResponseView) -> T) -> T {
    guard_value(fallback, || Ok(f(unsafe { fidius_http_response::get(response)? })))
}

/// The status code (e.g. 401); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_response_status(response: *const fidius_http_response) -> u16 {
    with_response(response, 0, |r| r.status)
}

/// Whether returning RETRY_ONCE would retry: false for the response to a
/// retry, and when the request body could not be kept for replay (over
/// 64 KiB, cut short, or with trailers). False for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_response_retry_available(response: *const fidius_http_response) -> bool {
    with_response(response, false, |r| r.retry_available)
}

/// Number of header fields (a name given several times counts each time); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_response_header_count(response: *const fidius_http_response) -> usize {
    with_response(response, 0, |r| r.headers.len())
}

/// The `index`-th header: `*name` receives its lowercase name
/// (NUL-terminated), `*value` and `*value_len` its value bytes (not
/// NUL-terminated). Borrowed, valid during the callback. Errors:
/// INVALID_ARGUMENT (index), NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_response_header(
    response: *const fidius_http_response,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const u8,
    value_len: *mut usize,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || header_at(&fidius_http_response::get(response)?.headers, index, name, value, value_len))
}

/// Hand out one header of a borrowed list (requests and responses alike).
pub(crate) unsafe fn header_at(
    headers: &[(CString, Vec<u8>)],
    index: usize,
    name: *mut *const c_char,
    value: *mut *const u8,
    value_len: *mut usize,
) -> Result<()> {
    let (n, v) = headers.get(index).ok_or_else(|| {
        Error::new(Status::InvalidArgument, format!("header index {index} is out of range ({} headers)", headers.len()))
    })?;
    *out_param(name, "name")? = n.as_ptr();
    *out_param(value, "value")? = v.as_ptr();
    *out_param(value_len, "value_len")? = v.len();
    Ok(())
}
