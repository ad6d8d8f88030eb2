//! What the persistent compilation cache saves: loading a WASM package in a
//! fresh host (as a new process would, with nothing compiled in memory),
//! compiling its component, against deserializing it from a warm cache.
//!
//!   cargo bench --bench compile_cache -- PACKAGES [ROUNDS]

use std::time::{Duration, Instant};

use fidius::{Host, LoadOptions};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let packages = args.next().expect("usage: compile_cache PACKAGES [ROUNDS]");
    let rounds: usize = args.next().map_or(15, |s| s.parse().expect("ROUNDS is a number"));
    let cache = std::env::temp_dir().join(format!("fidius-bench-cache-{}", std::process::id()));
    let load = |cached: bool| {
        let mut b = Host::builder();
        b.search_path(&packages);
        if cached {
            b.compile_cache(&cache).expect("cache directory");
        }
        let host = b.build().expect("host");
        let t = Instant::now();
        let plugin = host.load("calc", &LoadOptions::default()).expect("load calc");
        let took = t.elapsed();
        assert!(plugin.warnings().is_empty(), "{:?}", plugin.warnings());
        took
    };
    load(true); // fills the cache
    let compiled: Vec<Duration> = (0..rounds).map(|_| load(false)).collect();
    let cached: Vec<Duration> = (0..rounds).map(|_| load(true)).collect();
    let (c, h) = (median(compiled), median(cached));
    println!("| wasm load of calc in a fresh host | median of {rounds} |");
    println!("|---|--:|");
    println!("| compiling calc.wasm | {:.2} ms |", c.as_secs_f64() * 1e3);
    println!("| from the compile cache | {:.2} ms |", h.as_secs_f64() * 1e3);
    println!("| compile / cache | {:.1}x |", c.as_secs_f64() / h.as_secs_f64());
    let _ = std::fs::remove_dir_all(&cache);
}
