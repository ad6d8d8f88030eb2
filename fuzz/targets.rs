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
            // The fast path, where it answers, answers as the full reader does.
            let full = fidius::value::json::args_to_wire_full(&method.params, json);
            if let Some(fast) = fidius::value::json::args_to_wire_fast(&method.params, json) {
                match &full {
                    Ok(w) => assert_eq!(&fast, w, "{}: the fast path wrote other bytes", method.name),
                    Err(e) => panic!("{}: the fast path accepted what the full reader refuses: {}", method.name, e.message),
                }
            }
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

/// A native registry synthesized from the input, as a hostile library's
/// statics would be (every pointer NULL or to real memory of the ABI's
/// size, every value the fuzzer's), validated the way a loaded library's
/// is. No dlopen. An accepted descriptor must be one the host can call.
pub fn descriptor(data: &[u8]) {
    use fidius::native::abi::{DescriptorTail500, MetaKv, MethodMetaEntry, PluginDescriptor, PluginRegistry};
    use std::ffi::c_void;
    use std::ptr;

    // Stand-ins for a descriptor's function slots: validation only checks
    // that they are present and never calls them (no dlopen, no calls).
    unsafe extern "C" fn free_buffer(_: *mut u8, _: usize) {}
    unsafe extern "C" fn construct(_: *const u8, _: u32) -> *mut c_void {
        ptr::null_mut()
    }
    unsafe extern "C" fn destroy(_: *mut c_void) {}

    /// A 400 descriptor and its 500 tail, laid out as the ABI has them.
    #[repr(C)]
    struct Full {
        d: PluginDescriptor,
        tail: DescriptorTail500,
    }

    let mut bytes = Bytes(data);
    // Strings: NUL-terminated pieces of the input (maybe not UTF-8).
    let strings: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            let len = bytes.byte() as usize % 24;
            bytes.take(len).iter().map(|&b| b.max(1)).chain([0]).collect()
        })
        .collect();
    let string = |bytes: &mut Bytes| match bytes.byte() % 5 {
        4 => ptr::null(),
        i => strings[i as usize].as_ptr().cast(),
    };
    let plugin_count = bytes.byte() as u32 % 4;
    let mut kvs_store: Vec<Vec<MetaKv>> = Vec::new();
    let mut method_meta_store: Vec<Vec<MethodMetaEntry>> = Vec::new();
    let vtable = [ptr::null::<c_void>(); 64];
    let mut fulls: Vec<Box<Full>> = Vec::new();
    for _ in 0..plugin_count {
        let method_count = match bytes.byte() % 4 {
            0 => bytes.u32(),
            _ => bytes.byte() as u32 % 8,
        };
        // Metadata arrays as long as the descriptor claims (the ABI's
        // promise), or NULL; counts in them are the fuzzer's.
        let kvs = |bytes: &mut Bytes, store: &mut Vec<Vec<MetaKv>>| -> (*const MetaKv, u32) {
            let claimed = if bytes.byte() % 8 == 0 { bytes.u32() } else { bytes.byte() as u32 % 4 };
            if claimed > 64 || bytes.byte() % 6 == 0 {
                return (ptr::null(), claimed);
            }
            let list: Vec<MetaKv> = (0..claimed).map(|_| MetaKv { key: string(bytes), value: string(bytes) }).collect();
            let p = list.as_ptr();
            store.push(list);
            (p, claimed)
        };
        let method_metadata = if method_count <= 64 && bytes.byte() % 3 != 0 {
            let entries: Vec<MethodMetaEntry> = (0..method_count)
                .map(|_| {
                    let (kvs, kv_count) = kvs(&mut bytes, &mut kvs_store);
                    MethodMetaEntry { kvs, kv_count }
                })
                .collect();
            let p = entries.as_ptr();
            method_meta_store.push(entries);
            p
        } else {
            ptr::null()
        };
        let (trait_metadata, trait_metadata_count) = kvs(&mut bytes, &mut kvs_store);
        let abi_version = match bytes.byte() % 4 {
            0 => 400,
            1 | 2 => 500,
            _ => bytes.u32(),
        };
        let descriptor_size = match bytes.byte() % 4 {
            0 => 104,
            1 | 2 => 120,
            _ => bytes.u32(),
        };
        fulls.push(Box::new(Full {
            d: PluginDescriptor {
                descriptor_size,
                abi_version,
                interface_name: string(&mut bytes),
                interface_hash: bytes.u64(),
                interface_version: bytes.u32(),
                capabilities: bytes.u64(),
                buffer_strategy: bytes.byte() % 4,
                plugin_name: string(&mut bytes),
                // A real vtable only as long as a plausible method count.
                vtable: if method_count <= 64 && bytes.byte() % 5 != 0 { vtable.as_ptr().cast() } else { ptr::null() },
                free_buffer: (bytes.byte() % 4 != 0).then_some(free_buffer as _),
                method_count,
                method_metadata,
                trait_metadata,
                trait_metadata_count,
            },
            tail: DescriptorTail500 {
                construct: (bytes.byte() % 4 != 0).then_some(construct as _),
                destroy: (bytes.byte() % 4 != 0).then_some(destroy as _),
            },
        }));
    }
    let mut list: Vec<*const PluginDescriptor> = fulls.iter().map(|f| &f.d as *const PluginDescriptor).collect();
    if bytes.byte() % 8 == 0 && !list.is_empty() {
        list[0] = ptr::null();
    }
    let magic = if bytes.byte() % 8 == 0 { [bytes.byte(); 8] } else { *b"FIDIUS\0\0" };
    let registry = PluginRegistry {
        magic,
        registry_version: if bytes.byte() % 8 == 0 { bytes.u32() } else { 1 },
        // Never more than the list holds: a registry's promise.
        plugin_count: list.len() as u32,
        descriptors: if list.is_empty() && bytes.byte() % 2 == 0 { ptr::null() } else { list.as_ptr() },
    };
    let registry = if bytes.byte() % 16 == 0 { ptr::null() } else { &registry as *const PluginRegistry };
    let Ok(entries) = (unsafe { fidius::native::library::read_entries(registry, Path::new("fuzz.so")) }) else { return };
    assert_eq!(entries.len(), list.len());
    for (entry, full) in entries.iter().zip(&fulls) {
        let Ok(entry) = entry else { continue };
        let d = &full.d;
        assert!(matches!(d.abi_version, 400 | 500), "accepted ABI {}", d.abi_version);
        assert!(d.descriptor_size >= if d.abi_version == 500 { 120 } else { 104 });
        assert!(matches!(d.buffer_strategy, 1 | 2));
        assert!(d.method_count <= 4096 && (d.method_count == 0 || !d.vtable.is_null()));
        assert_eq!(entry.info.method_count, d.method_count);
        assert_eq!(entry.method_metadata.len(), d.method_count as usize);
        assert!(!d.plugin_name.is_null() && !d.interface_name.is_null());
    }
}

/// Package signatures: `u8 file count`, then per file `u8 path length,
/// path, u16_le content length, content`, then the signature bytes. The
/// files signed with a fixed key must verify; the fuzzer's own signature
/// must not, unless it is that exact signature; and any change to the files
/// must break the real one.
pub fn signature(data: &[u8]) {
    use ed25519_dalek::{Signer, SigningKey};
    use fidius::signing::{package_digest, verify_package, PackageContent};

    let key = SigningKey::from_bytes(&[7u8; 32]);
    let trusted = [key.verifying_key()];
    let mut bytes = Bytes(data);
    let mut files = PackageContent::new();
    for _ in 0..bytes.byte() % 6 {
        let len = bytes.byte() as usize % 32;
        let path = String::from_utf8_lossy(bytes.take(len)).into_owned();
        let len = bytes.u16() as usize;
        files.insert(path, bytes.take(len).to_vec());
    }
    let theirs = bytes.rest();
    let origin = Path::new("/fuzz/pkg");
    let real = key.sign(&package_digest(&files)).to_bytes();
    assert!(verify_package(origin, &files, Some(&real), &trusted).is_ok(), "a real signature was refused");
    let verdict = verify_package(origin, &files, Some(theirs), &trusted);
    assert_eq!(verdict.is_ok(), theirs == real, "a signature the key did not make was accepted");
    assert!(verify_package(origin, &files, None, &trusted).is_err());
    // One more file, or one byte more in a file: the real signature fails.
    let mut changed = files.clone();
    match changed.iter_mut().next() {
        Some((_, content)) => content.push(0),
        None => {
            changed.insert("added".into(), Vec::new());
        }
    }
    assert!(verify_package(origin, &changed, Some(&real), &trusted).is_err(), "a changed package kept its signature");
    for path in files.keys() {
        let _ = fidius::signing::is_signed_path(path);
    }
}

/// What a Python plugin's runner writes to the host: reply frames, read as
/// the host reads its socket, each taken as a call's outcome.
pub fn python_reply(data: &[u8]) {
    let _ = fidius::python::read_replies(data);
}

/// A reader of fuzz input that never fails: past the end it yields zeros.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.0.split_at(n.min(self.0.len()));
        self.0 = tail;
        head
    }
    fn byte(&mut self) -> u8 {
        self.take(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | (self.u32() as u64) << 32
    }
    fn rest(&mut self) -> &'a [u8] {
        self.take(usize::MAX)
    }
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
    let names: [&[u8]; 9] =
        [b"BasicCalc", b"LegacyCalc", b"ArenaImpl", b"TypedImpl", b"KvUserImpl", b"Streamer", b"Counter", b"nope", b"Basic\xffCalc"];
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    let mut builder = fidius_host_builder_new();
    let mut hosts: Vec<*mut fidius_host> = Vec::new();
    let mut plugins: Vec<*mut fidius_plugin> = Vec::new();
    let options = fidius_load_options_new();
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        let mut err = ptr::null_mut();
        unsafe {
            match op % 14 {
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
                    let opts = if op % 14 == 6 { options } else { ptr::null_mut() };
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
                    let mut input: Vec<u8> = (0..len).map_while(|_| next()).collect();
                    // The Arena fixtures' big(n) makes the plugin itself
                    // allocate n bytes (up to 4 GiB): in-process code a host
                    // cannot bound, so n is kept under 64 KiB here.
                    let info = fidius_plugin_get_info(plugin);
                    let name = fidius_plugin_info_name(info);
                    let arena = !name.is_null() && matches!(std::ffi::CStr::from_ptr(name).to_bytes(), b"ArenaImpl" | b"LegacyArena");
                    if arena && method == 2 && input.len() >= 4 {
                        input[2] = 0;
                        input[3] = 0;
                    }
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
                12 => {
                    // A stream (the fuzzer's method, format and input), a
                    // few items, maybe a cancel, then freed.
                    let plugin = plugins.get(arg as usize % plugins.len().max(1)).copied().unwrap_or(ptr::null_mut());
                    let method = next().unwrap_or(0) as u32 % 12;
                    let format = next().unwrap_or(0) as u32 % 3;
                    let len = next().unwrap_or(0) as usize % 64;
                    let input: Vec<u8> = (0..len).map_while(|_| next()).collect();
                    let mut stream = ptr::null_mut();
                    let status =
                        fidius_plugin_stream(plugin, method, format, input.as_ptr(), input.len(), None, ptr::null_mut(), None, &mut stream, &mut err);
                    checked(status, err);
                    assert_eq!(status == fidius::Status::Ok, !stream.is_null());
                    let pulls = next().unwrap_or(0) % 8;
                    for i in 0..pulls {
                        if i == 3 {
                            let mut err = ptr::null_mut();
                            checked(fidius_stream_cancel(stream, &mut err), err);
                        }
                        let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                        let mut err = ptr::null_mut();
                        let status = fidius_stream_next(stream, &mut item, &mut err);
                        if status == fidius::Status::StreamEnd {
                            assert!(err.is_null() && item.data.is_null(), "the end carries no error and no item");
                        } else {
                            checked(status, err);
                        }
                        fidius_bytes_free(&mut item);
                    }
                    fidius_stream_free(stream);
                }
                13 => {
                    // Wrong handle kinds and NULLs on the stream functions.
                    let wrong = plugins.first().copied().unwrap_or(ptr::null_mut()).cast::<fidius_stream>();
                    let mut item = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
                    let status = fidius_stream_next(wrong, &mut item, &mut err);
                    assert_ne!(status, fidius::Status::Ok);
                    if !err.is_null() {
                        fidius_error_free(err);
                    }
                    let mut err = ptr::null_mut();
                    checked(fidius_stream_cancel(wrong, &mut err), err);
                    fidius_stream_free(wrong);
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
pub const TARGETS: [(&str, fn(&[u8])); 10] = [
    ("json_wire", json_wire),
    ("wire_json", wire_json),
    ("manifest", manifest),
    ("fid", fid),
    ("elf", elf),
    ("key", key),
    ("capi_sequence", capi_sequence),
    ("descriptor", descriptor),
    ("signature", signature),
    ("python_reply", python_reply),
];
