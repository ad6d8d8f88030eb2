//! Python plugins (`runtime = "python"` packages) through the C ABI: the
//! `pycalc` package made with the published CLI (`fidius python-stub`,
//! `fidius package pack` vendoring a requirement, `fidius wit`), run in a
//! `python3` runner process per plugin.
//!
//! `Pycalc`, in order: add, greet (uses the vendored `tinyfmt`), echo (raw,
//! reversed), divide (DIV_ZERO), count (a stream), total (a client stream),
//! crash (ValueError), spin (never returns), whoami (the configured name).

mod common;

use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use common::python_fixtures::python;
use common::sign::{keygen, sign_package};
use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const ADD: u32 = 0;
const GREET: u32 = 1;
const ECHO: u32 = 2;
const DIVIDE: u32 = 3;
const COUNT: u32 = 4;
const TOTAL: u32 = 5;
const SPIN: u32 = 7;
const WHOAMI: u32 = 8;

/// A search path holding a copy of the packed package directory.
fn search(name: &str) -> PathBuf {
    let dir = scratch(name);
    common::sign::copy_dir(&python().dir, &dir.join("pycalc"));
    dir
}

fn schema_options() -> TestOptions {
    let wit = cstr(python().wit.to_str().unwrap());
    TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_schema_file(o, wit.as_ptr(), e) })
}

#[test]
fn json_calls_by_name_reach_the_module_and_its_vendored_requirement() {
    let dir = search("py_json");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("pycalc").unwrap();
    let info = plugin.info();
    assert_eq!(info.interface_hash, python().hash, "__interface_hash__ from the stub");
    let add = plugin.index("add").unwrap();
    assert_eq!(plugin.json(add, "[2, 40]").unwrap(), json!(42));
    assert_eq!(plugin.json(add, r#"{"a": 1, "b": 2}"#).unwrap(), json!(3), "arguments by name");
    assert_eq!(plugin.json(plugin.index("greet").unwrap(), r#"["Ada"]"#).unwrap(), json!("Hello, Ada!"));
    assert_eq!(plugin.json(plugin.index("whoami").unwrap(), "").unwrap(), json!("module"));
    // Without a schema the module's own functions are the methods, and wire bytes need types.
    let f = plugin.call(add, &wire(&(1i64, 2i64))).unwrap_err();
    assert_eq!(f.status, Status::Unsupported, "{}", f.message);
    let f = plugin.index("nope").unwrap_err();
    assert_eq!(f.status, Status::MethodIndex);
    let doc = plugin.describe();
    assert_eq!(doc["runtime"], json!("python"));
    assert_eq!(doc["types_from"], json!(null));
}

#[test]
fn with_its_schema_a_python_plugin_takes_wire_bytes_and_raw_methods() {
    let dir = search("py_wire");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    assert_eq!(plugin.index("add").unwrap(), ADD, "the schema's order");
    assert_eq!(plugin.index("whoami").unwrap(), WHOAMI);
    assert_eq!(unwire::<i64>(&plugin.call(ADD, &wire(&(40i64, 2i64))).unwrap()), 42);
    assert_eq!(unwire::<String>(&plugin.call(GREET, &wire(&("Bo".to_string(),))).unwrap()), "Hello, Bo!");
    assert_eq!(plugin.call(ECHO, &[1, 2, 3]).unwrap(), vec![3, 2, 1], "raw: bytes as they are");
    assert_eq!(plugin.json(ECHO, "[[1, 2, 3]]").unwrap(), json!([3, 2, 1]));
    assert_eq!(unwire::<i64>(&plugin.call(DIVIDE, &wire(&(9i64, 2i64))).unwrap()), 4);
    // The result is checked against the declared type: i64 + i64 overflowing
    // in Python is an int too big for s64.
    let f = plugin.call(ADD, &wire(&(i64::MAX, 1i64))).unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{}", f.message);
    let doc = plugin.describe();
    assert_eq!(doc["types_from"], json!(python().wit.display().to_string()));
    assert_eq!(doc["methods"][3]["result"], json!("result<s64, plugin-error>"));
    assert_eq!(doc["methods"][4]["stream_item"], json!("u64"));
}

#[test]
fn exceptions_become_plugin_errors_with_code_message_and_details() {
    let dir = search("py_errors");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    let f = plugin.json(DIVIDE, "[7, 0]").unwrap_err();
    assert_eq!(f.status, Status::PluginError);
    assert_eq!(f.plugin_code.as_deref(), Some("DIV_ZERO"));
    assert_eq!(f.plugin_message.as_deref(), Some("division by zero"));
    assert_eq!(serde_json::from_str::<serde_json::Value>(f.plugin_details.as_deref().unwrap()).unwrap(), json!({"dividend": 7}));
    // Any other exception: its class is the code, the traceback is in the details.
    let f = plugin.json(plugin.index("crash").unwrap(), "").unwrap_err();
    assert_eq!(f.status, Status::PluginError);
    assert_eq!(f.plugin_code.as_deref(), Some("ValueError"));
    assert_eq!(f.plugin_message.as_deref(), Some("boom"));
    let details: serde_json::Value = serde_json::from_str(f.plugin_details.as_deref().unwrap()).unwrap();
    assert!(details["traceback"].as_str().unwrap().contains("pycalc_plugin.py"), "{details}");
    // Wrong arguments: with the schema, refused by its types; without, the
    // module's own TypeError, reported as any exception is.
    let f = plugin.json(ADD, "[1]").unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{f:?}");
    let untyped = host.load("pycalc").unwrap();
    let f = untyped.json(untyped.index("add").unwrap(), "[1]").unwrap_err();
    assert_eq!(f.plugin_code.as_deref(), Some("TypeError"), "{f:?}");
    assert_eq!(plugin.json(ADD, "[1, 1]").unwrap(), json!(2), "the plugin serves on");
}

#[test]
fn a_configured_instance_gets_its_json_config() {
    let dir = search("py_config");
    let host = TestHost::new(&[&dir]);
    let config = br#"{"name": "ada"}"#;
    let opts = schema_options().set(|o, e| unsafe { fidius_load_options_set_config(o, config.as_ptr(), config.len(), e) });
    let ada = host.load_opts("pycalc", Some(&opts)).unwrap();
    assert_eq!(ada.json(WHOAMI, "").unwrap(), json!("ada"));
    assert_eq!(ada.json(ADD, "[2, 3]").unwrap(), json!(5));
    let plain = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    assert_eq!(plain.json(WHOAMI, "").unwrap(), json!("module"), "instances are independent");
    // A config the module rejects, and one that is not JSON.
    let bad = br#"{"nom": 1}"#;
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_config(o, bad.as_ptr(), bad.len(), e) });
    let f = host.load_opts("pycalc", Some(&opts)).unwrap_err();
    assert_eq!(f.status, Status::ConfigRejected, "{}", f.message);
    assert!(f.message.contains("KeyError"), "{}", f.message);
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_config(o, [0u8, 1].as_ptr(), 2, e) });
    assert_eq!(host.load_opts("pycalc", Some(&opts)).unwrap_err().status, Status::InvalidArgument);
}

#[test]
fn loads_fail_with_the_reason() {
    let dir = search("py_load_errors");
    let host = TestHost::new(&[&dir]);
    // The interface hash is checked when the host pins one.
    let wrong = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_interface_hash(o, 0x1234, e) });
    let f = host.load_opts("pycalc", Some(&wrong)).unwrap_err();
    assert_eq!(f.status, Status::InterfaceHashMismatch, "{}", f.message);
    assert!(f.message.contains(&format!("0x{:016x}", python().hash)) && f.message.contains("0x0000000000001234"), "{}", f.message);
    let right = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_interface_hash(o, python().hash, e) });
    host.load_opts("pycalc", Some(&right)).unwrap();
    // A schema naming a method the module lacks.
    let wit = std::fs::read_to_string(&python().wit).unwrap().replace("whoami: func", "whoareyou: func");
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_schema(o, wit.as_ptr(), wit.len(), e) });
    let f = host.load_opts("pycalc", Some(&opts)).unwrap_err();
    assert_eq!(f.status, Status::SchemaMismatch, "{}", f.message);
    assert!(f.message.contains("whoareyou"), "{}", f.message);
    // A missing module, and a module without __interface_hash__.
    let broken = scratch("py_missing_module");
    common::sign::copy_dir(&python().dir, &broken.join("pycalc"));
    let manifest = broken.join("pycalc/package.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("entry_module = \"pycalc_plugin\"", "entry_module = \"nope\"")).unwrap();
    let f = TestHost::new(&[&broken]).load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::LibraryLoad, "{}", f.message);
    assert!(f.message.contains("No module named 'nope'"), "{}", f.message);
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(broken.join("pycalc/pycalc_hash.py"), "__interface_hash__ = 'not a number'\n").unwrap();
    let f = TestHost::new(&[&broken]).load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::InvalidManifest, "{}", f.message);
    assert!(f.message.contains("__interface_hash__"), "{}", f.message);
}

#[test]
fn eight_threads_call_one_python_plugin_at_once() {
    let dir = search("py_threads");
    let host = TestHost::new(&[&dir]);
    let plugin = Arc::new(host.load_opts("pycalc", Some(&schema_options())).unwrap());
    let threads: Vec<_> = (0..8i64)
        .map(|t| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for i in 0..200i64 {
                    let got = if i % 2 == 0 {
                        unwire::<i64>(&plugin.call(ADD, &wire(&(t, i))).unwrap())
                    } else {
                        plugin.json(ADD, &format!("[{t}, {i}]")).unwrap().as_i64().unwrap()
                    };
                    assert_eq!(got, t + i);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn a_python_plugins_streams_are_generators() {
    let dir = search("py_streams");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    unsafe {
        for (format, input) in [(0u32, wire(&(4u64,))), (1u32, b"[4]".to_vec())] {
            let mut stream = ptr::null_mut();
            let mut err = ptr::null_mut();
            let s = fidius_plugin_stream(plugin.0, COUNT, format, input.as_ptr(), input.len(), None, ptr::null_mut(), None, &mut stream, &mut err);
            check(s, err).unwrap();
            let mut items = Vec::new();
            loop {
                let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                let s = fidius_stream_next(stream, &mut item, &mut err);
                if s == Status::StreamEnd {
                    break;
                }
                check(s, err).unwrap();
                let bytes = std::slice::from_raw_parts(item.data, item.len).to_vec();
                fidius_bytes_free(&mut item);
                items.push(if format == 0 { unwire::<u64>(&bytes) } else { serde_json::from_slice(&bytes).unwrap() });
            }
            fidius_stream_free(stream);
            assert_eq!(items, vec![0, 1, 2, 3], "format {format}");
        }
        // A stream freed early, then a call: the runner serves on.
        let mut stream = ptr::null_mut();
        let mut err = ptr::null_mut();
        check(fidius_plugin_stream(plugin.0, COUNT, 1, b"[1000000]".as_ptr(), 9, None, ptr::null_mut(), None, &mut stream, &mut err), err).unwrap();
        let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        check(fidius_stream_next(stream, &mut item, &mut err), err).unwrap();
        fidius_bytes_free(&mut item);
        fidius_stream_free(stream);
        assert_eq!(plugin.json(ADD, "[1, 2]").unwrap(), json!(3));
    }
}

#[test]
fn a_python_stream_is_cancelled_from_another_thread() {
    let dir = search("py_cancel");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    struct Raw(*mut fidius_stream);
    unsafe impl Send for Raw {}
    unsafe impl Sync for Raw {}
    unsafe {
        let mut stream = ptr::null_mut();
        let mut err = ptr::null_mut();
        check(fidius_plugin_stream(plugin.0, COUNT, 1, b"[1000000000]".as_ptr(), 12, None, ptr::null_mut(), None, &mut stream, &mut err), err)
            .unwrap();
        let stream = Arc::new(Raw(stream));
        let puller = {
            let stream = stream.clone();
            std::thread::spawn(move || loop {
                let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                let mut err = ptr::null_mut();
                let status = fidius_stream_next(stream.0, &mut item, &mut err);
                fidius_bytes_free(&mut item);
                if let Err(f) = check(status, err) {
                    return f;
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        check(fidius_stream_cancel(stream.0, &mut err), err).unwrap();
        let f = within(Duration::from_secs(30), "a cancelled Python stream", move || puller.join().unwrap());
        assert_eq!(f.status, Status::Cancelled, "{}", f.message);
        let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        assert_eq!(fidius_stream_next(stream.0, &mut item, &mut err), Status::StreamEnd);
        fidius_stream_free(stream.0);
    }
    assert_eq!(plugin.json(ADD, "[1, 2]").unwrap(), json!(3), "a fresh runner serves on");
}

unsafe extern "C" fn json_items(user: *mut std::ffi::c_void, item: *mut *const u8, len: *mut usize) -> i32 {
    let items = &mut *(user as *mut Vec<&'static [u8]>);
    match items.pop() {
        Some(next) => {
            *item = next.as_ptr();
            *len = next.len();
            1
        }
        None => 0,
    }
}

#[test]
fn a_client_stream_feeds_the_module_json_items() {
    let dir = search("py_client");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    let mut items: Vec<&'static [u8]> = vec![b"3", b"2", b"1"];
    unsafe {
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let s = fidius_plugin_call_streaming(plugin.0, TOTAL, 1, ptr::null(), 0, Some(json_items), &mut items as *mut _ as *mut _, None, &mut out, &mut err);
        check(s, err).unwrap();
        assert_eq!(std::slice::from_raw_parts(out.data, out.len), b"6");
        fidius_bytes_free(&mut out);
    }
}

#[test]
fn the_timeout_stops_a_python_plugin_and_the_next_call_gets_a_fresh_runner() {
    let dir = search("py_timeout");
    let host = TestHost::new(&[&dir]);
    let opts = schema_options().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 500, e) });
    let plugin = host.load_opts("pycalc", Some(&opts)).unwrap();
    let started = std::time::Instant::now();
    let f = within(Duration::from_secs(30), "a spinning Python plugin", move || (plugin.json(SPIN, "").unwrap_err(), plugin)).0;
    assert_eq!(f.status, Status::Timeout, "{}", f.message);
    assert!(started.elapsed() < Duration::from_secs(20));
    let plugin = host.load_opts("pycalc", Some(&opts)).unwrap();
    assert_eq!(plugin.json(SPIN, "").unwrap_err().status, Status::Timeout);
    assert_eq!(plugin.json(ADD, "[20, 22]").unwrap(), json!(42), "restarted after the timeout");
}

#[test]
fn the_memory_limit_caps_the_runner_process() {
    let dir = search("py_memory");
    let host = TestHost::new(&[&dir]);
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_memory_limit(o, 256 << 20, e) });
    let plugin = host.load_opts("pycalc", Some(&opts)).unwrap();
    let hog = plugin.index("hog").unwrap();
    assert_eq!(plugin.json(hog, "[16]").unwrap(), json!(16 << 20), "within the limit");
    let f = plugin.json(hog, "[1024]").unwrap_err();
    assert_eq!(f.status, Status::PluginError, "{}", f.message);
    assert_eq!(f.plugin_code.as_deref(), Some("MemoryError"));
    assert_eq!(plugin.json(plugin.index("add").unwrap(), "[1, 2]").unwrap(), json!(3), "the runner serves on");
    // Without a limit the same allocation succeeds.
    let free = host.load("pycalc").unwrap();
    assert_eq!(free.json(hog, "[512]").unwrap(), json!(512 << 20));
}

#[test]
fn fid_archives_signatures_and_discovery_apply_as_for_wasm_packages() {
    // The .fid the CLI packed, loaded from memory (staged privately for the interpreter).
    let host = TestHost::new(&[]);
    let plugin = host.load_fid(&python().fid, None).unwrap();
    assert_eq!(plugin.json(plugin.index("greet").unwrap(), r#"["Fid"]"#).unwrap(), json!("Hello, Fid!"));
    drop(plugin);
    // Discovery lists it as a Python plugin.
    let dir = search("py_discover");
    let found = TestHost::new(&[&dir]).discover().plugins();
    let py = found.iter().find(|p| p.name == "pycalc").expect("listed");
    assert_eq!(py.runtime, 3, "FIDIUS_RUNTIME_PYTHON");
    // Signed: loads when a trusted key signed it, refused once a file changes.
    let key = keygen(&scratch("py_keys"), "py");
    let signed = search("py_signed");
    sign_package(&key, &signed.join("pycalc"));
    let public = key.public_bytes();
    let host = TestHost::requiring_signatures(&[&signed], &[TrustedKey::Bytes(&public)]);
    let plugin = host.load("pycalc").unwrap();
    assert_eq!(plugin.json(ADD, "[1, 2]").unwrap(), json!(3));
    drop(plugin);
    let module = signed.join("pycalc/pycalc_plugin.py");
    let text = std::fs::read_to_string(&module).unwrap();
    std::fs::write(&module, text.replace("return a + b", "return a - b")).unwrap();
    let f = host.load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::SignatureInvalid, "{}", f.message);
    // Unsigned, with signatures required: refused.
    let f = TestHost::requiring_signatures(&[&dir], &[TrustedKey::Bytes(&public)]).load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::SignatureRequired, "{}", f.message);
}

#[test]
fn without_python_native_and_wasm_plugins_still_load() {
    // libfidius never loads libpython, even after running a Python plugin.
    let dir = search("py_maps");
    let plugin = TestHost::new(&[&dir]).load("pycalc").unwrap();
    assert_eq!(plugin.json(plugin.index("add").unwrap(), "[1, 2]").unwrap(), json!(3));
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(!maps.contains("libpython"), "libpython is mapped into the host process");
    // A host whose interpreter does not exist.
    let dir = search("py_none");
    common::sign::copy_dir(&wasm_packages().join("calc"), &dir.join("calc"));
    std::fs::copy(&native().v5, dir.join("libfixture_v5.so")).unwrap();
    let missing = cstr("/nonexistent/python3");
    let host = TestHost::configured(&[&dir], |b| unsafe { ok(|e| fidius_host_builder_set_python_interpreter(b, missing.as_ptr(), e)) });
    let f = host.load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::LibraryLoad, "{}", f.message);
    assert!(f.message.contains("/nonexistent/python3"), "{}", f.message);
    assert_eq!(unwire::<i64>(&host.load("BasicCalc").unwrap().call(0, &wire(&(1i64, 2i64))).unwrap()), 3);
    assert_eq!(host.load("calc").unwrap().json(0, "[1, 2]").unwrap(), json!(3));
    unsafe {
        let b = fidius_host_builder_new();
        let mut err = ptr::null_mut();
        assert_eq!(check(fidius_host_builder_set_python_interpreter(b, ptr::null(), &mut err), err).unwrap_err().status, Status::NullArgument);
        let empty = cstr("");
        assert_eq!(check(fidius_host_builder_set_python_interpreter(b, empty.as_ptr(), &mut err), err).unwrap_err().status, Status::InvalidArgument);
        let bad = b"/usr/bin/py\xffthon\0";
        assert_eq!(
            check(fidius_host_builder_set_python_interpreter(b, bad.as_ptr().cast(), &mut err), err).unwrap_err().status,
            Status::InvalidUtf8
        );
        fidius_host_builder_free(b);
    }
}

#[test]
fn a_cancel_token_stops_a_python_call() {
    let dir = search("py_cancel_call");
    let host = TestHost::new(&[&dir]);
    let plugin = Arc::new(host.load_opts("pycalc", Some(&schema_options())).unwrap());
    struct Token(*mut fidius_cancel);
    unsafe impl Send for Token {}
    unsafe impl Sync for Token {}
    let token = Arc::new(Token(fidius_cancel_new()));
    let call = {
        let (plugin, token) = (plugin.clone(), token.clone());
        std::thread::spawn(move || unsafe {
            let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            let status = fidius_plugin_call_cancellable(plugin.0, SPIN, 1, ptr::null(), 0, token.0, &mut out, &mut err);
            check(status, err).unwrap_err()
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    unsafe { fidius_cancel_trigger(token.0) };
    let f = within(Duration::from_secs(30), "a cancelled Python call", move || call.join().unwrap());
    assert_eq!(f.status, Status::Cancelled, "{}", f.message);
    // A token triggered before the call: refused at once.
    unsafe {
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let status = fidius_plugin_call_cancellable(plugin.0, ADD, 1, b"[1, 2]".as_ptr(), 6, token.0, &mut out, &mut err);
        assert_eq!(check(status, err).unwrap_err().status, Status::Cancelled);
        fidius_cancel_free(token.0);
    }
    assert_eq!(plugin.json(ADD, "[1, 2]").unwrap(), json!(3), "a fresh runner serves on");
}

#[test]
fn with_a_schema_json_calls_are_checked_by_its_types_and_an_interpreter_that_is_not_python_is_refused() {
    let dir = search("py_json_types");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("pycalc", Some(&schema_options())).unwrap();
    let f = plugin.json(ADD, r#"["x", "y"]"#).unwrap_err();
    assert_eq!(f.status, Status::Serialization, "{}", f.message);
    // A result beyond 2^53 is written as WASM results are: a decimal string.
    assert_eq!(plugin.json(ADD, r#"[9007199254740993, 0]"#).unwrap(), json!("9007199254740993"));
    let f = plugin.json(ADD, &format!("[{}, 1]", i64::MAX)).unwrap_err();
    assert_eq!(f.status, Status::Serialization, "the result does not fit s64: {}", f.message);
    // Tracebacks show the plugin's frames, not the runner's.
    let f = plugin.json(plugin.index("crash").unwrap(), "").unwrap_err();
    let details: serde_json::Value = serde_json::from_str(f.plugin_details.as_deref().unwrap()).unwrap();
    let tb = details["traceback"].as_str().unwrap();
    assert!(tb.contains("pycalc_plugin.py") && !tb.contains("<string>"), "{tb}");
    // An interpreter that runs but is not Python.
    let not_python = cstr("/bin/true");
    let host = TestHost::configured(&[&dir], |b| unsafe { ok(|e| fidius_host_builder_set_python_interpreter(b, not_python.as_ptr(), e)) });
    let f = host.load("pycalc").unwrap_err();
    assert_eq!(f.status, Status::LibraryLoad, "{}", f.message);
    assert!(f.message.contains("/bin/true"), "{}", f.message);
}

#[test]
fn an_interpreter_whose_site_packages_have_a_fidius_module_still_runs_the_plugin() {
    // The libfidius Python binding is also called `fidius`: a runner must
    // not take it for the plugin SDK.
    let site = scratch("py_site_fidius");
    std::fs::create_dir_all(site.join("fidius")).unwrap();
    std::fs::write(site.join("fidius/__init__.py"), "raise ImportError('the wrong fidius')\n").unwrap();
    let wrapper = site.join("python3-with-site");
    std::fs::write(&wrapper, format!("#!/bin/sh\nexec env PYTHONPATH= python3 -c 'import sys; sys.path.insert(0, \"{}\"); exec(sys.argv[3])' \"$@\"\n", site.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = search("py_site_fidius_pkg");
    let w = cstr(wrapper.to_str().unwrap());
    let host = TestHost::configured(&[&dir], |b| unsafe { ok(|e| fidius_host_builder_set_python_interpreter(b, w.as_ptr(), e)) });
    let plugin = host.load("pycalc").unwrap();
    assert_eq!(plugin.json(plugin.index("add").unwrap(), "[1, 2]").unwrap(), json!(3));
}

struct Reenter {
    plugin: *const fidius_plugin,
    answered: Option<Status>,
    sent: bool,
}

unsafe extern "C" fn reentering_source(user: *mut std::ffi::c_void, item: *mut *const u8, len: *mut usize) -> i32 {
    let r = &mut *(user as *mut Reenter);
    if r.sent {
        return 0;
    }
    // Call the plugin this source feeds, from inside its call.
    let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
    let mut err = ptr::null_mut();
    let status = fidius_plugin_call(r.plugin, ADD, 1, b"[1, 2]".as_ptr(), 6, &mut out, &mut err);
    r.answered = Some(status);
    fidius_error_free(err);
    fidius_bytes_free(&mut out);
    r.sent = true;
    *item = b"5".as_ptr();
    *len = 1;
    1
}

unsafe extern "C" fn slow_source(user: *mut std::ffi::c_void, item: *mut *const u8, len: *mut usize) -> i32 {
    let left = &mut *(user as *mut u32);
    if *left == 0 {
        return 0;
    }
    *left -= 1;
    std::thread::sleep(Duration::from_millis(300));
    *item = b"1".as_ptr();
    *len = 1;
    1
}

#[test]
fn a_source_that_calls_its_own_python_plugin_is_refused_and_slow_sources_are_not_the_plugins_time() {
    let dir = search("py_reenter");
    let host = TestHost::new(&[&dir]);
    let opts = schema_options().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 500, e) });
    let plugin = Arc::new(host.load_opts("pycalc", Some(&opts)).unwrap());
    let p = plugin.clone();
    let total = within(Duration::from_secs(60), "a re-entrant source", move || unsafe {
        let mut r = Reenter { plugin: p.0, answered: None, sent: false };
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let status = fidius_plugin_call_streaming(p.0, TOTAL, 1, ptr::null(), 0, Some(reentering_source), &mut r as *mut Reenter as *mut _, None, &mut out, &mut err);
        check(status, err).unwrap();
        let total = std::slice::from_raw_parts(out.data, out.len).to_vec();
        fidius_bytes_free(&mut out);
        (total, r.answered)
    });
    assert_eq!(total.0, b"5");
    assert_eq!(total.1, Some(Status::Unsupported), "refused, not a deadlock");
    // Three items at 300 ms each, with a 500 ms timeout: the source's time
    // is the host's, not the plugin's.
    let mut left = 3u32;
    unsafe {
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let status = fidius_plugin_call_streaming(plugin.0, TOTAL, 1, ptr::null(), 0, Some(slow_source), &mut left as *mut u32 as *mut _, None, &mut out, &mut err);
        check(status, err).unwrap();
        assert_eq!(std::slice::from_raw_parts(out.data, out.len), b"3");
        fidius_bytes_free(&mut out);
    }
}

#[test]
fn settings_a_python_plugin_cannot_honour_fail_the_load() {
    let dir = search("py_unenforceable");
    let host = TestHost::new(&[&dir]);
    let grant = cstr("stdout");
    let grants = [grant.as_ptr()];
    for opts in [
        TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, grants.as_ptr(), 1, e) }),
        TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_fuel(o, 1000, e) }),
    ] {
        let f = host.load_opts("pycalc", Some(&opts)).unwrap_err();
        assert_eq!(f.status, Status::Unsupported, "{}", f.message);
        assert!(f.message.contains("unsandboxed"), "{}", f.message);
    }
    let f = host.load("pycalc").unwrap().index("nope").unwrap_err();
    assert!(!f.message.contains("native"), "{}", f.message);
}
