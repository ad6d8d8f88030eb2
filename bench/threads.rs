//! Scaling across threads: calls per second of `add` with 1 and 8 threads
//! calling one plugin at once (native, WASM with a fresh instance per call,
//! WASM with one reused instance), as the C API's `fidius_plugin_call` does.
//!
//!   cargo bench --bench threads -- PATH/libfixture_v5.so PACKAGES [SECONDS]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fidius::{Format, Host, LoadOptions, Plugin};

/// Calls per second over `secs`, with `threads` threads calling `plugin` at once.
fn throughput(plugin: &Arc<Plugin>, threads: usize, secs: f64) -> f64 {
    let input: Vec<u8> = [2i64.to_le_bytes(), 40i64.to_le_bytes()].concat();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (plugin, stop, calls, input) = (plugin.clone(), stop.clone(), calls.clone(), input.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let out = plugin.call(0, Format::Wire, &input).expect("add");
                    assert_eq!(&*out, &42i64.to_le_bytes());
                    n += 1;
                }
                calls.fetch_add(n, Ordering::Relaxed);
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    calls.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let lib = args.next().expect("usage: threads PATH/libfixture_v5.so PACKAGES [SECONDS]");
    let packages = args.next().expect("the WASM packages directory");
    let secs: f64 = args.next().map_or(2.0, |s| s.parse().expect("SECONDS is a number"));
    let host = Host::builder().search_path(&packages).build().expect("host");
    let native = Arc::new(host.load_path(lib.as_ref(), Some("BasicCalc"), &LoadOptions::default()).expect("BasicCalc"));
    let fresh = Arc::new(host.load("calc", &LoadOptions::default()).expect("calc"));
    let reused = Arc::new(host.load("calc", &LoadOptions { reuse_instance: true, ..Default::default() }).expect("calc"));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("| add(2, 40), calls/s ({cores} cores) | 1 thread | 8 threads | 8 / 1 |");
    println!("|---|--:|--:|--:|");
    for (name, plugin) in [("native", &native), ("wasm, fresh instance per call", &fresh), ("wasm, one reused instance", &reused)] {
        let one = throughput(plugin, 1, secs);
        let eight = throughput(plugin, 8, secs);
        println!("| {name} | {one:.0} | {eight:.0} | {:.2}x |", eight / one);
    }
    println!();
    println!("A reused instance serves one call at a time (its calls are serialized by design); fresh");
    println!("instances and native calls run in parallel, up to the cores there are.");
}
