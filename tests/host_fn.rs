//! Host functions through the C ABI: plugins built with the published fidius
//! 0.5.9 crates (tests/fixtures/{native,wasm}/hostfn) call a `Kv` host
//! interface implemented by a C callback (here, Rust acting as C).
//!
//! Fixture methods, in order: fetch(key) -> Result<Option<String>>,
//! store(key, value) -> Result<()>, copy(from, to) -> Result<bool>,
//! host_hash() -> u64, host_version() -> u32. A `HostCallError` comes back
//! as a PluginError with codes HOST_NOT_BOUND, HOST_VERSION_MISMATCH,
//! HOST_HASH_MISMATCH, HOST_PANIC; a host `PluginError` unchanged.

mod common;

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use fidius::capi::*;
use fidius::Status;

const FETCH: u32 = 0;
const STORE: u32 = 1;
const COPY: u32 = 2;
const HOST_HASH: u32 = 3;
const HOST_VERSION: u32 = 4;

/// The embedder's key-value store, with what the tests observe.
struct Kv {
    map: Mutex<HashMap<String, String>>,
    /// The plugin a `get("reenter:<key>")` calls back into.
    plugin: AtomicPtr<fidius_plugin>,
    /// The threads the callback ran on.
    threads: Mutex<Vec<std::thread::ThreadId>>,
    calls: AtomicUsize,
    destroyed: Arc<AtomicUsize>,
}

unsafe extern "C" fn kv_call(user: *mut c_void, index: u32, input: *const u8, len: usize, call: *mut fidius_host_call) {
    let kv = &*(user as *const Kv);
    kv.calls.fetch_add(1, Ordering::SeqCst);
    kv.threads.lock().unwrap().push(std::thread::current().id());
    assert!(!input.is_null(), "input is never NULL");
    let input = std::slice::from_raw_parts(input, len);
    let mut err = ptr::null_mut();
    // A callback must not unwind into libfidius: bad input is answered, not panicked on.
    let status = match (index, bincode::deserialize::<(String,)>(input)) {
        (_, Err(e)) => fidius_host_call_set_failure(call, cstr(&format!("kv: undecodable arguments: {e}")).as_ptr(), &mut err),
        (0, Ok((key,))) => {
            if key == "sleep" {
                std::thread::sleep(Duration::from_secs(3));
                let bytes = wire(&Some("slept".to_string()));
                fidius_host_call_set_output(call, bytes.as_ptr(), bytes.len(), &mut err)
            } else if key == "explode" {
                fidius_host_call_set_failure(call, cstr("kv exploded").as_ptr(), &mut err)
            } else if let Some(inner) = key.strip_prefix("reenter:") {
                // host -> plugin -> host -> plugin -> host, on this thread.
                let plugin = TestPlugin(kv.plugin.load(Ordering::SeqCst));
                let out = plugin.call(FETCH, &wire(&(inner.to_string(),)));
                std::mem::forget(plugin); // borrowed
                let value: Option<String> = out.ok().map(|b| unwire::<Option<String>>(&b)).flatten().map(|v| format!("re:{v}"));
                let bytes = wire(&value);
                fidius_host_call_set_output(call, bytes.as_ptr(), bytes.len(), &mut err)
            } else {
                let value = kv.map.lock().unwrap().get(&key).cloned();
                let bytes = wire(&value);
                fidius_host_call_set_output(call, bytes.as_ptr(), bytes.len(), &mut err)
            }
        }
        (1, Ok(_)) => {
            let (key, value): (String, String) = unwire(input);
            if key == "forbidden" {
                fidius_host_call_set_error(
                    call,
                    cstr("DENIED").as_ptr(),
                    cstr("that key is not yours").as_ptr(),
                    cstr(r#"{"key":"forbidden"}"#).as_ptr(),
                    &mut err,
                )
            } else {
                kv.map.lock().unwrap().insert(key, value);
                Status::Ok // `()`: no output
            }
        }
        (other, _) => {
            eprintln!("libfidius called index {other} past fn_count");
            std::process::abort()
        }
    };
    check(status, err).unwrap();
}

unsafe extern "C" fn kv_destroy(user: *mut c_void) {
    let kv = Box::from_raw(user as *mut Kv);
    kv.destroyed.fetch_add(1, Ordering::SeqCst);
}

/// A `fidius_host_interface` over a fresh Kv; the Kv stays reachable
/// through the returned pointer until its destroy runs.
struct KvInterface {
    handle: *mut fidius_host_interface,
    kv: *const Kv,
    destroyed: Arc<AtomicUsize>,
}

unsafe impl Send for KvInterface {}
unsafe impl Sync for KvInterface {}

impl KvInterface {
    fn new(hash: u64, version: u32) -> KvInterface {
        let destroyed = Arc::new(AtomicUsize::new(0));
        let kv = Box::into_raw(Box::new(Kv {
            map: Mutex::new(HashMap::new()),
            plugin: AtomicPtr::new(ptr::null_mut()),
            threads: Mutex::new(Vec::new()),
            calls: AtomicUsize::new(0),
            destroyed: destroyed.clone(),
        }));
        let mut handle = ptr::null_mut();
        ok(|e| unsafe {
            fidius_host_interface_new(
                cstr("Kv").as_ptr(),
                hash,
                version,
                2,
                Some(kv_call),
                kv as *mut c_void,
                Some(kv_destroy),
                &mut handle,
                e,
            )
        });
        KvInterface { handle, kv, destroyed }
    }

    fn kv(&self) -> &Kv {
        assert_eq!(self.destroyed.load(Ordering::SeqCst), 0, "used after destroy");
        unsafe { &*self.kv }
    }

    /// Release the caller's reference (the Kv lives while others hold it).
    fn release(&mut self) {
        unsafe { fidius_host_interface_free(std::mem::replace(&mut self.handle, ptr::null_mut())) }
    }
}

fn host_with(paths: &[&Path], kv: Option<&KvInterface>) -> TestHost {
    TestHost::configured(paths, |b| {
        if let Some(kv) = kv {
            ok(|e| unsafe { fidius_host_builder_add_host_interface(b, kv.handle, e) });
        }
    })
}

fn fetch(plugin: &TestPlugin, key: &str) -> Result<Option<String>, Failure> {
    plugin.call(FETCH, &wire(&(key.to_string(),))).map(|b| unwire(&b))
}

fn store(plugin: &TestPlugin, key: &str, value: &str) -> Result<(), Failure> {
    plugin.call(STORE, &wire(&(key.to_string(), value.to_string()))).map(|b| assert!(b.is_empty()))
}

fn plugin_code(r: Result<impl std::fmt::Debug, Failure>) -> (String, String) {
    let f = r.expect_err("the call fails");
    assert_eq!(f.status, Status::PluginError, "{}", f.message);
    (f.plugin_code.unwrap(), f.plugin_message.unwrap())
}

/// The identity the plugin was built against, as it reports it.
fn identity(plugin: &TestPlugin) -> (u64, u32) {
    (unwire(&plugin.call(HOST_HASH, &[]).unwrap()), unwire(&plugin.call(HOST_VERSION, &[]).unwrap()))
}

/// A private copy of the native fixture: binding is once per library in the
/// process, so each test maps its own.
fn native_copy(name: &str) -> PathBuf {
    native();
    search_path(name, &[&fixture_target().join("debug/libfixture_hostfn.so")])
}

/// The calls every runtime must get right with a bound Kv. Native host
/// functions run on the thread running the plugin (here the caller's);
/// WASM ones on a thread of their own, off the guest's fiber stack.
fn exercise(plugin: &Arc<TestPlugin>, kv: &KvInterface, native: bool) {
    // Values flow both ways.
    store(plugin, "k", "v").unwrap();
    assert_eq!(kv.kv().map.lock().unwrap().get("k").map(String::as_str), Some("v"));
    kv.kv().map.lock().unwrap().insert("from-host".into(), "hello".into());
    assert_eq!(fetch(plugin, "from-host").unwrap().as_deref(), Some("hello"));
    assert_eq!(fetch(plugin, "missing").unwrap(), None);
    // Two host calls in one plugin call.
    assert!(unwire::<bool>(&plugin.call(COPY, &wire(&("k".to_string(), "k2".to_string()))).unwrap()));
    assert_eq!(kv.kv().map.lock().unwrap().get("k2").map(String::as_str), Some("v"));
    // A host PluginError reaches the plugin and comes back to C unchanged.
    let f = store(plugin, "forbidden", "x").unwrap_err();
    assert_eq!(f.status, Status::PluginError);
    assert_eq!(f.plugin_code.as_deref(), Some("DENIED"));
    assert_eq!(f.plugin_message.as_deref(), Some("that key is not yours"));
    assert_eq!(f.plugin_details.as_deref(), Some(r#"{"key":"forbidden"}"#));
    // A failure outside the contract is the host "panicking", for the plugin.
    let (code, message) = plugin_code(fetch(plugin, "explode"));
    assert_eq!(code, "HOST_PANIC");
    assert!(message.contains("kv exploded"), "{message}");
    // Re-entrant host -> plugin -> host.
    kv.kv().plugin.store(plugin.0, Ordering::SeqCst);
    kv.kv().threads.lock().unwrap().clear();
    assert_eq!(fetch(plugin, "reenter:k").unwrap().as_deref(), Some("re:v"));
    let threads = kv.kv().threads.lock().unwrap().clone();
    assert_eq!(threads.len(), 2);
    let me = std::thread::current().id();
    if native {
        assert_eq!(threads, vec![me; 2], "both host calls ran on the caller's thread");
    } else {
        assert!(threads.iter().all(|t| *t != me), "WASM host calls run off the caller's (fiber) stack");
    }
    // 8 threads calling plugins that call host functions, every result checked.
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let plugin = plugin.clone();
            std::thread::spawn(move || {
                for i in 0..100 {
                    let (key, value) = (format!("t{t}-{i}"), format!("v{t}-{i}"));
                    store(&plugin, &key, &value).unwrap();
                    assert_eq!(fetch(&plugin, &key).unwrap(), Some(value));
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert!(kv.kv().map.lock().unwrap().len() >= 802);
}

#[test]
fn native_plugins_call_host_functions() {
    let dir = native_copy("hostfn_native");
    // Nothing provided: the load succeeds, the plugin's calls are "not bound".
    let (hash, version) = {
        let host = host_with(&[&dir], None);
        let plugin = host.load("KvUserImpl").unwrap();
        let (code, _) = plugin_code(fetch(&plugin, "k"));
        assert_eq!(code, "HOST_NOT_BOUND");
        let imports = plugin.describe()["host_imports"].clone();
        let (hash, version) = identity(&plugin);
        assert_eq!(imports, serde_json::json!([{"name": "Kv", "hash": format!("0x{hash:016x}"), "version": version, "bound": false}]));
        (hash, version)
    };
    // A version or hash mismatch fails the load, naming both sides.
    for (h, v, says) in [(hash, version + 1, format!("version {version}")), (hash ^ 1, version, format!("{hash:#018x}"))] {
        let mut wrong = KvInterface::new(h, v);
        let host = host_with(&[&dir], Some(&wrong));
        wrong.release();
        let f = host.load("KvUserImpl").err().expect("fails");
        assert_eq!(f.status, Status::HostInterface, "{}", f.message);
        assert!(f.message.contains("Kv") && f.message.contains(&says), "{}", f.message);
        drop(host);
        assert_eq!(wrong.destroyed.load(Ordering::SeqCst), 1, "the refused interface is released once");
    }
    let mut kv = KvInterface::new(hash, version);
    let host = host_with(&[&dir], Some(&kv));
    kv.release(); // the builder and host keep it
    let plugin = Arc::new(host.load("KvUserImpl").unwrap());
    assert_eq!(plugin.describe()["host_imports"][0]["bound"], true);
    exercise(&plugin, &kv, true);
    // Another implementation cannot take the library while this one is bound and alive.
    let mut other = KvInterface::new(hash, version);
    let other_host = host_with(&[&dir], Some(&other));
    let f = other_host.load("KvUserImpl").err().expect("fails");
    assert_eq!(f.status, Status::HostInterface);
    assert!(f.message.contains("already bound"), "{}", f.message);
    // Released with the last host and plugin, exactly once.
    let second = host.load("KvUserImpl").unwrap(); // the same implementation binds again
    drop(second);
    drop(plugin);
    assert_eq!(kv.destroyed.load(Ordering::SeqCst), 0, "the host still holds it");
    drop(host);
    assert_eq!(kv.destroyed.load(Ordering::SeqCst), 1, "destroyed once with the last reference");
    // Now the library goes to the next implementation.
    let plugin = other_host.load("KvUserImpl").unwrap();
    store(&plugin, "k", "other").unwrap();
    assert_eq!(other.kv().map.lock().unwrap().get("k").map(String::as_str), Some("other"));
    other.release();
    drop(plugin);
    drop(other_host);
    assert_eq!(other.destroyed.load(Ordering::SeqCst), 1);
}

#[test]
fn wasm_plugins_call_host_functions() {
    let dir = wasm_search_path("hostfn_wasm", &["hostfn"], |_, t| t.to_string());
    let (hash, version) = {
        let host = host_with(&[&dir], None);
        let plugin = host.load("hostfn").unwrap();
        let (code, _) = plugin_code(fetch(&plugin, "k"));
        assert_eq!(code, "HOST_NOT_BOUND");
        assert_eq!(plugin.describe()["host_imports"], serde_json::Value::Null);
        identity(&plugin)
    };
    // WASM checks the identity on every call: the load succeeds, calls fail.
    for (h, v, code) in [(hash, version + 1, "HOST_VERSION_MISMATCH"), (hash ^ 1, version, "HOST_HASH_MISMATCH")] {
        let mut wrong = KvInterface::new(h, v);
        let host = host_with(&[&dir], Some(&wrong));
        wrong.release();
        let plugin = host.load("hostfn").unwrap();
        let (got, message) = plugin_code(fetch(&plugin, "k"));
        assert_eq!(got, code, "{message}");
        assert_eq!(wrong.kv().calls.load(Ordering::SeqCst), 0, "nothing dispatched");
        drop((plugin, host));
        assert_eq!(wrong.destroyed.load(Ordering::SeqCst), 1);
    }
    for reuse in [false, true] {
        let mut kv = KvInterface::new(hash, version);
        let host = host_with(&[&dir], None);
        // Given with the load this time.
        let opts = TestOptions::new()
            .set(|o, e| unsafe { fidius_load_options_add_host_interface(o, kv.handle, e) })
            .set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, reuse, e) });
        kv.release();
        let plugin = Arc::new(host.load_opts("hostfn", Some(&opts)).unwrap());
        drop(opts);
        if reuse {
            // A reused instance is busy during its own call: re-entering it
            // fails cleanly (the host function sees the error) rather than deadlocking.
            kv.kv().plugin.store(plugin.0, Ordering::SeqCst);
            store(&plugin, "k", "v").unwrap();
            let got = within(Duration::from_secs(60), "a re-entrant call on a busy instance", {
                let plugin = plugin.clone();
                move || fetch(&plugin, "reenter:k").map_err(|f| f.message)
            });
            assert_eq!(got.unwrap(), None, "the inner call failed, the outer one carried on");
        } else {
            exercise(&plugin, &kv, false);
        }
        // Given for this load only: the plugin held the last reference.
        drop(plugin);
        assert_eq!(kv.destroyed.load(Ordering::SeqCst), 1, "reuse={reuse}");
        drop(host);
        assert_eq!(kv.destroyed.load(Ordering::SeqCst), 1, "exactly once");
    }
}

#[test]
fn a_wasm_call_waiting_on_a_host_function_is_stopped_by_its_timeout_and_cancel() {
    let dir = wasm_search_path("hostfn_wasm_timeout", &["hostfn"], |_, t| t.to_string());
    let (hash, version) = identity(&host_with(&[&dir], None).load("hostfn").unwrap());
    let mut kv = KvInterface::new(hash, version);
    let host = host_with(&[&dir], Some(&kv));
    kv.release();
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, 200, e) });
    let plugin = host.load_opts("hostfn", Some(&opts)).unwrap();
    // The host function sleeps 3 s; the call's 200 ms timeout stops the guest waiting for it.
    let f = fetch(&plugin, "sleep").unwrap_err();
    assert_eq!(f.status, Status::Timeout, "{}", f.message);
    store(&plugin, "k", "v").unwrap();
    assert_eq!(fetch(&plugin, "k").unwrap().as_deref(), Some("v"), "serves the next call");
    // And a cancel token, with no timeout.
    let plugin = Arc::new(host.load("hostfn").unwrap());
    let token = unsafe { fidius_cancel_new() } as usize;
    let p = plugin.clone();
    let waiting = std::thread::spawn(move || unsafe {
        let key = wire(&("sleep".to_string(),));
        let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let mut err = ptr::null_mut();
        let s = fidius_plugin_call_cancellable(p.0, FETCH, 0, key.as_ptr(), key.len(), token as *const fidius_cancel, &mut out, &mut err);
        check(s, err).map(|()| fidius_bytes_free(&mut out))
    });
    std::thread::sleep(Duration::from_millis(200));
    unsafe { fidius_cancel_trigger(token as *mut fidius_cancel) };
    let r = within(Duration::from_secs(60), "a cancelled call", move || waiting.join().unwrap());
    assert_eq!(r.unwrap_err().status, Status::Cancelled);
    unsafe { fidius_cancel_free(token as *mut fidius_cancel) };
    assert_eq!(fetch(&plugin, "k").unwrap().as_deref(), Some("v"));
}

#[test]
fn host_interface_arguments_are_checked() {
    unsafe {
        let mut out = ptr::null_mut();
        let mut err = ptr::null_mut();
        let name = cstr("Kv");
        let s = fidius_host_interface_new(ptr::null(), 1, 1, 1, Some(kv_call), ptr::null_mut(), None, &mut out, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        let s = fidius_host_interface_new(name.as_ptr(), 1, 1, 1, None, ptr::null_mut(), None, &mut out, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        let empty = cstr("");
        let s = fidius_host_interface_new(empty.as_ptr(), 1, 1, 1, Some(kv_call), ptr::null_mut(), None, &mut out, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::InvalidArgument);
        let bad = [0xffu8, 0];
        let s = fidius_host_interface_new(bad.as_ptr().cast(), 1, 1, 1, Some(kv_call), ptr::null_mut(), None, &mut out, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::InvalidUtf8);
        assert!(out.is_null());
        // A call handle outside its callback, and a wrong handle.
        let s = fidius_host_call_set_output(ptr::null_mut(), ptr::null(), 0, &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        let b = fidius_host_builder_new();
        let s = fidius_host_builder_add_host_interface(b, b.cast(), &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::InvalidHandle);
        let s = fidius_host_builder_add_host_interface(b, ptr::null(), &mut err);
        assert_eq!(check(s, err).unwrap_err().status, Status::NullArgument);
        fidius_host_builder_free(b);
        fidius_host_interface_free(ptr::null_mut());
    }
}

#[test]
fn hostile_host_import_registries_fail_the_load_and_leave_the_host_serving() {
    let kv = KvInterface::new(0x42, 1);
    for (mode, expected, says) in [
        (1, Status::InvalidDescriptor, "NULL"),
        (2, Status::InvalidDescriptor, "magic"),
        (3, Status::InvalidDescriptor, "imports"),
        (4, Status::InvalidDescriptor, "NULL"),
        (5, Status::HostInterface, "refused"),
        (6, Status::InvalidDescriptor, "name"),
    ] {
        let lib = hostile("host_imports", &[&format!("MODE={mode}")]);
        let dir = search_path(&format!("hostile_imports_{mode}"), &[&lib]);
        let host = host_with(&[&dir], Some(&kv));
        let f = host.load("HostileKv").err().expect("fails");
        assert_eq!(f.status, expected, "mode {mode}: {}", f.message);
        assert!(f.message.contains(says), "mode {mode}: {}", f.message);
        // Discovery still lists it: the registry is read, the load refuses it.
        assert_eq!(host.discover().plugins().len(), 1, "mode {mode}");
    }
    // A valid registry, and a plugin driving the bound table with hostile calls.
    let lib = hostile("host_imports", &["MODE=0"]);
    let dir = search_path("hostile_imports_0", &[&lib]);
    let host = host_with(&[&dir], Some(&kv));
    let plugin = host.load("HostileKv").unwrap();
    let out = plugin.call(0, &[]).unwrap();
    let statuses: Vec<i32> = out.chunks(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect();
    // Index past fn_count: -6 without asking the host; NULL out-pointers: -2;
    // NULL input with a length: read as empty (the host's `get` then fails to
    // decode its key and answers a failure, -4); a real call: 0.
    assert_eq!(statuses, vec![-6, -2, -4, 0]);
    assert_eq!(kv.kv().calls.load(Ordering::SeqCst), 2, "only the two in-range calls reached the host");
}
