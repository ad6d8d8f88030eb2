//! The embedder's egress policy: the decision on each outbound request a
//! sandboxed plugin makes, whatever runtime brokers it (the brokering of
//! `wasi:http` is in `wasm::egress`).

use std::net::IpAddr;

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
}

/// Policies that deny everything: the hooks of stores without `http`
/// (never reached, since wasi:http is then not linked; kept fail-closed).
pub struct DenyAll;

impl EgressPolicy for DenyAll {
    fn authorize(&self, _plugin: &str, _request: &mut RequestParts, _destination: &Destination) -> Result<(), String> {
        Err("no egress policy".into())
    }
}

