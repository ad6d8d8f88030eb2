//! Interface schemas for native plugins: the WIT the published fidius
//! toolchain writes (`fidius_build::emit_wit()` for fidius 0.5.9 plugins,
//! the `fidius wit` CLI for a fidius 0.4.2 one) lets native plugins be
//! called by name with JSON, converting to exactly the bincode the plugin
//! expects; and every plugin describes itself.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::schema_fixtures::typed;
use common::*;
use fidius::capi::*;
use fidius::Status;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

// The fixture's types, as the plugin's own serde derives encode them.
#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Order {
    id: u64,
    sku: String,
    qty: u32,
    unit_cents: i64,
    note: Option<String>,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Line {
    sku: String,
    cents: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
enum Shape {
    Empty,
    Circle(f64),
    Rect { w: f64, h: f64 },
}

const WIDTHS: u32 = 0;
const GREET: u32 = 1;
const PRICE: u32 = 2;
const AREA: u32 = 3;
const SCALE: u32 = 4;
const MAYBE_DOUBLE: u32 = 5;
const TOTALS: u32 = 6;
const TALLY: u32 = 7;
const DIVIDE: u32 = 8;
const REVERSE: u32 = 9;
const NOTHING: u32 = 10;

fn schema_file_options(wit: &Path) -> TestOptions {
    let path = cstr(wit.to_str().unwrap());
    TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_schema_file(o, path.as_ptr(), e) })
}

fn schema_text_options(wit: &str) -> TestOptions {
    TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_schema(o, wit.as_ptr(), wit.len(), e) })
}

fn orders() -> Vec<Order> {
    vec![
        Order { id: 1, sku: "apple".into(), qty: 3, unit_cents: 45, note: None },
        Order { id: u64::MAX, sku: "pear".into(), qty: 2, unit_cents: -10, note: Some("gift".into()) },
    ]
}

/// Every method through JSON, each compared with the same call through wire bytes decoded by hand.
fn exercise(plugin: &TestPlugin, who: &str) {
    let json = |m: u32, input: Value| plugin.json(m, &input.to_string()).unwrap_or_else(|e| panic!("{who} {m}: {}", e.message));
    // Every integer width, at its extremes.
    let out = json(WIDTHS, json!([-128, -32768, -2147483648i64, "-9223372036854775808", 255, 65535, 4294967295u64, "18446744073709551615"]));
    let wire_out: String = unwire(&plugin.call(WIDTHS, &wire(&(i8::MIN, i16::MIN, i32::MIN, i64::MIN, u8::MAX, u16::MAX, u32::MAX, u64::MAX))).unwrap());
    assert_eq!(out, json!(wire_out), "{who}");
    assert_eq!(out, json!("-128,-32768,-2147483648,-9223372036854775808,255,65535,4294967295,18446744073709551615"));
    let err = plugin.json(WIDTHS, &json!([128, 0, 0, 0, 0, 0, 0, 0]).to_string()).unwrap_err();
    assert_eq!(err.status, Status::Serialization);
    assert!(err.message.contains("args.a: 128 is out of range for s8"), "{}", err.message);

    assert_eq!(json(GREET, json!(["Ann"])), json!("Hello, Ann!"));
    // A record, by position and by parameter name; a missing option field is none.
    let order = orders()[1].clone();
    let by_name = json(PRICE, json!({"order": {"id": "18446744073709551615", "sku": "pear", "qty": 2, "unit_cents": -10, "note": "gift"}}));
    assert_eq!(by_name, json!(unwire::<i64>(&plugin.call(PRICE, &wire(&(order,))).unwrap())));
    assert_eq!(json(PRICE, json!([{"id": 1, "sku": "x", "qty": 4, "unit_cents": 25}])), json!(100));
    let err = plugin.json(PRICE, &json!([{"id": 1, "sku": "x", "qty": 4, "unit_cents": 25, "colour": "red"}]).to_string()).unwrap_err();
    assert!(err.message.contains("unknown field \"colour\""), "{}", err.message);
    // An enum with unit, tuple and struct cases.
    for (shape, value) in [
        (json!("Empty"), Shape::Empty),
        (json!({"Circle": 1.5}), Shape::Circle(1.5)),
        (json!({"Rect": {"w": 2.0, "h": 3.5}}), Shape::Rect { w: 2.0, h: 3.5 }),
    ] {
        let by_json = json(AREA, json!([shape]));
        let by_wire: f64 = unwire(&plugin.call(AREA, &wire(&(value,))).unwrap());
        assert_eq!(by_json, json!(by_wire), "{who} {shape}");
    }
    let scaled = json(SCALE, json!([{"Rect": {"w": 2.0, "h": 3.0}}, 2.0]));
    assert_eq!(scaled, json!({"Rect": {"w": 4.0, "h": 6.0}}));
    let by_wire: Shape = unwire(&plugin.call(SCALE, &wire(&(Shape::Rect { w: 2.0, h: 3.0 }, 2.0f64))).unwrap());
    assert_eq!(by_wire, Shape::Rect { w: 4.0, h: 6.0 });
    assert_eq!(json(SCALE, json!(["empty", 3.0])), json!("Empty"), "snake/kebab case names are accepted");
    // Options.
    assert_eq!(json(MAYBE_DOUBLE, json!([null])), json!(null));
    assert_eq!(json(MAYBE_DOUBLE, json!([21])), json!(42));
    // A list of records in, a list of records out.
    let orders_json = serde_json::to_value(orders()).unwrap();
    let lines = json(TOTALS, json!([orders_json]));
    let by_wire: Vec<Line> = unwire(&plugin.call(TOTALS, &wire(&(orders(),))).unwrap());
    assert_eq!(lines, serde_json::to_value(&by_wire).unwrap(), "{who}");
    assert_eq!(lines, json!([{"sku": "apple", "cents": 135}, {"sku": "pear", "cents": -20}]));
    // A map: [key, value] pairs (in the plugin's order).
    let tally = json(TALLY, json!([["a", "b", "a"]]));
    let pairs: BTreeMap<String, u32> = tally.as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().unwrap() as u32)).collect();
    assert_eq!(pairs, BTreeMap::from([("a".to_string(), 2), ("b".to_string(), 1)]));
    let by_wire: std::collections::HashMap<String, u32> = unwire(&plugin.call(TALLY, &wire(&(vec!["a", "b", "a"],))).unwrap());
    assert_eq!(by_wire.into_iter().collect::<BTreeMap<_, _>>(), pairs);
    // A fallible method: Ok is the output, Err the call's plugin error.
    assert_eq!(json(DIVIDE, json!([7, 2])), json!(3));
    let err = plugin.json(DIVIDE, &json!([7, 0]).to_string()).unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    assert_eq!(err.plugin_code.as_deref(), Some("DIV_ZERO"));
    assert_eq!(err.plugin_details.as_deref(), Some("{\"dividend\":7}"));
    // A raw method: bytes as a JSON array, and the same bytes on the wire.
    assert_eq!(json(REVERSE, json!([[1, 2, 3]])), json!([3, 2, 1]));
    assert_eq!(plugin.call(REVERSE, b"abc").unwrap(), b"cba");
    assert_eq!(json(NOTHING, json!([])), json!(null));
    // Names.
    assert_eq!(plugin.index("maybe_double").unwrap(), MAYBE_DOUBLE);
    assert_eq!(plugin.index("maybe-double").unwrap(), MAYBE_DOUBLE);
    unsafe { assert_eq!(opt_str(fidius_plugin_method_name(plugin.0, TOTALS)).as_deref(), Some("totals")) };
}

#[test]
fn a_fidius_0_5_plugin_with_its_emitted_schema_takes_json_by_name() {
    let f = typed();
    let dir = search_path("schema_v5", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    // Without a schema: wire bytes only, as before.
    let bare = host.load("TypedImpl").unwrap();
    assert_eq!(bare.json(GREET, "[\"x\"]").unwrap_err().status, Status::Unsupported);
    assert_eq!(bare.index("greet").unwrap_err().status, Status::MethodIndex);
    // The schema emit_wit wrote, given in the load options.
    let plugin = host.load_opts("TypedImpl", Some(&schema_file_options(&f.v5_wit))).unwrap();
    exercise(&plugin, "fidius 0.5.9");
    // The same schema as text.
    let text = std::fs::read_to_string(&f.v5_wit).unwrap();
    let plugin = host.load_opts("TypedImpl", Some(&schema_text_options(&text))).unwrap();
    assert_eq!(plugin.json(GREET, "[\"Bo\"]").unwrap(), json!("Hello, Bo!"));
}

#[test]
fn a_fidius_0_4_plugin_finds_its_cli_written_schema_beside_the_library() {
    let f = typed();
    let dir = search_path("schema_v4", &[&f.v4]);
    let lib = dir.join(f.v4.file_name().unwrap());
    let mut sidecar = lib.clone().into_os_string();
    sidecar.push(".wit");
    std::fs::copy(&f.v4_wit, &sidecar).unwrap();
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("TypedLegacy").unwrap();
    assert_eq!(plugin.info().abi_version, 400);
    exercise(&plugin, "fidius 0.4.2");
}

#[test]
fn a_host_schema_applies_to_plugins_of_its_interface() {
    let f = typed();
    let dir = search_path("schema_host", &[&f.v5, &native().v5]);
    let path = cstr(f.v5_wit.to_str().unwrap());
    let host = TestHost::configured(&[&dir], |b| ok(|e| unsafe { fidius_host_builder_add_schema_file(b, path.as_ptr(), e) }));
    let typed = host.load("TypedImpl").unwrap();
    assert_eq!(typed.json(MAYBE_DOUBLE, "[4]").unwrap(), json!(8));
    // Another interface (Calc) gets nothing from it.
    let calc = host.load("BasicCalc").unwrap();
    assert_eq!(calc.json(0, "[1, 2]").unwrap_err().status, Status::Unsupported);
}

#[test]
fn an_optional_method_of_a_newer_revision_is_listed_and_not_implemented() {
    let f = typed();
    let dir = search_path("schema_next", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("TypedImpl", Some(&schema_file_options(&f.next_wit))).unwrap();
    let extra = plugin.index("extra").unwrap();
    assert_eq!(extra, 11);
    let err = plugin.json(extra, "[]").unwrap_err();
    assert_eq!(err.status, Status::NotImplemented, "{}", err.message);
    assert!(err.message.contains("extra"), "{}", err.message);
    assert_eq!(plugin.call(extra, &[]).unwrap_err().status, Status::NotImplemented);
    assert_eq!(plugin.json(GREET, "[\"Cy\"]").unwrap(), json!("Hello, Cy!"));
    let doc = describe(&plugin);
    assert_eq!(doc["methods"][11]["implemented"], json!(false));
    assert_eq!(doc["methods"][11]["optional"], json!(true));
    assert_eq!(doc["methods"][10]["implemented"], json!(true));
}

#[test]
fn wrong_stale_and_malformed_schemas_are_refused_with_the_difference() {
    let f = typed();
    let dir = search_path("schema_wrong", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    // A schema of another interface revision with fewer methods than the plugin.
    let stale = "package fidius:typed@0.1.0;\ninterface typed {\n  greet: func(name: string) -> string;\n  widths: func(a: s8) -> string;\n}\n";
    let err = host.load_opts("TypedImpl", Some(&schema_text_options(stale))).err().unwrap();
    assert_eq!(err.status, Status::SchemaMismatch, "{}", err.message);
    assert!(err.message.contains("has 2 methods, the plugin has 11"), "{}", err.message);
    // Malformed WIT: refused when it is given, with where and why.
    for (bad, says) in [("package a:b;\ninterface typed { f: func(x: nope); }", "nope"), ("not wit at all", "not a valid WIT schema")] {
        let o = TestOptions::new();
        let mut err = std::ptr::null_mut();
        let e = unsafe { check(fidius_load_options_set_schema(o.0, bad.as_ptr(), bad.len(), &mut err), err) }.unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        assert!(e.message.contains(says), "{}", e.message);
    }
    let missing = cstr("/nonexistent/x.wit");
    let o = TestOptions::new();
    let mut err = std::ptr::null_mut();
    let e = unsafe { check(fidius_load_options_set_schema_file(o.0, missing.as_ptr(), &mut err), err) }.unwrap_err();
    assert_eq!(e.status, Status::Io);
    // A malformed <library>.wit fails the load of the plugin beside it, saying which file.
    let lib = dir.join(f.v5.file_name().unwrap());
    let mut sidecar = lib.into_os_string();
    sidecar.push(".wit");
    std::fs::write(&sidecar, "package a:b;\ninterface typed { f: func(x: nope); }").unwrap();
    let e = host.load("TypedImpl").err().unwrap();
    assert_eq!(e.status, Status::InvalidArgument, "{}", e.message);
    assert!(e.message.contains(".so.wit"), "{}", e.message);
}

fn describe(plugin: &TestPlugin) -> Value {
    plugin.describe()
}

#[test]
fn every_plugin_describes_itself() {
    let f = typed();
    let dir = search_path("schema_describe", &[&f.v5, &native().v5]);
    let host = TestHost::new(&[&dir]);
    let plugin = host.load_opts("TypedImpl", Some(&schema_file_options(&f.v5_wit))).unwrap();
    let doc = describe(&plugin);
    assert_eq!(doc["name"], json!("TypedImpl"));
    assert_eq!(doc["interface"], json!("Typed"));
    assert_eq!(doc["runtime"], json!("native"));
    assert_eq!(doc["abi_version"], json!(500));
    assert_eq!(doc["buffer_strategy"], json!("plugin-allocated"));
    assert_eq!(doc["interface_hash"], json!(format!("0x{:016x}", plugin.info().interface_hash)));
    assert!(doc["types_from"].as_str().unwrap().ends_with(".wit"));
    let methods = doc["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 11);
    assert_eq!(methods[2]["name"], json!("price"));
    assert_eq!(methods[2]["params"], json!([{"name": "order", "type": "order"}]));
    assert_eq!(methods[2]["returns"], json!("s64"));
    assert_eq!(methods[8]["result"], json!("result<s64, plugin-error>"));
    assert_eq!(methods[8]["returns"], json!("s64"));
    assert_eq!(methods[8]["fallible"], json!(true));
    assert_eq!(methods[9]["raw"], json!(true));
    assert_eq!(methods[10]["result"], json!(null));
    let types = doc["types"].as_array().unwrap();
    let named = |n: &str| types.iter().find(|t| t["name"] == json!(n)).unwrap_or_else(|| panic!("{n} in {types:?}")).clone();
    assert_eq!(named("order")["kind"], json!("record"));
    assert_eq!(named("order")["fields"][4], json!({"name": "note", "type": "option<string>"}));
    assert_eq!(named("shape")["kind"], json!("variant"));
    assert_eq!(named("shape")["cases"][0], json!({"name": "empty", "type": null}));
    // Without a schema: what the descriptor knows, and null for what it does not.
    let calc = host.load("BasicCalc").unwrap();
    let doc = describe(&calc);
    assert_eq!(doc["types_from"], json!(null));
    assert_eq!(doc["methods"][0]["name"], json!(null));
    assert_eq!(doc["methods"][0]["params"], json!(null));
    assert_eq!(doc["methods"][0]["metadata"], json!({"kind": "math", "pure": "true"}));
    assert_eq!(doc["metadata"]["owner"], json!("fixtures"));
    assert_eq!(doc["capability_bits"], json!(1));
    // A WASM component describes itself from its own types.
    let wdir = wasm_search_path("schema_describe_wasm", &["calc"], |_, t| t.to_string());
    let wasm = TestHost::new(&[&wdir]).load("calc").unwrap();
    let doc = describe(&wasm);
    assert_eq!(doc["runtime"], json!("wasm"));
    assert_eq!(doc["types_from"], json!("component"));
    assert_eq!(doc["capabilities"], json!([]));
    assert_eq!(doc["methods"][0], json!({"index": 0, "name": "add", "params": [{"name": "a", "type": "s64"}, {"name": "b", "type": "s64"}],
        "result": "s64", "returns": "s64", "fallible": false, "raw": false, "streaming": false, "stream_item": null, "optional": false, "implemented": true, "metadata": {}}));
    let types = doc["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == json!("point") && t["kind"] == json!("record")), "{types:?}");
    assert!(types.iter().any(|t| t["name"] == json!("shape") && t["kind"] == json!("variant")), "{types:?}");
    // Bad arguments.
    unsafe {
        let mut err = std::ptr::null_mut();
        let e = check(fidius_plugin_describe(calc.0, std::ptr::null_mut(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
    }
}
