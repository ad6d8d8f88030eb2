//! Streaming methods through the C ABI: server, client and bidirectional
//! streams of plugins built with the published fidius crates (native 0.5.9
//! and 0.4.2, wasm32-wasip2 with the 0.5.9 guest crates), and hand-made
//! native streams for what those crates never produce.
//!
//! `Streamer` (tests/fixtures/{native,wasm}/stream), in order:
//! count(n, marker) -> Stream<u64>, blobs(count, size) -> Stream<String>,
//! explode(at) -> Stream<u64> (panics at `at`), sum(start, Stream<u64>) -> u64,
//! shout(prefix, Stream<String>) -> Stream<String>, add(a, b) -> i64,
//! points(n) -> Stream<Point>, sum_checked(Stream<u64>) -> Result<u64>,
//! forever(marker) -> Stream<u64>. `marker`: a file that gets one line
//! when the producer is dropped (the stream's end or cancel).

mod common;

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use fidius::capi::*;
use fidius::Status;

const COUNT: u32 = 0;
const BLOBS: u32 = 1;
const EXPLODE: u32 = 2;
const SUM: u32 = 3;
const SHOUT: u32 = 4;
const ADD: u32 = 5;
const POINTS: u32 = 6;
const SUM_CHECKED: u32 = 7;
const FOREVER: u32 = 8;

const WIRE: u32 = 0;
const JSON: u32 = 1;

/// An open `fidius_stream`, freed on drop.
#[derive(Debug)]
struct Stream(*mut fidius_stream);

unsafe impl Send for Stream {}
unsafe impl Sync for Stream {}

impl Stream {
    /// The next item; `None` at FIDIUS_STATUS_STREAM_END.
    fn next(&mut self) -> Result<Option<Vec<u8>>, Failure> {
        unsafe {
            let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            let status = fidius_stream_next(self.0, &mut item, &mut err);
            if status == Status::StreamEnd {
                assert!(err.is_null(), "the end is not an error");
                assert!(item.data.is_null() && item.len == 0);
                return Ok(None);
            }
            check(status, err)?;
            let bytes = if item.data.is_null() { Vec::new() } else { std::slice::from_raw_parts(item.data, item.len).to_vec() };
            fidius_bytes_free(&mut item);
            Ok(Some(bytes))
        }
    }

    fn drain(&mut self) -> Result<Vec<Vec<u8>>, Failure> {
        let mut items = Vec::new();
        while let Some(item) = self.next()? {
            items.push(item);
        }
        Ok(items)
    }

    /// Items up to the first failure, and that failure.
    fn drain_until_failure(&mut self) -> (Vec<Vec<u8>>, Failure) {
        let mut items = Vec::new();
        loop {
            match self.next() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => panic!("the stream ended without the failure ({} items)", items.len()),
                Err(f) => return (items, f),
            }
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        unsafe { fidius_stream_free(self.0) }
    }
}

/// A source of wire items, as a C host would write one; counts its destroys.
struct Source {
    items: std::collections::VecDeque<Vec<u8>>,
    current: Vec<u8>,
    /// Answer this code instead of the item at this position.
    fail_at: Option<(usize, i32)>,
    pulled: usize,
    destroyed: Arc<AtomicUsize>,
    thread: Option<std::thread::ThreadId>,
    other_threads: Arc<AtomicUsize>,
}

struct SourceProbe {
    destroyed: Arc<AtomicUsize>,
    other_threads: Arc<AtomicUsize>,
}

impl SourceProbe {
    fn destroyed(&self) -> usize {
        self.destroyed.load(Ordering::SeqCst)
    }
}

fn source(items: Vec<Vec<u8>>, fail_at: Option<(usize, i32)>) -> (*mut c_void, SourceProbe) {
    let destroyed = Arc::new(AtomicUsize::new(0));
    let other_threads = Arc::new(AtomicUsize::new(0));
    let s = Box::new(Source {
        items: items.into(),
        current: Vec::new(),
        fail_at,
        pulled: 0,
        destroyed: destroyed.clone(),
        thread: Some(std::thread::current().id()),
        other_threads: other_threads.clone(),
    });
    (Box::into_raw(s) as *mut c_void, SourceProbe { destroyed, other_threads })
}

unsafe extern "C" fn source_next(user: *mut c_void, item: *mut *const u8, len: *mut usize) -> i32 {
    let s = &mut *(user as *mut Source);
    if s.thread != Some(std::thread::current().id()) {
        s.other_threads.fetch_add(1, Ordering::SeqCst);
    }
    if let Some((at, code)) = s.fail_at {
        if s.pulled == at {
            return code;
        }
    }
    match s.items.pop_front() {
        Some(next) => {
            s.current = next;
            s.pulled += 1;
            *item = s.current.as_ptr();
            *len = s.current.len();
            1
        }
        None => 0,
    }
}

unsafe extern "C" fn source_destroy(user: *mut c_void) {
    let s = Box::from_raw(user as *mut Source);
    s.destroyed.fetch_add(1, Ordering::SeqCst);
}

fn open(plugin: &TestPlugin, method: u32, format: u32, input: &[u8]) -> Result<Stream, Failure> {
    open_fed(plugin, method, format, input, None)
}

/// Open a stream; with `source` (from [`source`]), a bidirectional one.
fn open_fed(plugin: &TestPlugin, method: u32, format: u32, input: &[u8], fed: Option<*mut c_void>) -> Result<Stream, Failure> {
    unsafe {
        let mut stream = ptr::null_mut();
        let mut err = ptr::null_mut();
        let (next, user, destroy) = match fed {
            Some(user) => (Some(source_next as _), user, Some(source_destroy as _)),
            None => (None, ptr::null_mut(), None),
        };
        let status = fidius_plugin_stream(plugin.0, method, format, input.as_ptr(), input.len(), next, user, destroy, &mut stream, &mut err);
        check(status, err).map_err(|f| {
            assert!(stream.is_null(), "a failed start leaves *stream NULL");
            f
        })?;
        assert!(!stream.is_null());
        Ok(Stream(stream))
    }
}

/// A client-streaming call fed by `user` (from [`source`]).
fn call_fed(plugin: &TestPlugin, method: u32, format: u32, input: &[u8], user: *mut c_void) -> Result<Vec<u8>, Failure> {
    unsafe {
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let status = fidius_plugin_call_streaming(
            plugin.0,
            method,
            format,
            input.as_ptr(),
            input.len(),
            Some(source_next),
            user,
            Some(source_destroy),
            &mut out,
            &mut err,
        );
        check(status, err)?;
        let bytes = if out.data.is_null() { Vec::new() } else { std::slice::from_raw_parts(out.data, out.len).to_vec() };
        fidius_bytes_free(&mut out);
        Ok(bytes)
    }
}

fn u64s(items: &[Vec<u8>]) -> Vec<u64> {
    items.iter().map(|b| unwire::<u64>(b)).collect()
}

fn marker_lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().filter(|l| *l == "dropped").count()).unwrap_or(0)
}

// ---- the plugins -------------------------------------------------------------

/// A host over copies of the native stream fixtures, in a directory of the
/// test's own (tests run at once).
fn native_host(test: &str) -> (TestHost, PathBuf) {
    let dir = search_path(&format!("streams_native_{test}"), &[&native().stream, &native().stream_v4]);
    (TestHost::new(&[&dir]), dir)
}

fn native_plugin(host: &TestHost) -> TestPlugin {
    host.load("StreamerImpl").unwrap()
}

/// The native plugin with its schema (as written by fidius_build::emit_wit).
fn native_typed(host: &TestHost) -> TestPlugin {
    let wit = std::fs::read(stream_wit()).unwrap();
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_schema(o, wit.as_ptr(), wit.len(), e) });
    host.load_opts("StreamerImpl", Some(&opts)).unwrap()
}

fn wasm_host() -> TestHost {
    TestHost::new(&[wasm_packages()])
}

/// The WASM plugin, granted a directory for its drop markers.
fn wasm_plugin(host: &TestHost, marker_dir: &Path) -> TestPlugin {
    let grant = cstr(&format!("fs:rw:{}", marker_dir.display()));
    let grants = [grant.as_ptr()];
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, grants.as_ptr(), 1, e) });
    host.load_opts("stream", Some(&opts)).unwrap()
}

/// Both runtimes, for the tests that hold for each.
fn each_runtime(test: &str, f: impl Fn(&TestPlugin, &Path, &str)) {
    let dir = scratch(&format!("{test}_markers"));
    let (host, _) = native_host(test);
    f(&native_plugin(&host), &dir.join("native"), "native");
    let host = wasm_host();
    f(&wasm_plugin(&host, &dir), &dir.join("wasm"), "wasm");
}

fn count_input(n: u64, marker: &Path) -> Vec<u8> {
    wire(&(n, marker.to_str().unwrap().to_string()))
}

// ---- server streams ----------------------------------------------------------

#[test]
fn a_server_stream_yields_every_item_in_order_and_drops_its_producer_once() {
    each_runtime("server_order", |plugin, marker, runtime| {
        for n in [0u64, 1, 10_000] {
            let marker = marker.with_extension(format!("{n}"));
            let mut stream = open(plugin, COUNT, WIRE, &count_input(n, &marker)).unwrap();
            let items = u64s(&stream.drain().unwrap());
            assert_eq!(items, (0..n).collect::<Vec<_>>(), "{runtime}: count({n})");
            assert_eq!(marker_lines(&marker), 1, "{runtime}: the producer is dropped once, at the end");
            assert!(stream.next().unwrap().is_none(), "{runtime}: the end is answered again");
            drop(stream);
            assert_eq!(marker_lines(&marker), 1, "{runtime}: freeing an ended stream drops nothing twice");
        }
    });
}

#[test]
fn items_larger_than_the_first_buffer_arrive_whole() {
    each_runtime("server_big", |plugin, _, runtime| {
        for size in [1u32, 5_000, 300_000] {
            let mut stream = open(plugin, BLOBS, WIRE, &wire(&(4u32, size))).unwrap();
            let items: Vec<String> = stream.drain().unwrap().iter().map(|b| unwire(b)).collect();
            assert_eq!(items.len(), 4, "{runtime}");
            for (i, s) in items.iter().enumerate() {
                let c = (b'a' + i as u8) as char;
                assert_eq!(s.len(), size as usize, "{runtime}: item {i} of size {size}");
                assert!(s.chars().all(|x| x == c), "{runtime}: item {i} is all '{c}'");
            }
        }
    });
}

#[test]
fn cancelling_early_drops_the_producer_exactly_once() {
    each_runtime("server_cancel", |plugin, marker, runtime| {
        let endless = marker.with_extension("forever");
        let mut stream = open(plugin, FOREVER, WIRE, &wire(&endless.to_str().unwrap().to_string())).unwrap();
        let first: Vec<u64> = (0..5).map(|_| unwire(&stream.next().unwrap().unwrap())).collect();
        assert_eq!(first, vec![0, 1, 2, 3, 4], "{runtime}");
        assert_eq!(marker_lines(&endless), 0, "{runtime}: not dropped while open");
        drop(stream);
        assert_eq!(marker_lines(&endless), 1, "{runtime}: fidius_stream_free drops the producer once");

        let counted = marker.with_extension("count");
        let mut stream = open(plugin, COUNT, WIRE, &count_input(100, &counted)).unwrap();
        stream.next().unwrap().unwrap();
        drop(stream);
        assert_eq!(marker_lines(&counted), 1, "{runtime}");
        // Never pulled at all.
        let unpulled = marker.with_extension("unpulled");
        drop(open(plugin, COUNT, WIRE, &count_input(100, &unpulled)).unwrap());
        assert_eq!(marker_lines(&unpulled), 1, "{runtime}");
    });
}

#[test]
fn a_stream_that_fails_midway_reports_it_once_and_ends() {
    each_runtime("server_explode", |plugin, _, runtime| {
        let mut stream = open(plugin, EXPLODE, WIRE, &wire(&3u64)).unwrap();
        let (items, failure) = stream.drain_until_failure();
        assert_eq!(u64s(&items), vec![0, 1, 2], "{runtime}");
        let expected = if runtime == "native" { Status::PluginPanic } else { Status::Trap };
        assert_eq!(failure.status, expected, "{runtime}: {}", failure.message);
        assert!(stream.next().unwrap().is_none(), "{runtime}: ended after the failure");
        // The plugin serves on.
        assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(2i64, 40i64))).unwrap()), 42, "{runtime}");
    });
}

#[test]
fn eight_threads_each_drain_their_own_stream_of_one_plugin() {
    each_runtime("server_threads", |plugin, marker, runtime| {
        let plugin = Arc::new(TestPlugin(plugin.0));
        let threads: Vec<_> = (0..8u64)
            .map(|t| {
                let plugin = plugin.clone();
                let marker = marker.with_extension(format!("t{t}"));
                std::thread::spawn(move || {
                    let n = 2_000 + t;
                    let mut stream = open(&plugin, COUNT, WIRE, &count_input(n, &marker)).unwrap();
                    let items = u64s(&stream.drain().unwrap());
                    assert_eq!(items, (0..n).collect::<Vec<_>>());
                    assert_eq!(marker_lines(&marker), 1);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap_or_else(|_| panic!("{runtime}: a thread failed"));
        }
        std::mem::forget(Arc::try_unwrap(plugin).ok().expect("threads done")); // owned by the caller's TestPlugin
    });
}

// ---- client and bidirectional streams -----------------------------------------

#[test]
fn a_client_stream_is_fed_by_the_callback_on_the_calling_thread() {
    each_runtime("client_sum", |plugin, _, runtime| {
        let items: Vec<Vec<u8>> = (1..=100u64).map(|i| wire(&i)).collect();
        let (user, probe) = source(items, None);
        let out = call_fed(plugin, SUM, WIRE, &wire(&(10u64,)), user).unwrap();
        assert_eq!(unwire::<u64>(&out), 10 + 5050, "{runtime}");
        assert_eq!(probe.destroyed(), 1, "{runtime}: destroy once, by the time the call returns");
        assert_eq!(probe.other_threads.load(Ordering::SeqCst), 0, "{runtime}: pulled on the calling thread");

        // An empty input.
        let (user, probe) = source(Vec::new(), None);
        assert_eq!(unwire::<u64>(&call_fed(plugin, SUM, WIRE, &wire(&(7u64,)), user).unwrap()), 7, "{runtime}");
        assert_eq!(probe.destroyed(), 1);
    });
}

#[test]
fn a_client_streams_plugin_error_and_a_failing_source_are_reported() {
    each_runtime("client_errors", |plugin, _, runtime| {
        let items: Vec<Vec<u8>> = [1u64, 2, 13, 4].iter().map(wire).collect();
        let (user, probe) = source(items, None);
        let f = call_fed(plugin, SUM_CHECKED, WIRE, &[], user).unwrap_err();
        assert_eq!(f.status, Status::PluginError, "{runtime}: {}", f.message);
        assert_eq!(f.plugin_code.as_deref(), Some("UNLUCKY"));
        assert_eq!(f.plugin_message.as_deref(), Some("item 13"));
        assert_eq!(probe.destroyed(), 1);

        // The source fails at its third item: the plugin saw 1 + 2 and an
        // end, and returned 3, but the call reports the source's failure.
        let items: Vec<Vec<u8>> = [1u64, 2, 3, 4].iter().map(wire).collect();
        let (user, probe) = source(items, Some((2, -42)));
        let f = call_fed(plugin, SUM, WIRE, &wire(&(0u64,)), user).unwrap_err();
        assert_eq!(f.status, Status::StreamSource, "{runtime}: {}", f.message);
        assert!(f.message.contains("-42"), "{}", f.message);
        assert_eq!(probe.destroyed(), 1);

        // Items that are not the item type: the plugin's decoder ends its
        // input there (fidius' HostStream), so only the good ones count.
        let items = vec![wire(&5u64), vec![1, 2, 3], wire(&6u64)];
        let (user, _) = source(items, None);
        assert_eq!(unwire::<u64>(&call_fed(plugin, SUM, WIRE, &wire(&(0u64,)), user).unwrap()), 5, "{runtime}");
    });
}

#[test]
fn a_bidirectional_stream_transforms_each_item_as_it_is_pulled() {
    each_runtime("bidi_shout", |plugin, _, runtime| {
        let words: Vec<Vec<u8>> = ["hi", "yo", "", "fidius"].iter().map(|w| wire(&w.to_string())).collect();
        let (user, probe) = source(words, None);
        let mut stream = open_fed(plugin, SHOUT, WIRE, &wire(&(">".to_string(),)), Some(user)).unwrap();
        let first: String = unwire(&stream.next().unwrap().unwrap());
        assert_eq!(first, ">HI", "{runtime}");
        let rest: Vec<String> = stream.drain().unwrap().iter().map(|b| unwire(b)).collect();
        assert_eq!(rest, vec![">YO", ">", ">FIDIUS"], "{runtime}");
        assert_eq!(probe.destroyed(), 1, "{runtime}: the source is destroyed at the end");
        assert_eq!(probe.other_threads.load(Ordering::SeqCst), 0);

        // Pulled from another thread than the one that opened it.
        let words: Vec<Vec<u8>> = (0..50).map(|i| wire(&format!("w{i}"))).collect();
        let (user, probe) = source(words, None);
        let mut stream = open_fed(plugin, SHOUT, WIRE, &wire(&("-".to_string(),)), Some(user)).unwrap();
        let got = within(Duration::from_secs(60), "a moved stream", move || stream.drain().unwrap().len());
        assert_eq!(got, 50);
        assert_eq!(probe.destroyed(), 1);

        // Freed early: the source is destroyed with it.
        let words: Vec<Vec<u8>> = (0..50).map(|i| wire(&format!("w{i}"))).collect();
        let (user, probe) = source(words, None);
        let mut stream = open_fed(plugin, SHOUT, WIRE, &wire(&("-".to_string(),)), Some(user)).unwrap();
        stream.next().unwrap().unwrap();
        assert_eq!(probe.destroyed(), 0);
        drop(stream);
        assert_eq!(probe.destroyed(), 1, "{runtime}");

        // A failing source ends the output with its failure.
        let words: Vec<Vec<u8>> = (0..5).map(|i| wire(&format!("w{i}"))).collect();
        let (user, probe) = source(words, Some((2, -7)));
        let mut stream = open_fed(plugin, SHOUT, WIRE, &wire(&("".to_string(),)), Some(user)).unwrap();
        let (items, failure) = stream.drain_until_failure();
        assert_eq!(items.len(), 2, "{runtime}");
        assert_eq!(failure.status, Status::StreamSource, "{runtime}: {}", failure.message);
        assert!(stream.next().unwrap().is_none());
        assert_eq!(probe.destroyed(), 1);
    });
}

// ---- JSON, kinds, describe --------------------------------------------------------

/// JSON streams need item types: the component's, or the native plugin's schema.
fn json_streams(plugin: &TestPlugin, runtime: &str) {
    let mut stream = open(plugin, POINTS, JSON, br#"{"n": 3}"#).unwrap();
    let points: Vec<serde_json::Value> = stream.drain().unwrap().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(
        points,
        vec![
            serde_json::json!({"x": 0, "y": 0, "label": "p0"}),
            serde_json::json!({"x": 1, "y": -1, "label": "p1"}),
            serde_json::json!({"x": 2, "y": -2, "label": "p2"}),
        ],
        "{runtime}"
    );
    let mut stream = open(plugin, COUNT, JSON, br#"[4, ""]"#).unwrap();
    let items: Vec<u64> = stream.drain().unwrap().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(items, vec![0, 1, 2, 3], "{runtime}");
    // Wrong argument types are refused before anything starts.
    let f = open(plugin, COUNT, JSON, br#"["four", ""]"#).unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{runtime}: {}", f.message);
    // Client stream: arguments in JSON, items in wire bytes, result in JSON.
    let (user, _) = source(vec![wire(&2u64), wire(&3u64)], None);
    let out = call_fed(plugin, SUM, JSON, b"[10]", user).unwrap();
    assert_eq!(serde_json::from_slice::<u64>(&out).unwrap(), 15, "{runtime}");
    let (user, _) = source(vec![wire(&"a".to_string())], None);
    let mut stream = open_fed(plugin, SHOUT, JSON, br#"{"prefix": "+"}"#, Some(user)).unwrap();
    let out: Vec<String> = stream.drain().unwrap().iter().map(|b| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(out, vec!["+A"], "{runtime}");
}

#[test]
fn json_streams_convert_arguments_and_items_by_the_interface_types() {
    let (host, _) = native_host("json_typed");
    json_streams(&native_typed(&host), "native with schema");
    let dir = scratch("json_streams_wasm");
    let host = wasm_host();
    json_streams(&wasm_plugin(&host, &dir), "wasm");
    // Without a schema, a native plugin's items have no known type.
    let (host, _) = native_host("json_untyped");
    let f = open(&native_plugin(&host), POINTS, JSON, br#"{"n": 3}"#).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{}", f.message);
}

fn kind_checks(plugin: &TestPlugin, runtime: &str) {
    let f = plugin.call(COUNT, &count_input(3, Path::new(""))).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{runtime}: a stream called as a call: {}", f.message);
    assert!(f.message.contains("fidius_plugin_stream"), "{}", f.message);
    let f = open(plugin, ADD, WIRE, &wire(&(1i64, 2i64))).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{runtime}: a call opened as a stream: {}", f.message);
    let (user, probe) = source(vec![wire(&1u64)], None);
    let f = call_fed(plugin, SHOUT, WIRE, &wire(&("x".to_string(),)), user).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{runtime}: a bidirectional method as a client call: {}", f.message);
    assert_eq!(probe.destroyed(), 1, "{runtime}: destroyed when refused");
    let f = open(plugin, 99, WIRE, &[]).unwrap_err();
    assert_eq!(f.status, Status::MethodIndex, "{runtime}");
}

#[test]
fn the_kinds_that_can_be_checked_are() {
    let (host, _) = native_host("kinds_typed");
    kind_checks(&native_typed(&host), "native with schema");
    let dir = scratch("kinds_wasm");
    let host = wasm_host();
    kind_checks(&wasm_plugin(&host, &dir), "wasm");
    // Without a schema: a unary method's output is not taken for a handle.
    let (host, _) = native_host("kinds_untyped");
    let plugin = native_plugin(&host);
    let f = open(&plugin, ADD, WIRE, &wire(&(1i64, 2i64))).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{}", f.message);
    assert!(f.message.contains("not a stream handle"), "{}", f.message);
    assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(1i64, 2i64))).unwrap()), 3);
    // A component that pulls no stream refuses a source.
    let calc = wasm_host().load("calc").unwrap();
    let (user, probe) = source(vec![wire(&1u64)], None);
    let f = call_fed(&calc, 0, WIRE, &wire(&(1i64, 2i64)), user).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{}", f.message);
    assert!(f.message.contains("fidius:stream-pull"), "{}", f.message);
    assert_eq!(probe.destroyed(), 1);
}

/// Found by the capi_sequence fuzz target: fidius returns an empty result
/// (a unit method, an empty raw output) as a length-0 buffer with a
/// dangling pointer (0x1); opened as a stream, that pointer was read as a
/// handle, which crashes the host. Such results, of ABI 500 and 400
/// plugins, are refused and given back, and the plugin keeps serving.
#[test]
fn an_empty_result_is_never_taken_for_a_stream_handle() {
    const CALC_ADD: u32 = 0;
    const ECHO: u32 = 2;
    const NOTHING: u32 = 5;
    let dir = search_path("streams_empty_result", &[&native().v5, &native().v4]);
    let host = TestHost::new(&[&dir]);
    for name in ["BasicCalc", "LegacyCalc"] {
        let plugin = host.load(name).unwrap();
        for (method, what) in [(NOTHING, "a unit method"), (ECHO, "an empty raw output")] {
            let f = open(&plugin, method, WIRE, &[]).unwrap_err();
            assert_eq!(f.status, Status::Unsupported, "{name} {what}: {}", f.message);
            assert!(f.message.contains("an empty result, not a stream handle"), "{name} {what}: {}", f.message);
        }
        assert_eq!(unwire::<i64>(&plugin.call(CALC_ADD, &wire(&(40i64, 2i64))).unwrap()), 42, "{name} still serves");
        assert!(plugin.call(NOTHING, &[]).unwrap().is_empty());
    }
}

#[test]
fn describe_names_each_streams_item_type() {
    let check = |doc: serde_json::Value, runtime: &str| {
        let method = |name: &str| doc["methods"].as_array().unwrap().iter().find(|m| m["name"] == name).unwrap().clone();
        assert_eq!(method("count")["streaming"], true, "{runtime}");
        assert_eq!(method("count")["stream_item"], "u64", "{runtime}");
        assert_eq!(method("points")["stream_item"], "point", "{runtime}");
        assert_eq!(method("shout")["stream_item"], "string", "{runtime}");
        assert_eq!(method("add")["streaming"], false, "{runtime}");
        assert_eq!(method("add")["stream_item"], serde_json::Value::Null, "{runtime}");
        assert!(doc["types"].as_array().unwrap().iter().any(|t| t["name"] == "point"), "{runtime}: item types are listed");
    };
    let (host, _) = native_host("describe");
    check(native_typed(&host).describe(), "native");
    let dir = scratch("describe_streams");
    let host = wasm_host();
    check(wasm_plugin(&host, &dir).describe(), "wasm");
}

// ---- fidius 0.4.2, hand-made streams, bad arguments ----------------------------------

#[test]
fn a_fidius_0_4_server_stream_is_read_and_its_other_kinds_refused() {
    let (host, _) = native_host("v4");
    let plugin = host.load("LegacyCounter").unwrap();
    assert_eq!(plugin.info().abi_version, 400);
    for n in [0u64, 1, 10_000] {
        let items = u64s(&open(&plugin, 0, WIRE, &wire(&n)).unwrap().drain().unwrap());
        assert_eq!(items, (0..n).collect::<Vec<_>>());
    }
    let mut stream = open(&plugin, 0, WIRE, &wire(&1000u64)).unwrap();
    stream.next().unwrap().unwrap();
    drop(stream);
    let (user, probe) = source(vec![wire(&1u64)], None);
    let f = call_fed(&plugin, 0, WIRE, &[], user).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{}", f.message);
    assert!(f.message.contains("ABI 400"), "{}", f.message);
    assert_eq!(probe.destroyed(), 1);
    assert_eq!(unwire::<i64>(&plugin.call(1, &wire(&(40i64, 2i64))).unwrap()), 42);
}

#[test]
fn hand_made_streams_that_misbehave_get_clear_errors_and_are_dropped_once() {
    let lib = hostile("streams", &[]);
    let dir = search_path("streams_hostile", &[&lib]);
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("BadStreams").unwrap();
    const DROPS: u32 = 5;

    let mut stream = open(&plugin, 0, WIRE, &[]).unwrap();
    let (items, f) = stream.drain_until_failure();
    assert_eq!(u64s(&items), vec![0, 1]);
    assert_eq!(f.status, Status::PluginError, "{}", f.message);
    assert_eq!(f.plugin_code.as_deref(), Some("MIDWAY"));
    assert_eq!(f.plugin_message.as_deref(), Some("failed after 2 items"));
    assert_eq!(f.plugin_details.as_deref(), Some(r#"{"at":2}"#));
    assert!(stream.next().unwrap().is_none());
    drop(stream);

    let f = open(&plugin, 1, WIRE, &[]).unwrap().next().unwrap_err();
    assert_eq!(f.status, Status::BufferTooSmall, "{}", f.message);
    let f = open(&plugin, 2, WIRE, &[]).unwrap().next().unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{}", f.message);
    let mut odd = open(&plugin, 3, WIRE, &[]).unwrap();
    assert_eq!(unwire::<u64>(&odd.next().unwrap().unwrap()), 0);
    assert_eq!(odd.next().unwrap_err().status, Status::UnknownStatus);
    drop(odd);
    let f = open(&plugin, 4, WIRE, &[]).unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{}", f.message);
    let drops: u64 = unwire(&plugin.call(DROPS, &[]).unwrap());
    assert_eq!(drops, 4, "each of the four handles was dropped exactly once");
}

#[test]
fn bad_arguments_fail_cleanly_and_the_source_is_still_destroyed() {
    let (host, _) = native_host("bad_args");
    let plugin = native_plugin(&host);
    unsafe {
        let mut stream = ptr::null_mut();
        let mut err = ptr::null_mut();
        let (user, probe) = source(Vec::new(), None);
        let s = fidius_plugin_stream(ptr::null(), 0, WIRE, ptr::null(), 0, Some(source_next), user, Some(source_destroy), &mut stream, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        assert_eq!(probe.destroyed(), 1, "destroyed when the start fails");
        let s = fidius_plugin_stream(plugin.0, 0, 7, ptr::null(), 0, None, ptr::null_mut(), None, &mut stream, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::InvalidArgument);
        let s = fidius_plugin_stream(plugin.0, 0, WIRE, ptr::null(), 4, None, ptr::null_mut(), None, &mut stream, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        let s = fidius_plugin_stream(plugin.0, 0, WIRE, ptr::null(), 0, None, ptr::null_mut(), None, ptr::null_mut(), &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        // Truncated arguments: the plugin refuses them.
        let s = fidius_plugin_stream(plugin.0, COUNT, WIRE, [1u8, 2].as_ptr(), 2, None, ptr::null_mut(), None, &mut stream, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::Serialization);

        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let s = fidius_plugin_call_streaming(plugin.0, SUM, WIRE, ptr::null(), 0, None, ptr::null_mut(), None, &mut out, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument, "a client call needs a source");

        let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        assert_eq!(check(fidius_stream_next(ptr::null_mut(), &mut item, &mut err), err).unwrap_err().status, Status::NullArgument);
        assert_eq!(
            check(fidius_stream_next(plugin.0 as *mut fidius_stream, &mut item, &mut err), err).unwrap_err().status,
            Status::InvalidHandle
        );
        let live = open(&plugin, COUNT, WIRE, &count_input(3, Path::new(""))).unwrap();
        assert_eq!(check(fidius_stream_next(live.0, ptr::null_mut(), &mut err), err).unwrap_err().status, Status::NullArgument);
        drop(live);
        fidius_stream_free(ptr::null_mut());
    }
    assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(1i64, 1i64))).unwrap()), 2, "the plugin serves on");
}

#[test]
fn a_stream_outlives_its_plugin() {
    let (host, _) = native_host("outlives");
    let plugin = native_plugin(&host);
    let mut native = open(&plugin, COUNT, WIRE, &count_input(10, Path::new(""))).unwrap();
    drop(plugin);
    assert_eq!(u64s(&native.drain().unwrap()), (0..10).collect::<Vec<_>>());
    let dir = scratch("outlives_wasm");
    let host = wasm_host();
    let plugin = wasm_plugin(&host, &dir);
    let mut wasm = open(&plugin, COUNT, WIRE, &count_input(10, Path::new(""))).unwrap();
    drop(plugin);
    drop(host);
    assert_eq!(u64s(&wasm.drain().unwrap()), (0..10).collect::<Vec<_>>());
}

#[test]
fn a_wasm_streams_timeout_and_fuel_apply_to_each_item_not_the_whole_stream() {
    let dir = scratch("wasm_stream_limits");
    let grant = cstr(&format!("fs:rw:{}", dir.display()));
    let grants = [grant.as_ptr()];
    let host = wasm_host();
    // Reused instance for calls: a stream still runs in an instance of its own.
    let opts = TestOptions::new()
        .set(|o, e| unsafe { fidius_load_options_set_grants(o, grants.as_ptr(), 1, e) })
        .set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 100, e) })
        .set(|o, e| unsafe { fidius_load_options_set_fuel(o, 2_000_000, e) })
        .set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, true, e) });
    let plugin = host.load_opts("stream", Some(&opts)).unwrap();
    let marker = dir.join("limits");
    let mut endless = open(&plugin, FOREVER, WIRE, &wire(&marker.to_str().unwrap().to_string())).unwrap();
    let started = std::time::Instant::now();
    let mut pulled = 0u64;
    // Far more time, and far more instructions, than one item's budget.
    while started.elapsed() < Duration::from_millis(400) || pulled < 20_000 {
        assert_eq!(unwire::<u64>(&endless.next().unwrap().unwrap()), pulled);
        pulled += 1;
        if pulled % 1000 == 0 {
            // Calls on the reused instance go on beside the stream.
            assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(pulled as i64, 1i64))).unwrap()), pulled as i64 + 1);
        }
    }
    drop(endless);
    assert_eq!(marker_lines(&marker), 1);
}

#[test]
fn another_thread_cancels_a_stream_being_pulled() {
    each_runtime("cancel_threads", |plugin, marker, runtime| {
        let endless = marker.with_extension("cancelled");
        let stream = Arc::new(open(plugin, FOREVER, WIRE, &wire(&endless.to_str().unwrap().to_string())).unwrap());
        let puller = {
            let stream = stream.clone();
            std::thread::spawn(move || {
                let mut pulled = 0u64;
                loop {
                    unsafe {
                        let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                        let mut err = ptr::null_mut();
                        let status = fidius_stream_next(stream.0, &mut item, &mut err);
                        fidius_bytes_free(&mut item);
                        match check(status, err) {
                            Ok(()) => pulled += 1,
                            Err(f) => return (pulled, f),
                        }
                    }
                }
            })
        };
        std::thread::sleep(Duration::from_millis(100));
        unsafe {
            let mut err = ptr::null_mut();
            check(fidius_stream_cancel(stream.0, &mut err), err).unwrap();
            check(fidius_stream_cancel(stream.0, &mut err), err).unwrap(); // idempotent
        }
        let (pulled, f) = within(Duration::from_secs(30), "a cancelled stream", move || puller.join().unwrap());
        assert!(pulled > 0, "{runtime}");
        assert_eq!(f.status, Status::Cancelled, "{runtime}: {}", f.message);
        let mut stream = Arc::try_unwrap(stream).unwrap();
        assert!(stream.next().unwrap().is_none(), "{runtime}: ended");
        drop(stream);
        // Native: cancelled between items, the producer is dropped. WASM: an
        // item stopped mid-way takes its instance with it, destructor unrun
        // (its state is unknown); one stopped between items is dropped.
        let lines = marker_lines(&endless);
        if runtime == "native" {
            assert_eq!(lines, 1, "{runtime}: the producer dropped once");
        } else {
            assert!(lines <= 1, "{runtime}: never dropped twice ({lines})");
        }
        assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(1i64, 2i64))).unwrap()), 3, "{runtime}");
        unsafe {
            let mut err = ptr::null_mut();
            assert_eq!(check(fidius_stream_cancel(ptr::null(), &mut err), err).unwrap_err().status, Status::NullArgument);
        }
    });
}
