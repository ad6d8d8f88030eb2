//! The embedder's egress policy: the decision on each outbound request a
//! sandboxed plugin makes, whatever runtime brokers it (the brokering of
//! `wasi:http` is in `wasm::egress`, of `wasi:sockets` in `wasm::sockets`).

use std::net::{IpAddr, SocketAddr};

pub use http::request::Parts as RequestParts;

/// Where a request goes, resolved before the policy decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The host, canonical: an IP address in its standard text form
    /// (`127.0.0.1`, `::1`), or a DNS name in lower case without a final dot.
    pub host: String,
    pub port: u16,
    /// The addresses the request may be sent to, in the order they are
    /// tried: every address the host resolved to, less those the SSRF floor
    /// removed. Never empty.
    pub addresses: Vec<IpAddr>,
}

/// The embedder's decision on one request.
pub trait EgressPolicy: Send + Sync {
    /// Inspect (and possibly modify the headers of) a request made by
    /// `plugin` to `destination`. `Err(reason)` denies it. Called on a
    /// libfidius worker thread while the plugin call waits, possibly
    /// concurrently for several requests.
    fn authorize(&self, plugin: &str, request: &mut RequestParts, destination: &Destination) -> Result<(), String>;

    /// Whether requests may go to private and special-purpose addresses
    /// (loopback, RFC 1918, link-local, ...: see [`crate::net`]). Off by default.
    fn allows_private_ranges(&self) -> bool {
        false
    }

    /// Whether this policy decides on sockets (the second key of the `tcp`
    /// and `udp` capabilities). A package asking for them fails to load
    /// under a policy that does not.
    fn governs_sockets(&self) -> bool {
        false
    }

    /// Decide on one socket operation of `plugin`: a TCP connect, a UDP
    /// bind or send, or a DNS lookup. `Err(reason)` denies it (the guest
    /// sees the operation fail). Called like [`authorize`](Self::authorize).
    fn authorize_socket(&self, _plugin: &str, _socket: &SocketRequest) -> Result<(), String> {
        Err("this egress policy does not decide on sockets".into())
    }

    /// Whether [`on_response`](Self::on_response) should see HTTP responses.
    fn observes_responses(&self) -> bool {
        false
    }

    /// See the status and headers of a response to a request of `plugin`
    /// this policy allowed (`request` as it was sent), and say whether to
    /// hand it to the guest or retry the request once.
    fn on_response(&self, _plugin: &str, _request: &RequestParts, _destination: &Destination, _response: &ResponseHead) -> ResponseDirective {
        ResponseDirective::Forward
    }
}

/// What a socket operation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketUse {
    TcpConnect = 1,
    /// Binding the local end of a UDP socket.
    UdpBind = 2,
    /// A datagram to a peer (a connected UDP socket's peer, or one `send_to`).
    UdpSend = 3,
    /// Resolving a host name.
    DnsLookup = 4,
}

/// One socket operation, as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketRequest {
    pub kind: SocketUse,
    /// For a lookup, the name looked up (lower case). For a connect or a
    /// send, the name this plugin instance looked up that resolved to the
    /// address (the most recent, when several did), if any: None when the
    /// guest used an address it did not get from a lookup.
    pub host: Option<String>,
    /// The address and port (local for a bind, the peer's otherwise); None for a lookup.
    pub address: Option<SocketAddr>,
}

/// The head of an HTTP response, as [`EgressPolicy::on_response`] sees it.
#[derive(Debug, Clone)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: http::HeaderMap,
    /// Whether a retry is possible: false for the response to a retry, and
    /// when the request body could not be kept for replay (over 64 KiB, or
    /// with trailers).
    pub retry_available: bool,
}

/// What to do with an observed response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseDirective {
    /// Hand it to the guest.
    Forward,
    /// Discard it and send the request again, once: the policy is asked
    /// again with a fresh copy of the request as the guest made it, and the
    /// body is replayed. Ignored when no retry is available.
    RetryOnce,
}

/// Policies that deny everything: the hooks of stores without `http`
/// (never reached, since wasi:http is then not linked; kept fail-closed).
pub struct DenyAll;

impl EgressPolicy for DenyAll {
    fn authorize(&self, _plugin: &str, _request: &mut RequestParts, _destination: &Destination) -> Result<(), String> {
        Err("no egress policy".into())
    }
}

