//! The persistent compilation cache, through the C ABI: one test, in a
//! binary of its own, so that no other host keeps the process's WASM
//! engine (and its in-memory compiled components) alive between phases:
//! with every host freed, a load reads the cache directory or compiles.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const ADD: u32 = 0;

fn cached_host(dirs: &[&Path], cache: &Path) -> Result<TestHost, Failure> {
    let cache = cstr(cache.to_str().unwrap());
    let mut failure = None;
    let host = TestHost::configured(dirs, |b| unsafe {
        let mut err = std::ptr::null_mut();
        if let Err(f) = check(fidius_host_builder_set_compile_cache(b, cache.as_ptr(), &mut err), err) {
            failure = Some(f);
        }
    });
    match failure {
        Some(f) => Err(f),
        None => Ok(host),
    }
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache).unwrap().map(|e| e.unwrap().path()).collect();
    found.sort();
    found
}

/// An entry as the cache writes it: `FIDIUSC1`, SHA-256 of the `.cwasm`, the `.cwasm`.
fn framed(cwasm: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    [&b"FIDIUSC1"[..], &sha2::Sha256::digest(cwasm), cwasm].concat()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn compiled_components_persist_in_a_private_cache_directory() {
    let dir = wasm_search_path("cache_pkgs", &["calc"], |_, t| t.to_string());
    let root = scratch("cache_root");
    let cache = root.join("compiled");

    // 1. A miss: the directory is made (0700), the component compiled and stored (0600).
    {
        let host = cached_host(&[&dir], &cache).unwrap();
        assert_eq!(mode(&cache), 0o700);
        let calc = host.load("calc").unwrap();
        assert_eq!(calc.json(ADD, "[20, 22]").unwrap(), json!(42));
        assert!(calc.warnings().is_empty(), "{:?}", calc.warnings());
    }
    let stored = entries(&cache);
    assert_eq!(stored.len(), 1, "one entry, no partial files: {stored:?}");
    let entry = stored[0].clone();
    assert!(entry.extension().is_some_and(|e| e == "cwasm"));
    assert_eq!(mode(&entry), 0o600);

    // 2. A hit is what loads: an entry holding another component's machine
    // code (the hostile one, precompiled for this engine) makes "calc" that
    // component. That is why the directory must be private.
    let hostile = wat::parse_file(repo().join("tests/hostile/hostile.wat")).unwrap();
    let hostile_cwasm = TestHost::new(&[]).precompile(&hostile);
    std::fs::write(&entry, framed(&hostile_cwasm)).unwrap();
    {
        let host = cached_host(&[&dir], &cache).unwrap();
        let swapped = host.load("calc").unwrap();
        assert!(swapped.index("ok").is_ok(), "the cached machine code was deserialized");
        assert!(swapped.index("add").is_err());
    }

    // 3. An entry others could have written (0644) is never read; it is replaced.
    std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o644)).unwrap();
    {
        let host = cached_host(&[&dir], &cache).unwrap();
        let calc = host.load("calc").unwrap();
        assert_eq!(calc.json(ADD, "[1, 2]").unwrap(), json!(3), "compiled from calc.wasm");
    }
    assert_eq!(mode(&entry), 0o600, "replaced by a private entry");
    assert_ne!(std::fs::read(&entry).unwrap(), framed(&hostile_cwasm));

    // 4. A corrupt entry is compiled afresh and replaced, with a warning.
    std::fs::write(&entry, b"not a cwasm").unwrap();
    {
        let host = cached_host(&[&dir], &cache).unwrap();
        let calc = host.load("calc").unwrap();
        assert_eq!(calc.json(ADD, "[2, 2]").unwrap(), json!(4));
        let warnings = calc.warnings();
        assert!(warnings.iter().any(|w| w.contains("not used")), "{warnings:?}");
    }
    assert!(std::fs::metadata(&entry).unwrap().len() > 1000, "a valid entry again");

    // 4b. A truncated entry, and one with a byte changed inside the machine
    // code (which wasmtime's own checks would take), are caught by the
    // checksum stored with them: compiled afresh and replaced, with a warning.
    let good = std::fs::read(&entry).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    for (what, bad) in [("truncated", good[..good.len() / 2].to_vec()), ("flipped", flipped)] {
        std::fs::write(&entry, &bad).unwrap();
        let host = cached_host(&[&dir], &cache).unwrap();
        let calc = host.load("calc").unwrap();
        assert_eq!(calc.json(ADD, "[3, 4]").unwrap(), json!(7), "{what}");
        let warnings = calc.warnings();
        assert!(warnings.iter().any(|w| w.contains("truncated or corrupt") && w.contains("checksum")), "{what}: {warnings:?}");
        assert_eq!(std::fs::read(&entry).unwrap(), good, "{what}: replaced by the same good entry");
    }

    // 5. A directory that became writable by others after the host was
    // built is not used: the load compiles without it and says why, and the
    // (again hostile) entry in it is not read.
    std::fs::write(&entry, framed(&hostile_cwasm)).unwrap();
    {
        let host = cached_host(&[&dir], &cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
        let calc = host.load("calc").unwrap();
        assert_eq!(calc.json(ADD, "[3, 4]").unwrap(), json!(7), "compiled, the cache not read");
        let warnings = calc.warnings();
        assert!(warnings.iter().any(|w| w.contains("writable by others")), "{warnings:?}");
    }

    // 6. Such a directory is refused when the host is built; so are a
    // relative path and a symbolic link.
    let f = cached_host(&[&dir], &cache).unwrap_err();
    assert_eq!(f.status, Status::FileRefused, "{}", f.message);
    assert!(f.message.contains("writable by others") && f.message.contains("machine code"), "{}", f.message);
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(cached_host(&[&dir], Path::new("relative/cache")).unwrap_err().status, Status::InvalidArgument);
    let link = root.join("link");
    std::os::unix::fs::symlink(&cache, &link).unwrap();
    assert_eq!(cached_host(&[&dir], &link).unwrap_err().status, Status::FileRefused);
    unsafe {
        let b = fidius_host_builder_new();
        let mut err = std::ptr::null_mut();
        assert_eq!(check(fidius_host_builder_set_compile_cache(b, std::ptr::null(), &mut err), err).unwrap_err().status, Status::NullArgument);
        let bad = b"/tmp/c\xffache\0";
        assert_eq!(check(fidius_host_builder_set_compile_cache(b, bad.as_ptr().cast(), &mut err), err).unwrap_err().status, Status::InvalidUtf8);
        fidius_host_builder_free(b);
    }
}
