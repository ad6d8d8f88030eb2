//! One wasmtime engine per host (and per fuel setting), with what is shared
//! across its plugins: the WASI linker, compiled components, and the epoch
//! ticker that enforces call timeouts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::CompileCache;
use super::sandbox::StoreState;
use crate::error::{Error, Result, Status};

/// Timeouts are enforced in steps of this (epoch interruption).
pub const TICK: Duration = Duration::from_millis(5);

/// Concurrent instances per host (pooling allocator slots).
const POOL_INSTANCES: u32 = 256;

pub struct WasmRuntime {
    pub engine: Engine,
    pub fuel: bool,
    pub linker: Linker<StoreState>,
    /// `linker` plus wasi:http, for packages with `http` and an egress policy.
    http_linker: Mutex<Option<Linker<StoreState>>>,
    compiled: Mutex<HashMap<[u8; 32], Component>>,
    /// Components deserialized from `.cwasm` bytes, by [`fingerprint`].
    precompiled: Mutex<HashMap<(usize, u64), Vec<Component>>>,
    ticker: Option<Ticker>,
}

impl WasmRuntime {
    /// The runtime every host with this fuel setting shares while any of
    /// them (or their plugins) lives: one engine, epoch ticker, linker and
    /// compiled-component cache, made when the first needs it and torn down
    /// (ticker joined) when the last reference goes, so nothing lingers
    /// after the last host is freed. Limits are per store, so hosts still
    /// behave independently.
    pub fn shared(fuel: bool) -> Result<Arc<Self>> {
        static SHARED: Mutex<[std::sync::Weak<WasmRuntime>; 2]> = Mutex::new([std::sync::Weak::new(), std::sync::Weak::new()]);
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = shared[fuel as usize].upgrade() {
            return Ok(live);
        }
        let made = Self::new(fuel)?;
        shared[fuel as usize] = Arc::downgrade(&made);
        Ok(made)
    }

    pub fn new(fuel: bool) -> Result<Arc<Self>> {
        let engine = Engine::new(&config(fuel, true)).or_else(|e| {
            // Pooling reserves address space up front; where that is refused
            // (e.g. a ulimit on virtual memory), fall back to on-demand allocation.
            Engine::new(&config(fuel, false)).map_err(|_| e)
        });
        let engine = engine.map_err(|e| Error::new(Status::Trap, format!("cannot create the WASM engine: {e}")))?;
        // Asynchronous WASI: a call blocked in a host function (a clock, a
        // stream, an HTTP response) is a pending future that the call's
        // deadline can drop, where a synchronous host call would block the
        // thread past any timeout.
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::new(Status::Trap, format!("cannot link WASI: {e}")))?;
        super::sockets::add_to_linker(&mut linker)
            .map_err(|e| Error::new(Status::Trap, format!("cannot link the name lookup: {e}")))?;
        super::host_call::add_to_linker(&mut linker)
            .map_err(|e| Error::new(Status::Trap, format!("cannot link {}: {e}", super::host_call::IMPORT)))?;
        super::stream::add_to_linker(&mut linker)
            .map_err(|e| Error::new(Status::Trap, format!("cannot link {}: {e}", super::stream::PULL_IMPORT)))?;
        let ticker = Some(Ticker::start(engine.clone())?);
        Ok(Arc::new(WasmRuntime {
            engine,
            fuel,
            linker,
            http_linker: Mutex::new(None),
            compiled: Mutex::new(HashMap::new()),
            precompiled: Mutex::new(HashMap::new()),
            ticker,
        }))
    }

    /// The linker with wasi:http added (made on first use).
    pub fn http_linker(&self) -> Result<Linker<StoreState>> {
        let mut slot = self.http_linker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = slot.as_ref() {
            return Ok(l.clone());
        }
        let mut linker = self.linker.clone();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(|e| Error::new(Status::Trap, format!("cannot link wasi:http: {e}")))?;
        Ok(slot.insert(linker).clone())
    }

    /// Compile component bytes (or reuse an earlier compile of the same bytes).
    pub fn compile(&self, wasm: &[u8]) -> Result<Component> {
        self.compile_cached(wasm, None, &mut Vec::new())
    }

    /// As [`WasmRuntime::compile`], through the persistent `cache` when
    /// there is one: a hit is deserialized, a miss compiled and stored.
    /// A cache that cannot be used is skipped, and `warnings` says why.
    pub fn compile_cached(&self, wasm: &[u8], cache: Option<&CompileCache>, warnings: &mut Vec<String>) -> Result<Component> {
        let key = digest(wasm);
        if let Some(c) = self.compiled.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(c.clone());
        }
        let entry = cache.map(|c| (c, super::cache::key(&key, &self.engine)));
        if let Some((cache, name)) = &entry {
            match cache.get(name) {
                // Safety: the cache directory is private to this user (checked
                // on every use), and only this code writes its entries.
                Ok(Some(bytes)) => match unsafe { Component::deserialize(&self.engine, &bytes) } {
                    Ok(component) => {
                        self.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(key, component.clone());
                        return Ok(component);
                    }
                    Err(e) => warnings.push(format!("compile cache entry {name} not used ({e}); compiled and replaced it")),
                },
                Ok(None) => {}
                Err(e) => warnings.push(format!("compile cache not used: {}", e.message)),
            }
        }
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| Error::new(Status::InvalidManifest, format!("not a valid WebAssembly component: {e:#}")))?;
        if let Some((cache, name)) = &entry {
            let stored = component
                .serialize()
                .map_err(|e| Error::new(Status::Io, format!("cannot serialize the compiled component: {e}")))
                .and_then(|cwasm| cache.put(name, &cwasm));
            if let Err(e) = stored {
                warnings.push(format!("compile cache not written: {}", e.message));
            }
        }
        self.compiled.lock().unwrap_or_else(|p| p.into_inner()).insert(key, component.clone());
        Ok(component)
    }

    /// Load a precompiled `.cwasm`. The error says why it cannot be used
    /// (another wasmtime version or configuration, not a .cwasm, ...).
    ///
    /// # Safety
    /// `.cwasm` files are native code: only call this on bytes as trusted as
    /// a native plugin (signed, when signatures are required).
    pub unsafe fn deserialize(&self, cwasm: &[u8]) -> Result<Component> {
        // Not keyed by a digest like compiled components: hashing a .cwasm
        // (SHA-256, ~190 µs for calc's 336 KiB) cost as much as deserializing
        // it. A cheap fingerprint finds candidates, and only a component whose
        // image (the .cwasm bytes, kept unmodified by wasmtime) equals these
        // bytes is taken; anything else is a miss, never a wrong hit.
        let key = fingerprint(cwasm);
        let same = |c: &Component| {
            let image = c.image_range();
            std::slice::from_raw_parts(image.start, image.end as usize - image.start as usize) == cwasm
        };
        if let Some(c) = self.precompiled.lock().unwrap_or_else(|p| p.into_inner()).get(&key).and_then(|cs| cs.iter().find(|c| same(c))) {
            return Ok(c.clone());
        }
        if wasmtime::Engine::detect_precompiled(cwasm).is_none() {
            return Err(Error::new(Status::InvalidManifest, "not a precompiled wasmtime artifact"));
        }
        let component = Component::deserialize(&self.engine, cwasm)
            .map_err(|e| Error::new(Status::InvalidManifest, format!("{e:#}")))?;
        self.precompiled.lock().unwrap_or_else(|p| p.into_inner()).entry(key).or_default().push(component.clone());
        Ok(component)
    }

    /// Ahead-of-time compile component bytes for this runtime's configuration.
    pub fn precompile(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        self.engine
            .precompile_component(wasm)
            .map_err(|e| Error::new(Status::InvalidArgument, format!("not a valid WebAssembly component: {e:#}")))
    }

}

impl Drop for WasmRuntime {
    fn drop(&mut self) {
        drop(self.ticker.take());
    }
}

/// Length and a hash of the first and last 4 KiB: cheap, and only a hint
/// (see [`WasmRuntime::deserialize`]).
fn fingerprint(bytes: &[u8]) -> (usize, u64) {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let edge = bytes.len().min(4096);
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one((&bytes[..edge], &bytes[bytes.len() - edge..]));
    (bytes.len(), hash)
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The engine configuration of a runtime (with the pooling allocator), for benches.
#[doc(hidden)]
pub fn engine_config(fuel: bool) -> Config {
    config(fuel, true)
}

fn config(fuel: bool, pooling: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.consume_fuel(fuel);
    if pooling {
        // Fresh instances per call are cheap with pre-reserved slots and
        // copy-on-write memory images (on by default).
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(POOL_INSTANCES);
        pool.total_core_instances(POOL_INSTANCES * 4);
        pool.total_memories(POOL_INSTANCES * 2);
        pool.total_tables(POOL_INSTANCES * 4);
        // Every call runs on a fiber (asynchronous calls, see the linker).
        pool.total_stacks(POOL_INSTANCES);
        // Reset small memories and tables with memset instead of returning
        // the pages to the kernel: most per-call cost was page faults and
        // madvise on each fresh instance (measured: ~2x faster per call).
        pool.table_keep_resident(64 << 10);
        if swap_active(std::fs::read_to_string("/proc/swaps").ok().as_deref()) {
            // wasmtime 46's PAGEMAP_SCAN reset skips dirty pages the kernel
            // swapped out (wasmtime #14357): one instance's data could reach
            // the next. Without the scan, the first `keep_resident` bytes are
            // reset with memset and the rest is returned to the kernel, which
            // resets every page, swapped or not; a smaller resident part
            // keeps that memset cheap.
            pool.linear_memory_keep_resident(64 << 10);
            pool.pagemap_scan(wasmtime::Enabled::No);
        } else {
            pool.linear_memory_keep_resident(1 << 20);
            pool.pagemap_scan(wasmtime::Enabled::Auto);
        }
        pool.max_memories_per_component(4);
        pool.max_tables_per_component(8);
        pool.max_core_instances_per_component(16);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Whether swap may be in use, from the text of `/proc/swaps` (None: it
/// could not be read, so assume it is). Checked when an engine is made;
/// swap switched on later, while that engine lives, is not seen.
fn swap_active(proc_swaps: Option<&str>) -> bool {
    match proc_swaps {
        Some(text) => text.lines().skip(1).any(|l| !l.trim().is_empty()),
        None => true,
    }
}

/// Bumps the engine's epoch every [`TICK`]; stopped and joined on drop.
struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Fails when the thread cannot be started: timeouts are never silently off.
    fn start(engine: Engine) -> Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("fidius-wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // park, not sleep: dropping the runtime wakes it at once.
                    std::thread::park_timeout(TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| Error::new(Status::Trap, format!("cannot start the timeout thread (fidius-wasm-epoch): {e}")))?;
        Ok(Ticker { stop, thread: Some(thread) })
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    /// The same .cwasm bytes deserialize once per runtime (the cache's hit
    /// rests on wasmtime keeping a component's image equal to its bytes);
    /// other bytes are another component.
    #[test]
    fn precompiled_bytes_are_deserialized_once() {
        let runtime = super::WasmRuntime::new(false).unwrap();
        let cwasm = runtime.precompile(&wat::parse_str("(component)").unwrap()).unwrap();
        let first = unsafe { runtime.deserialize(&cwasm) }.unwrap();
        let again = unsafe { runtime.deserialize(&cwasm.clone()) }.unwrap();
        assert_eq!(first.image_range(), again.image_range(), "a second deserialize of the same bytes is a hit");
        let other = runtime.precompile(&wat::parse_str("(component (core module))").unwrap()).unwrap();
        let other = unsafe { runtime.deserialize(&other) }.unwrap();
        assert_ne!(first.image_range(), other.image_range());
        let cached: usize = runtime.precompiled.lock().unwrap().values().map(Vec::len).sum();
        assert_eq!(cached, 2);
    }

    #[test]
    fn swap_detection_fails_safe() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(!super::swap_active(Some(header)));
        assert!(super::swap_active(Some(&format!("{header}/swapfile file 1048572 0 -2\n"))));
        assert!(super::swap_active(None));
    }
}
