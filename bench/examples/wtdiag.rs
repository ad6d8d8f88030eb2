// TEMPORARY: per-call instantiation cost of calc.add under pooling variants.
use std::hint::black_box;
use std::time::Instant;
use wasmtime::component::{Component, Linker, ResourceTable, Val};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

struct S { wasi: WasiCtx, table: ResourceTable }
impl WasiView for S { fn ctx(&mut self) -> WasiCtxView<'_> { WasiCtxView { ctx: &mut self.wasi, table: &mut self.table } } }

fn engine(variant: &str) -> Engine {
    let mut c = Config::new();
    c.wasm_component_model(true);
    c.epoch_interruption(true);
    if variant != "ondemand" {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(256);
        pool.total_core_instances(1024);
        pool.total_memories(512);
        pool.total_tables(1024);
        pool.total_stacks(256);
        pool.max_memories_per_component(4);
        pool.max_tables_per_component(8);
        pool.max_core_instances_per_component(16);
        if variant.contains("resident") {
            pool.linear_memory_keep_resident(std::env::var("KR").ok().and_then(|v| v.parse().ok()).unwrap_or(8 << 20));
            pool.table_keep_resident(1 << 20);
        }
        if variant.contains("pagemap") {
            pool.pagemap_scan(Enabled::Yes);
        }
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&c).unwrap()
}

fn main() {
    let wasm = std::fs::read(std::env::args().nth(1).unwrap()).unwrap();
    let secs: f64 = std::env::args().nth(2).unwrap().parse().unwrap();
    let only = std::env::args().nth(3);
    for variant in ["ondemand", "pool(libfidius)", "pool+resident", "pool+resident+pagemap"] {
        if only.as_deref().is_some_and(|o| o != variant) { continue; }
        let engine = engine(variant);
        let mut linker = Linker::<S>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).unwrap();
        let comp = Component::new(&engine, &wasm).unwrap();
        let pre = linker.instantiate_pre(&comp).unwrap();
        let iface = comp.get_export_index(None, "fidius:calc/calc@0.1.0").unwrap();
        let add = comp.get_export_index(Some(&iface), "add").unwrap();
        let mut parts = [0f64; 4];
        let run = |n: u64, parts: &mut [f64; 4], measure: bool| {
            for i in 0..n {
                let t0 = Instant::now();
                let mut store = Store::new(&engine, S { wasi: WasiCtxBuilder::new().build(), table: ResourceTable::new() });
                store.set_epoch_deadline(u64::MAX / 2);
                let t1 = Instant::now();
                let inst = pre.instantiate(&mut store).unwrap();
                let t2 = Instant::now();
                let f = inst.get_func(&mut store, &add).unwrap();
                let mut out = [Val::Bool(false)];
                f.call(&mut store, &[Val::S64(i as i64), Val::S64(1)], &mut out).unwrap();
                black_box(&out);
                let t3 = Instant::now();
                drop(store);
                let t4 = Instant::now();
                if measure {
                    parts[0] += (t1 - t0).as_nanos() as f64;
                    parts[1] += (t2 - t1).as_nanos() as f64;
                    parts[2] += (t3 - t2).as_nanos() as f64;
                    parts[3] += (t4 - t3).as_nanos() as f64;
                }
            }
        };
        run(300, &mut parts, false);
        let t = Instant::now();
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < secs { run(100, &mut parts, true); n += 100; }
        let total = t.elapsed().as_nanos() as f64 / n as f64;
        println!("{variant:<24} {:>8.2} µs/call  [store+wasi {:.2}  instantiate {:.2}  call {:.2}  drop {:.2}]",
            total / 1e3, parts[0] / n as f64 / 1e3, parts[1] / n as f64 / 1e3, parts[2] / n as f64 / 1e3, parts[3] / n as f64 / 1e3);
    }
}
