//! Egress policies written against the C API authorize every outbound HTTP
//! request of a sandboxed plugin (the `fetch` fixture, built with the
//! published fidius 0.5.9 guest crates, using its HTTP helper), against a
//! real HTTP server on 127.0.0.1 started by the test.

mod common;

use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const FETCH: u32 = 0;
const FETCH_WITH_HEADERS: u32 = 1;

/// A one-purpose HTTP/1.1 server: records each request head, answers 200 "hello".
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        // Build the fixtures first, so the server's time bound starts with the test proper.
        wasm_packages();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, flag) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: stops when told, or after five minutes whatever happens.
            let deadline = Instant::now() + Duration::from_secs(300);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                reqs.lock().unwrap().push(head);
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
            }
        });
        Server { port, requests, stop, thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }

    fn raw_requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// One request as the policy saw it through the C accessors.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    plugin: String,
    host: String,
    port: u16,
    addresses: Vec<String>,
    headers: Vec<(String, Vec<u8>)>,
}

/// What a test policy does; owned by the policy as its user data.
struct Policy {
    allow_authority: Option<String>,
    /// A deny-list policy: allows every host but this one.
    deny_host: Option<String>,
    inject_token: Option<String>,
    seen: Mutex<Vec<Seen>>,
    /// When set, the callback waits on this before deciding.
    gate: Option<Mutex<mpsc::Receiver<()>>>,
    entered: AtomicBool,
    destroyed: Arc<AtomicUsize>,
}

unsafe extern "C" fn decide(user: *mut c_void, req: *mut fidius_http_request) -> u32 {
    let policy = &*(user as *const Policy);
    let s = |p| opt_str(p).unwrap();
    let mut headers = Vec::new();
    for i in 0..fidius_http_request_header_count(req) {
        let (mut n, mut v, mut len) = (ptr::null(), ptr::null(), 0usize);
        check(fidius_http_request_header(req, i, &mut n, &mut v, &mut len, ptr::null_mut()), ptr::null_mut()).unwrap();
        headers.push((s(n), std::slice::from_raw_parts(v, len).to_vec()));
    }
    let seen = Seen {
        method: s(fidius_http_request_method(req)),
        scheme: s(fidius_http_request_scheme(req)),
        authority: s(fidius_http_request_authority(req)),
        path: s(fidius_http_request_path_and_query(req)),
        plugin: s(fidius_http_request_plugin(req)),
        host: s(fidius_http_request_host(req)),
        port: fidius_http_request_port(req),
        addresses: (0..fidius_http_request_address_count(req)).map(|i| s(fidius_http_request_address(req, i))).collect(),
        headers,
    };
    policy.entered.store(true, Ordering::SeqCst);
    if let Some(gate) = &policy.gate {
        let _ = gate.lock().unwrap().recv_timeout(Duration::from_secs(20));
    }
    let allowed = match (&policy.allow_authority, &policy.deny_host) {
        (Some(a), _) => *a == seen.authority,
        (None, Some(h)) => *h != seen.host && !seen.addresses.contains(h),
        (None, None) => false,
    };
    policy.seen.lock().unwrap().push(seen);
    if !allowed {
        let reason = cstr("host not on the allow-list");
        check(fidius_http_request_set_deny_reason(req, reason.as_ptr(), ptr::null_mut()), ptr::null_mut()).unwrap();
        return FIDIUS_EGRESS_VERDICT_DENY;
    }
    if let Some(token) = &policy.inject_token {
        let name = cstr("authorization");
        let value = format!("Bearer {token}");
        check(
            fidius_http_request_set_header(req, name.as_ptr(), value.as_ptr(), value.len(), ptr::null_mut()),
            ptr::null_mut(),
        )
        .unwrap();
    }
    FIDIUS_EGRESS_VERDICT_ALLOW
}

const FIDIUS_EGRESS_VERDICT_ALLOW: u32 = fidius_egress_verdict::Allow as u32;
const FIDIUS_EGRESS_VERDICT_DENY: u32 = fidius_egress_verdict::Deny as u32;

unsafe extern "C" fn destroy(user: *mut c_void) {
    let policy = Box::from_raw(user as *mut Policy);
    policy.destroyed.fetch_add(1, Ordering::SeqCst);
}

/// A policy handle plus a view of its state (valid while the policy lives).
struct TestPolicy {
    handle: *mut fidius_egress_policy,
    state: *const Policy,
    destroyed: Arc<AtomicUsize>,
}

unsafe impl Send for TestPolicy {}
unsafe impl Sync for TestPolicy {}

impl TestPolicy {
    /// A policy for the loopback test server (private ranges allowed).
    fn new(allow: Option<String>, token: Option<&str>, gate: Option<mpsc::Receiver<()>>) -> TestPolicy {
        let policy = Self::with(allow, None, token, gate);
        unsafe {
            let mut err = ptr::null_mut();
            check(fidius_egress_policy_set_allow_private_ranges(policy.handle, true, &mut err), err).unwrap();
        }
        policy
    }

    /// A policy with the SSRF floor in place (the default).
    fn with(allow: Option<String>, deny_host: Option<&str>, token: Option<&str>, gate: Option<mpsc::Receiver<()>>) -> TestPolicy {
        let destroyed = Arc::new(AtomicUsize::new(0));
        let state = Box::into_raw(Box::new(Policy {
            allow_authority: allow,
            deny_host: deny_host.map(str::to_string),
            inject_token: token.map(str::to_string),
            seen: Mutex::new(Vec::new()),
            gate: gate.map(Mutex::new),
            entered: AtomicBool::new(false),
            destroyed: destroyed.clone(),
        }));
        let mut handle = ptr::null_mut();
        unsafe {
            let mut err = ptr::null_mut();
            check(fidius_egress_policy_new(Some(decide), state.cast(), Some(destroy), &mut handle, &mut err), err).unwrap();
        }
        TestPolicy { handle, state, destroyed }
    }

    fn seen(&self) -> Vec<Seen> {
        unsafe { (*self.state).seen.lock().unwrap().clone() }
    }

    fn entered(&self) -> bool {
        unsafe { (*self.state).entered.load(Ordering::SeqCst) }
    }
}

/// Release the test's reference (the policy may live on in hosts and plugins).
impl Drop for TestPolicy {
    fn drop(&mut self) {
        unsafe { fidius_egress_policy_free(self.handle) }
    }
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

unsafe extern "C" fn log_line(_user: *mut c_void, level: u32, message: *const std::ffi::c_char) {
    LOG.lock().unwrap().push(format!("{level}: {}", opt_str(message).unwrap()));
}

/// A host over `dir` with `policy` as its default (if any) and a log callback.
fn host_with(dir: &std::path::Path, policy: Option<&TestPolicy>) -> TestHost {
    unsafe {
        let b = fidius_host_builder_new();
        let mut err = ptr::null_mut();
        let p = cstr(dir.to_str().unwrap());
        check(fidius_host_builder_add_search_path(b, p.as_ptr(), &mut err), err).unwrap();
        if let Some(policy) = policy {
            check(fidius_host_builder_set_egress_policy(b, policy.handle, &mut err), err).unwrap();
        }
        check(fidius_host_builder_set_log_callback(b, Some(log_line), ptr::null_mut(), None, &mut err), err).unwrap();
        let mut host = ptr::null_mut();
        check(fidius_host_builder_build(b, &mut host, &mut err), err).unwrap();
        fidius_host_builder_free(b);
        TestHost(host)
    }
}

fn fetch_dir(name: &str) -> std::path::PathBuf {
    wasm_search_path(name, &["fetch"], |_, t| t.to_string())
}

#[test]
fn an_allowed_request_arrives_with_the_injected_header() {
    let server = Server::start();
    let policy = TestPolicy::new(Some(format!("127.0.0.1:{}", server.port)), Some("s3cret"), None);
    let host = host_with(&fetch_dir("egress_allow"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    let out = fetch.json(FETCH, &json!([server.url("/v1/items?page=2")]).to_string()).unwrap();
    assert_eq!(out, json!("200 hello"));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert!(requests[0].starts_with("GET /v1/items?page=2 HTTP/1.1\r\n"), "{}", requests[0]);
    assert!(requests[0].to_ascii_lowercase().contains("authorization: bearer s3cret\r\n"), "{}", requests[0]);
    let seen = policy.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!((s.method.as_str(), s.scheme.as_str(), s.path.as_str(), s.plugin.as_str()), ("GET", "http", "/v1/items?page=2", "fetch"));
    assert!(!s.headers.iter().any(|(n, _)| n == "authorization"), "the guest never had the secret");
}

#[test]
fn a_denied_request_never_arrives_and_the_reason_reaches_the_host() {
    let server = Server::start();
    let policy = TestPolicy::new(Some("api.example.com".into()), None, None);
    let host = host_with(&fetch_dir("egress_deny"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    let err = fetch.json(FETCH, &json!([server.url("/secret")]).to_string()).unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    assert_eq!(err.plugin_code.as_deref(), Some("HTTP_ERROR"));
    // The guest sees only "denied"; the host's error and log carry the reason.
    let guest_message = err.plugin_message.unwrap().to_lowercase();
    assert!(guest_message.contains("denied"), "{guest_message}");
    assert!(!guest_message.contains("allow-list"), "the reason is not shown to the guest: {guest_message}");
    assert!(err.message.contains("host not on the allow-list"), "{}", err.message);
    assert!(
        LOG.lock().unwrap().iter().any(|l| l.starts_with("2: ") && l.contains("/secret") && l.contains("allow-list")),
        "{:?}",
        LOG.lock().unwrap()
    );
    assert!(server.requests().is_empty(), "a denied request is never dispatched");
    assert_eq!(policy.seen().len(), 1);
}

#[test]
fn a_policy_that_changes_nothing_forwards_headers_byte_exact() {
    let server = Server::start();
    let policy = TestPolicy::new(Some(format!("127.0.0.1:{}", server.port)), None, None);
    let host = host_with(&fetch_dir("egress_exact"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    let odd = "a\tb ,  c;q=0.5 \u{e9}";
    let headers = json!([["X-Odd", odd], ["x-case", "MiXeD Case"], ["x-dup", "1"]]);
    let out = fetch.json(FETCH_WITH_HEADERS, &json!([server.url("/h"), headers]).to_string()).unwrap();
    assert_eq!(out, json!("200 hello"));
    let raw = &server.raw_requests()[0];
    let expected = [b"x-odd: ".as_slice(), odd.as_bytes(), b"\r\n"].concat();
    assert!(raw.windows(expected.len()).any(|w| w.eq_ignore_ascii_case(&expected) && w[7..] == expected[7..]), "{}", String::from_utf8_lossy(raw));
    assert!(String::from_utf8_lossy(raw).contains("MiXeD Case\r\n"));
    let seen = &policy.seen()[0];
    let odd_seen = seen.headers.iter().find(|(n, _)| n == "x-odd").unwrap();
    assert_eq!(odd_seen.1, odd.as_bytes(), "the policy sees the bytes the guest sent");
}

#[test]
fn a_per_plugin_policy_overrides_the_host_default() {
    let server = Server::start();
    let deny_all = TestPolicy::new(None, None, None);
    let allow = TestPolicy::new(Some(format!("127.0.0.1:{}", server.port)), Some("per-plugin"), None);
    let host = host_with(&fetch_dir("egress_override"), Some(&deny_all));
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_egress_policy(o, allow.handle, e) });
    let fetch = host.load_opts("fetch", Some(&opts)).unwrap();
    assert_eq!(fetch.json(FETCH, &json!([server.url("/")]).to_string()).unwrap(), json!("200 hello"));
    assert!(server.requests()[0].to_ascii_lowercase().contains("bearer per-plugin"));
    assert!(deny_all.seen().is_empty());
    let default = host.load("fetch").unwrap();
    assert_eq!(default.json(FETCH, &json!([server.url("/")]).to_string()).unwrap_err().status, Status::PluginError);
    assert_eq!(deny_all.seen().len(), 1);
}

#[test]
fn user_data_is_destroyed_exactly_once_when_nothing_uses_the_policy() {
    let server = Server::start();
    let policy = TestPolicy::new(Some(format!("127.0.0.1:{}", server.port)), None, None);
    let destroyed = policy.destroyed.clone();
    let host = host_with(&fetch_dir("egress_destroy"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    drop(policy); // the caller's reference
    drop(host); // the host's
    assert_eq!(destroyed.load(Ordering::SeqCst), 0, "the plugin still uses it");
    assert_eq!(fetch.json(FETCH, &json!([server.url("/")]).to_string()).unwrap(), json!("200 hello"));
    drop(fetch);
    assert_eq!(destroyed.load(Ordering::SeqCst), 1);
    // A policy never registered anywhere is destroyed by its free.
    let lone = TestPolicy::new(None, None, None);
    let count = lone.destroyed.clone();
    drop(lone);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[test]
fn a_slow_policy_for_one_plugin_does_not_stall_another() {
    let server = Server::start();
    let authority = format!("127.0.0.1:{}", server.port);
    let (release, gate) = mpsc::channel();
    let slow = TestPolicy::new(Some(authority.clone()), None, Some(gate));
    let fast = TestPolicy::new(Some(authority), None, None);
    let host = host_with(&fetch_dir("egress_slow"), None);
    let slow_opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_egress_policy(o, slow.handle, e) });
    let fast_opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_egress_policy(o, fast.handle, e) });
    let a = host.load_opts("fetch", Some(&slow_opts)).unwrap();
    let b = host.load_opts("fetch", Some(&fast_opts)).unwrap();
    let url = server.url("/");
    std::thread::scope(|s| {
        let blocked = s.spawn(|| a.json(FETCH, &json!([url]).to_string()));
        while !slow.entered() {
            std::thread::sleep(Duration::from_millis(1));
        }
        // A's policy is parked inside its callback; B's calls go through meanwhile.
        for _ in 0..3 {
            assert_eq!(b.json(FETCH, &json!([url]).to_string()).unwrap(), json!("200 hello"));
        }
        assert_eq!(fast.seen().len(), 3);
        assert!(slow.seen().is_empty(), "A is still deciding");
        release.send(()).unwrap();
        assert_eq!(blocked.join().unwrap().unwrap(), json!("200 hello"));
    });
}

#[test]
fn without_a_policy_http_fails_closed_and_the_network_floor_needs_no_policy() {
    // No policy: the component cannot even be loaded.
    let host = host_with(&fetch_dir("egress_none"), None);
    let err = host.load("fetch").err().unwrap();
    assert_eq!(err.status, Status::Capability);
    assert!(err.message.contains("no egress policy"), "{}", err.message);
    // A policy, but the package does not declare `http`.
    let policy = TestPolicy::new(None, None, None);
    let dir = wasm_search_path("egress_undeclared", &["fetch"], |_, t| t.replace("[\"http\"]", "[]"));
    let err = host_with(&dir, Some(&policy)).load("fetch").err().unwrap();
    assert_eq!(err.status, Status::Capability);
    assert!(err.message.contains("does not declare the `http` capability") && !err.message.contains("no egress"), "{}", err.message);

    // `network` is separate: its SSRF floor applies, and the policy is never asked.
    let dir = wasm_search_path("egress_network", &["caps"], |_, t| t.replace("\"stdout\"]", "\"stdout\", \"network\"]"));
    let grants = [cstr("network")];
    let ptrs: Vec<*const std::ffi::c_char> = grants.iter().map(|g| g.as_ptr()).collect();
    let opts = TestOptions::new()
        .set(|o, e| unsafe { fidius_load_options_set_grants(o, ptrs.as_ptr(), ptrs.len(), e) })
        .set(|o, e| unsafe { fidius_load_options_set_egress_policy(o, policy.handle, e) });
    let host = host_with(&dir, None);
    let caps = host.load_opts("caps", Some(&opts)).unwrap();
    let connect = caps.index("connect").unwrap();
    // Loopback spellings only: were the floor broken, nothing may leave the machine.
    for addr in ["127.0.0.1:9", "[::1]:9", "[::ffff:127.0.0.1]:9", "0.0.0.0:9"] {
        let err = caps.json(connect, &json!([addr]).to_string()).unwrap_err();
        assert_eq!(err.status, Status::PluginError, "{addr} must be blocked");
    }
    assert!(policy.seen().is_empty(), "the egress policy is not involved in `network`");
}

#[test]
fn bad_egress_arguments() {
    unsafe {
        let mut err = ptr::null_mut();
        let mut policy = ptr::null_mut();
        let e = check(fidius_egress_policy_new(None, ptr::null_mut(), None, &mut policy, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        assert!(policy.is_null());
        let b = fidius_host_builder_new();
        let e = check(fidius_host_builder_set_egress_policy(b, ptr::null(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let e = check(fidius_host_builder_set_log_callback(b, None, ptr::null_mut(), None, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        fidius_host_builder_free(b);
        assert!(fidius_http_request_method(ptr::null()).is_null());
        assert_eq!(fidius_http_request_header_count(ptr::null()), 0);
    }
}

/// Every spelling of the loopback address a resolver accepts.
fn loopback_spellings(port: u16) -> Vec<String> {
    ["127.0.0.1", "2130706433", "127.1", "0x7f.0.0.1", "0177.0.0.1", "0x7f.1", "[::ffff:127.0.0.1]", "localhost"]
        .iter()
        .map(|h| format!("http://{h}:{port}/x"))
        .collect()
}

#[test]
fn a_deny_list_policy_sees_the_canonical_host_whatever_the_spelling() {
    let server = Server::start();
    // Private ranges allowed (so the floor does not decide), 127.0.0.1 denied by name.
    let policy = TestPolicy::with(None, Some("127.0.0.1"), None, None);
    unsafe {
        let mut err = ptr::null_mut();
        check(fidius_egress_policy_set_allow_private_ranges(policy.handle, true, &mut err), err).unwrap();
    }
    let host = host_with(&fetch_dir("egress_spellings"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    for url in loopback_spellings(server.port) {
        let err = fetch.json(FETCH, &json!([url]).to_string()).unwrap_err();
        assert_eq!(err.status, Status::PluginError, "{url}: {}", err.message);
        assert!(err.message.contains("allow-list"), "{url}: {}", err.message);
    }
    let seen = policy.seen();
    assert_eq!(seen.len(), 8);
    for s in &seen[..7] {
        assert_eq!((s.host.as_str(), s.port), ("127.0.0.1", server.port), "{s:?}");
        assert_eq!(s.addresses, vec!["127.0.0.1".to_string()], "{s:?}");
    }
    // A name: the policy sees it, and every address it resolved to.
    assert_eq!(seen[7].host, "localhost");
    assert!(seen[7].addresses.contains(&"127.0.0.1".to_string()), "{:?}", seen[7]);
    assert_eq!(seen[1].authority, format!("2130706433:{}", server.port), "the authority stays as the guest wrote it");
    assert!(server.requests().is_empty(), "no spelling reached the server: {:?}", server.requests());
    // A host the policy does not deny still goes through, to the address it saw.
    let allow = TestPolicy::new(Some(format!("127.1:{}", server.port)), None, None);
    let host = host_with(&fetch_dir("egress_spellings_ok"), Some(&allow));
    let ok = host.load("fetch").unwrap().json(FETCH, &json!([format!("http://127.1:{}/y", server.port)]).to_string()).unwrap();
    assert_eq!(ok, json!("200 hello"));
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn the_ssrf_floor_applies_to_http_egress_by_default() {
    let server = Server::start();
    // A policy that would allow anything, without allow_private_ranges.
    let policy = TestPolicy::with(None, Some("nothing.invalid"), None, None);
    let host = host_with(&fetch_dir("egress_floor"), Some(&policy));
    let fetch = host.load("fetch").unwrap();
    for url in loopback_spellings(server.port).into_iter().chain([format!("http://0.0.0.0:{}/", server.port)]) {
        let err = fetch.json(FETCH, &json!([url]).to_string()).unwrap_err();
        assert_eq!(err.status, Status::PluginError, "{url}: {}", err.message);
        assert!(err.message.contains("SSRF floor"), "{url}: {}", err.message);
    }
    assert!(policy.seen().is_empty(), "the floor decides before the policy is asked");
    assert!(server.requests().is_empty());
}

/// A server that accepts connections and never answers (bounded: five minutes).
fn silent_server() -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut held = Vec::new();
        while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
            match listener.accept() {
                Ok((conn, _)) => held.push(conn),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
    (port, stop)
}

#[test]
fn a_request_that_is_never_answered_is_stopped_by_the_timeout() {
    wasm_packages();
    let (port, stop) = silent_server();
    let policy = TestPolicy::new(Some(format!("127.0.0.1:{port}")), None, None);
    let host = host_with(&fetch_dir("egress_silent"), Some(&policy));
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 300, e) });
    let fetch = Arc::new(host.load_opts("fetch", Some(&opts)).unwrap());
    let patient = fetch.index("fetch_patient").unwrap();
    for _ in 0..2 {
        let f = fetch.clone();
        let url = json!([format!("http://127.0.0.1:{port}/never")]).to_string();
        let err = within(Duration::from_secs(60), "an unanswered request", move || f.json(patient, &url)).unwrap_err();
        assert_eq!(err.status, Status::Timeout, "{}", err.message);
    }
    // The plugin serves the next call: a denied request fails at once.
    let err = fetch.json(FETCH, &json!(["http://127.0.0.1:1/"]).to_string()).unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    stop.store(true, Ordering::Relaxed);
}
