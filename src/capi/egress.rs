//! Egress policies written in C, and the host's log callback.

use std::ffi::{c_char, c_void, CString};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use super::{c_bytes, c_str, fidius_error, guard, guard_value, out_param, to_cstring, Handle, Tagged};
use crate::error::{Error, Result, Status};
use crate::host::{LogHook, LogLevel};
use crate::egress::{Destination, EgressPolicy, RequestParts, ResponseDirective, ResponseHead, SocketRequest};

/// What an egress callback returns.
#[repr(C)]
pub enum fidius_egress_verdict {
    /// Do not dispatch it; the guest sees an HTTP "request denied" error.
    /// Zero, so a callback that returns a default or failed value denies.
    Deny = 0,
    /// Dispatch the request (with any header changes the callback made).
    Allow = 1,
}

/// An egress policy callback. Called once for every outbound HTTP request a
/// sandboxed plugin makes, before anything is sent, with the `user_data`
/// given to `fidius_egress_policy_new` and a request that is valid only
/// during the call. Returns a `fidius_egress_verdict`: only
/// FIDIUS_EGRESS_VERDICT_ALLOW (1) allows; anything else, 0 included, denies.
///
/// The destination is resolved first: `fidius_http_request_host` is the
/// canonical host and `fidius_http_request_address` the addresses the
/// request will be sent to (and only to those: there is no second lookup),
/// whatever spelling the guest used (`2130706433`, `127.1`,
/// `[::ffff:127.0.0.1]`, a DNS name). Addresses in private and
/// special-purpose ranges are removed before the callback is asked (a
/// request left with none is denied without asking) unless the policy
/// allows them (`fidius_egress_policy_set_allow_private_ranges`).
///
/// It runs on a thread libfidius starts for it, which ends when the
/// callback returns, while the `fidius_plugin_call` that made the request
/// waits (never on the embedder's own threads, nor on a pooled thread that
/// lives on: runtimes such as Mono, which keep every thread that called
/// into them attached until it ends, are not held up at exit); concurrently
/// when several requests are in flight; a slow callback holds up only the
/// call waiting for it. A call that reaches its timeout stops waiting; the
/// callback still runs to its end.
pub type fidius_egress_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, request: *mut fidius_http_request) -> u32>;

/// Releases user data when nothing references it any more.
pub type fidius_destroy_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Receives the host's log lines (`level`: 1 error, 2 warning, 3 info;
/// `message` is NUL-terminated UTF-8, valid during the call). Load
/// warnings are logged on the thread of the load; egress denials on a
/// thread libfidius starts for the line, which ends when the callback
/// returns (as for the egress policy), while the plugin call waits.
/// So it runs concurrently when several threads use the host, and should
/// return promptly.
pub type fidius_log_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, level: u32, message: *const c_char)>;

/// A C callback with its user data; the destructor runs exactly once, when
/// the last reference (builder, host, load options, plugin, store) is gone.
pub(crate) struct UserData {
    pub(crate) data: *mut c_void,
    pub(crate) destroy: fidius_destroy_fn,
}

// The embedder promises (see the docs) that its user data may be used from any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// (A method, so closures capture the whole `UserData`, which is Send + Sync.)
    pub(crate) fn get(&self) -> *mut c_void {
        self.data
    }
}

impl Drop for UserData {
    fn drop(&mut self) {
        if let Some(destroy) = self.destroy {
            unsafe { destroy(self.data) }
        }
    }
}

pub struct CEgressPolicy {
    callback: unsafe extern "C" fn(*mut c_void, *mut fidius_http_request) -> u32,
    pub(crate) user: UserData,
    allow_private: AtomicBool,
    /// The second key of `tcp`/`udp` (see `fidius_egress_policy_set_socket_callback`).
    pub(crate) socket: RwLock<super::socket::fidius_socket_fn>,
    /// The response hook (see `fidius_egress_policy_set_response_callback`).
    pub(crate) response: RwLock<super::response::fidius_response_fn>,
}

/// A request as the callback sees it.
pub struct RequestView {
    parts: *mut RequestParts,
    method: CString,
    scheme: CString,
    authority: CString,
    path_and_query: CString,
    plugin: CString,
    host: CString,
    port: u16,
    addresses: Vec<CString>,
    pub(crate) headers: Vec<(CString, Vec<u8>)>,
    deny_reason: Option<String>,
    /// In a response callback the request was sent already: edits are refused.
    read_only: bool,
}

impl RequestView {
    pub(crate) fn new(plugin: &str, parts: &mut RequestParts, destination: &Destination, read_only: bool) -> Self {
        let uri = &parts.uri;
        let mut view = RequestView {
            method: to_cstring(parts.method.as_str()),
            scheme: to_cstring(uri.scheme_str().unwrap_or("")),
            authority: to_cstring(uri.authority().map_or("", |a| a.as_str())),
            path_and_query: to_cstring(uri.path_and_query().map_or("/", |p| p.as_str())),
            plugin: to_cstring(plugin),
            host: to_cstring(&destination.host),
            port: destination.port,
            addresses: destination.addresses.iter().map(|a| to_cstring(&a.to_string())).collect(),
            headers: Vec::new(),
            deny_reason: None,
            read_only,
            parts,
        };
        view.snapshot();
        view
    }

    /// Refresh the indexable copy of the headers after a change.
    fn snapshot(&mut self) {
        let parts = unsafe { &*self.parts };
        self.headers = parts.headers.iter().map(|(n, v)| (to_cstring(n.as_str()), v.as_bytes().to_vec())).collect();
    }

    fn parts(&mut self) -> &mut RequestParts {
        unsafe { &mut *self.parts }
    }
}

impl EgressPolicy for CEgressPolicy {
    fn allows_private_ranges(&self) -> bool {
        self.allow_private.load(Ordering::Relaxed)
    }

    fn governs_sockets(&self) -> bool {
        read_lock(&self.socket).is_some()
    }

    fn authorize_socket(&self, plugin: &str, socket: &SocketRequest) -> std::result::Result<(), String> {
        super::socket::decide(self, plugin, socket)
    }

    fn observes_responses(&self) -> bool {
        read_lock(&self.response).is_some()
    }

    fn on_response(&self, plugin: &str, request: &RequestParts, destination: &Destination, response: &ResponseHead) -> ResponseDirective {
        super::response::observe(self, plugin, request, destination, response)
    }

    fn authorize(&self, plugin: &str, parts: &mut RequestParts, destination: &Destination) -> std::result::Result<(), String> {
        let mut view = Tagged::new::<fidius_http_request>(RequestView::new(plugin, parts, destination, false));
        let verdict = unsafe { (self.callback)(self.user.data, &mut view as *mut Tagged<RequestView> as *mut fidius_http_request) };
        // The request handle dies with this call; a kept pointer is detected as freed.
        view.tag = super::FREED;
        match verdict {
            v if v == fidius_egress_verdict::Allow as u32 => Ok(()),
            _ => Err(view.value.deny_reason.take().unwrap_or_else(|| "denied by the egress policy".into())),
        }
    }
}

/// An egress policy: a C callback deciding on every outbound HTTP request of
/// the WASM plugins it is registered for. Created by
/// `fidius_egress_policy_new`; the caller's reference is released with
/// `fidius_egress_policy_free`. Builders, load options and plugins that use
/// it hold their own references, so it may be freed right after
/// registering it. Thread-safe.
pub struct fidius_egress_policy {
    _opaque: [u8; 0],
}
super::handle!(fidius_egress_policy => Arc<CEgressPolicy>, 0x4649_4445_4752_5331);

/// One outbound HTTP request, as seen by an egress callback. Borrowed: valid
/// only during the callback it was passed to.
pub struct fidius_http_request {
    _opaque: [u8; 0],
}
super::handle!(fidius_http_request => RequestView, 0x4649_4448_5454_5031);

/// Make an egress policy from a callback. `user_data` is passed to every
/// call of `callback` and must be usable from any thread; `destroy` (may be
/// NULL) is called exactly once with it when no host, plugin or options
/// reference the policy any more. On success `*policy` receives the
/// caller's reference. On failure (NULL `callback`), `destroy` is not
/// called. Errors: NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn fidius_egress_policy_new(
    callback: fidius_egress_fn,
    user_data: *mut c_void,
    destroy: fidius_destroy_fn,
    policy: *mut *mut fidius_egress_policy,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let out = out_param(policy, "policy")?;
        *out = ptr::null_mut();
        let callback = callback.ok_or_else(|| Error::new(Status::NullArgument, "callback is NULL"))?;
        let policy = Arc::new(CEgressPolicy {
            callback,
            user: UserData { data: user_data, destroy },
            allow_private: AtomicBool::new(false),
            socket: RwLock::new(None),
            response: RwLock::new(None),
        });
        *out = fidius_egress_policy::into_raw(policy);
        Ok(())
    })
}

/// Let this policy's requests go to private and special-purpose addresses
/// (loopback, RFC 1918, link-local with the cloud metadata service,
/// carrier-grade NAT, unique-local, multicast, and IPv6 forms carrying such
/// IPv4 addresses), which the SSRF floor otherwise removes before the
/// callback is asked. Off by default; for policies that reach services on
/// the host's own network on purpose (and tests against a loopback server).
/// Applies to requests decided after the call. Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_egress_policy_set_allow_private_ranges(
    policy: *mut fidius_egress_policy,
    allow: bool,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        fidius_egress_policy::get(policy)?.allow_private.store(allow, Ordering::Relaxed);
        Ok(())
    })
}

/// Release the caller's reference to a policy. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_egress_policy_free(policy: *mut fidius_egress_policy) {
    guard_value((), || {
        fidius_egress_policy::free(policy);
        Ok(())
    })
}

/// A new reference to the policy, as the core's trait object.
pub(crate) unsafe fn policy_ref(policy: *const fidius_egress_policy) -> Result<Arc<dyn EgressPolicy>> {
    Ok(fidius_egress_policy::get(policy)?.clone())
}

/// Make a log hook from a C callback (see `fidius_log_fn`).
pub(crate) fn log_hook(callback: fidius_log_fn, user_data: *mut c_void, destroy: fidius_destroy_fn) -> Result<LogHook> {
    let callback = callback.ok_or_else(|| Error::new(Status::NullArgument, "callback is NULL"))?;
    let user = UserData { data: user_data, destroy };
    Ok(LogHook::new(move |level: LogLevel, message: &str| {
        let message = to_cstring(message);
        unsafe { callback(user.get(), level as u32, message.as_ptr()) }
    }))
}

fn with_request<T>(request: *const fidius_http_request, fallback: T, f: impl FnOnce(&RequestView) -> T) -> T {
    guard_value(fallback, || Ok(f(unsafe { fidius_http_request::get(request)? })))
}

/// The request method, e.g. "GET". Borrowed (valid during the callback).
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_method(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.method.as_ptr())
}

/// The URI scheme, "http" or "https". Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_scheme(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.scheme.as_ptr())
}

/// The authority as the guest wrote it, "host" or "host:port" (see
/// `fidius_http_request_host` for where the request really goes). Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_authority(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.authority.as_ptr())
}

/// The destination host, canonical: an IP address in standard form
/// ("127.0.0.1", "::1", whatever spelling the guest used) or a DNS name in
/// lower case without a final dot. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_host(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.host.as_ptr())
}

/// The destination port (the scheme's default when the authority has none); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_port(request: *const fidius_http_request) -> u16 {
    with_request(request, 0, |r| r.port)
}

/// Number of addresses the request may be sent to (at least 1); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_address_count(request: *const fidius_http_request) -> usize {
    with_request(request, 0, |r| r.addresses.len())
}

/// The `index`-th address the request may be sent to, as text ("93.184.216.34",
/// "2606:4700::1111"), in the order they are tried; NULL when out of range.
/// Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_address(request: *const fidius_http_request, index: usize) -> *const c_char {
    with_request(request, ptr::null(), |r| r.addresses.get(index).map_or(ptr::null(), |a| a.as_ptr()))
}

/// The path and query, e.g. "/v1/items?page=2". Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_path_and_query(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.path_and_query.as_ptr())
}

/// The name of the plugin making the request. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_plugin(request: *const fidius_http_request) -> *const c_char {
    with_request(request, ptr::null(), |r| r.plugin.as_ptr())
}

/// Number of header fields (a name given several times counts each time); 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_header_count(request: *const fidius_http_request) -> usize {
    with_request(request, 0, |r| r.headers.len())
}

/// The `index`-th header: `*name` receives its lowercase name (NUL-terminated),
/// `*value` and `*value_len` its value bytes exactly as the guest sent them
/// (not NUL-terminated). Borrowed until the callback returns or the headers
/// are changed. Errors: INVALID_ARGUMENT (index), NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_header(
    request: *const fidius_http_request,
    index: usize,
    name: *mut *const c_char,
    value: *mut *const u8,
    value_len: *mut usize,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || super::response::header_at(&fidius_http_request::get(request)?.headers, index, name, value, value_len))
}

fn refuse_if_sent(r: &RequestView) -> Result<()> {
    if r.read_only {
        return Err(Error::new(
            Status::InvalidArgument,
            "this request was sent already (a response callback sees it read-only); to change a retry, change it in the egress callback",
        ));
    }
    Ok(())
}

/// Read a callback slot (a poisoned lock still holds a valid pointer).
pub(crate) fn read_lock<T: Copy>(slot: &RwLock<T>) -> T {
    *slot.read().unwrap_or_else(|p| p.into_inner())
}

fn header_args(name: *const c_char, value: *const u8, len: usize) -> Result<(http::HeaderName, http::HeaderValue)> {
    let name = unsafe { c_str(name, "name")? };
    let value = unsafe { c_bytes(value, len, "value")? };
    let name = http::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| Error::new(Status::InvalidArgument, format!("\"{name}\" is not a valid header name")))?;
    let value = http::HeaderValue::from_bytes(value)
        .map_err(|_| Error::new(Status::InvalidArgument, format!("invalid value for header {name}")))?;
    Ok((name, value))
}

fn edit(request: *mut fidius_http_request, error: *mut *mut fidius_error, f: impl FnOnce(&mut RequestView) -> Result<()>) -> Status {
    guard(error, || {
        let r = unsafe { fidius_http_request::get_mut(request)? };
        refuse_if_sent(r)?;
        f(r)?;
        r.snapshot();
        Ok(())
    })
}

/// Set header `name` to `value` (`len` bytes), replacing every existing
/// value of it: e.g. inject `Authorization` so the guest never holds the
/// secret. Errors: INVALID_ARGUMENT (bad name or value), NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_set_header(
    request: *mut fidius_http_request,
    name: *const c_char,
    value: *const u8,
    len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    edit(request, error, |r| {
        let (n, v) = header_args(name, value, len)?;
        r.parts().headers.insert(n, v);
        Ok(())
    })
}

/// Add a value for header `name`, keeping existing ones. Errors as for
/// `fidius_http_request_set_header`.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_add_header(
    request: *mut fidius_http_request,
    name: *const c_char,
    value: *const u8,
    len: usize,
    error: *mut *mut fidius_error,
) -> Status {
    edit(request, error, |r| {
        let (n, v) = header_args(name, value, len)?;
        r.parts().headers.append(n, v);
        Ok(())
    })
}

/// Remove every value of header `name` (absent is fine).
/// Errors: INVALID_ARGUMENT, NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_remove_header(
    request: *mut fidius_http_request,
    name: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    edit(request, error, |r| {
        let name = c_str(name, "name")?;
        let n = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| Error::new(Status::InvalidArgument, format!("\"{name}\" is not a valid header name")))?;
        r.parts().headers.remove(n);
        Ok(())
    })
}

/// Give the reason for denying this request (copied); used when the
/// callback returns DENY. It reaches the host (the failed call's error
/// message and the log callback), never the guest.
#[no_mangle]
pub unsafe extern "C" fn fidius_http_request_set_deny_reason(
    request: *mut fidius_http_request,
    reason: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let r = fidius_http_request::get_mut(request)?;
        refuse_if_sent(r)?;
        r.deny_reason = Some(c_str(reason, "reason")?.to_owned());
        Ok(())
    })
}
