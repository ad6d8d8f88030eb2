//! Brokered outbound HTTP: `wasi:http` requests of a sandboxed plugin go
//! through the embedder's egress policy, which sees every request, may
//! rewrite its headers (e.g. inject credentials the guest never sees), and
//! allows or denies it. A denied request is never dispatched; the guest sees
//! `HTTP-request-denied`, and the reason goes to the host.
//!
//! The destination is resolved before the policy decides, so the policy
//! judges where the request really goes, whatever the spelling
//! (`2130706433`, `127.1`, `0x7f.1`, `[::ffff:127.0.0.1]` or a DNS name): it
//! sees the canonical host and the resolved addresses, the SSRF floor
//! ([`crate::net`]) removes private and special-purpose addresses unless the
//! policy allows them, and the request is sent to exactly an address that
//! was checked, with no second lookup.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use http_body_util::BodyExt;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::p2::bindings::http::types::ErrorCode;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, IncomingResponse, OutgoingRequestConfig};
use wasmtime_wasi_http::p2::{hyper_request_error, HttpResult, WasiHttpHooks};

pub use crate::egress::{Destination, EgressPolicy, RequestParts, ResponseDirective, ResponseHead};

use crate::options::{LogHook, LogLevel};
use crate::net::is_blocked_ip;

/// Denials seen during one call, for its error message.
pub type Denials = Arc<Mutex<Vec<String>>>;

/// The `wasi:http` hooks of one store: every request goes through the policy.
pub struct EgressHooks {
    pub policy: Arc<dyn EgressPolicy>,
    pub plugin: String,
    pub log: Option<Arc<LogHook>>,
    pub denials: Denials,
}

/// How much of a request body is held while the request is not yet being
/// sent: fidius-guest writes the whole body before it hands the request
/// over, so with wasmtime's default (one chunk) any body over 4 KiB would
/// wait forever. 256 chunks of at most 4 KiB: up to 1 MiB per request.
const BODY_BUFFER_CHUNKS: usize = 256;
const BODY_CHUNK_SIZE: usize = 4096;

impl WasiHttpHooks for EgressHooks {
    fn outgoing_body_buffer_chunks(&mut self) -> usize {
        BODY_BUFFER_CHUNKS
    }

    fn outgoing_body_chunk_size(&mut self) -> usize {
        BODY_CHUNK_SIZE
    }

    fn send_request(
        &mut self,
        request: hyper::Request<HyperOutgoingBody>,
        config: OutgoingRequestConfig,
    ) -> HttpResult<HostFutureIncomingResponse> {
        let broker = Broker {
            policy: self.policy.clone(),
            plugin: self.plugin.clone(),
            log: self.log.clone(),
            denials: self.denials.clone(),
        };
        // Resolving, deciding and sending all happen in a task the guest
        // waits on, so the call's deadline can stop any of them.
        let handle = wasmtime_wasi::runtime::spawn(async move { Ok(broker.send(request, config).await) });
        Ok(HostFutureIncomingResponse::pending(handle))
    }
}

struct Broker {
    policy: Arc<dyn EgressPolicy>,
    plugin: String,
    log: Option<Arc<LogHook>>,
    denials: Denials,
}

impl Broker {
    async fn send(self, request: hyper::Request<HyperOutgoingBody>, config: OutgoingRequestConfig) -> Result<IncomingResponse, ErrorCode> {
        let (parts, body) = request.into_parts();
        let target = format!("{} {}", parts.method, parts.uri);
        let default_port = if config.use_tls { 443 } else { 80 };
        let Some(authority) = parts.uri.authority().cloned() else {
            return Err(self.deny(&target, "the request has no host", ErrorCode::HttpRequestUriInvalid).await);
        };
        let port = authority.port_u16().unwrap_or(default_port);
        let (host, resolved) = match resolve(authority.host(), port).await {
            Ok(found) => found,
            Err(why) => return Err(self.deny(&target, &why, ErrorCode::DnsError(dns_payload(&why))).await),
        };
        let allow_private = self.policy.allows_private_ranges();
        let (addresses, floored): (Vec<IpAddr>, Vec<IpAddr>) =
            resolved.into_iter().partition(|ip| allow_private || !is_blocked_ip(*ip));
        if addresses.is_empty() {
            let list: Vec<String> = floored.iter().map(IpAddr::to_string).collect();
            let why = format!(
                "{host} resolves only to private or special-purpose addresses ({}), which the SSRF floor refuses \
                 (fidius_egress_policy_set_allow_private_ranges lifts it for a policy)",
                list.join(", ")
            );
            return Err(self.deny(&target, &why, ErrorCode::DestinationIpProhibited).await);
        }
        let destination = Destination { host, port, addresses };
        if !self.policy.observes_responses() {
            let parts = self.authorize(&target, parts, &destination).await?;
            return send_to(hyper::Request::from_parts(parts, body), &destination, config).await;
        }
        // The response hook: a retry starts again from the request as the
        // guest made it (taken before the policy changed it), with the body
        // as it was sent.
        let original = parts.clone();
        let sent = self.authorize(&target, parts, &destination).await?;
        let (body, capture) = Tee::wrap(body);
        let retry_config = OutgoingRequestConfig { ..config };
        let first = send_to(hyper::Request::from_parts(sent.clone(), body), &destination, config).await?;
        let replay = capture.replayable();
        let directive = self.observe(sent, &destination, head(&first, replay.is_some())).await;
        let (ResponseDirective::RetryOnce, Some(bytes)) = (directive, replay) else { return Ok(first) };
        // Dropping the first response stops its body worker.
        drop(first);
        let sent = self.authorize(&target, original, &destination).await?;
        let body = http_body_util::Full::new(bytes).map_err(|never| match never {}).boxed_unsync();
        let second = send_to(hyper::Request::from_parts(sent.clone(), body), &destination, retry_config).await?;
        // Shown to the policy, which cannot ask for another retry.
        self.observe(sent, &destination, head(&second, false)).await;
        Ok(second)
    }

    /// Ask the policy about a request (on a thread of its own); the request
    /// as it may have changed it, or the guest's error.
    async fn authorize(&self, target: &str, parts: RequestParts, destination: &Destination) -> Result<RequestParts, ErrorCode> {
        let policy = self.policy.clone();
        let plugin = self.plugin.clone();
        let checked = destination.clone();
        let decided = on_own_thread(move || {
            let mut parts = parts;
            // A panicking (Rust) policy denies rather than unwinding.
            let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.authorize(&plugin, &mut parts, &checked)))
                .unwrap_or_else(|_| Err("the egress policy panicked".to_string()));
            (parts, verdict)
        })
        .await;
        match decided {
            None => Err(self.deny(target, "no thread could be started to ask the egress policy", ErrorCode::HttpRequestDenied).await),
            Some((_, Err(reason))) => Err(self.deny(target, &reason, ErrorCode::HttpRequestDenied).await),
            Some((parts, Ok(()))) => Ok(parts),
        }
    }

    /// Show the policy a response head; a policy that panics or cannot be asked forwards.
    async fn observe(&self, sent: RequestParts, destination: &Destination, head: ResponseHead) -> ResponseDirective {
        let (policy, plugin, destination) = (self.policy.clone(), self.plugin.clone(), destination.clone());
        let directive = on_own_thread(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| policy.on_response(&plugin, &sent, &destination, &head)))
                .unwrap_or(ResponseDirective::Forward)
        })
        .await;
        directive.unwrap_or(ResponseDirective::Forward)
    }

    /// Record and log a refused request; the guest gets `code`.
    async fn deny(&self, target: &str, reason: &str, code: ErrorCode) -> ErrorCode {
        report_denial(&self.denials, &self.log, format!("egress denied for plugin {}: {target}: {reason}", self.plugin)).await;
        code
    }
}

fn head(response: &IncomingResponse, retry_available: bool) -> ResponseHead {
    ResponseHead { status: response.resp.status().as_u16(), headers: response.resp.headers().clone(), retry_available }
}

/// Record a refusal for the call's error message, and log it.
pub(crate) async fn report_denial(denials: &Denials, log: &Option<Arc<LogHook>>, line: String) {
    denials.lock().unwrap_or_else(|p| p.into_inner()).push(line.clone());
    if let Some(log) = log.clone() {
        on_own_thread(move || log.log(LogLevel::Warn, &line)).await;
    }
}

/// Run embedder code (the egress policy, the log callback) on a thread of
/// its own that ends when it returns, while the call waits: never on a
/// runtime worker, so a slow callback holds up only the call waiting for
/// it, and runtimes that keep every thread that ever called into them
/// attached until it ends (Mono waits for them at exit) see it end. None
/// when no thread could be started.
pub(crate) async fn on_own_thread<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fidius-egress-callback".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .ok()?;
    rx.await.ok()
}

/// A request body kept as it is sent, up to [`REPLAY_LIMIT`] bytes, for a retry.
struct Tee {
    inner: HyperOutgoingBody,
    capture: Arc<Mutex<Capture>>,
}

/// The most of a request body kept for a retry (as upstream fidius).
const REPLAY_LIMIT: usize = 64 * 1024;

#[derive(Default)]
struct Capture {
    bytes: Vec<u8>,
    complete: bool,
    /// Too long, failed, or with trailers: a replay would not be the same request.
    spoiled: bool,
}

#[derive(Clone)]
struct CaptureHandle(Arc<Mutex<Capture>>);

impl CaptureHandle {
    /// The whole body, if it was all sent and kept.
    fn replayable(&self) -> Option<hyper::body::Bytes> {
        let c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (c.complete && !c.spoiled).then(|| hyper::body::Bytes::from(c.bytes.clone()))
    }
}

impl Tee {
    fn wrap(body: HyperOutgoingBody) -> (HyperOutgoingBody, CaptureHandle) {
        let capture = Arc::new(Mutex::new(Capture { complete: http_body::Body::is_end_stream(&body), ..Capture::default() }));
        let handle = CaptureHandle(capture.clone());
        (Tee { inner: body, capture }.boxed_unsync(), handle)
    }
}

impl http_body::Body for Tee {
    type Data = hyper::body::Bytes;
    type Error = ErrorCode;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        let ended = self.inner.is_end_stream();
        let mut c = self.capture.lock().unwrap_or_else(|p| p.into_inner());
        match &polled {
            std::task::Poll::Ready(Some(Ok(frame))) => match frame.data_ref() {
                Some(data) if c.bytes.len() + data.len() <= REPLAY_LIMIT => c.bytes.extend_from_slice(data),
                _ => c.spoiled = true,
            },
            std::task::Poll::Ready(Some(Err(_))) => c.spoiled = true,
            std::task::Poll::Ready(None) => c.complete = true,
            std::task::Poll::Pending => {}
        }
        if ended {
            c.complete = true;
        }
        if c.spoiled {
            c.bytes = Vec::new();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn dns_payload(why: &str) -> wasmtime_wasi_http::p2::bindings::http::types::DnsErrorPayload {
    wasmtime_wasi_http::p2::bindings::http::types::DnsErrorPayload { rcode: Some(why.to_string()), info_code: Some(0) }
}

/// The canonical host and every address `host` (as written in a URI
/// authority) stands for. IPv4 in any form the system resolver accepts
/// (`127.1`, `2130706433`, `0x7f.0.0.1`, `0177.0.0.1`) is read here, so its
/// canonical form is known; names go to the resolver, once.
pub async fn resolve(host: &str, port: u16) -> Result<(String, Vec<IpAddr>), String> {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let ip = canonical_ip(ip);
        return Ok((ip.to_string(), vec![ip]));
    }
    if let Some(v4) = parse_ipv4_loose(bare) {
        return Ok((v4.to_string(), vec![IpAddr::V4(v4)]));
    }
    let name = bare.trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
        return Err(format!("{host:?} is not a host name"));
    }
    let found = tokio::net::lookup_host((name.as_str(), port)).await.map_err(|e| format!("cannot resolve {name}: {e}"))?;
    let mut addresses: Vec<IpAddr> = Vec::new();
    for a in found {
        let ip = canonical_ip(a.ip());
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }
    if addresses.is_empty() {
        return Err(format!("{name} resolves to no address"));
    }
    Ok((name, addresses))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// IPv4 as `inet_aton` reads it (and so the system resolver): one to four
/// parts, each decimal, octal (leading 0) or hex (leading 0x); the last
/// part fills the remaining bytes.
pub fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = if let Some(hex) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            (hex, 16)
        } else if p.len() > 1 && p.starts_with('0') {
            (&p[1..], 8)
        } else {
            (*p, 10)
        };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() { 0 } else { u32::from_str_radix(digits, radix).ok()? };
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|v| *v > 255) {
        return None;
    }
    let last_bits = 8 * (4 - head.len() as u32);
    if last_bits < 32 && u64::from(*last) >= 1u64 << last_bits {
        return None;
    }
    let mut addr: u32 = 0;
    for (i, v) in head.iter().enumerate() {
        addr |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(addr | last))
}

/// Send `request` to one of the destination's checked addresses (in order),
/// with TLS to the canonical host when the request is HTTPS.
async fn send_to(
    mut request: hyper::Request<HyperOutgoingBody>,
    destination: &Destination,
    config: OutgoingRequestConfig,
) -> Result<IncomingResponse, ErrorCode> {
    use tokio::time::timeout;
    if !request.headers().contains_key(hyper::header::HOST) {
        if let Some(value) = request.uri().authority().and_then(|a| hyper::header::HeaderValue::from_str(a.as_str()).ok()) {
            request.headers_mut().insert(hyper::header::HOST, value);
        }
    }
    let mut stream = None;
    let mut last_error = ErrorCode::ConnectionRefused;
    for ip in &destination.addresses {
        match timeout(config.connect_timeout, tokio::net::TcpStream::connect(SocketAddr::new(*ip, destination.port))).await {
            Ok(Ok(s)) => {
                stream = Some(s);
                break;
            }
            Ok(Err(_)) => last_error = ErrorCode::ConnectionRefused,
            Err(_) => last_error = ErrorCode::ConnectionTimeout,
        }
    }
    let stream = stream.ok_or(last_error)?;
    // Only the path goes on the wire (the authority is in the Host header).
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *request.uri_mut() = http::Uri::builder().path_and_query(path).build().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    let (mut sender, worker) = if config.use_tls {
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.into() };
        let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
        let name = rustls::pki_types::ServerName::try_from(destination.host.clone())
            .map_err(|_| ErrorCode::TlsProtocolError)?;
        let tls_stream = connector.connect(name, stream).await.map_err(|_| ErrorCode::TlsProtocolError)?;
        handshake(TokioIo::new(tls_stream), config.connect_timeout).await?
    } else {
        handshake(TokioIo::new(stream), config.connect_timeout).await?
    };
    let resp = timeout(config.first_byte_timeout, sender.send_request(request))
        .await
        .map_err(|_| ErrorCode::ConnectionReadTimeout)?
        .map_err(hyper_request_error)?
        .map(|body| body.map_err(hyper_request_error).boxed_unsync());
    Ok(IncomingResponse { resp, worker: Some(worker), between_bytes_timeout: config.between_bytes_timeout })
}

type Sender = hyper::client::conn::http1::SendRequest<HyperOutgoingBody>;

async fn handshake<S>(io: S, limit: std::time::Duration) -> Result<(Sender, wasmtime_wasi::runtime::AbortOnDropJoinHandle<()>), ErrorCode>
where
    S: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = tokio::time::timeout(limit, hyper::client::conn::http1::handshake(io))
        .await
        .map_err(|_| ErrorCode::ConnectionTimeout)?
        .map_err(hyper_request_error)?;
    let worker = wasmtime_wasi::runtime::spawn(async move {
        let _ = conn.await;
    });
    Ok((sender, worker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loose_ipv4_spellings_are_read_as_the_resolver_reads_them() {
        for (text, ip) in [
            ("127.0.0.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0x7f.0.0.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("10.1.65535", "10.1.255.255"),
            ("0xa9fea9fe", "169.254.169.254"),
        ] {
            assert_eq!(parse_ipv4_loose(text), Some(ip.parse().unwrap()), "{text}");
        }
        for bad in ["", "1.2.3.4.5", "256.1.1.1", "1.2.65536", "example.com", "08.1.1.1", "1..2", "0xg.1", "4294967296"] {
            assert_eq!(parse_ipv4_loose(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolve_gives_the_canonical_host() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for (host, canonical) in [("[::ffff:127.0.0.1]", "127.0.0.1"), ("[::1]", "::1"), ("127.1", "127.0.0.1"), ("LOCALHOST.", "localhost")] {
            let (h, addrs) = rt.block_on(resolve(host, 80)).unwrap();
            assert_eq!(h, canonical, "{host}");
            assert!(addrs.iter().all(|a| crate::net::is_blocked_ip(*a)), "{host}: {addrs:?}");
        }
        assert!(rt.block_on(resolve("bad host!", 80)).is_err());
    }
}
