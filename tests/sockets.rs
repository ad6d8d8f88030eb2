//! The `tcp` and `udp` capabilities and the egress response hook, through
//! the C ABI, with the `net` fixture (published fidius 0.5.9 guest crates:
//! std sockets and `fidius_guest::sockets`/`http`) against loopback servers
//! started by the tests.
//!
//! Fixture methods: 0 tcp_echo(host, port, line), 1 udp_echo(host, port,
//! data), 2 resolve(host), 3 tcp_listen(port), 4 post(url, body); I/O
//! errors are PluginError "IO", HTTP errors "HTTP_ERROR".

mod common;

use std::ffi::c_void;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const TCP_ECHO: u32 = 0;
const UDP_ECHO: u32 = 1;
const RESOLVE: u32 = 2;
const TCP_LISTEN: u32 = 3;
const POST: u32 = 4;

const ALLOW: u32 = fidius_egress_verdict::Allow as u32;
const DENY: u32 = fidius_egress_verdict::Deny as u32;

/// One socket request as the callback saw it through the C accessors.
#[derive(Debug, Clone, PartialEq)]
struct Sock {
    kind: u32,
    host: Option<String>,
    address: Option<String>,
    port: u16,
    plugin: String,
}

/// One HTTP response as the response callback saw it.
#[derive(Debug, Clone)]
struct Resp {
    status: u16,
    retry_available: bool,
    authorization: Option<String>,
    header: Option<String>,
    /// What editing the (sent, read-only) request returned.
    edit_status: Status,
}

type Rule = Box<dyn Fn(&Sock) -> bool + Send + Sync>;

/// A test policy; owned by the policy handle as its user data.
struct Policy {
    rule: Rule,
    socks: Mutex<Vec<Sock>>,
    /// HTTP: each ask injects `Authorization: Bearer <n>` (n counts asks);
    /// asks after `http_allow_asks` are denied.
    http_asks: AtomicUsize,
    http_allow_asks: usize,
    /// The response callback retries responses with this status.
    retry_status: Option<u16>,
    responses: Mutex<Vec<Resp>>,
}

unsafe extern "C" fn on_socket(user: *mut c_void, req: *mut fidius_socket_request) -> u32 {
    let policy = &*(user as *const Policy);
    let sock = Sock {
        kind: fidius_socket_request_use(req),
        host: opt_str(fidius_socket_request_host(req)),
        address: opt_str(fidius_socket_request_address(req)),
        port: fidius_socket_request_port(req),
        plugin: opt_str(fidius_socket_request_plugin(req)).unwrap(),
    };
    let allowed = (policy.rule)(&sock);
    policy.socks.lock().unwrap().push(sock);
    if allowed {
        return ALLOW;
    }
    let reason = cstr("not on the test's list");
    check(fidius_socket_request_set_deny_reason(req, reason.as_ptr(), ptr::null_mut()), ptr::null_mut()).unwrap();
    DENY
}

unsafe extern "C" fn on_http(user: *mut c_void, req: *mut fidius_http_request) -> u32 {
    let policy = &*(user as *const Policy);
    let n = policy.http_asks.fetch_add(1, Ordering::SeqCst) + 1;
    if n > policy.http_allow_asks {
        return DENY;
    }
    let (name, value) = (cstr("authorization"), format!("Bearer {n}"));
    check(fidius_http_request_set_header(req, name.as_ptr(), value.as_ptr(), value.len(), ptr::null_mut()), ptr::null_mut()).unwrap();
    ALLOW
}

unsafe fn header(count: usize, get: impl Fn(usize, *mut *const std::ffi::c_char, *mut *const u8, *mut usize) -> Status, want: &str) -> Option<String> {
    (0..count).find_map(|i| {
        let (mut n, mut v, mut len) = (ptr::null(), ptr::null(), 0usize);
        assert_eq!(get(i, &mut n, &mut v, &mut len), Status::Ok);
        (opt_str(n).unwrap() == want).then(|| String::from_utf8_lossy(std::slice::from_raw_parts(v, len)).into_owned())
    })
}

unsafe extern "C" fn on_response(user: *mut c_void, req: *mut fidius_http_request, resp: *const fidius_http_response) -> u32 {
    let policy = &*(user as *const Policy);
    let (name, value) = (cstr("x-late"), "1");
    let edit_status = fidius_http_request_set_header(req, name.as_ptr(), value.as_ptr(), 1, ptr::null_mut());
    let seen = Resp {
        status: fidius_http_response_status(resp),
        retry_available: fidius_http_response_retry_available(resp),
        authorization: header(
            fidius_http_request_header_count(req),
            |i, n, v, l| fidius_http_request_header(req, i, n, v, l, ptr::null_mut()),
            "authorization",
        ),
        header: header(
            fidius_http_response_header_count(resp),
            |i, n, v, l| fidius_http_response_header(resp, i, n, v, l, ptr::null_mut()),
            "x-test",
        ),
        edit_status,
    };
    let retry = policy.retry_status == Some(seen.status);
    policy.responses.lock().unwrap().push(seen);
    if retry {
        fidius_response_directive::RetryOnce as u32
    } else {
        fidius_response_directive::Forward as u32
    }
}

unsafe extern "C" fn drop_policy(user: *mut c_void) {
    drop(Box::from_raw(user as *mut Policy));
}

/// A policy handle and a view of its state (valid while the handle lives).
struct TestPolicy {
    handle: *mut fidius_egress_policy,
    state: *const Policy,
}

unsafe impl Send for TestPolicy {}
unsafe impl Sync for TestPolicy {}

struct Setup {
    sockets: bool,
    responses: bool,
    private: bool,
}

impl TestPolicy {
    fn new(setup: Setup, rule: impl Fn(&Sock) -> bool + Send + Sync + 'static) -> TestPolicy {
        Self::full(setup, Box::new(rule), usize::MAX, None)
    }

    fn full(setup: Setup, rule: Rule, http_allow_asks: usize, retry_status: Option<u16>) -> TestPolicy {
        let state = Box::into_raw(Box::new(Policy {
            rule,
            socks: Mutex::new(Vec::new()),
            http_asks: AtomicUsize::new(0),
            http_allow_asks,
            retry_status,
            responses: Mutex::new(Vec::new()),
        }));
        let mut handle = ptr::null_mut();
        unsafe {
            let mut err = ptr::null_mut();
            check(fidius_egress_policy_new(Some(on_http), state.cast(), Some(drop_policy), &mut handle, &mut err), err).unwrap();
            check(fidius_egress_policy_set_allow_private_ranges(handle, setup.private, &mut err), err).unwrap();
            if setup.sockets {
                check(fidius_egress_policy_set_socket_callback(handle, Some(on_socket), &mut err), err).unwrap();
            }
            if setup.responses {
                check(fidius_egress_policy_set_response_callback(handle, Some(on_response), &mut err), err).unwrap();
            }
        }
        TestPolicy { handle, state }
    }

    fn socks(&self) -> Vec<Sock> {
        unsafe { (*self.state).socks.lock().unwrap().clone() }
    }

    fn responses(&self) -> Vec<Resp> {
        unsafe { (*self.state).responses.lock().unwrap().clone() }
    }
}

impl Drop for TestPolicy {
    fn drop(&mut self) {
        unsafe { fidius_egress_policy_free(self.handle) }
    }
}

const TCP: u32 = fidius_socket_use::TcpConnect as u32;
const UDP_BIND: u32 = fidius_socket_use::UdpBind as u32;
const UDP_SEND: u32 = fidius_socket_use::UdpSend as u32;
const DNS: u32 = fidius_socket_use::DnsLookup as u32;

/// A host over a search path holding `net` with these capabilities, and
/// `policy` as its egress policy.
fn net_host(name: &str, caps: &[&str], policy: Option<&TestPolicy>) -> TestHost {
    let list = caps.iter().map(|c| format!("{c:?}")).collect::<Vec<_>>().join(", ");
    let dir = wasm_search_path(name, &["net"], |_, t| t.replace("capabilities = []", &format!("capabilities = [{list}]")));
    TestHost::configured(&[&dir], |b| {
        if let Some(p) = policy {
            ok(|e| unsafe { fidius_host_builder_set_egress_policy(b, p.handle, e) });
        }
    })
}

/// A TCP server on 127.0.0.1 answering each line with "echo: <line>"; bounded.
fn tcp_echo_server() -> u16 {
    wasm_packages();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            let Ok((conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(5));
                continue;
            };
            std::thread::spawn(move || {
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut line = String::new();
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                if reader.read_line(&mut line).is_ok() {
                    let _ = (&conn).write_all(format!("echo: {}\n", line.trim_end()).as_bytes());
                }
            });
        }
    });
    port
}

/// A UDP server on 127.0.0.1 answering each datagram with "echo: <data>";
/// returns its port and what it received.
fn udp_echo_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    wasm_packages();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.lock().unwrap().push(text.clone());
                let _ = socket.send_to(format!("echo: {text}").as_bytes(), from);
            }
        }
    });
    (port, got)
}

/// Every call bounded, so a hang fails the test instead of stalling the suite.
fn limited() -> TestOptions {
    TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 30_000, e) })
}

fn io_failure(r: Result<serde_json::Value, Failure>, what: &str) -> Failure {
    let f = r.expect_err(what);
    assert_eq!(f.status, Status::PluginError, "{what}: {}", f.message);
    assert_eq!(f.plugin_code.as_deref(), Some("IO"), "{what}: {}", f.message);
    f
}

fn private() -> Setup {
    Setup { sockets: true, responses: false, private: true }
}

#[test]
fn tcp_connects_are_decided_by_host_name_and_address() {
    let port = tcp_echo_server();
    // A name-keyed policy: lookups of localhost, connects to what localhost resolved to.
    let policy = TestPolicy::new(private(), |s| match s.kind {
        DNS => s.host.as_deref() == Some("localhost"),
        TCP => s.host.as_deref() == Some("localhost"),
        _ => false,
    });
    let host = net_host("tcp_by_name", &["tcp", "http"], Some(&policy));
    for reuse in [false, true] {
        let opts = limited().set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, reuse, e) });
        let net = host.load_opts("net", Some(&opts)).unwrap();
        assert_eq!(net.json(TCP_ECHO, &json!(["localhost", port, "hi"]).to_string()).unwrap(), json!("echo: hi"));
        // The same address dialed as a literal. In a fresh instance nothing
        // was looked up, so there is no name and this policy says no; pins
        // live as long as the instance, so a reused one that looked up
        // localhost before still knows the address as localhost.
        let literal = net.json(TCP_ECHO, &json!(["127.0.0.1", port, "hi"]).to_string());
        if reuse {
            assert_eq!(literal.unwrap(), json!("echo: hi"));
        } else {
            let f = io_failure(literal, "IP literal");
            assert!(
                f.message.contains("socket denied for plugin net: TCP connect to 127.0.0.1:") && f.message.contains("not on the test's list"),
                "{}",
                f.message
            );
        }
        // A name the policy does not allow is never resolved.
        io_failure(net.json(TCP_ECHO, &json!(["ip6-localhost", port, "hi"]).to_string()), "other name");
    }
    let socks = policy.socks();
    let lookup = Sock { kind: DNS, host: Some("localhost".into()), address: None, port: 0, plugin: "net".into() };
    assert!(socks.contains(&lookup), "{socks:?}");
    let by_name = socks.iter().find(|s| s.kind == TCP && s.host.is_some()).expect("a connect by name");
    assert_eq!((by_name.host.as_deref(), by_name.port), (Some("localhost"), port));
    assert!(matches!(by_name.address.as_deref(), Some("127.0.0.1") | Some("::1")), "{by_name:?}");
    assert!(socks.iter().any(|s| s.kind == TCP && s.host.is_none() && s.address.as_deref() == Some("127.0.0.1")), "{socks:?}");
    assert!(socks.iter().any(|s| s.kind == DNS && s.host.as_deref() == Some("ip6-localhost")), "{socks:?}");
    assert!(!socks.iter().any(|s| s.kind == TCP && s.host.as_deref() == Some("ip6-localhost")), "{socks:?}");
}

#[test]
fn an_address_keyed_policy_allows_by_address_and_port() {
    let port = tcp_echo_server();
    let other = tcp_echo_server();
    let policy = TestPolicy::new(private(), move |s| s.kind == TCP && s.address.as_deref() == Some("127.0.0.1") && s.port == port);
    let net = net_host("tcp_by_addr", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    assert_eq!(net.json(TCP_ECHO, &json!(["127.0.0.1", port, "a"]).to_string()).unwrap(), json!("echo: a"));
    io_failure(net.json(TCP_ECHO, &json!(["127.0.0.1", other, "b"]).to_string()), "other port");
    // Lookups are the policy's too: denied, the guest sees a resolver failure.
    let f = io_failure(net.json(RESOLVE, &json!(["localhost"]).to_string()), "lookup denied");
    assert!(f.message.contains("DNS lookup of localhost"), "{}", f.message);
    assert!(policy.socks().iter().all(|s| s.kind != DNS || s.address.is_none()));
}

#[test]
fn dns_denial_is_a_resolver_failure_and_resolves_nothing() {
    let port = tcp_echo_server();
    let policy = TestPolicy::new(private(), |s| s.kind == TCP);
    let net = net_host("dns_denied", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    let f = io_failure(net.json(TCP_ECHO, &json!(["localhost", port, "x"]).to_string()), "connect by a denied name");
    assert!(f.message.contains("DNS lookup of localhost: not on the test's list"), "{}", f.message);
    assert!(policy.socks().iter().all(|s| s.kind == DNS), "no connect was asked: {:?}", policy.socks());
    // Allowed lookups resolve on the host.
    let policy = TestPolicy::new(private(), |s| s.kind == DNS);
    let net = net_host("dns_allowed", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    let addrs = net.json(RESOLVE, &json!(["localhost"]).to_string()).unwrap();
    assert!(addrs.as_array().unwrap().iter().any(|a| a == "127.0.0.1" || a == "::1"), "{addrs}");
}

#[test]
fn udp_binds_and_sends_are_decided_by_the_policy() {
    let (port, got) = udp_echo_server();
    let (other, other_got) = udp_echo_server();
    let policy = TestPolicy::new(private(), move |s| match s.kind {
        UDP_BIND => true,
        UDP_SEND => s.address.as_deref() == Some("127.0.0.1") && s.port == port,
        _ => false,
    });
    let net = net_host("udp", &["udp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    assert_eq!(net.json(UDP_ECHO, &json!(["127.0.0.1", port, "ping"]).to_string()).unwrap(), json!("echo: ping"));
    let f = io_failure(net.json(UDP_ECHO, &json!(["127.0.0.1", other, "pong"]).to_string()), "other port");
    assert!(f.message.contains("UDP send to 127.0.0.1:"), "{}", f.message);
    assert_eq!(*got.lock().unwrap(), vec!["ping".to_string()]);
    assert!(other_got.lock().unwrap().is_empty(), "a denied datagram never leaves");
    let socks = policy.socks();
    assert!(socks.iter().any(|s| s.kind == UDP_BIND && s.host.is_none()), "{socks:?}");
    assert!(socks.iter().any(|s| s.kind == UDP_SEND && s.port == port), "{socks:?}");
    // udp alone opens no TCP, and the policy is not even asked.
    let tcp_port = tcp_echo_server();
    io_failure(net.json(TCP_ECHO, &json!(["127.0.0.1", tcp_port, "x"]).to_string()), "tcp under udp");
    assert!(policy.socks().iter().all(|s| s.kind != TCP));
}

#[test]
fn tcp_alone_opens_no_udp_and_never_listens() {
    let (port, got) = udp_echo_server();
    let policy = TestPolicy::new(private(), |_| true);
    let net = net_host("tcp_only", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    io_failure(net.json(UDP_ECHO, &json!(["127.0.0.1", port, "x"]).to_string()), "udp under tcp");
    assert!(got.lock().unwrap().is_empty());
    // Listening is refused even by a policy that allows everything.
    let f = io_failure(net.json(TCP_LISTEN, &json!([0]).to_string()), "listen");
    assert!(f.message.contains("never allows listening"), "{}", f.message);
    assert!(policy.socks().iter().all(|s| s.kind != UDP_BIND && s.kind != UDP_SEND), "{:?}", policy.socks());
}

#[test]
fn the_ssrf_floor_holds_unless_the_policy_lifts_it() {
    let port = tcp_echo_server();
    let policy = TestPolicy::new(Setup { sockets: true, responses: false, private: false }, |_| true);
    let net = net_host("tcp_floor", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    for target in ["127.0.0.1", "localhost"] {
        let f = io_failure(net.json(TCP_ECHO, &json!([target, port, "x"]).to_string()), target);
        assert!(f.message.contains("SSRF floor"), "{}", f.message);
    }
    assert!(policy.socks().iter().all(|s| s.kind == DNS), "the floor answers before the policy: {:?}", policy.socks());
}

#[test]
fn missing_second_keys_fail_closed_naming_the_key() {
    for caps in [&["tcp"][..], &["udp"], &["tcp", "udp"]] {
        let f = net_host("no_policy", caps, None).load_opts("net", Some(&limited())).err().expect("no policy");
        assert_eq!(f.status, Status::Capability, "{}", f.message);
        assert!(f.message.contains(&format!("\"{}\"", caps[0])) && f.message.contains("no egress policy"), "{}", f.message);
        let http_only = TestPolicy::new(Setup { sockets: false, responses: false, private: true }, |_| true);
        let f = net_host("no_socket_callback", caps, Some(&http_only)).load_opts("net", Some(&limited())).err().expect("no socket callback");
        assert_eq!(f.status, Status::Capability, "{}", f.message);
        assert!(f.message.contains("fidius_egress_policy_set_socket_callback"), "{}", f.message);
    }
    // The two socket tiers cannot be mixed.
    let policy = TestPolicy::new(private(), |_| true);
    let host = net_host("tcp_and_network", &["tcp", "network"], Some(&policy));
    let f = host.load_opts("net", Some(&limited())).err().expect("tcp with network");
    assert_eq!(f.status, Status::InvalidManifest, "{}", f.message);
    assert!(f.message.contains("mutually exclusive"), "{}", f.message);
}

#[test]
fn the_host_allow_list_can_refuse_tcp_and_grants_at_load_compose() {
    let port = tcp_echo_server();
    let policy = TestPolicy::new(private(), |_| true);
    let dir = wasm_search_path("tcp_vetoed", &["net"], |_, t| t.replace("capabilities = []", "capabilities = [\"tcp\", \"http\"]"));
    let host = TestHost::configured(&[&dir], |b| {
        ok(|e| unsafe { fidius_host_builder_set_egress_policy(b, policy.handle, e) });
        let p = cstr("stdout");
        ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
    });
    let f = host.load_opts("net", Some(&limited())).err().expect("tcp not allowed");
    assert_eq!(f.status, Status::Capability, "{}", f.message);
    assert!(f.message.contains("\"tcp\"") && f.message.contains("does not allow"), "{}", f.message);
    // The embedder's own grant for one load: exactly tcp.
    let (tcp, http) = (cstr("tcp"), cstr("http"));
    let grants = [tcp.as_ptr(), http.as_ptr()];
    let opts = limited().set(|o, e| unsafe { fidius_load_options_set_grants(o, grants.as_ptr(), 2, e) });
    let net = host.load_opts("net", Some(&opts)).unwrap();
    assert_eq!(net.json(TCP_ECHO, &json!(["127.0.0.1", port, "granted"]).to_string()).unwrap(), json!("echo: granted"));
}

#[test]
fn socket_callback_arguments() {
    unsafe {
        let mut err = ptr::null_mut();
        let status = fidius_egress_policy_set_socket_callback(ptr::null_mut(), Some(on_socket), &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::NullArgument);
        let status = fidius_egress_policy_set_response_callback(ptr::null_mut(), Some(on_response), &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::NullArgument);
        assert_eq!(fidius_socket_request_use(ptr::null()), 0);
        assert!(fidius_socket_request_host(ptr::null()).is_null() && fidius_socket_request_address(ptr::null()).is_null());
        assert_eq!(fidius_socket_request_port(ptr::null()), 0);
        assert!(fidius_socket_request_plugin(ptr::null()).is_null());
        let status = fidius_socket_request_set_deny_reason(ptr::null_mut(), ptr::null(), &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::NullArgument);
        assert_eq!(fidius_http_response_status(ptr::null()), 0);
        assert!(!fidius_http_response_retry_available(ptr::null()));
        assert_eq!(fidius_http_response_header_count(ptr::null()), 0);
        let (mut n, mut v, mut l) = (ptr::null(), ptr::null(), 0usize);
        let status = fidius_http_response_header(ptr::null(), 0, &mut n, &mut v, &mut l, &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::NullArgument);
        // A handle of another kind is refused, not misread.
        let policy = TestPolicy::new(private(), |_| true);
        let status = fidius_socket_request_set_deny_reason(policy.handle.cast(), ptr::null(), &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::InvalidHandle);
        // Removing the socket callback takes the second key away for later loads.
        check(fidius_egress_policy_set_socket_callback(policy.handle, None, &mut err), err).unwrap();
        let f = net_host("callback_removed", &["tcp", "http"], Some(&policy)).load_opts("net", Some(&limited())).err().expect("key removed");
        assert_eq!(f.status, Status::Capability);
    }
}

/// An HTTP/1.1 server recording each request (head and body); answers 401
/// unless the request carries `Authorization: Bearer 2`, then 200.
struct AuthServer {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl AuthServer {
    fn start() -> AuthServer {
        wasm_packages();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, flag) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut data = Vec::new();
                let mut buf = [0u8; 65536];
                let complete = |d: &[u8]| {
                    let Some(end) = d.windows(4).position(|w| w == b"\r\n\r\n") else { return false };
                    let head = String::from_utf8_lossy(&d[..end]).to_ascii_lowercase();
                    if head.contains("\r\ntransfer-encoding: chunked") {
                        return d[end + 4..].ends_with(b"0\r\n\r\n");
                    }
                    let len = head.lines().find_map(|l| l.strip_prefix("content-length:")).map_or(0, |v| v.trim().parse().unwrap());
                    d.len() >= end + 4 + len
                };
                while !complete(&data) {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&data).into_owned();
                let authorized = text.to_ascii_lowercase().contains("\r\nauthorization: bearer 2\r\n");
                reqs.lock().unwrap().push(text);
                let answer: &[u8] = if authorized {
                    b"HTTP/1.1 200 OK\r\nX-Test: fine\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                } else {
                    b"HTTP/1.1 401 Unauthorized\r\nX-Test: expired\r\nContent-Length: 7\r\nConnection: close\r\n\r\nexpired"
                };
                let _ = conn.write_all(answer);
            }
        });
        AuthServer { port, requests, stop }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for AuthServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn http_policy(retry_status: Option<u16>, http_allow_asks: usize) -> TestPolicy {
    TestPolicy::full(Setup { sockets: false, responses: true, private: true }, Box::new(|_| false), http_allow_asks, retry_status)
}

/// The body of a recorded request, de-chunked.
fn body_of(request: &str) -> String {
    let (head, body) = request.split_once("\r\n\r\n").unwrap_or((request, ""));
    if !head.to_ascii_lowercase().contains("\r\ntransfer-encoding: chunked") {
        return body.to_string();
    }
    let (mut out, mut rest) = (String::new(), body);
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&after[..n]);
        rest = &after[n + 2..];
    }
    out
}

#[test]
fn the_response_hook_retries_once_with_a_fresh_request_and_the_body_replayed() {
    let server = AuthServer::start();
    let policy = http_policy(Some(401), usize::MAX);
    let net = net_host("retry", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    assert_eq!(net.json(POST, &json!([server.url(), "the payload"]).to_string()).unwrap(), json!("200 ok"));
    let requests = server.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    for (r, token) in requests.iter().zip(["Bearer 1", "Bearer 2"]) {
        assert!(r.starts_with("POST /api HTTP/1.1\r\n"), "{r}");
        assert_eq!(body_of(r), "the payload");
        assert!(r.to_ascii_lowercase().contains(&format!("authorization: {}", token.to_ascii_lowercase())), "{r}");
        // The retry starts from the guest's request: one Authorization, not two.
        assert_eq!(r.to_ascii_lowercase().matches("authorization:").count(), 1, "{r}");
    }
    let seen = policy.responses();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!((seen[0].status, seen[0].retry_available, seen[0].header.as_deref()), (401, true, Some("expired")));
    assert_eq!((seen[1].status, seen[1].retry_available, seen[1].header.as_deref()), (200, false, Some("fine")));
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer 1"));
    assert_eq!(seen[1].authorization.as_deref(), Some("Bearer 2"));
    assert!(seen.iter().all(|s| s.edit_status == Status::InvalidArgument), "the sent request is read-only: {seen:?}");
}

#[test]
fn the_response_hook_forwards_by_default_and_never_retries_twice() {
    let server = AuthServer::start();
    let policy = http_policy(None, usize::MAX);
    let net = net_host("forward", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    assert_eq!(net.json(POST, &json!([server.url(), "x"]).to_string()).unwrap(), json!("401 expired"));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(policy.responses().len(), 1);

    // A policy that would retry a 200 too: the second response forwards anyway.
    let policy = http_policy(Some(401), usize::MAX);
    let server2 = AuthServer::start();
    let net = net_host("retry_bounded", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    net.json(POST, &json!([server2.url(), "x"]).to_string()).unwrap();
    // Third request never happens (the retry's 200 is not a 401, but a
    // second 401 would forward too: see retry_available = false above).
    assert_eq!(server2.requests().len(), 2);
}

#[test]
fn a_body_too_large_to_keep_is_not_retried() {
    // (fidius-guest writes a body before sending the request: bodies past
    // one 4 KiB chunk only work because libfidius buffers up to 1 MiB.)
    let server = AuthServer::start();
    let policy = http_policy(Some(401), usize::MAX);
    let net = net_host("retry_big", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    let big = "b".repeat(64 * 1024 + 1);
    assert_eq!(net.json(POST, &json!([server.url(), big]).to_string()).unwrap(), json!("401 expired"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(body_of(&requests[0]).len(), big.len());
    let seen = policy.responses();
    assert_eq!((seen.len(), seen[0].retry_available), (1, false), "{seen:?}");
    // At the limit it is kept (a fresh policy: its first token is stale again).
    let policy = http_policy(Some(401), usize::MAX);
    let net = net_host("retry_exact", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    let exact = "e".repeat(64 * 1024);
    assert_eq!(net.json(POST, &json!([server.url(), exact]).to_string()).unwrap(), json!("200 ok"));
    let requests = server.requests();
    assert_eq!(requests.len(), 3, "the 64 KiB body was replayed: {:?}", policy.responses());
    assert_eq!(body_of(&requests[1]), exact);
    assert_eq!(body_of(&requests[2]), exact);
    // And 1 MiB bodies go out whole (written before the request is sent).
    let mib = "m".repeat(1024 * 1024);
    net.json(POST, &json!([server.url(), mib]).to_string()).unwrap();
    assert_eq!(body_of(&server.requests()[3]).len(), mib.len());
}

#[test]
fn a_retry_the_egress_callback_denies_fails_and_is_never_sent() {
    let server = AuthServer::start();
    let policy = http_policy(Some(401), 1);
    let net = net_host("retry_denied", &["http"], Some(&policy)).load_opts("net", Some(&limited())).unwrap();
    let f = net.json(POST, &json!([server.url(), "x"]).to_string()).unwrap_err();
    assert_eq!(f.status, Status::PluginError, "{}", f.message);
    assert_eq!(f.plugin_code.as_deref(), Some("HTTP_ERROR"));
    assert!(f.message.contains("egress denied for plugin net: POST"), "{}", f.message);
    assert_eq!(server.requests().len(), 1);
}
