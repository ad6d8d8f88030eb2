//! Native plugins built by the published fidius 0.5.9 and 0.4.2 crates,
//! driven through the C entry points.

mod common;

use common::*;
use fidius::Status;

const CALC_HASH: u64 = 0x334aacfb9648fde5;
const ARENA_HASH: u64 = 0xd88192b198fae0e1;

// Calc method indices (declaration order in the trait).
const ADD: u32 = 0;
const GREET: u32 = 1;
const ECHO: u32 = 2;
const DIVIDE: u32 = 3;
const BOOM: u32 = 4;
const NOTHING: u32 = 5;
const DESCRIBE: u32 = 6;

// ArenaCalc method indices.
const A_ADD: u32 = 0;
const A_ECHO: u32 = 1;
const A_BIG: u32 = 2;
const A_FAIL: u32 = 3;

fn both_versions(name: &str) -> TestHost {
    let f = native();
    let dir = search_path(name, &[&f.v5, &f.v4]);
    TestHost::new(&[&dir])
}

#[test]
fn discovery_lists_plugins_of_both_abis() {
    let host = both_versions("discover_both");
    let found = host.discover();
    let mut plugins = found.plugins();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    let names: Vec<&str> = plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ArenaImpl", "BasicCalc", "ConfiguredGreeter", "LegacyArena", "LegacyCalc", "OtherCalc"]);
    let basic = &plugins[1];
    assert_eq!(basic.interface_name, "Calc");
    assert_eq!(basic.interface_hash, CALC_HASH);
    assert_eq!(basic.interface_version, 1);
    assert_eq!(basic.runtime, 1, "native");
    assert_eq!(basic.buffer_strategy, 1, "PluginAllocated");
    assert_eq!(basic.capabilities, 1, "the optional describe() is implemented");
    assert_eq!(basic.method_count, 7);
    assert_eq!(basic.abi_version, 500);
    assert!(basic.path.ends_with("libfixture_v5.so"), "{}", basic.path);
    let legacy = &plugins[4];
    assert_eq!((legacy.abi_version, legacy.interface_hash, legacy.method_count), (400, CALC_HASH, 7));
    assert_eq!(plugins[0].buffer_strategy, 2, "ArenaImpl is Arena");
    assert_eq!(plugins[0].interface_hash, ARENA_HASH);
    assert!(found.skipped().is_empty(), "{:?}", found.skipped());
}

fn check_calc(plugin: &TestPlugin, add_offset: i64, greeting: &str) {
    let sum: i64 = unwire(&plugin.call(ADD, &wire(&(2i64, 3i64))).unwrap());
    assert_eq!(sum, 5 + add_offset);
    let hello: String = unwire(&plugin.call(GREET, &wire(&("Ann",))).unwrap());
    assert_eq!(hello, greeting);
    // Raw methods take and give bytes as they are, including none.
    assert_eq!(plugin.call(ECHO, b"\x00raw\xffbytes").unwrap(), b"\x00raw\xffbytes");
    assert_eq!(plugin.call(ECHO, b"").unwrap(), b"");
    let quotient: i64 = unwire(&plugin.call(DIVIDE, &wire(&(7i64, 2i64))).unwrap());
    assert_eq!(quotient, 3);
    // A unit-returning method: success with an empty payload.
    assert_eq!(plugin.call(NOTHING, &[]).unwrap(), Vec::<u8>::new());
}

#[test]
fn typed_raw_and_unit_calls_on_abi_500_and_400() {
    let host = both_versions("calls_both");
    check_calc(&host.load("BasicCalc").unwrap(), 0, "Hello, Ann!");
    check_calc(&host.load("OtherCalc").unwrap(), 1000, "Hi, Ann.");
    check_calc(&host.load("LegacyCalc").unwrap(), 0, "Hello, Ann!");
    let describe: String = unwire(&host.load("LegacyCalc").unwrap().call(DESCRIBE, &[]).unwrap());
    assert_eq!(describe, "legacy calc");
}

#[test]
fn plugin_errors_carry_code_message_and_details() {
    let host = both_versions("plugin_errors");
    for name in ["BasicCalc", "LegacyCalc"] {
        let plugin = host.load(name).unwrap();
        let err = plugin.call(DIVIDE, &wire(&(7i64, 0i64))).unwrap_err();
        assert_eq!(err.status, Status::PluginError);
        assert_eq!(err.plugin_code.as_deref(), Some("DIV_ZERO"));
        assert_eq!(err.plugin_message.as_deref(), Some("division by zero"));
        assert_eq!(err.plugin_details.as_deref(), Some("{\"dividend\":7}"));
        assert!(err.message.contains("DIV_ZERO"), "{}", err.message);
        // The plugin serves the next call.
        let q: i64 = unwire(&plugin.call(DIVIDE, &wire(&(8i64, 2i64))).unwrap());
        assert_eq!(q, 4);
    }
}

#[test]
fn plugin_panics_are_reported_with_their_message() {
    let host = both_versions("panics");
    for name in ["BasicCalc", "LegacyCalc"] {
        let plugin = host.load(name).unwrap();
        let err = plugin.call(BOOM, &[]).unwrap_err();
        assert_eq!(err.status, Status::PluginPanic);
        assert!(err.message.contains("boom requested"), "{}", err.message);
        assert_eq!(err.plugin_code, None);
        let sum: i64 = unwire(&plugin.call(ADD, &wire(&(1i64, 1i64))).unwrap());
        assert_eq!(sum, 2, "{name} still serves calls after a panic");
    }
}

#[test]
fn wrong_input_and_wrong_method_are_clear_errors() {
    let host = both_versions("wrong_input");
    let plugin = host.load("BasicCalc").unwrap();
    let err = plugin.call(ADD, &[1, 2, 3]).unwrap_err();
    assert_eq!(err.status, Status::Serialization, "{}", err.message);
    let err = plugin.call(7, &[]).unwrap_err();
    assert_eq!(err.status, Status::MethodIndex);
    assert!(err.message.contains("7") && err.message.contains("7 methods"), "{}", err.message);
    let err = plugin.call(u32::MAX, &[]).unwrap_err();
    assert_eq!(err.status, Status::MethodIndex);
    // JSON needs type information native plugins do not carry.
    let err = plugin.call_format(ADD, 1, b"[2,3]").unwrap_err();
    assert_eq!(err.status, Status::Unsupported, "{}", err.message);
    let err = plugin.call_format(ADD, 9, b"").unwrap_err();
    assert_eq!(err.status, Status::InvalidArgument);
    let sum: i64 = unwire(&plugin.call(ADD, &wire(&(20i64, 22i64))).unwrap());
    assert_eq!(sum, 42);
}

#[test]
fn arena_plugins_of_both_abis() {
    let host = both_versions("arena");
    for name in ["ArenaImpl", "LegacyArena"] {
        let plugin = host.load(name).unwrap();
        assert_eq!(plugin.info().buffer_strategy, 2);
        let sum: i64 = unwire(&plugin.call(A_ADD, &wire(&(40i64, 2i64))).unwrap());
        assert_eq!(sum, 42);
        assert_eq!(plugin.call(A_ECHO, b"arena bytes").unwrap(), b"arena bytes");
        // Larger than the 4 KiB arena: grown and retried.
        let big: Vec<u8> = unwire(&plugin.call(A_BIG, &wire(&(100_000u32,))).unwrap());
        assert_eq!(big.len(), 100_000);
        assert!(big.iter().all(|b| *b == 7));
        let small: Vec<u8> = unwire(&plugin.call(A_BIG, &wire(&(3u32,))).unwrap());
        assert_eq!(small, [7, 7, 7]);
        let err = plugin.call(A_FAIL, &[]).unwrap_err();
        assert_eq!(err.status, Status::PluginError);
        assert_eq!(err.plugin_code.as_deref(), Some("ARENA_FAIL"));
        assert_eq!(err.plugin_details, None);
    }
}

#[derive(serde::Serialize)]
struct GreeterConfig {
    prefix: String,
    times: u32,
}

#[test]
fn configured_instances_coexist() {
    let host = both_versions("configured");
    let yo = host.load_with("ConfiguredGreeter", Some(&wire(&GreeterConfig { prefix: "Yo ".into(), times: 2 }))).unwrap();
    let hi = host.load_with("ConfiguredGreeter", Some(&wire(&GreeterConfig { prefix: "Hi ".into(), times: 1 }))).unwrap();
    let a: String = unwire(&yo.call(0, &wire(&("Ann",))).unwrap());
    let b: String = unwire(&hi.call(0, &wire(&("Bob",))).unwrap());
    assert_eq!(a, "Yo Ann Yo Ann");
    assert_eq!(b, "Hi Bob");
    drop(yo);
    let b: String = unwire(&hi.call(0, &wire(&("Cy",))).unwrap());
    assert_eq!(b, "Hi Cy", "freeing one instance leaves the other working");
}

#[test]
fn a_bad_or_missing_config_is_refused_at_load_not_at_call() {
    let host = both_versions("bad_config");
    for config in [None, Some(&[1u8, 2, 3][..])] {
        let err = host.load_with("ConfiguredGreeter", config).err().expect("refused");
        assert_eq!(err.status, Status::ConfigRejected, "{}", err.message);
        assert!(err.message.contains("ConfiguredGreeter"), "{}", err.message);
    }
    // ABI 400 has no configured instances.
    let err = host.load_with("LegacyCalc", Some(&[0u8])).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument);
    assert!(err.message.contains("ABI 400"), "{}", err.message);
}

#[test]
fn metadata_is_readable_from_c() {
    use fidius::capi::*;
    let host = both_versions("metadata");
    for name in ["BasicCalc", "LegacyCalc"] {
        let plugin = host.load(name).unwrap();
        unsafe {
            let p = plugin.0;
            let mut count = 0usize;
            let mut err = std::ptr::null_mut();
            check(fidius_plugin_method_metadata_count(p, ADD, &mut count, &mut err), err).unwrap();
            assert_eq!(count, 2);
            let mut pairs = Vec::new();
            for i in 0..count {
                let (mut k, mut v) = (std::ptr::null(), std::ptr::null());
                check(fidius_plugin_method_metadata_get(p, ADD, i, &mut k, &mut v, &mut err), err).unwrap();
                pairs.push((opt_str(k).unwrap(), opt_str(v).unwrap()));
            }
            pairs.sort();
            assert_eq!(pairs, [("kind".to_string(), "math".to_string()), ("pure".into(), "true".into())]);
            check(fidius_plugin_method_metadata_count(p, GREET, &mut count, &mut err), err).unwrap();
            assert_eq!(count, 0);
            let e = check(fidius_plugin_method_metadata_count(p, 99, &mut count, &mut err), err).unwrap_err();
            assert_eq!(e.status, Status::MethodIndex);
            let (mut k, mut v) = (std::ptr::null(), std::ptr::null());
            let e = check(fidius_plugin_method_metadata_get(p, ADD, 2, &mut k, &mut v, &mut err), err).unwrap_err();
            assert_eq!(e.status, Status::InvalidArgument);

            assert_eq!(fidius_plugin_trait_metadata_count(p), 2);
            let mut traits = Vec::new();
            for i in 0..2 {
                check(fidius_plugin_trait_metadata_get(p, i, &mut k, &mut v, &mut err), err).unwrap();
                traits.push((opt_str(k).unwrap(), opt_str(v).unwrap()));
            }
            traits.sort();
            assert_eq!(traits, [("owner".to_string(), "fixtures".to_string()), ("suite".into(), "native".into())]);
        }
    }
}

#[test]
fn host_expectations_name_both_values() {
    let f = native();
    let dir = search_path("expect_hash", &[&f.v5]);
    let host = TestHost::with(HostOptions {
        paths: &[&dir],
        interface_hash: Some(CALC_HASH),
        buffer_strategy: None,
        strict: false,
    });
    assert!(host.load("BasicCalc").is_ok());
    let err = host.load("ArenaImpl").err().unwrap();
    assert_eq!(err.status, Status::InterfaceHashMismatch);
    assert!(
        err.message.contains("0xd88192b198fae0e1") && err.message.contains("0x334aacfb9648fde5"),
        "{}",
        err.message
    );
    let found = host.discover();
    let names: Vec<String> = found.plugins().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"BasicCalc".to_string()) && !names.contains(&"ArenaImpl".to_string()));
    let skipped = found.skipped();
    let arena = skipped.iter().find(|s| s.plugin.as_deref() == Some("ArenaImpl")).expect("ArenaImpl listed as skipped");
    assert_eq!(arena.status, Status::InterfaceHashMismatch);

    let host = TestHost::with(HostOptions { paths: &[&dir], interface_hash: None, buffer_strategy: Some(2), strict: false });
    assert!(host.load("ArenaImpl").is_ok());
    let err = host.load("BasicCalc").err().unwrap();
    assert_eq!(err.status, Status::BufferStrategy);
    assert!(err.message.contains("PluginAllocated") && err.message.contains("Arena"), "{}", err.message);
}

#[test]
fn several_search_paths_and_load_by_path() {
    let f = native();
    let a = search_path("paths_a", &[&f.v5]);
    let b = search_path("paths_b", &[&f.v4]);
    let missing = a.join("does-not-exist");
    let host = TestHost::new(&[&missing, &a, &b]);
    assert!(host.load("BasicCalc").is_ok());
    assert!(host.load("LegacyCalc").is_ok());
    let err = host.load("NoSuchPlugin").err().unwrap();
    assert_eq!(err.status, Status::PluginNotFound);
    assert!(err.message.contains("NoSuchPlugin") && err.message.contains("paths_a"), "{}", err.message);
    let skipped = host.discover().skipped();
    assert!(skipped.iter().any(|s| s.path.ends_with("does-not-exist") && s.status == Status::Io), "{skipped:?}");

    // A file outside the search paths, by path; the name picks among several.
    let plugin = host.load_path(&f.v5, Some("OtherCalc")).unwrap();
    assert_eq!(plugin.info().name, "OtherCalc");
    let err = host.load_path(&f.v5, None).err().unwrap();
    assert_eq!(err.status, Status::InvalidArgument, "{}", err.message);
    let err = host.load_path(&f.v5, Some("Nope")).err().unwrap();
    assert_eq!(err.status, Status::PluginNotFound);
    let err = host.load_path(&a.join("missing.so"), None).err().unwrap();
    assert_eq!(err.status, Status::Io, "{}", err.message);
}

#[test]
fn the_library_stays_loaded_while_a_plugin_lives() {
    let f = native();
    let dir = search_path("lifetime", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("BasicCalc").unwrap();
    let other = host.load("OtherCalc").unwrap();
    drop(host);
    drop(other);
    // Host and sibling gone; this plugin's code must still be mapped.
    let hello: String = unwire(&plugin.call(GREET, &wire(&("still here",))).unwrap());
    assert_eq!(hello, "Hello, still here!");
}

#[test]
fn one_plugin_called_from_eight_threads() {
    let host = both_versions("threads");
    for name in ["BasicCalc", "LegacyCalc", "ArenaImpl"] {
        let plugin = host.load(name).unwrap();
        let arena = name == "ArenaImpl";
        std::thread::scope(|s| {
            for t in 0..8i64 {
                let plugin = &plugin;
                s.spawn(move || {
                    for i in 0..500i64 {
                        let sum: i64 = unwire(&plugin.call(0, &wire(&(t * 1000, i))).unwrap());
                        assert_eq!(sum, t * 1000 + i);
                        let payload = vec![t as u8; (i as usize % 7) * 1000];
                        let echo = if arena { A_ECHO } else { ECHO };
                        assert_eq!(plugin.call(echo, &payload).unwrap(), payload);
                    }
                });
            }
        });
    }
}

#[test]
fn one_host_loads_from_eight_threads() {
    let host = both_versions("host_threads");
    std::thread::scope(|s| {
        for t in 0..8i64 {
            let host = &host;
            s.spawn(move || {
                let name = if t % 2 == 0 { "BasicCalc" } else { "LegacyCalc" };
                let plugin = host.load(name).unwrap();
                let sum: i64 = unwire(&plugin.call(ADD, &wire(&(t, t))).unwrap());
                assert_eq!(sum, 2 * t);
                assert_eq!(host.discover().plugins().len(), 6);
            });
        }
    });
}
