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
//! per call), then where one call's time goes, phase by phase.

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
    let iface = component.get_export_index(None, "fidius:calc/calc@0.1.0").expect("calc interface");
    let add = component.get_export_index(Some(&iface), "add").expect("add");
    let caps = Capabilities::default();

    let call = |a: i64| -> i64 {
        let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None));
        store.set_epoch_deadline(u64::MAX / 2);
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add is (s64, s64) -> s64");
        f.call(&mut store, (a, 1)).expect("call").0
    };
    assert_eq!(call(41), 42);
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
    println!("wasm_floor_ns {:.0}", means[means.len() / 2]);

    // The same call split into its phases (timing each adds a little overhead).
    let mut phases = [Duration::ZERO; 4];
    let n = 20_000u32;
    for i in 0..n {
        let t0 = Instant::now();
        let mut store = Store::new(&runtime.engine, StoreState::new(&caps, None, None));
        store.set_epoch_deadline(u64::MAX / 2);
        let t1 = Instant::now();
        let instance = pre.instantiate(&mut store).expect("instantiate");
        let t2 = Instant::now();
        let f = instance.get_typed_func::<(i64, i64), (i64,)>(&mut store, &add).expect("add");
        std::hint::black_box(f.call(&mut store, (i as i64, 1)).expect("call"));
        let t3 = Instant::now();
        drop(store);
        let t4 = Instant::now();
        for (p, d) in phases.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
            *p += d;
        }
    }
    for (name, d) in ["store + WASI context", "instantiate", "call", "teardown"].iter().zip(phases) {
        println!("  {name:<21} {:>6} ns", d.as_nanos() / n as u128);
    }
}
