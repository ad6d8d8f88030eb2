//! Bad inputs through the C entry points: broken and hostile libraries,
//! NULL pointers, invalid UTF-8, wrong handles. Each gives a clear status
//! and leaves the host usable.

mod common;

use std::ptr;

use common::*;
use fidius::capi::*;
use fidius::Status;

/// A search path with one good plugin library and every kind of broken one.
fn zoo(name: &str) -> std::path::PathBuf {
    let f = native();
    let dir = search_path(name, &[&f.v5]);
    std::fs::copy(hostile("not_a_plugin", &[]), dir.join("libnot_a_plugin.so")).unwrap();
    std::fs::copy(hostile("bad_registry", &[]), dir.join("libbad_magic.so")).unwrap();
    std::fs::copy(hostile("bad_registry", &["REGISTRY_VERSION=2"]), dir.join("libregistry_v2.so")).unwrap();
    std::fs::copy(hostile("handmade", &[]), dir.join("libhandmade.so")).unwrap();
    let real = std::fs::read(&f.v5).unwrap();
    std::fs::write(dir.join("libtruncated.so"), &real[..4096]).unwrap();
    std::fs::write(dir.join("libtiny.so"), b"\x7fELF").unwrap();
    let mut foreign = real.clone();
    foreign[18..20].copy_from_slice(&0xb7u16.to_le_bytes()); // e_machine = aarch64
    std::fs::write(dir.join("libforeign.so"), foreign).unwrap();
    std::fs::write(dir.join("README.txt"), "not a candidate").unwrap();
    dir
}

fn reason<'a>(skipped: &'a [SkippedEntry], file: &str) -> &'a SkippedEntry {
    skipped.iter().find(|s| s.path.ends_with(file)).unwrap_or_else(|| panic!("{file} not listed: {skipped:#?}"))
}

#[test]
fn discovery_says_why_each_file_was_passed_over() {
    let dir = zoo("zoo_discover");
    let host = TestHost::new(&[&dir]);
    let found = host.discover();
    let mut names: Vec<String> = found.plugins().into_iter().map(|p| p.name).collect();
    names.sort();
    // The good library and the good descriptor of the hand-made one.
    assert_eq!(names, ["ArenaImpl", "BasicCalc", "ConfiguredGreeter", "HollowCalc", "OtherCalc", "Unconfigurable"]);
    let skipped = found.skipped();
    assert_eq!(reason(&skipped, "libnot_a_plugin.so").status, Status::NotAPlugin);
    assert!(reason(&skipped, "libnot_a_plugin.so").reason.contains("fidius_get_registry"));
    assert_eq!(reason(&skipped, "libbad_magic.so").status, Status::InvalidMagic);
    assert!(reason(&skipped, "libbad_magic.so").reason.contains("FIDIUS"));
    let v2 = reason(&skipped, "libregistry_v2.so");
    assert_eq!(v2.status, Status::RegistryVersion);
    assert!(v2.reason.contains("registry version is 2"), "{}", v2.reason);
    assert_eq!(reason(&skipped, "libtruncated.so").status, Status::LibraryLoad);
    assert_eq!(reason(&skipped, "libtiny.so").status, Status::NotAPlugin);
    let foreign = reason(&skipped, "libforeign.so");
    assert_eq!(foreign.status, Status::ArchitectureMismatch);
    assert!(foreign.reason.contains("aarch64") && foreign.reason.contains("x86_64"), "{}", foreign.reason);
    let future = skipped.iter().find(|s| s.plugin.as_deref() == Some("FutureCalc")).expect("FutureCalc skipped");
    assert_eq!(future.status, Status::AbiVersion);
    assert!(future.reason.contains("999") && future.reason.contains("400") && future.reason.contains("500"));
    let short = skipped.iter().find(|s| s.plugin.as_deref() == Some("ShortDescriptor")).unwrap();
    assert_eq!(short.status, Status::InvalidDescriptor);
    assert!(short.reason.contains("descriptor_size is 104"), "{}", short.reason);
    assert!(!skipped.iter().any(|s| s.path.ends_with("README.txt")), "non-library files are not candidates");
}

#[test]
fn broken_neighbours_do_not_stop_a_good_plugin_loading() {
    let dir = zoo("zoo_load");
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("BasicCalc").unwrap();
    let sum: i64 = unwire(&plugin.call(0, &wire(&(1i64, 2i64))).unwrap());
    assert_eq!(sum, 3);
    // "Why isn't my plugin found?": the answer lists what was passed over.
    let err = host.load("Missing").err().unwrap();
    assert_eq!(err.status, Status::PluginNotFound);
    assert!(err.message.contains("libforeign.so") && err.message.contains("aarch64"), "{}", err.message);
    // A descriptor that failed validation is reported as such, with its values.
    let err = host.load("FutureCalc").err().unwrap();
    assert_eq!(err.status, Status::AbiVersion);
    assert!(err.message.contains("999"), "{}", err.message);
    // Strict: the first broken library fails the load.
    let strict = TestHost::with(HostOptions { paths: &[&dir], interface_hash: None, buffer_strategy: None, strict: true });
    let err = strict.load("BasicCalc").err().unwrap();
    assert_ne!(err.status, Status::Ok);
    assert!(err.message.contains("lib"), "{}", err.message);
}

#[test]
fn hand_made_descriptors_beyond_what_fidius_emits() {
    let lib = hostile("handmade", &[]);
    let dir = search_path("handmade", &[&lib]);
    let host = TestHost::new(&[&dir]);
    let hollow = host.load("HollowCalc").unwrap();
    assert_eq!(hollow.call(0, &7i64.to_le_bytes()).unwrap(), 7i64.to_le_bytes());
    let err = hollow.call(1, &[]).unwrap_err();
    assert_eq!(err.status, Status::NotImplemented, "{}", err.message);
    let err = hollow.call(2, &[]).unwrap_err();
    assert_eq!(err.status, Status::UnknownStatus);
    assert!(err.message.contains("status 7"), "{}", err.message);
    let err = hollow.call(3, &[]).unwrap_err();
    assert_eq!(err.status, Status::PluginError);
    assert_eq!(err.plugin_code.as_deref(), Some("UNDECODABLE"));
    assert_eq!(hollow.call(0, &[]).unwrap(), b"", "still serving, and empty input is never a NULL pointer");

    let err = host.load("Unconfigurable").err().unwrap();
    assert_eq!(err.status, Status::ConfigRejected, "a NULL instance is a load error, not a crash later");
    let err = host.load("ShortDescriptor").err().unwrap();
    assert_eq!(err.status, Status::InvalidDescriptor);
}

#[test]
fn null_pointers_are_refused_everywhere() {
    let f = native();
    let dir = search_path("nulls", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    let plugin = host.load("BasicCalc").unwrap();
    unsafe {
        let mut err = ptr::null_mut();
        let name = cstr("BasicCalc");
        let mut out = ptr::null_mut();
        let e = check(fidius_host_load(ptr::null(), name.as_ptr(), ptr::null(), &mut out, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        assert!(e.message.contains("fidius_host is NULL"), "{}", e.message);
        let e = check(fidius_host_load(host.0, ptr::null(), ptr::null(), &mut out, &mut err), err).unwrap_err();
        assert!(e.status == Status::NullArgument && e.message.contains("name"), "{}", e.message);
        let e = check(fidius_host_load(host.0, name.as_ptr(), ptr::null(), ptr::null_mut(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        // The error out-parameter itself may be NULL: the status still tells.
        assert_eq!(fidius_host_load(ptr::null(), ptr::null(), ptr::null(), ptr::null_mut(), ptr::null_mut()), Status::NullArgument);

        let mut bytes = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        let e = check(fidius_plugin_call(ptr::null(), 0, 0, ptr::null(), 0, &mut bytes, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let e = check(fidius_plugin_call(plugin.0, 0, 0, ptr::null(), 16, &mut bytes, &mut err), err).unwrap_err();
        assert!(e.status == Status::NullArgument && e.message.contains("length is 16"), "{}", e.message);
        let e = check(fidius_plugin_call(plugin.0, 0, 0, ptr::null(), 0, ptr::null_mut(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let mut d = ptr::null_mut();
        assert_eq!(fidius_host_discover(ptr::null(), &mut d, ptr::null_mut()), Status::NullArgument);
        assert!(d.is_null());
        let b = fidius_host_builder_new();
        let e = check(fidius_host_builder_add_search_path(b, ptr::null(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let e = check(fidius_host_builder_build(b, ptr::null_mut(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let e = check(fidius_host_builder_add_trusted_key(b, ptr::null(), 32, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        fidius_host_builder_free(b);

        // Accessors return neutral values; free functions ignore NULL.
        assert!(fidius_plugin_get_info(ptr::null()).is_null());
        assert!(fidius_plugin_info_name(ptr::null()).is_null());
        assert_eq!(fidius_plugin_info_method_count(ptr::null()), 0);
        assert_eq!(fidius_discovery_plugin_count(ptr::null()), 0);
        assert!(fidius_error_message(ptr::null()).is_null());
        assert_eq!(fidius_error_status(ptr::null()), Status::NullArgument);
        fidius_plugin_free(ptr::null_mut());
        fidius_host_free(ptr::null_mut());
        fidius_discovery_free(ptr::null_mut());
        fidius_error_free(ptr::null_mut());
        fidius_bytes_free(ptr::null_mut());
        fidius_load_options_free(ptr::null_mut());
        fidius_host_builder_free(ptr::null_mut());
    }
    let sum: i64 = unwire(&plugin.call(0, &wire(&(1i64, 1i64))).unwrap());
    assert_eq!(sum, 2, "host and plugin unharmed");
}

#[test]
fn invalid_utf8_is_refused() {
    let f = native();
    let dir = search_path("utf8", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    let bad = b"Basic\xffCalc\0";
    unsafe {
        let mut err = ptr::null_mut();
        let mut out = ptr::null_mut();
        let e = check(fidius_host_load(host.0, bad.as_ptr().cast(), ptr::null(), &mut out, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidUtf8);
        assert!(e.message.contains("name"), "{}", e.message);
        let b = fidius_host_builder_new();
        let e = check(fidius_host_builder_add_search_path(b, bad.as_ptr().cast(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidUtf8);
        fidius_host_builder_free(b);
    }
    assert!(host.load("BasicCalc").is_ok());
}

#[test]
fn wrong_handles_and_used_after_free_handles_are_detected() {
    let f = native();
    let dir = search_path("handles", &[&f.v5]);
    let host = TestHost::new(&[&dir]);
    unsafe {
        let mut err = ptr::null_mut();
        let mut bytes = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
        // A host passed where a plugin is expected.
        let e = check(fidius_plugin_call(host.0.cast(), 0, 0, ptr::null(), 0, &mut bytes, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidHandle);
        assert!(e.message.contains("fidius_plugin"), "{}", e.message);
        // Freeing a handle of the wrong type does nothing.
        fidius_plugin_free(host.0.cast());
        assert!(host.load("BasicCalc").is_ok(), "the host survived");
        // Options used after free.
        let opts = fidius_load_options_new();
        fidius_load_options_free(opts);
        let e = check(fidius_load_options_set_config(opts, ptr::null(), 0, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidHandle, "{}", e.message);
    }
}

#[test]
fn bad_builder_settings() {
    unsafe {
        let b = fidius_host_builder_new();
        let mut err = ptr::null_mut();
        let e = check(fidius_host_builder_set_load_policy(b, 7, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        let e = check(fidius_host_builder_set_buffer_strategy(b, 0, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        let e = check(fidius_host_builder_add_trusted_key(b, [0u8; 31].as_ptr(), 31, &mut err), err).unwrap_err();
        assert!(e.status == Status::InvalidArgument && e.message.contains("32"), "{}", e.message);
        let missing = cstr("/nonexistent/key.public");
        let e = check(fidius_host_builder_add_trusted_key_file(b, missing.as_ptr(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::Io);
        check(fidius_host_builder_set_require_signature(b, true, &mut err), err).unwrap();
        let mut host = ptr::null_mut();
        let e = check(fidius_host_builder_build(b, &mut host, &mut err), err).unwrap_err();
        assert!(e.status == Status::InvalidArgument && e.message.contains("trusted key"), "{}", e.message);
        assert!(host.is_null());
        fidius_host_builder_free(b);
    }
}

#[test]
fn version_and_status_names() {
    unsafe {
        assert_eq!(opt_str(fidius_version()).unwrap(), env!("CARGO_PKG_VERSION"));
        assert_eq!(opt_str(fidius_status_name(42)).unwrap(), "plugin error");
        assert_eq!(opt_str(fidius_status_name(0)).unwrap(), "ok");
        assert_eq!(opt_str(fidius_status_name(12345)).unwrap(), "unknown status");
    }
    // Every status has a distinct name and a stable value.
    let mut names: Vec<&std::ffi::CStr> = Status::ALL.iter().map(|s| s.name()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), Status::ALL.len());
    assert_eq!(Status::PluginError as i32, 42);
    assert_eq!(Status::InternalPanic as i32, 5);
}
