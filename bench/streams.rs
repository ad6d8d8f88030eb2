//! What a stream item costs: a 10,000-item server stream of small items
//! (`count(n) -> Stream<u64>`) from a native plugin (fidius 0.5.9) and a
//! WASM component (fidius 0.5.9 guest), against one unary call (`add`) of
//! the same plugin, in the same run. Uses libfidius's Rust core, as the C
//! API's `fidius_plugin_stream` / `fidius_stream_next` do.
//!
//! With the `pycalc` Python package (tests/fixtures/python/build.sh), the
//! same two rows for a Python plugin: its `count` stream and `add` call.
//!
//!   cargo bench --bench streams -- PATH/libfixture_stream.so PACKAGES/stream [PYTHON_OUT] [SECONDS]

use std::time::{Duration, Instant};

use fidius::{Format, Host, LoadOptions, Plugin};

const ITEMS: u64 = 10_000;

fn wire_u64_str(n: u64) -> Vec<u8> {
    let mut v = n.to_le_bytes().to_vec();
    v.extend_from_slice(&0u64.to_le_bytes()); // marker: ""
    v
}

/// Open `count(ITEMS)` and drain it; the items are checked.
fn drain(plugin: &Plugin, count: u32, format: Format, input: &[u8]) -> u64 {
    let mut stream = plugin.stream(count, format, input, None, None).expect("stream");
    let mut n = 0u64;
    while let Some(item) = stream.next().expect("item") {
        std::hint::black_box(&item);
        n += 1;
    }
    assert_eq!(n, ITEMS);
    n
}

/// The median over batches of `f` (each batch at least 50 ms) of the mean per unit.
fn median_ns(secs: f64, units_per_call: u64, mut f: impl FnMut()) -> f64 {
    let mut batch = |n: u64| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed()
    };
    let one = batch(1).max(Duration::from_nanos(1));
    let per_batch = (Duration::from_millis(50).as_nanos() / one.as_nanos()).max(1) as u64;
    let mut means = Vec::new();
    let start = Instant::now();
    while means.len() < 5 || start.elapsed().as_secs_f64() < secs {
        means.push(batch(per_batch).as_nanos() as f64 / (per_batch * units_per_call) as f64);
    }
    means.sort_by(|a, b| a.partial_cmp(b).unwrap());
    means[means.len() / 2]
}

fn rows(name: &str, plugin: &Plugin, secs: f64, input: &[u8], json_input: &[u8]) {
    let count = plugin.method_index("count").unwrap_or(0);
    let add = plugin.method_index("add").unwrap_or(5);
    let add_input = [2i64.to_le_bytes(), 40i64.to_le_bytes()].concat();
    assert_eq!(&*plugin.call(add, Format::Wire, &add_input).unwrap(), &42i64.to_le_bytes());
    let item_ns = median_ns(secs, ITEMS, || {
        drain(plugin, count, Format::Wire, input);
    });
    let json_ns = median_ns(secs, ITEMS, || {
        drain(plugin, count, Format::Json, json_input);
    });
    let call_ns = median_ns(secs, 1, || {
        std::hint::black_box(plugin.call(add, Format::Wire, std::hint::black_box(&add_input)).unwrap());
    });
    println!(
        "| {name:<28} | {:>12.0} | {:>10.1} | {:>10.1} | {:>12.1} | {:>8.2} |",
        1e9 / item_ns,
        item_ns,
        json_ns,
        call_ns,
        call_ns / item_ns
    );
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let lib = args.next().expect("usage: streams PATH/libfixture_stream.so PACKAGES/stream [SECONDS]");
    let package = args.next().expect("the stream package directory");
    let rest: Vec<String> = args.collect();
    let python_out = rest.iter().find(|a| a.parse::<f64>().is_err()).cloned();
    let secs: f64 = rest.iter().find_map(|a| a.parse().ok()).unwrap_or(2.0);
    let packages = std::path::Path::new(&package).parent().expect("PACKAGES/stream").to_path_buf();
    let host = Host::builder().search_path(packages).build().expect("host");
    let wit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/native/stream/wit/streamer.wit");
    let schema = fidius::schema::Schema::read(&wit).expect("the native fixture's schema (build the fixtures first)");
    let options = LoadOptions { schema: Some(std::sync::Arc::new(schema)), ..Default::default() };
    let native = host.load_path(lib.as_ref(), Some("StreamerImpl"), &options).expect("load StreamerImpl");
    let wasm = host.load("stream", &LoadOptions::default()).expect("load the stream package");
    println!("| {:<28} | {:>12} | {:>10} | {:>10} | {:>12} | {:>8} |", "10,000-item stream of u64", "items/s", "ns/item", "ns/item JSON", "ns/unary add", "add/item");
    println!("|{:-<30}|{:->14}|{:->12}|{:->12}|{:->14}|{:->10}|", "", ":", ":", ":", ":", ":");
    let input = wire_u64_str(ITEMS);
    rows("native (fidius 0.5.9)", &native, secs, &input, br#"[10000, ""]"#);
    rows("wasm (fidius 0.5.9 guest)", &wasm, secs, &input, br#"[10000, ""]"#);
    if let Some(out) = python_out {
        let out = std::path::PathBuf::from(out);
        let host = Host::builder().search_path(&out).build().expect("host");
        let schema = fidius::schema::Schema::read(&out.join("pycalc.wit")).expect("pycalc.wit");
        let options = LoadOptions { schema: Some(std::sync::Arc::new(schema)), ..Default::default() };
        let python = host.load("pycalc", &options).expect("load pycalc");
        rows("python (runner process)", &python, secs, &ITEMS.to_le_bytes(), b"[10000]");
    }
    println!();
    println!("Each row: open count(10000), pull every item (checked), end; per item over the whole stream,");
    println!("including the open. JSON: the same stream with JSON arguments and items. The unary add is");
    println!("one call of the same plugin (a fresh instance per call for WASM, as loaded); add/item is how");
    println!("many stream items cost one call. Python: one runner process per plugin; a call is a round");
    println!("trip over a socket to it (JSON arguments and results; wire bytes converted by the schema).");
}
