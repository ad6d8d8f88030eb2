//! WASM-component plugins built by the published fidius 0.5.9 guest crates
//! (tests/fixtures/wasm), driven through the C entry points with JSON and
//! with wire buffers; the sandbox's capabilities; limits on hostile guests.

mod common;

use std::collections::BTreeMap;

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const CALC_HASH: u64 = 0x47b1890a3bc4686f;

// calc method indices (trait declaration order).
const ADD: u32 = 0;
const GREET: u32 = 1;
const ECHO: u32 = 2;
const DIVIDE: u32 = 3;
const NOTHING: u32 = 4;
const WIDTHS: u32 = 5;
const ECHO_SCALARS: u32 = 6;
const SHIFT: u32 = 7;
const AREA: u32 = 8;
const SCALE: u32 = 9;
const MAYBE_DOUBLE: u32 = 10;
const SWAP: u32 = 11;
const COUNT_WORDS: u32 = 12;
const CENTROID: u32 = 13;
const CHECKED_ECHO: u32 = 14;

fn calc_host(name: &str) -> TestHost {
    let dir = wasm_search_path(name, &["calc"], |_, t| t.to_string());
    TestHost::new(&[&dir])
}

#[test]
fn discovery_lists_packages_and_load_fills_in_the_interface() {
    let dir = wasm_search_path("wasm_discover", &["calc", "caps"], |_, t| t.to_string());
    let host = TestHost::new(&[&dir]);
    let mut found = host.discover().plugins();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(found.len(), 2);
    assert_eq!((found[0].name.as_str(), found[0].runtime, found[0].buffer_strategy), ("calc", 2, 0));
    assert_eq!(found[0].interface_name, "calc");
    let calc = host.load("calc").unwrap();
    let info = calc.info();
    assert_eq!(info.interface_hash, CALC_HASH, "read from the component's fidius-interface-hash");
    assert_eq!(info.method_count, 15);
    assert_eq!(info.runtime, 2);
    assert!(info.path.ends_with("calc"), "{}", info.path);
    // Method names and indices follow the interface's declaration order.
    assert_eq!(calc.index("add").unwrap(), ADD);
    assert_eq!(calc.index("echo_scalars").unwrap(), ECHO_SCALARS);
    assert_eq!(calc.index("count-words").unwrap(), COUNT_WORDS);
    assert_eq!(calc.index("checked-echo").unwrap(), CHECKED_ECHO);
    assert_eq!(calc.index("nope").unwrap_err().status, Status::MethodIndex);
    unsafe {
        assert_eq!(opt_str(fidius_plugin_method_name(calc.0, MAYBE_DOUBLE)).unwrap(), "maybe-double");
        assert!(fidius_plugin_method_name(calc.0, 15).is_null());
    }
}

#[test]
fn json_calls_with_every_kind_of_type() {
    let host = calc_host("wasm_json");
    let calc = host.load("calc").unwrap();
    assert_eq!(calc.json(ADD, "[2, 40]").unwrap(), json!(42));
    assert_eq!(calc.json(ADD, r#"{"a": 1, "b": 2}"#).unwrap(), json!(3), "arguments by name");
    assert_eq!(calc.json(GREET, r#"["JSON"]"#).unwrap(), json!("Hello, JSON!"));
    assert_eq!(calc.json(ECHO, "[[0, 255, 7]]").unwrap(), json!([0, 255, 7]));
    assert_eq!(calc.json(DIVIDE, "[7, 2]").unwrap(), json!(3));
    assert_eq!(calc.json(NOTHING, "[]").unwrap(), json!(null), "unit-returning methods work");
    assert_eq!(calc.json(NOTHING, "").unwrap(), json!(null));
    // Every integer width; u64 beyond 2^53 as a string, both ways.
    let sum = calc.json(WIDTHS, r#"[-1, -2, -3, 4, 5, 6, "18446744073709551600"]"#).unwrap();
    assert_eq!(sum, json!("18446744073709551609"));
    let scalars = json!({"a": -128, "b": 32767, "c": -5, "d": "-9223372036854775808", "e": 255, "f": 65535,
        "g": 4294967295u32, "h": "18446744073709551615", "x": 1.5, "y": -0.25, "flag": true, "ch": "é"});
    assert_eq!(calc.json(ECHO_SCALARS, &json!([scalars]).to_string()).unwrap(), scalars);
    // Records (snake_case; kebab accepted), variants, options, tuples, maps, lists of records.
    assert_eq!(
        calc.json(SHIFT, r#"[{"x": 1, "y": 2, "label": "p"}, 10]"#).unwrap(),
        json!({"x": 11, "y": 2, "label": "p+10"})
    );
    assert_eq!(calc.json(AREA, r#"[{"Square": 3.0}]"#).unwrap(), json!(9.0));
    assert_eq!(calc.json(AREA, r#"[{"rect": {"w": 2.0, "h": 4.0}}]"#).unwrap(), json!(8.0));
    assert_eq!(calc.json(AREA, r#"["Empty"]"#).unwrap(), json!(0.0));
    assert_eq!(calc.json(SCALE, r#"[{"Circle": 1.5}, 2.0]"#).unwrap(), json!({"Circle": 3.0}));
    assert_eq!(calc.json(SCALE, r#"["empty", 2.0]"#).unwrap(), json!("Empty"));
    assert_eq!(calc.json(MAYBE_DOUBLE, "[21]").unwrap(), json!(42));
    assert_eq!(calc.json(MAYBE_DOUBLE, "[null]").unwrap(), json!(null));
    assert_eq!(calc.json(SWAP, r#"[["x", 5]]"#).unwrap(), json!([5, "x"]));
    let words = calc.json(COUNT_WORDS, r#"["a b a"]"#).unwrap();
    let mut pairs: Vec<(String, u64)> =
        words.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().into(), p[1].as_u64().unwrap())).collect();
    pairs.sort();
    assert_eq!(pairs, [("a".to_string(), 2), ("b".to_string(), 1)]);
    let c = calc.json(CENTROID, r#"[[{"x": 0, "y": 0, "label": "a"}, {"x": 4, "y": 2, "label": "b"}]]"#).unwrap();
    assert_eq!((c["x"].clone(), c["y"].clone()), (json!(2), json!(1)));
    assert_eq!(calc.json(CENTROID, "[[]]").unwrap(), json!(null));
    assert_eq!(calc.json(CHECKED_ECHO, "[[1, 2]]").unwrap(), json!([1, 2]));
}

#[test]
fn json_errors_are_precise_and_the_plugin_keeps_serving() {
    let host = calc_host("wasm_json_errors");
    let calc = host.load("calc").unwrap();
    let err = calc.json(DIVIDE, "[7, 0]").unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    assert_eq!(err.plugin_code.as_deref(), Some("DIV_ZERO"));
    assert_eq!(err.plugin_message.as_deref(), Some("division by zero"));
    assert_eq!(err.plugin_details.as_deref(), Some("{\"dividend\":7}"));
    let err = calc.json(CHECKED_ECHO, "[[]]").unwrap_err();
    assert_eq!(err.status, Status::PluginError, "{}", err.message);
    for (method, input, needle) in [
        (ADD, "[1]", "expected 2 arguments"),
        (ADD, "[1, 2.5]", "not a whole number"),
        (ADD, r#"[1, "x"]"#, "decimal"),
        (WIDTHS, "[128, 0, 0, 0, 0, 0, 0]", "out of range for s8"),
        (WIDTHS, "[0, 0, 0, -1, 0, 0, 0]", "out of range for u8"),
        (ECHO, "[[256]]", "out of range for u8"),
        (SHIFT, r#"[{"x": 1, "label": "p"}, 1]"#, "missing field"),
        (SHIFT, r#"[{"x": 1, "y": 1, "label": "p", "z": 0}, 1]"#, "unknown field"),
        (AREA, r#"[{"Hexagon": 1}]"#, "unknown case"),
        (SWAP, r#"[["x"]]"#, "tuple of 2"),
        (GREET, "{not json", "not valid JSON"),
        (GREET, r#"{"nam": "x"}"#, "missing argument"),
    ] {
        let err = calc.json(method, input).unwrap_err();
        assert_eq!(err.status, Status::Serialization, "{input}: {}", err.message);
        assert!(err.message.contains(needle), "{input}: {}", err.message);
    }
    assert_eq!(calc.json(ADD, "[1, 1]").unwrap(), json!(2));
    assert_eq!(calc.json(99, "[]").unwrap_err().status, Status::MethodIndex);
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
struct Point {
    x: i32,
    y: i32,
    label: String,
}

#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
enum Shape {
    Circle(f64),
    Square(f64),
    Rect { w: f64, h: f64 },
    Empty,
}

#[test]
fn wire_calls_use_the_same_bytes_as_native_plugins() {
    let host = calc_host("wasm_wire");
    let calc = host.load("calc").unwrap();
    let sum: i64 = unwire(&calc.call(ADD, &wire(&(2i64, 3i64))).unwrap());
    assert_eq!(sum, 5);
    let hello: String = unwire(&calc.call(GREET, &wire(&("wire",))).unwrap());
    assert_eq!(hello, "Hello, wire!");
    // Raw methods: bytes in, bytes out; also when the method returns a Result.
    let big = vec![0xabu8; 256 * 1024];
    assert_eq!(calc.call(ECHO, &big).unwrap(), big);
    assert_eq!(calc.call(ECHO, b"").unwrap(), b"");
    assert_eq!(calc.call(CHECKED_ECHO, b"xyz").unwrap(), b"xyz");
    let err = calc.call(CHECKED_ECHO, b"").unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    let q: i64 = unwire(&calc.call(DIVIDE, &wire(&(9i64, 3i64))).unwrap());
    assert_eq!(q, 3);
    let err = calc.call(DIVIDE, &wire(&(9i64, 0i64))).unwrap_err();
    assert_eq!(err.plugin_code.as_deref(), Some("DIV_ZERO"));
    assert_eq!(calc.call(NOTHING, &[]).unwrap(), b"");
    let p: Point = unwire(&calc.call(SHIFT, &wire(&(Point { x: 1, y: 2, label: "q".into() }, 5i32))).unwrap());
    assert_eq!(p, Point { x: 6, y: 2, label: "q+5".into() });
    let a: f64 = unwire(&calc.call(AREA, &wire(&(Shape::Rect { w: 3.0, h: 2.0 },))).unwrap());
    assert_eq!(a, 6.0);
    let s: Shape = unwire(&calc.call(SCALE, &wire(&(Shape::Square(2.0), 3.0f64))).unwrap());
    assert_eq!(s, Shape::Square(6.0));
    let s: Shape = unwire(&calc.call(SCALE, &wire(&(Shape::Empty, 3.0f64))).unwrap());
    assert_eq!(s, Shape::Empty);
    let d: Option<u32> = unwire(&calc.call(MAYBE_DOUBLE, &wire(&(Some(4u32),))).unwrap());
    assert_eq!(d, Some(8));
    let d: Option<u32> = unwire(&calc.call(MAYBE_DOUBLE, &wire(&(None::<u32>,))).unwrap());
    assert_eq!(d, None);
    let t: (u32, String) = unwire(&calc.call(SWAP, &wire(&(("s".to_string(), 9u32),))).unwrap());
    assert_eq!(t, (9, "s".into()));
    let m: BTreeMap<String, u32> = unwire(&calc.call(COUNT_WORDS, &wire(&("x y x",))).unwrap());
    assert_eq!(m, BTreeMap::from([("x".into(), 2), ("y".into(), 1)]));
    let w: u64 = unwire(&calc.call(WIDTHS, &wire(&(1i8, 2i16, 3i32, 4u8, 5u16, 6u32, 7u64))).unwrap());
    assert_eq!(w, 28);
    // Malformed wire input is a clean serialization error.
    let err = calc.call(ADD, &[1, 2, 3]).unwrap_err();
    assert_eq!(err.status, Status::Serialization);
    let err = calc.call(ADD, &wire(&(1i64, 2i64, 3i64))).unwrap_err();
    assert!(err.message.contains("left over"), "{}", err.message);
    let err = calc.call(GREET, &[0xff; 8]).unwrap_err();
    assert_eq!(err.status, Status::Serialization, "a huge length prefix is refused, not allocated");
    let sum: i64 = unwire(&calc.call(ADD, &wire(&(1i64, 1i64))).unwrap());
    assert_eq!(sum, 2);
}

#[test]
fn a_non_raw_method_of_raw_shape_can_be_declared() {
    let host = calc_host("wasm_wire_raw_override");
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_wire_raw(o, cstr("echo").as_ptr(), false, e) });
    let calc = host.load_opts("calc", Some(&opts)).unwrap();
    let out: Vec<u8> = unwire(&calc.call(ECHO, &wire(&(vec![1u8, 2, 3],))).unwrap());
    assert_eq!(out, [1, 2, 3]);
    let bad = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_wire_raw(o, cstr("add").as_ptr(), true, e) });
    let err = host.load_opts("calc", Some(&bad)).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
}

#[test]
fn interface_checks() {
    let host = calc_host("wasm_iface");
    let good = TestOptions::new()
        .set(|o, e| unsafe { fidius_load_options_set_interface_hash(o, CALC_HASH, e) })
        .set(|o, e| unsafe { fidius_load_options_set_interface_export(o, cstr("fidius:calc/calc@0.1.0").as_ptr(), e) });
    assert!(host.load_opts("calc", Some(&good)).is_ok());
    let wrong_hash = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_interface_hash(o, 0x1234, e) });
    let err = host.load_opts("calc", Some(&wrong_hash)).err().unwrap();
    assert_eq!(err.status, Status::InterfaceHashMismatch);
    assert!(err.message.contains("0x47b1890a3bc4686f") && err.message.contains("0x0000000000001234"), "{}", err.message);
    let wrong_export =
        TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_interface_export(o, cstr("fidius:calc/calc@1.0.0").as_ptr(), e) });
    let err = host.load_opts("calc", Some(&wrong_export)).err().unwrap();
    assert_eq!(err.status, Status::InvalidManifest);
    assert!(err.message.contains("fidius:calc/calc@0.1.0"), "lists what is exported: {}", err.message);
}

#[test]
fn one_wasm_plugin_called_from_eight_threads() {
    let host = calc_host("wasm_threads");
    for mode in MODES {
        let calc = host.load_opts("calc", Some(&mode.options())).unwrap();
        std::thread::scope(|s| {
            for t in 0..8i64 {
                let calc = &calc;
                s.spawn(move || {
                    for i in 0..50i64 {
                        let sum: i64 = unwire(&calc.call(ADD, &wire(&(t, i))).unwrap());
                        assert_eq!(sum, t + i);
                        assert_eq!(calc.json(ADD, &format!("[{t}, {i}]")).unwrap(), json!(t + i));
                    }
                });
            }
        });
    }
}

#[test]
fn configured_components_keep_one_instance() {
    let host = calc_host("wasm_config");
    // calc takes no config (`()`, zero bytes); an empty config still configures it.
    let calc = host.load_with("calc", Some(&[])).unwrap();
    assert_eq!(calc.json(ADD, "[1, 2]").unwrap(), json!(3));
}

fn hostile_host(name: &str) -> TestHost {
    let dir = scratch(name);
    hostile_wasm_package(&dir);
    TestHost::new(&[&dir])
}

const SPIN: u32 = 0;
const GROW: u32 = 1;
const RECURSE: u32 = 2;
const OK: u32 = 3;
const TICK: u32 = 4;

/// The ways an unconfigured plugin can run its calls: a fresh instance per
/// call (the default) and one reused instance.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Fresh,
    Reused,
}

const MODES: [Mode; 2] = [Mode::Fresh, Mode::Reused];

impl Mode {
    fn options(self) -> TestOptions {
        match self {
            Mode::Fresh => TestOptions::new(),
            Mode::Reused => TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, true, e) }),
        }
    }
}

#[test]
fn isolated_calls_never_share_an_instance() {
    let host = hostile_host("wasm_isolation");
    for mode in MODES {
        let plugin = host.load_opts("hostile", Some(&mode.options())).unwrap();
        let ticks: Vec<u32> = (0..6).map(|_| unwire(&plugin.call(TICK, &[]).unwrap())).collect();
        let expected: Vec<u32> = match mode {
            // Globals and memory start from the component's initial state on every call.
            Mode::Fresh => vec![101; 6],
            Mode::Reused => vec![101, 202, 303, 404, 505, 606],
        };
        assert_eq!(ticks, expected, "{mode:?}");
        // A trap leaves a reused instance in an unknown state: the next call gets a new one.
        assert_eq!(plugin.call(RECURSE, &[]).unwrap_err().status, Status::StackOverflow);
        assert_eq!(unwire::<u32>(&plugin.call(TICK, &[]).unwrap()), 101, "{mode:?} after a trap");
    }
}

/// `method` fails with `status` twice (each call has its own budget), and
/// after each failure the plugin serves the next call. Returns the last message.
fn assert_stopped(plugin: &TestPlugin, method: u32, status: Status, mode: Mode) -> String {
    let mut message = String::new();
    for _ in 0..2 {
        let err = plugin.call(method, &[]).unwrap_err();
        assert_eq!(err.status, status, "{mode:?}: {}", err.message);
        assert_eq!(unwire::<u32>(&plugin.call(OK, &[]).unwrap()), 7, "{mode:?} serves the next call");
        message = err.message;
    }
    message
}

#[test]
fn an_infinite_loop_is_stopped_by_the_timeout() {
    let host = hostile_host("wasm_spin");
    for mode in MODES {
        let opts = mode.options().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 100, e) });
        let plugin = host.load_opts("hostile", Some(&opts)).unwrap();
        assert_stopped(&plugin, SPIN, Status::Timeout, mode);
    }
}

#[test]
fn fuel_stops_a_loop_too() {
    let host = hostile_host("wasm_fuel");
    for mode in MODES {
        let opts = mode.options().set(|o, e| unsafe { fidius_load_options_set_fuel(o, 1_000_000, e) });
        let plugin = host.load_opts("hostile", Some(&opts)).unwrap();
        assert_stopped(&plugin, SPIN, Status::FuelExhausted, mode);
    }
}

#[test]
fn a_memory_bomb_is_stopped_by_the_memory_limit() {
    let host = hostile_host("wasm_grow");
    for mode in MODES {
        let opts = mode
            .options()
            .set(|o, e| unsafe { fidius_load_options_set_memory_limit(o, 16 << 20, e) })
            .set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 10_000, e) });
        let plugin = host.load_opts("hostile", Some(&opts)).unwrap();
        let message = assert_stopped(&plugin, GROW, Status::MemoryLimit, mode);
        assert!(message.contains("16777216"), "{message}");
    }
}

#[test]
fn unbounded_recursion_is_stopped() {
    let host = hostile_host("wasm_recurse");
    for mode in MODES {
        let plugin = host.load_opts("hostile", Some(&mode.options())).unwrap();
        assert_stopped(&plugin, RECURSE, Status::StackOverflow, mode);
    }
}

#[test]
fn a_slow_call_does_not_block_other_calls() {
    let host = hostile_host("wasm_parallel");
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 2_000, e) });
    let plugin = host.load_opts("hostile", Some(&opts)).unwrap();
    std::thread::scope(|s| {
        let spinning = s.spawn(|| plugin.call(SPIN, &[]).unwrap_err().status);
        // While one call spins, others on the same plugin complete.
        for _ in 0..20 {
            assert_eq!(unwire::<u32>(&plugin.call(OK, &[]).unwrap()), 7);
        }
        assert_eq!(spinning.join().unwrap(), Status::Timeout);
    });
}

#[test]
fn precompiled_components_load_and_stale_ones_fall_back_with_a_reason() {
    let dir = wasm_search_path("wasm_aot", &["calc"], |_, t| t.replace("[wasm]", "[wasm]\nprecompiled = \"calc.cwasm\""));
    // Unsigned .cwasm files are used only when the embedder trusts them (tests/sandbox.rs).
    let trusting = |dir: &std::path::Path| {
        TestHost::configured(&[dir], |b| ok(|e| unsafe { fidius_host_builder_set_trust_precompiled(b, true, e) }))
    };
    let host = trusting(&dir);
    let wasm = std::fs::read(dir.join("calc/calc.wasm")).unwrap();
    std::fs::write(dir.join("calc/calc.cwasm"), host.precompile(&wasm)).unwrap();
    unsafe {
        let mut out = fidius_bytes { data: std::ptr::null_mut(), len: 0, release: std::ptr::null_mut() };
        let mut err = std::ptr::null_mut();
        let e = check(fidius_host_precompile_component(host.0, b"nope".as_ptr(), 4, &mut out, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
    }
    let calc = host.load("calc").unwrap();
    assert_eq!(calc.warnings(), Vec::<String>::new());
    assert_eq!(calc.json(ADD, "[20, 22]").unwrap(), json!(42));
    // Another host of the process loads the same .cwasm while this one is
    // loaded: the shared runtime finds it deserialized (byte-equal image).
    let second_host = trusting(&dir);
    let again = second_host.load("calc").unwrap();
    assert_eq!(again.warnings(), Vec::<String>::new());
    assert_eq!(again.json(ADD, "[1, 2]").unwrap(), json!(3));
    drop(again);
    drop(second_host);
    drop(calc);

    // A .cwasm that is not ours: used as a warning, never silently.
    let fresh = wasm_search_path("wasm_aot_stale", &["calc"], |_, t| t.replace("[wasm]", "[wasm]\nprecompiled = \"calc.cwasm\""));
    std::fs::write(fresh.join("calc/calc.cwasm"), b"\x7fELF not really a cwasm").unwrap();
    let host = trusting(&fresh);
    let calc = host.load("calc").unwrap();
    let warnings = calc.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("calc.cwasm not used") && warnings[0].contains("compiled calc.wasm"), "{warnings:?}");
    assert_eq!(calc.json(ADD, "[1, 2]").unwrap(), json!(3));
}

/// A host over `dir` that allows packages exactly the capabilities `allowed`.
fn allowing(dir: &std::path::Path, allowed: &[&str]) -> TestHost {
    TestHost::configured(&[dir], |b| {
        for cap in allowed {
            let cap = cstr(cap);
            ok(|e| unsafe { fidius_host_builder_allow_capability(b, cap.as_ptr(), e) });
        }
    })
}

#[test]
fn capabilities_open_exactly_their_facet() {
    std::env::set_var("FIDIUS_FIXTURE_VAR", "granted value");
    std::env::set_var("FIDIUS_FIXTURE_SECRET", "must not leak");
    let dir = wasm_search_path("wasm_caps", &["caps"], |_, t| t.to_string());
    let host = allowing(&dir, &["env:FIDIUS_FIXTURE_VAR", "clocks", "stdout"]);
    let caps = host.load("caps").unwrap();
    let read_env = caps.index("read_env").unwrap();
    assert_eq!(caps.json(read_env, r#"["FIDIUS_FIXTURE_VAR"]"#).unwrap(), json!("granted value"));
    assert_eq!(caps.json(read_env, r#"["FIDIUS_FIXTURE_SECRET"]"#).unwrap(), json!(null));
    assert_eq!(caps.json(read_env, r#"["PATH"]"#).unwrap(), json!(null));
    let now = caps.json(caps.index("now_nanos").unwrap(), "[]").unwrap();
    assert!(now.as_u64().or_else(|| now.as_str().and_then(|s| s.parse().ok())).unwrap() > 1_600_000_000_000_000_000);
    assert_eq!(caps.json(caps.index("print").unwrap(), r#"["printed by a sandboxed plugin"]"#).unwrap(), json!(null));
    // No filesystem, ever; no sockets without `network`.
    let err = caps.json(caps.index("read_file").unwrap(), r#"["/etc/passwd"]"#).unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let err = caps.json(caps.index("connect").unwrap(), &json!([addr]).to_string()).unwrap_err();
    assert_eq!(err.status, Status::PluginError, "no network capability: {}", err.message);
}

#[test]
fn network_has_an_ssrf_floor() {
    let dir = wasm_search_path("wasm_network", &["caps"], |_, t| t.replace("\"stdout\"]", "\"stdout\", \"network\"]"));
    let host = allowing(&dir, &["env:FIDIUS_FIXTURE_VAR", "clocks", "stdout", "network"]);
    let caps = host.load("caps").unwrap();
    let connect = caps.index("connect").unwrap();
    // A real listener on loopback: the floor must refuse it even though it is reachable.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    // Loopback spellings only: were the floor broken, nothing may leave the
    // machine (the other ranges are covered by net::tests::ssrf_floor_table).
    for addr in [format!("127.0.0.1:{port}"), format!("[::ffff:127.0.0.1]:{port}"), format!("0.0.0.0:{port}"), format!("localhost:{port}")] {
        let err = caps.json(connect, &json!([addr]).to_string()).unwrap_err();
        assert_eq!(err.status, Status::PluginError, "{addr}");
    }
    assert!(listener.accept().is_err(), "nothing reached the loopback listener");
}

#[test]
fn bad_manifests_are_rejected_with_their_reason() {
    for (case, edit, needle) in [
        ("bare_env", "capabilities = [\"env\"]", "env:NAME"),
        ("empty_env", "capabilities = [\"env:\"]", "env:NAME"),
        ("unknown", "capabilities = [\"gpu\"]", "unknown capability \"gpu\""),
        ("fs", "capabilities = [\"fs:ro:etc\"]", "absolute path"),
    ] {
        let dir = wasm_search_path(&format!("wasm_bad_{case}"), &["calc"], |_, t| t.replace("capabilities = []", edit));
        let host = TestHost::new(&[&dir]);
        let err = host.load("calc").err().unwrap();
        assert_eq!(err.status, Status::InvalidManifest, "{case}: {}", err.message);
        assert!(err.message.contains(needle), "{case}: {}", err.message);
        assert!(err.message.contains("allowed"), "lists what is allowed: {}", err.message);
    }
    let dir = wasm_search_path("wasm_bad_path", &["calc"], |_, t| t.replace("component = \"calc.wasm\"", "component = \"../calc/calc.wasm\""));
    let err = TestHost::new(&[&dir]).load("calc").err().unwrap();
    assert_eq!(err.status, Status::InvalidManifest);
    assert!(err.message.contains("inside the package"), "{}", err.message);
    let dir = wasm_search_path("wasm_bad_missing", &["calc"], |_, t| t.replace("calc.wasm", "gone.wasm"));
    let err = TestHost::new(&[&dir]).load("calc").err().unwrap();
    assert_eq!(err.status, Status::Io, "{}", err.message);
    let dir = wasm_search_path("wasm_bad_corrupt", &["calc"], |_, t| t.to_string());
    std::fs::write(dir.join("calc/calc.wasm"), b"\0asm garbage").unwrap();
    let err = TestHost::new(&[&dir]).load("calc").err().unwrap();
    assert_eq!(err.status, Status::InvalidManifest, "{}", err.message);
    let dir = wasm_search_path("wasm_bad_meta", &["calc"], |_, t| t.replace("[metadata]", "[other]"));
    let host = TestHost::new(&[&dir]);
    let skipped = host.discover().skipped();
    assert!(skipped.iter().any(|s| s.status == Status::InvalidManifest && s.reason.contains("metadata")), "{skipped:?}");
}

#[test]
fn http_without_both_keys_fails_closed_at_load() {
    let dir = wasm_search_path("wasm_http_closed", &["fetch"], |_, t| t.to_string());
    let err = TestHost::new(&[&dir]).load("fetch").err().unwrap();
    assert_eq!(err.status, Status::Capability, "{}", err.message);
    assert!(err.message.contains("egress policy"), "{}", err.message);
    let dir = wasm_search_path("wasm_http_undeclared", &["fetch"], |_, t| t.replace("[\"http\"]", "[]"));
    let err = TestHost::new(&[&dir]).load("fetch").err().unwrap();
    assert_eq!(err.status, Status::Capability);
    assert!(err.message.contains("does not declare the `http` capability"), "{}", err.message);
}

/// Threads of this process whose name starts with `prefix`.
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[test]
fn hosts_share_one_engine_and_it_goes_with_the_last_one() {
    // Tests in this binary run in parallel and make hosts of their own: run
    // this one's check in a child process of this binary, alone.
    if std::env::var_os("FIDIUS_SHARED_ENGINE_CHILD").is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "hosts_share_one_engine_and_it_goes_with_the_last_one", "--nocapture", "--test-threads", "1"])
            .env("FIDIUS_SHARED_ENGINE_CHILD", "1")
            .status()
            .unwrap();
        assert!(status.success());
        return;
    }
    let dir = wasm_search_path("wasm_shared_engine", &["calc"], |_, t| t.to_string());
    assert_eq!(threads_named("fidius-wasm-epo"), 0);
    let (a, b) = (TestHost::new(&[&dir]), TestHost::new(&[&dir]));
    let limited = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 1000, e) });
    let pa = a.load("calc").unwrap();
    let pb = b.load_opts("calc", Some(&limited)).unwrap();
    assert_eq!(threads_named("fidius-wasm-epo"), 1, "one engine and ticker for both hosts");
    assert_eq!(pa.json(ADD, "[1, 2]").unwrap(), json!(3));
    assert_eq!(pb.json(ADD, "[3, 4]").unwrap(), json!(7));
    drop((pa, a));
    assert_eq!(threads_named("fidius-wasm-epo"), 1, "the other host still uses it");
    assert_eq!(pb.json(ADD, "[5, 6]").unwrap(), json!(11));
    drop((pb, b));
    assert_eq!(threads_named("fidius-wasm-epo"), 0, "nothing lingers after the last host and plugin");
    // A fuel-metered host gets an engine of its own.
    let c = TestHost::new(&[&dir]);
    let fuel = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_fuel(o, 1_000_000, e) });
    let (p1, p2) = (c.load("calc").unwrap(), c.load_opts("calc", Some(&fuel)).unwrap());
    assert_eq!(threads_named("fidius-wasm-epo"), 2);
    drop((p1, p2, c));
    assert_eq!(threads_named("fidius-wasm-epo"), 0);
}
