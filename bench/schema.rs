//! What interface schemas cost: a native call through JSON against the same
//! call through wire bytes (the `typed` fixture's `price(Order) -> i64`),
//! and the conversion's throughput on a 1 MiB list-of-records argument, both
//! ways. Uses libfidius's Rust core, as a C host's calls would.
//!
//!   cargo bench --bench schema_json -- PATH/libfixture_typed.so PATH/typed.wit [SECONDS]

use std::time::{Duration, Instant};

use fidius::schema::Schema;
use fidius::value::json;
use fidius::{Format, Host, LoadOptions};

/// The median over 50 ms batches of the mean time per call of `f`.
fn median_ns(secs: f64, mut f: impl FnMut()) -> f64 {
    let mut batch = |n: u64| {
        let t = Instant::now();
        for _ in 0..n {
            f();
        }
        t.elapsed()
    };
    batch(1000);
    let per_batch = (Duration::from_millis(50).as_nanos() / batch(1000).as_nanos().max(1) * 1000).max(1) as u64;
    let mut means = Vec::new();
    let start = Instant::now();
    while means.len() < 5 || start.elapsed().as_secs_f64() < secs {
        means.push(batch(per_batch).as_nanos() as f64 / per_batch as f64);
    }
    means.sort_by(|a, b| a.partial_cmp(b).unwrap());
    means[means.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let lib = args.next().expect("usage: schema_json PATH/libfixture_typed.so PATH/typed.wit [SECONDS]");
    let wit = args.next().expect("the typed.wit path");
    let secs: f64 = args.next().map_or(2.0, |s| s.parse().expect("SECONDS is a number"));
    let schema = Schema::read(wit.as_ref()).expect("schema");
    let host = Host::builder().build().expect("host");
    let options = LoadOptions { schema: Some(std::sync::Arc::new(schema.clone())), ..Default::default() };
    let plugin = host.load_path(lib.as_ref(), Some("TypedImpl"), &options).expect("load TypedImpl");
    let price = plugin.method_index("price").unwrap();

    // price(Order): wire bytes built once (as a host that already has them), and JSON.
    let order_json = br#"[{"id": 7, "sku": "widget-42", "qty": 3, "unit_cents": 1999, "note": "gift wrap"}]"#;
    let order_wire = json::args_to_wire(&schema.interfaces[0].methods[price as usize].params, order_json).unwrap();
    assert_eq!(&*plugin.call(price, Format::Json, order_json).unwrap(), b"5997");
    let wire_ns = median_ns(secs, || {
        std::hint::black_box(plugin.call(price, Format::Wire, std::hint::black_box(&order_wire)).unwrap());
    });
    let json_ns = median_ns(secs, || {
        std::hint::black_box(plugin.call(price, Format::Json, std::hint::black_box(order_json)).unwrap());
    });
    // The floor for reading this JSON at all: serde_json into the Rust type.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Order {
        id: u64,
        sku: String,
        qty: u32,
        unit_cents: i64,
        note: Option<String>,
    }
    let serde_ns = median_ns(secs, || {
        std::hint::black_box(serde_json::from_slice::<(Order,)>(std::hint::black_box(order_json)).unwrap());
    });
    let price_params = &schema.interfaces[0].methods[price as usize].params;
    let convert_ns = median_ns(secs, || {
        std::hint::black_box(json::args_to_wire(price_params, std::hint::black_box(order_json)).unwrap());
    });

    // A 1 MiB list<order> argument (totals), converted JSON -> wire and wire -> JSON.
    let params = &schema.interfaces[0].methods[plugin.method_index("totals").unwrap() as usize].params;
    let mut big = String::from("[[");
    let mut i = 0u64;
    while big.len() < 1 << 20 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(r#"{{"id": {i}, "sku": "sku-{i:08}", "qty": {}, "unit_cents": {}, "note": null}}"#, i % 17, i * 31));
        i += 1;
    }
    big.push_str("]]");
    let wire = json::args_to_wire(params, big.as_bytes()).unwrap();
    let to_wire_ns = median_ns(secs, || {
        std::hint::black_box(json::args_to_wire(params, std::hint::black_box(big.as_bytes())).unwrap());
    });
    let list_ty = &params[0].1;
    let to_json_ns = median_ns(secs, || {
        std::hint::black_box(json::output_to_json(Some(list_ty), std::hint::black_box(&wire)).unwrap());
    });
    let mbps = |bytes: usize, ns: f64| bytes as f64 / (ns / 1e9) / 1e6;

    println!("| row | time | figure |");
    println!("|---|--:|--:|");
    println!("| native price(Order), wire bytes | {wire_ns:.0} ns | |");
    println!("| native price(Order), JSON | {json_ns:.0} ns | {:.2}x the wire call |", json_ns / wire_ns);
    println!("| of which JSON -> wire of the Order | {convert_ns:.0} ns | |");
    println!("| for scale: serde_json into a Rust Order | {serde_ns:.0} ns | |");
    println!("| JSON -> wire, {} orders ({} KiB of JSON) | {:.2} ms | {:.0} MB/s of JSON |", i, big.len() / 1024, to_wire_ns / 1e6, mbps(big.len(), to_wire_ns));
    println!("| wire -> JSON, the same list ({} KiB of wire) | {:.2} ms | {:.0} MB/s of wire |", wire.len() / 1024, to_json_ns / 1e6, mbps(wire.len(), to_json_ns));
}
