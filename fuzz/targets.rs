//! The fuzz targets' bodies, shared by the libFuzzer binaries
//! (fuzz/fuzz_targets/*.rs, nightly, `cargo fuzz run <target>`) and the
//! corpus replay in the normal test suite (tests/fuzz_corpus.rs, stable).
//! Each takes arbitrary bytes; a panic is a bug. Properties that must hold
//! (round trips) are asserted.

#![allow(dead_code)]

use std::path::Path;

use fidius::schema::Schema;
use fidius::value::json::{args_to_wire, output_to_json};

/// `WIT text \0 JSON`: the JSON arguments of every method of every
/// interface are converted to wire bytes; whatever converts must come back
/// through wire -> JSON -> wire unchanged, argument by argument.
pub fn json_wire(data: &[u8]) {
    let Some((wit, json)) = split(data) else { return };
    let Ok(wit) = std::str::from_utf8(wit) else { return };
    let Ok(schema) = Schema::parse(wit, "fuzz") else { return };
    for interface in &schema.interfaces {
        for method in &interface.methods {
            let Ok(wire) = args_to_wire(&method.params, json) else { continue };
            // Argument by argument: value -> JSON -> value is the identity.
            if let [(name, ty)] = method.params.as_slice() {
                let text = output_to_json(Some(ty), &wire).unwrap_or_else(|e| panic!("{name}: wire of valid JSON does not read back: {}", e.message));
                let again = args_to_wire(&method.params, &[b"[", text.as_slice(), b"]"].concat())
                    .unwrap_or_else(|e| panic!("{name}: JSON written does not read back: {}", e.message));
                assert_eq!(wire, again, "{name}: round trip changed the value");
            }
        }
    }
}

/// `WIT text \0 wire bytes`: the bytes read as each method's result type;
/// what reads must write back to the same bytes.
pub fn wire_json(data: &[u8]) {
    let Some((wit, wire)) = split(data) else { return };
    let Ok(wit) = std::str::from_utf8(wit) else { return };
    let Ok(schema) = Schema::parse(wit, "fuzz") else { return };
    for interface in &schema.interfaces {
        for method in &interface.methods {
            let Some(ty) = &method.result else { continue };
            let Ok(text) = output_to_json(Some(ty), wire) else { continue };
            let param = [("value".to_string(), ty.clone())];
            let again = args_to_wire(&param, &[b"[", text.as_slice(), b"]"].concat())
                .unwrap_or_else(|e| panic!("{}: JSON written does not read back: {}", method.name, e.message));
            assert_eq!(wire, again.as_slice(), "{}: wire -> JSON -> wire changed the bytes", method.name);
        }
    }
}

/// A `package.toml`: parsed and validated, then asked for its runtime and directory name.
pub fn manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = fidius::package::Manifest::parse(text) {
        let _ = m.runtime();
        if let Ok(dir) = m.dir_name() {
            assert!(!dir.contains('/') && dir != ".." && dir != ".", "unsafe directory name {dir:?}");
        }
        let _ = m.info(Path::new("/fuzz/pkg"));
    }
}

/// A `.fid` archive, extracted in memory (nothing is written).
pub fn fid(data: &[u8]) {
    let _ = fidius::fid::Archive::parse(Path::new("fuzz.fid"), data);
}

/// The pre-dlopen ELF checks on a file held in memory.
pub fn elf(data: &[u8]) {
    let header = &data[..data.len().min(64)];
    if fidius::native::arch::check(header).is_ok() {
        let _ = fidius::native::arch::check_complete(header, data.len() as u64, |offset, len| {
            let start = usize::try_from(offset).map_err(|_| std::io::ErrorKind::UnexpectedEof)?;
            data.get(start..start.saturating_add(len)).map(<[u8]>::to_vec).ok_or_else(|| std::io::ErrorKind::UnexpectedEof.into())
        });
    }
}

/// A trusted-key file's bytes.
pub fn key(data: &[u8]) {
    let _ = fidius::signing::key_from_bytes(data);
}

/// A C-API session in fuzzer-chosen order: builders, hosts, load options,
/// discovery, loads of the native fixture plugins (from
/// target/fixtures/debug, where the test harness builds them), calls with
/// fuzzed methods, formats and inputs, describe, errors; with NULLs, wrong
/// handle kinds, bad UTF-8 and hostile strings. Every handle made is freed
/// exactly once; a status and error object must agree.
pub fn capi_sequence(data: &[u8]) {
    use fidius::capi::*;
    use std::ffi::CString;
    use std::ptr;

    fn checked(status: fidius::Status, err: *mut fidius_error) {
        unsafe {
            assert_eq!(status == fidius::Status::Ok, err.is_null(), "status {status:?} and error object disagree");
            if !err.is_null() {
                assert_eq!(fidius_error_status(err), status);
                assert!(!fidius_error_message(err).is_null());
                fidius_error_free(err);
            }
        }
    }
    let fixtures = [
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/fixtures/debug"),
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fixtures/debug"),
    ];
    let names: [&[u8]; 7] = [b"BasicCalc", b"LegacyCalc", b"ArenaImpl", b"TypedImpl", b"KvUserImpl", b"nope", b"Basic\xffCalc"];
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let mut builder = unsafe { fidius_host_builder_new() };
    let mut hosts: Vec<*mut fidius_host> = Vec::new();
    let mut plugins: Vec<*mut fidius_plugin> = Vec::new();
    let options = unsafe { fidius_load_options_new() };
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        let mut err = ptr::null_mut();
        unsafe {
            match op % 12 {
                0 => {
                    let path = match arg % 3 {
                        0 => CString::new(fixtures[0]).unwrap(),
                        1 => CString::new(fixtures[1]).unwrap(),
                        _ => CString::new("/nonexistent/\u{1F980}").unwrap(),
                    };
                    checked(fidius_host_builder_add_search_path(builder, path.as_ptr(), &mut err), err);
                }
                1 => {
                    // Invalid UTF-8, NULL, and a wrong handle kind.
                    let bad = [b'/', 0xff, 0xfe, 0];
                    let target = if arg % 2 == 0 { builder } else { hosts.first().copied().unwrap_or(ptr::null_mut()).cast() };
                    checked(fidius_host_builder_add_search_path(target, bad.as_ptr().cast(), &mut err), err);
                    let mut err = ptr::null_mut();
                    checked(fidius_host_builder_add_search_path(builder, ptr::null(), &mut err), err);
                }
                2 => {
                    let mut host = ptr::null_mut();
                    let status = fidius_host_builder_build(builder, &mut host, &mut err);
                    checked(status, err);
                    if !host.is_null() {
                        hosts.push(host);
                    }
                }
                3 => {
                    fidius_host_builder_free(builder);
                    builder = fidius_host_builder_new();
                }
                4 => {
                    if let Some(&host) = hosts.get(arg as usize % hosts.len().max(1)) {
                        let mut d = ptr::null_mut();
                        checked(fidius_host_discover(host, &mut d, &mut err), err);
                        for i in 0..fidius_discovery_plugin_count(d) + 1 {
                            let info = fidius_discovery_plugin(d, i);
                            let _ = fidius_plugin_info_method_count(info);
                            let _ = fidius_plugin_info_name(info);
                        }
                        fidius_discovery_free(d);
                    }
                }
                5 | 6 => {
                    let host = hosts.get(arg as usize % hosts.len().max(1)).copied().unwrap_or(ptr::null_mut());
                    let name = names[next().unwrap_or(0) as usize % names.len()];
                    let name = CString::new(name).unwrap();
                    let opts = if op % 12 == 6 { options } else { ptr::null_mut() };
                    let mut plugin = ptr::null_mut();
                    checked(fidius_host_load(host, name.as_ptr(), opts, &mut plugin, &mut err), err);
                    if !plugin.is_null() {
                        plugins.push(plugin);
                    }
                }
                7 | 8 => {
                    let plugin = plugins.get(arg as usize % plugins.len().max(1)).copied().unwrap_or(ptr::null_mut());
                    let method = next().unwrap_or(0) as u32 % 16;
                    let format = next().unwrap_or(0) as u32 % 3;
                    let len = next().unwrap_or(0) as usize;
                    let input: Vec<u8> = (0..len).map_while(|_| next()).collect();
                    let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                    checked(fidius_plugin_call(plugin, method, format, input.as_ptr(), input.len(), &mut out, &mut err), err);
                    fidius_bytes_free(&mut out);
                }
                9 => {
                    let plugin = plugins.get(arg as usize % plugins.len().max(1)).copied().unwrap_or(ptr::null_mut());
                    let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                    let status = fidius_plugin_describe(plugin, &mut out, &mut err);
                    checked(status, err);
                    if status == fidius::Status::Ok {
                        let doc = std::slice::from_raw_parts(out.data, out.len);
                        assert!(serde_json_ok(doc), "describe returned invalid JSON");
                    }
                    fidius_bytes_free(&mut out);
                }
                10 => {
                    if !plugins.is_empty() {
                        fidius_plugin_free(plugins.swap_remove(arg as usize % plugins.len()));
                    }
                }
                _ => {
                    if !hosts.is_empty() {
                        fidius_host_free(hosts.swap_remove(arg as usize % hosts.len()));
                    }
                    checked(fidius_load_options_set_timeout_ms(options, arg as u64, &mut err), err);
                }
            }
        }
    }
    unsafe {
        plugins.into_iter().for_each(|p| fidius_plugin_free(p));
        hosts.into_iter().for_each(|h| fidius_host_free(h));
        fidius_host_builder_free(builder);
        fidius_load_options_free(options);
    }
}

/// Just enough of a JSON check for describe's output (no JSON crate here).
fn serde_json_ok(doc: &[u8]) -> bool {
    doc.first() == Some(&b'{') && doc.last() == Some(&b'}') && std::str::from_utf8(doc).is_ok()
}

fn split(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = data.iter().position(|&b| b == 0)?;
    Some((&data[..at], &data[at + 1..]))
}

/// Every target, by name (the corpus directories are named the same).
pub const TARGETS: [(&str, fn(&[u8])); 7] = [
    ("json_wire", json_wire),
    ("wire_json", wire_json),
    ("manifest", manifest),
    ("fid", fid),
    ("elf", elf),
    ("key", key),
    ("capi_sequence", capi_sequence),
];
