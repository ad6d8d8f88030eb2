//! The socket callback of an egress policy: the second key of the `tcp`
//! and `udp` capabilities.

use std::ffi::{c_char, c_void, CString};
use std::ptr;

use super::egress::{fidius_egress_policy, fidius_egress_verdict, read_lock, CEgressPolicy};
use super::{c_str, fidius_error, guard, guard_value, to_cstring, Handle, Tagged};
use crate::error::Status;
use crate::egress::{SocketRequest, SocketUse};

/// What a socket request is about (`fidius_socket_request_use`).
#[repr(C)]
pub enum fidius_socket_use {
    /// An outgoing TCP connection. (TCP listen is never allowed, and never asked.)
    TcpConnect = 1,
    /// Binding the local end of a UDP socket (typically 0.0.0.0 port 0).
    UdpBind = 2,
    /// A datagram to a peer: connecting a UDP socket, or one send_to.
    UdpSend = 3,
    /// Resolving a host name. A denial makes the lookup fail as a resolver
    /// failure; nothing is resolved.
    DnsLookup = 4,
}

/// A socket callback: decides on one socket operation of a WASM plugin
/// whose package has the `tcp` or `udp` capability. Called with the
/// policy's `user_data` and a request valid only during the call, on a
/// thread libfidius starts for it, as the egress callback is. Returns a
/// `fidius_egress_verdict`: only FIDIUS_EGRESS_VERDICT_ALLOW (1) allows.
///
/// Peers in private and special-purpose ranges are refused before the
/// callback is asked unless the policy allows them
/// (`fidius_egress_policy_set_allow_private_ranges`): the same SSRF floor
/// as for HTTP (upstream fidius leaves this tier to the policy alone).
pub type fidius_socket_fn = Option<unsafe extern "C" fn(user_data: *mut c_void, request: *mut fidius_socket_request) -> u32>;

/// One socket operation, as seen by a socket callback. Borrowed: valid only
/// during the callback it was passed to.
pub struct fidius_socket_request {
    _opaque: [u8; 0],
}
super::handle!(fidius_socket_request => SocketView, 0x4649_4453_4f43_4b31);

pub struct SocketView {
    kind: SocketUse,
    host: Option<CString>,
    address: Option<CString>,
    port: u16,
    plugin: CString,
    deny_reason: Option<String>,
}

/// Ask the C callback (none set: deny).
pub(crate) fn decide(policy: &CEgressPolicy, plugin: &str, socket: &SocketRequest) -> Result<(), String> {
    let Some(callback) = read_lock(&policy.socket) else {
        return Err("the egress policy has no socket callback".into());
    };
    let view = SocketView {
        kind: socket.kind,
        host: socket.host.as_deref().map(to_cstring),
        address: socket.address.map(|a| to_cstring(&a.ip().to_string())),
        port: socket.address.map_or(0, |a| a.port()),
        plugin: to_cstring(plugin),
        deny_reason: None,
    };
    let mut view = Tagged::new::<fidius_socket_request>(view);
    let verdict = unsafe { callback(policy.user.get(), &mut view as *mut Tagged<SocketView> as *mut fidius_socket_request) };
    // The request handle dies with this call; a kept pointer is detected as freed.
    view.tag = super::FREED;
    match verdict {
        v if v == fidius_egress_verdict::Allow as u32 => Ok(()),
        _ => Err(view.value.deny_reason.take().unwrap_or_else(|| "denied by the socket callback".into())),
    }
}

/// Make this policy decide on sockets: the second key of the `tcp` and
/// `udp` capabilities. A package asking for them loads only under a policy
/// with a socket callback (else FIDIUS_STATUS_CAPABILITY names the missing
/// key); every TCP connect, UDP bind and send, and DNS lookup of its
/// plugins is then asked. `callback` gets the policy's `user_data`. Set it
/// before loading the plugins it is for; a later change applies to the
/// decisions made after it. NULL removes it (plugins already loaded then
/// have every socket denied). Errors: NULL_ARGUMENT, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_egress_policy_set_socket_callback(
    policy: *mut fidius_egress_policy,
    callback: fidius_socket_fn,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        *fidius_egress_policy::get(policy)?.socket.write().unwrap_or_else(|p| p.into_inner()) = callback;
        Ok(())
    })
}

fn with_socket<T>(request: *const fidius_socket_request, fallback: T, f: impl FnOnce(&SocketView) -> T) -> T {
    guard_value(fallback, || Ok(f(unsafe { fidius_socket_request::get(request)? })))
}

/// What the request is about: a `fidius_socket_use` value; 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_use(request: *const fidius_socket_request) -> u32 {
    with_socket(request, 0, |r| r.kind as u32)
}

/// The host name: for a lookup, the name looked up (lower case, no final
/// dot); for a connect or send, the name this plugin instance looked up
/// that resolved to the address (the most recent one, if several did), or
/// NULL when the guest used an address it did not get from a lookup (so a
/// name-keyed policy should deny NULL); NULL for a bind. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_host(request: *const fidius_socket_request) -> *const c_char {
    with_socket(request, ptr::null(), |r| r.host.as_ref().map_or(ptr::null(), |h| h.as_ptr()))
}

/// The address, as text ("127.0.0.1", "::1"; IPv4-mapped IPv6 addresses
/// are given as IPv4): the peer of a connect or send, the local address of
/// a bind; NULL for a lookup. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_address(request: *const fidius_socket_request) -> *const c_char {
    with_socket(request, ptr::null(), |r| r.address.as_ref().map_or(ptr::null(), |a| a.as_ptr()))
}

/// The port that goes with the address; 0 for a lookup or NULL.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_port(request: *const fidius_socket_request) -> u16 {
    with_socket(request, 0, |r| r.port)
}

/// The name of the plugin asking. Borrowed.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_plugin(request: *const fidius_socket_request) -> *const c_char {
    with_socket(request, ptr::null(), |r| r.plugin.as_ptr())
}

/// Give the reason for denying this operation (copied); used when the
/// callback returns DENY. It reaches the host (the log callback, and the
/// error of a call that fails), never the guest, which sees its socket
/// operation fail. Errors: NULL_ARGUMENT, INVALID_UTF8, INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_socket_request_set_deny_reason(
    request: *mut fidius_socket_request,
    reason: *const c_char,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let r = fidius_socket_request::get_mut(request)?;
        r.deny_reason = Some(c_str(reason, "reason")?.to_owned());
        Ok(())
    })
}

