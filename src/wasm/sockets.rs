//! Policy-gated sockets: the `tcp` and `udp` capabilities.
//!
//! Two keys, as for HTTP: the package asks for `tcp` or `udp`, and the
//! embedder's egress policy decides on every TCP connect, UDP bind and
//! send, and DNS lookup of the guest. TCP listen is never allowed. The
//! SSRF floor ([`crate::net`]) refuses private and special-purpose peers
//! before the policy is asked, unless the policy allows them, as it does
//! for HTTP (upstream fidius leaves this tier to the policy alone; we keep
//! the floor so that granting `tcp` never silently opens the host's own
//! network).
//!
//! Names are resolved by the host, here, and pinned per store: a connect's
//! address is matched back to the name this store looked up, so a
//! name-keyed policy sees the name the guest dialed, and only for
//! addresses the guest really got from that lookup.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{self, HostResolveAddressStream, ResolveAddressStream};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::WasiCtxBuilder;

use super::egress::{on_own_thread, parse_ipv4_loose, report_denial, Denials};
use super::sandbox::StoreState;
use crate::egress::{EgressPolicy, SocketRequest, SocketUse};
use crate::net::is_blocked_ip;
use crate::options::LogHook;

/// The socket decisions of one store (one plugin instance).
pub struct SocketGate {
    policy: Arc<dyn EgressPolicy>,
    plugin: String,
    log: Option<Arc<LogHook>>,
    pub(crate) denials: Denials,
    pins: Mutex<Pins>,
    tcp: bool,
    udp: bool,
}

impl SocketGate {
    pub fn new(policy: Arc<dyn EgressPolicy>, plugin: String, log: Option<Arc<LogHook>>, denials: Denials, tcp: bool, udp: bool) -> Self {
        SocketGate { policy, plugin, log, denials, pins: Mutex::new(Pins::default()), tcp, udp }
    }

    /// Open exactly the granted socket kinds, every address through [`Self::check`].
    pub fn install(self: &Arc<Self>, b: &mut WasiCtxBuilder) {
        b.allow_tcp(self.tcp);
        b.allow_udp(self.udp);
        b.allow_ip_name_lookup(true);
        let gate = self.clone();
        b.socket_addr_check(move |addr, use_| {
            let gate = gate.clone();
            Box::pin(async move { gate.check(addr, use_).await })
        });
    }

    async fn check(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let kind = match use_ {
            SocketAddrUse::TcpConnect if self.tcp => SocketUse::TcpConnect,
            SocketAddrUse::UdpBind if self.udp => SocketUse::UdpBind,
            SocketAddrUse::UdpConnect | SocketAddrUse::UdpOutgoingDatagram if self.udp => SocketUse::UdpSend,
            SocketAddrUse::TcpBind => {
                self.deny(&format!("TCP bind/listen on {addr}"), "the tcp capability never allows listening").await;
                return false;
            }
            // Not granted: wasmtime refuses these before asking.
            _ => return false,
        };
        let what = format!("{} {addr}", kind_name(kind));
        // A bind names a local address (typically 0.0.0.0:0): the floor is for peers.
        if kind != SocketUse::UdpBind && !self.policy.allows_private_ranges() && is_blocked_ip(addr.ip()) {
            let why = "a private or special-purpose address, which the SSRF floor refuses \
                       (fidius_egress_policy_set_allow_private_ranges lifts it for a policy)";
            self.deny(&what, why).await;
            return false;
        }
        let host = match kind {
            SocketUse::UdpBind => None,
            _ => self.pins.lock().unwrap_or_else(|p| p.into_inner()).host_for(addr.ip()),
        };
        self.decide(&what, SocketRequest { kind, host, address: Some(addr) }).await
    }

    /// Ask the policy (on a thread of its own, as for HTTP).
    async fn decide(&self, what: &str, request: SocketRequest) -> bool {
        let (policy, plugin) = (self.policy.clone(), self.plugin.clone());
        let verdict = on_own_thread(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.authorize_socket(&plugin, &request)))
                .unwrap_or_else(|_| Err("the egress policy panicked".to_string()))
        })
        .await
        .unwrap_or_else(|| Err("no thread could be started to ask the egress policy".to_string()));
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                self.deny(what, &reason).await;
                false
            }
        }
    }

    async fn deny(&self, what: &str, reason: &str) {
        report_denial(&self.denials, &self.log, format!("socket denied for plugin {}: {what}: {reason}", self.plugin)).await;
    }

    /// A lookup the policy allowed, resolved and pinned before the guest sees an address.
    async fn lookup(self: Arc<Self>, name: String) -> Result<Vec<IpAddress>, SocketError> {
        let request = SocketRequest { kind: SocketUse::DnsLookup, host: Some(name.clone()), address: None };
        if !self.decide(&format!("DNS lookup of {name}"), request).await {
            return Err(ErrorCode::PermanentResolverFailure.into());
        }
        let ips = resolve(&name).await?;
        self.pins.lock().unwrap_or_else(|p| p.into_inner()).record(&name, &ips);
        Ok(ips.into_iter().map(IpAddress::from).collect())
    }
}

fn kind_name(kind: SocketUse) -> &'static str {
    match kind {
        SocketUse::TcpConnect => "TCP connect to",
        SocketUse::UdpBind => "UDP bind of",
        SocketUse::UdpSend => "UDP send to",
        SocketUse::DnsLookup => "DNS lookup of",
    }
}

/// Which names this store's lookups resolved to which addresses. A name
/// looked up again replaces its addresses; an address several names
/// resolved to belongs to the most recent.
#[derive(Default)]
struct Pins {
    by_name: HashMap<String, Vec<IpAddr>>,
    by_ip: HashMap<IpAddr, String>,
}

impl Pins {
    fn record(&mut self, name: &str, ips: &[IpAddr]) {
        for old in self.by_name.remove(name).unwrap_or_default() {
            if self.by_ip.get(&old).is_some_and(|n| n == name) {
                self.by_ip.remove(&old);
            }
        }
        for ip in ips {
            self.by_ip.insert(*ip, name.to_string());
        }
        self.by_name.insert(name.to_string(), ips.to_vec());
    }

    fn host_for(&self, ip: IpAddr) -> Option<String> {
        self.by_ip.get(&ip).cloned()
    }
}

async fn resolve(name: &str) -> Result<Vec<IpAddr>, SocketError> {
    let found = tokio::net::lookup_host((name, 0)).await.map_err(|_| SocketError::from(ErrorCode::NameUnresolvable))?;
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in found {
        let ip = a.ip().to_canonical();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    Ok(ips)
}

/// What a store's `wasi:sockets/ip-name-lookup` does.
pub enum Lookup {
    /// No socket capability: every lookup fails as a resolver failure.
    Closed,
    /// `network`: names resolve without asking (the floor checks each address).
    Open,
    /// `tcp`/`udp`: each lookup is the policy's to allow, and is pinned.
    Gated(Arc<SocketGate>),
}

/// Replace wasmtime-wasi's `ip-name-lookup` (which resolves without asking)
/// with one that asks the policy and pins what it resolved.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let added = ip_name_lookup::add_to_linker::<StoreState, NameLookup>(linker, StoreState::lookup_view);
    linker.allow_shadowing(false);
    added
}

pub struct NameLookup;

impl HasData for NameLookup {
    type Data<'a> = LookupView<'a>;
}

/// A store's resources and its lookup rule, for one import call.
pub struct LookupView<'a> {
    pub table: &'a mut ResourceTable,
    pub lookup: &'a Lookup,
}

/// A name as the guest passed it: an address (in any form the system
/// resolver reads) or a DNS name, lower case without a final dot.
enum Name {
    Address(IpAddr),
    Dns(String),
}

fn parse_name(name: &str) -> Result<Name, SocketError> {
    let bare = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')).unwrap_or(name);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(Name::Address(ip.to_canonical()));
    }
    if let Some(v4) = parse_ipv4_loose(bare) {
        return Ok(Name::Address(IpAddr::V4(v4)));
    }
    let dns = bare.trim_end_matches('.').to_ascii_lowercase();
    let valid = !dns.is_empty()
        && dns.len() <= 253
        && dns.split('.').all(|label| !label.is_empty() && label.len() <= 63)
        && dns.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !valid {
        return Err(ErrorCode::InvalidArgument.into());
    }
    Ok(Name::Dns(dns))
}

impl ip_name_lookup::Host for LookupView<'_> {
    fn resolve_addresses(&mut self, network: Resource<Network>, name: String) -> Result<Resource<ResolveAddressStream>, SocketError> {
        self.table.get(&network)?;
        let stream = match (self.lookup, parse_name(&name)?) {
            (Lookup::Closed, _) => return Err(ErrorCode::PermanentResolverFailure.into()),
            // An address is not a lookup: nothing to ask, nothing to pin.
            (_, Name::Address(ip)) => ResolveAddressStream::Done(Ok(vec![IpAddress::from(ip)].into_iter())),
            (Lookup::Open, Name::Dns(dns)) => ResolveAddressStream::Waiting(wasmtime_wasi::runtime::spawn(async move {
                Ok(resolve(&dns).await?.into_iter().map(IpAddress::from).collect())
            })),
            (Lookup::Gated(gate), Name::Dns(dns)) => {
                ResolveAddressStream::Waiting(wasmtime_wasi::runtime::spawn(gate.clone().lookup(dns)))
            }
        };
        Ok(self.table.push(stream)?)
    }
}

impl HostResolveAddressStream for LookupView<'_> {
    fn resolve_next_address(&mut self, resource: Resource<ResolveAddressStream>) -> Result<Option<IpAddress>, SocketError> {
        let stream = self.table.get_mut(&resource)?;
        if let ResolveAddressStream::Waiting(task) = stream {
            match wasmtime_wasi::runtime::poll_noop(std::pin::Pin::new(task)) {
                Some(result) => *stream = ResolveAddressStream::Done(result.map(Vec::into_iter)),
                None => return Err(ErrorCode::WouldBlock.into()),
            }
        }
        match stream {
            ResolveAddressStream::Done(Ok(addresses)) => Ok(addresses.next()),
            // Report the failure once; later calls see an exhausted stream.
            ResolveAddressStream::Done(failed) => Err(std::mem::replace(failed, Ok(Vec::new().into_iter())).unwrap_err()),
            ResolveAddressStream::Waiting(_) => unreachable!("resolved above"),
        }
    }

    fn subscribe(&mut self, resource: Resource<ResolveAddressStream>) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.table, resource)
    }

    fn drop(&mut self, resource: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.table.delete(resource)?;
        Ok(())
    }
}

// The import's bindings require the `network` interface's host traits on the
// view (they own the error-code conversion); these mirror wasmtime-wasi's.
impl network::Host for LookupView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        error.downcast()
    }

    fn network_error_code(&mut self, err: Resource<wasmtime::Error>) -> wasmtime::Result<Option<ErrorCode>> {
        let err = self.table.get(&err)?;
        Ok(err.downcast_ref::<std::io::Error>().map(ErrorCode::from))
    }
}

impl network::HostNetwork for LookupView<'_> {
    fn drop(&mut self, this: Resource<Network>) -> wasmtime::Result<()> {
        self.table.delete(this)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn pins_follow_the_latest_lookup() {
        let mut pins = Pins::default();
        pins.record("db.example", &[ip("192.0.2.1"), ip("192.0.2.2")]);
        assert_eq!(pins.host_for(ip("192.0.2.2")).as_deref(), Some("db.example"));
        // Looked up again: the address it no longer has is no longer its.
        pins.record("db.example", &[ip("192.0.2.3")]);
        assert_eq!(pins.host_for(ip("192.0.2.1")), None);
        // Another name on the same address takes it; the first name moving
        // away does not unpin the second's.
        pins.record("cache.example", &[ip("192.0.2.3")]);
        pins.record("db.example", &[ip("192.0.2.9")]);
        assert_eq!(pins.host_for(ip("192.0.2.3")).as_deref(), Some("cache.example"));
        assert_eq!(pins.host_for(ip("192.0.2.9")).as_deref(), Some("db.example"));
    }

    #[test]
    fn names_are_read_like_the_resolver() {
        for (text, want) in [("127.1", "127.0.0.1"), ("[::1]", "::1"), ("::ffff:10.0.0.1", "10.0.0.1"), ("2130706433", "127.0.0.1")] {
            assert!(matches!(parse_name(text), Ok(Name::Address(a)) if a == ip(want)), "{text}");
        }
        assert!(matches!(parse_name("DB.Example."), Ok(Name::Dns(n)) if n == "db.example"));
        for bad in ["", "a..b", "bad host", "x/y", &"a".repeat(64)] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }
}
