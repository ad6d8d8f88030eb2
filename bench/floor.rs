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

use std::time::{Duration, Instant};

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
    let median = |call: &dyn Fn(i64) -> i64| {
        let batch = |n: u64| {
            let t = Instant::now();
            for i in 0..n {
                std::hint::black_box(call(std::hint::black_box(i as i64)));
            }
            t.elapsed()
        };
        batch(2000);
        let per_batch = (Duration::from_millis(50).as_nanos() / batch(1000).as_nanos().max(1) * 1000).max(1) as u64;
        let mut means = Vec::new();
        let start = Instant::now();
        while means.len() < 5 || start.elapsed().as_secs_f64() < secs {
            means.push(batch(per_batch).as_nanos() as f64 / per_batch as f64);
        }
        means.sort_by(|a, b| a.partial_cmp(b).unwrap());
        means[means.len() / 2]
    };
    let async_ns = median(&call);
    let sync_ns = median(&sync_call);
    // One instance for every call: the floor of reuse mode.
    let reuse_ns = {
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
        median(&reused)
    };
    println!("wasm_floor_ns {async_ns:.0}");
    println!("wasm_floor_reuse_ns {reuse_ns:.0}");
    println!("wasm_floor_sync_ns {sync_ns:.0} (asynchronous / synchronous = {:.2})", async_ns / sync_ns);

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
