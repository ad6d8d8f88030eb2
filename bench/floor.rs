//! wasmtime's own floor for a WASM call with per-call isolation, on
//! libfidius's engine (same pooling configuration, WASI linker and sandbox
//! store): a fresh Store and instance, one typed `add`, and teardown. No
//! libfidius call path (argument decoding, dynamic call, C entry point)
//! is involved, so this is what any host on this wasmtime pays per call on
//! this machine; bench/run.sh prints it beside the comparison table.
//!
//!   cargo bench --bench wasm_floor -- PATH/calc.wasm [SECONDS]
//!
//! Prints `wasm_floor_ns <median>` (the median over 50 ms batches of the mean
//! per call) for asynchronous calls, as libfidius makes them (so a deadline
//! can stop a guest blocked in a host call), then `wasm_floor_sync_ns` for
//! the same on a synchronous WASI linker (what that safety costs), then
//! `wasm_floor_reuse_ns`: a bare typed asynchronous call on one instance
//! kept across calls (the floor of libfidius's reuse mode), then where one
//! asynchronous fresh-instance call's time goes, phase by phase.
//!
//! Then the two targets set against that floor, judged side by side: the
//! same `add` through libfidius's C ABI (`fidius_plugin_call` with wire
//! bytes, then `fidius_bytes_free`, on a host loading the same package),
//! in batches alternated with the floor's, in this one process. Prints
//! `lf_fresh_ns`, `lf_reuse_ns` and a `target:` line for each.

use std::time::{Duration, Instant};

use std::ffi::{CStr, CString};
use std::ptr;

use fidius::capi::*;
use fidius::wasm::sandbox::{Capabilities, StoreState};
use fidius::wasm::WasmRuntime;
use wasmtime::Store;

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let path = args.next().expect("usage: wasm_floor PATH/calc.wasm [SECONDS]");
    let secs: f64 = args.next().map_or(3.0, |s| s.parse().expect("SECONDS is a number"));
    let runtime = WasmRuntime::new(false).expect("engine");
    let component = runtime.compile(&std::fs::read(&path).expect("read the component")).expect("compile");
    let pre = runtime.linker.instantiate_pre(&component).expect("link");
    let mut sync_linker = wasmtime::component::Linker::new(&runtime.engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut sync_linker).expect("sync WASI");
    let sync_pre = sync_linker.instantiate_pre(&component).expect("link (sync)");
    let iface = component.get_export_index(None, "fidius:calc/calc@0.1.0").expect("calc interface");
    let add = component.get_export_index(Some(&iface), "add").expect("add");
    let caps = Capabilities::default();
    let no_host_fns = std::sync::Arc::new(fidius::host_fn::HostInterfaces::default());

    let call = |a: i64| -> i64 {
        wasmtime_wasi::runtime::in_tokio(async {
            let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None, None, no_host_fns.clone()));
            store.set_epoch_deadline(u64::MAX / 2);
            let instance = pre.instantiate_async(&mut store).await.expect("instantiate");
            let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add is (s64, s64) -> s64");
            f.call_async(&mut store, (a, 1)).await.expect("call").0
        })
    };
    let sync_call = |a: i64| -> i64 {
        let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None, None, no_host_fns.clone()));
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = sync_pre.instantiate(&mut store).expect("instantiate");
        let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add is (s64, s64) -> s64");
        f.call(&mut store, (a, 1)).expect("call").0
    };
    assert_eq!(call(41), 42);
    assert_eq!(sync_call(41), 42);
    let async_ns = median(secs, &call);
    let sync_ns = median(secs, &sync_call);
    // One instance for every call: the floor of reuse mode.
    let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None, None, no_host_fns.clone()));
    store.set_epoch_deadline(u64::MAX / 2);
    let instance = wasmtime_wasi::runtime::in_tokio(pre.instantiate_async(&mut store)).expect("instantiate");
    let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add is (s64, s64) -> s64");
    let store = std::cell::RefCell::new(store);
    let reused = |a: i64| -> i64 {
        let mut store = store.borrow_mut();
        wasmtime_wasi::runtime::in_tokio(f.call_async(&mut *store, (a, 1))).expect("call").0
    };
    assert_eq!(reused(41), 42);
    let reuse_ns = median(secs, &reused);
    println!("wasm_floor_ns {async_ns:.0}");
    println!("wasm_floor_reuse_ns {reuse_ns:.0}");
    println!("wasm_floor_sync_ns {sync_ns:.0} (asynchronous / synchronous = {:.2})", async_ns / sync_ns);

    // libfidius against the floor, alternating batches: this machine's speed
    // drifts by tens of percent over minutes, so figures taken at different
    // times cannot be divided.
    let packages = std::path::Path::new(&path).parent().and_then(|p| p.parent()).expect("PATH is PACKAGES/calc/calc.wasm");
    let lf = LfCalc::load(packages);
    let lf_fresh = lf.plugin(false);
    let lf_reused = lf.plugin(true);
    let (floor_fresh, lf_fresh_ns) = paired(secs, &call, &|a| lf_fresh.add(a));
    let (floor_reuse, lf_reuse_ns) = paired(secs, &reused, &|a| lf_reused.add(a));
    println!("lf_fresh_ns {lf_fresh_ns:.0}");
    println!("lf_reuse_ns {lf_reuse_ns:.0}");
    let verdict = |pass: bool| if pass { "MET" } else { "NOT MET" };
    let over = lf_fresh_ns / floor_fresh;
    println!(
        "target: wasm add, fresh instance per call, within 1.1x of wasmtime's floor (side by side: {floor_fresh:.0} ns vs libfidius {lf_fresh_ns:.0} ns): {over:.2}x -> {}",
        verdict(over <= 1.1)
    );
    let over = lf_reuse_ns / floor_reuse;
    println!(
        "target: wasm add in reuse mode within 1.5x of a bare typed call on one instance (side by side: {floor_reuse:.0} ns vs libfidius {lf_reuse_ns:.0} ns): {over:.2}x -> {}",
        verdict(over <= 1.5)
    );

    // What a shared runtime costs to make and to tear down (the engine with
    // its pool, the WASI linker, the epoch ticker), as the first load in a
    // process and the last host's free pay it; and the engine alone.
    let mut made = Vec::new();
    let mut dropped = Vec::new();
    let mut engine_only = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let r = WasmRuntime::new(false).expect("engine");
        made.push(t.elapsed());
        let t = Instant::now();
        drop(r);
        dropped.push(t.elapsed());
        let t = Instant::now();
        drop(std::hint::black_box(wasmtime::Engine::new(&fidius::wasm::engine_config(false)).expect("engine")));
        engine_only.push(t.elapsed());
    }
    for v in [&mut made, &mut dropped, &mut engine_only] {
        v.sort();
    }
    println!("runtime_new_us {:.0}", made[15].as_secs_f64() * 1e6);
    println!("runtime_drop_us {:.0}", dropped[15].as_secs_f64() * 1e6);
    println!("  engine alone, new + drop {:>6.0} us", engine_only[15].as_secs_f64() * 1e6);

    // The same asynchronous call split into its phases (timing each adds a little overhead).
    let mut phases = [Duration::ZERO; 4];
    let n = 20_000u32;
    for i in 0..n {
        wasmtime_wasi::runtime::in_tokio(async {
            let t0 = Instant::now();
            let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None, None, no_host_fns.clone()));
            store.set_epoch_deadline(u64::MAX / 2);
            let t1 = Instant::now();
            let instance = pre.instantiate_async(&mut store).await.expect("instantiate");
            let t2 = Instant::now();
            let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add");
            std::hint::black_box(f.call_async(&mut store, (i as i64, 1)).await.expect("call"));
            let t3 = Instant::now();
            drop(store);
            let t4 = Instant::now();
            for (p, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                *p += d;
            }
        });
    }
    for (name, d) in ["store + WASI context", "instantiate", "call", "teardown"].iter().zip(phases) {
        println!("  {name:<21} {:>6} ns", d.as_nanos() / n as u128);
    }
}

/// Calls per batch for about 50 ms of `call`.
fn batch_size(call: &dyn Fn(i64) -> i64) -> u64 {
    batch_mean(call, 2000);
    let per_call = batch_mean(call, 1000);
    ((50e6 / per_call.max(1.0)) as u64).max(1)
}

/// The mean time of one call over a batch of `n`, in ns.
fn batch_mean(call: &dyn Fn(i64) -> i64, n: u64) -> f64 {
    let t = Instant::now();
    for i in 0..n {
        std::hint::black_box(call(std::hint::black_box(i as i64)));
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn middle(mut means: Vec<f64>) -> f64 {
    means.sort_by(|a, b| a.partial_cmp(b).unwrap());
    means[means.len() / 2]
}

/// The median over about `secs` of 50 ms batch means, in ns per call.
fn median(secs: f64, call: &dyn Fn(i64) -> i64) -> f64 {
    let n = batch_size(call);
    let mut means = Vec::new();
    let start = Instant::now();
    while means.len() < 5 || start.elapsed().as_secs_f64() < secs {
        means.push(batch_mean(call, n));
    }
    middle(means)
}

/// `a` and `b` measured in alternating batches over about `secs` each:
/// their medians, in ns per call.
fn paired(secs: f64, a: &dyn Fn(i64) -> i64, b: &dyn Fn(i64) -> i64) -> (f64, f64) {
    let (na, nb) = (batch_size(a), batch_size(b));
    let (mut ma, mut mb) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while ma.len() < 5 || start.elapsed().as_secs_f64() < 2.0 * secs {
        ma.push(batch_mean(a, na));
        mb.push(batch_mean(b, nb));
    }
    (middle(ma), middle(mb))
}

/// libfidius through its C ABI, as a C host calls it.
struct LfCalc(*mut fidius_host);

impl LfCalc {
    fn load(packages: &std::path::Path) -> LfCalc {
        unsafe {
            let builder = fidius_host_builder_new();
            let dir = CString::new(packages.to_str().expect("UTF-8 path")).unwrap();
            let mut err = ptr::null_mut();
            ok(fidius_host_builder_add_search_path(builder, dir.as_ptr(), &mut err), err);
            let mut host = ptr::null_mut();
            ok(fidius_host_builder_build(builder, &mut host, &mut err), err);
            LfCalc(host)
        }
    }

    fn plugin(&self, reuse_instance: bool) -> LfPlugin {
        unsafe {
            let options = fidius_load_options_new();
            let mut err = ptr::null_mut();
            ok(fidius_load_options_set_reuse_instance(options, reuse_instance, &mut err), err);
            let name = CString::new("calc").unwrap();
            let mut plugin = ptr::null_mut();
            ok(fidius_host_load(self.0, name.as_ptr(), options, &mut plugin, &mut err), err);
            fidius_load_options_free(options);
            let p = LfPlugin(plugin);
            assert_eq!(p.add(41), 42);
            p
        }
    }
}

impl Drop for LfCalc {
    fn drop(&mut self) {
        unsafe { fidius_host_free(self.0) }
    }
}

struct LfPlugin(*mut fidius_plugin);

impl LfPlugin {
    /// `add(a, 1)` with wire bytes in and out.
    fn add(&self, a: i64) -> i64 {
        let mut input = [0u8; 16];
        input[..8].copy_from_slice(&a.to_le_bytes());
        input[8..].copy_from_slice(&1i64.to_le_bytes());
        unsafe {
            let mut out: fidius_bytes = std::mem::zeroed();
            let mut err = ptr::null_mut();
            ok(fidius_plugin_call(self.0, 0, 0, input.as_ptr(), input.len(), &mut out, &mut err), err);
            let sum = i64::from_le_bytes(std::slice::from_raw_parts(out.data, out.len).try_into().expect("an 8-byte s64"));
            fidius_bytes_free(&mut out);
            sum
        }
    }
}

impl Drop for LfPlugin {
    fn drop(&mut self) {
        unsafe { fidius_plugin_free(self.0) }
    }
}

fn ok(status: fidius::error::Status, err: *mut fidius_error) {
    if status != fidius::error::Status::Ok {
        let message = unsafe { CStr::from_ptr(fidius_error_message(err)) }.to_string_lossy().into_owned();
        panic!("libfidius: {status:?}: {message}");
    }
}
