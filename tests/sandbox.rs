//! The sandbox keeps its promises against hostile packages, files and
//! guests: each attack driven through the C ABI, each asserting the
//! specific status and that the host (and plugin) keep serving.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use fidius::capi::*;
use fidius::Status;
use serde_json::json;

const ADD: u32 = 0;

/// Hang detection for calls that must end at their timeout (not a timing test).
const HANG: Duration = Duration::from_secs(60);

// ---- 1. A .cwasm is machine code: unsigned ones are never deserialized ------

#[test]
fn an_unsigned_cwasm_is_never_deserialized() {
    // calc.cwasm holds another component's machine code (the hostile one):
    // were it deserialized, "calc" would be the hostile plugin.
    let dir = wasm_search_path("sandbox_cwasm", &["calc"], |_, t| t.to_string());
    let hostile = wat::parse_file(repo().join("tests/hostile/hostile.wat")).unwrap();
    let plain = TestHost::new(&[&dir]);
    std::fs::write(dir.join("calc/calc.cwasm"), plain.precompile(&hostile)).unwrap();

    let calc = plain.load("calc").unwrap();
    assert_eq!(calc.json(ADD, "[20, 22]").unwrap(), json!(42), "compiled from calc.wasm");
    let warnings = calc.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("calc.cwasm ignored") && warnings[0].contains("machine code"), "{warnings:?}");
    assert!(calc.index("ok").is_err(), "the hostile component's methods are not there");

    // A corrupted .cwasm (its code bytes flipped) is ignored the same way.
    let mut cwasm = std::fs::read(dir.join("calc/calc.cwasm")).unwrap();
    let mid = cwasm.len() / 2;
    for b in &mut cwasm[mid..mid + 4096] {
        *b ^= 0xa5;
    }
    std::fs::write(dir.join("calc/calc.cwasm"), &cwasm).unwrap();
    let calc = TestHost::new(&[&dir]).load("calc").unwrap();
    assert!(calc.warnings()[0].contains("ignored"));
    assert_eq!(calc.json(ADD, "[1, 2]").unwrap(), json!(3));

    // Only an embedder that says it trusts precompiled artifacts gets them
    // unsigned: then the hostile machine code is what loads.
    std::fs::write(dir.join("calc/calc.cwasm"), plain.precompile(&hostile)).unwrap();
    let trusting = TestHost::configured(&[&dir], |b| ok(|e| unsafe { fidius_host_builder_set_trust_precompiled(b, true, e) }));
    let swapped = trusting.load("calc").unwrap();
    assert!(swapped.warnings().is_empty());
    assert!(swapped.index("ok").is_ok(), "the trusted .cwasm was deserialized");
}

// ---- 2. Timeouts stop calls blocked in host calls ---------------------------

fn caps_dir(name: &str, caps: &str) -> PathBuf {
    wasm_search_path(name, &["caps"], |_, t| {
        t.replace("capabilities = [\"env:FIDIUS_FIXTURE_VAR\", \"clocks\", \"stdout\"]", &format!("capabilities = [{caps}]"))
    })
}

fn timeout_options(ms: u64, reuse: bool) -> TestOptions {
    TestOptions::new()
        .set(|o, e| unsafe { fidius_load_options_set_timeout_ms(o, ms, e) })
        .set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, reuse, e) })
}

#[test]
fn a_guest_blocked_on_a_clock_is_stopped_by_the_timeout() {
    let dir = caps_dir("sandbox_sleep", "\"clocks\"");
    let host = std::sync::Arc::new(TestHost::new(&[&dir]));
    for reuse in [false, true] {
        let caps = std::sync::Arc::new(host.load_opts("caps", Some(&timeout_options(200, reuse))).unwrap());
        let sleep = caps.index("sleep_ms").unwrap();
        let now = caps.index("now_nanos").unwrap();
        for _ in 0..3 {
            // A billion seconds in one pollable.block(): only the deadline ends it.
            let c = caps.clone();
            let err = within(HANG, "a blocked call", move || c.json(sleep, "[1000000000000]")).unwrap_err();
            assert_eq!(err.status, Status::Timeout, "reuse={reuse}: {}", err.message);
            assert!(caps.json(now, "[]").is_ok(), "reuse={reuse}: serves the next call");
        }
        // A short sleep finishes normally: the limit is a deadline, not a ban.
        assert_eq!(caps.json(sleep, "[10]").unwrap(), json!(10));
        if reuse {
            // Other callers of a reused instance wait for the blocked one to be stopped, not forever.
            let blocked = {
                let c = caps.clone();
                std::thread::spawn(move || c.json(sleep, "[1000000000000]"))
            };
            std::thread::sleep(Duration::from_millis(20));
            let c = caps.clone();
            let other = within(HANG, "a call queued behind a blocked one", move || c.json(now, "[]"));
            assert!(other.is_ok(), "{other:?}");
            assert_eq!(blocked.join().unwrap().unwrap_err().status, Status::Timeout);
        }
    }
}

#[test]
fn a_stopped_call_gives_back_its_instance_slot() {
    // More blocked calls than the pool has instance slots (256): were a
    // stopped call's store kept, the pool would run dry and instantiation fail.
    let dir = caps_dir("sandbox_slots", "\"clocks\"");
    let host = TestHost::new(&[&dir]);
    let caps = std::sync::Arc::new(host.load_opts("caps", Some(&timeout_options(10, false))).unwrap());
    let sleep = caps.index("sleep_ms").unwrap();
    let c = caps.clone();
    let statuses = within(Duration::from_secs(300), "260 stopped calls", move || {
        (0..260).map(|_| c.json(sleep, "[1000000000000]").unwrap_err().status).collect::<Vec<_>>()
    });
    assert!(statuses.iter().all(|s| *s == Status::Timeout), "{statuses:?}");
    assert_eq!(caps.json(sleep, "[1]").unwrap(), json!(1));
}

#[test]
fn a_guest_blocked_reading_stdin_is_stopped_by_the_timeout() {
    // This test binary's stdin becomes a pipe nobody writes to (and nobody closes).
    let mut fds = [0; 2];
    unsafe {
        assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
        assert_eq!(libc::dup2(fds[0], 0), 0);
    }
    let dir = caps_dir("sandbox_stdin", "\"stdin\"");
    let host = TestHost::new(&[&dir]);
    let caps = std::sync::Arc::new(host.load_opts("caps", Some(&timeout_options(200, false))).unwrap());
    let read = caps.index("read_stdin").unwrap();
    let c = caps.clone();
    let err = within(HANG, "a blocked stdin read", move || c.json(read, "[]")).unwrap_err();
    assert_eq!(err.status, Status::Timeout, "{}", err.message);
    assert_eq!(caps.json(caps.index("sleep_ms").unwrap(), "[1]").unwrap(), json!(1));
}

// ---- 3. Nothing in a search path hangs or exhausts the host -----------------

fn mkfifo(path: &Path) {
    let c = cstr(path.to_str().unwrap());
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
}

/// A search path full of traps, beside one good native plugin and one good package.
fn trapped_search_path(name: &str) -> PathBuf {
    let dir = wasm_search_path(name, &["calc"], |_, t| t.to_string());
    std::fs::copy(&native().v5, dir.join("libgood.so")).unwrap();
    mkfifo(&dir.join("fifo.so"));
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.so")).unwrap();
    let sparse = std::fs::File::create(dir.join("sparse.so")).unwrap();
    sparse.set_len(8 << 30).unwrap(); // 8 GiB, no blocks
    // A library whose signature file is a FIFO.
    std::fs::copy(&native().v4, dir.join("libsigfifo.so")).unwrap();
    mkfifo(&dir.join("libsigfifo.so.sig"));
    // A package whose package.sig is a FIFO, and one whose manifest is.
    let p = dir.join("sigfifo");
    std::fs::create_dir(&p).unwrap();
    std::fs::copy(dir.join("calc/calc.wasm"), p.join("calc.wasm")).unwrap();
    std::fs::write(p.join("package.toml"), std::fs::read_to_string(dir.join("calc/package.toml")).unwrap().replace("name = \"calc\"", "name = \"sigfifo\"")).unwrap();
    mkfifo(&p.join("package.sig"));
    std::fs::create_dir(dir.join("manifestfifo")).unwrap();
    mkfifo(&dir.join("manifestfifo/package.toml"));
    // A package that links back to itself, and one whose directories join
    // so a naive walk would take 2^30 steps.
    let looped = dir.join("looped");
    std::fs::create_dir(&looped).unwrap();
    std::fs::copy(p.join("package.toml"), looped.join("package.toml")).unwrap();
    std::os::unix::fs::symlink(".", looped.join("again")).unwrap();
    let joined = dir.join("joined");
    std::fs::create_dir(&joined).unwrap();
    std::fs::copy(p.join("package.toml"), joined.join("package.toml")).unwrap();
    let mut level = joined.clone();
    for i in 0..30 {
        let next = joined.join(format!("d{i}"));
        std::fs::create_dir(&next).unwrap();
        std::os::unix::fs::symlink(&next, level.join("a")).unwrap();
        std::os::unix::fs::symlink(&next, level.join("b")).unwrap();
        level = next;
    }
    dir
}

fn skipped_status(d: &TestDiscovery, file: &str) -> (Status, String) {
    let skipped = d.skipped();
    let entry = skipped.iter().find(|s| s.path.ends_with(file)).unwrap_or_else(|| panic!("{file} not listed: {skipped:?}"));
    (entry.status, entry.reason.clone())
}

#[test]
fn hostile_files_in_a_search_path_are_skipped_without_hanging() {
    let dir = trapped_search_path("sandbox_traps");
    // Without signatures: discovery returns, listing each trap with its reason.
    let d2 = dir.clone();
    let (plugins, fifo, zero, sparse, manifest) = within(HANG, "discovery", move || {
        let host = TestHost::new(&[&d2]);
        let d = host.discover();
        let names: Vec<String> = d.plugins().iter().map(|p| p.name.clone()).collect();
        (names, skipped_status(&d, "fifo.so"), skipped_status(&d, "zero.so"), skipped_status(&d, "sparse.so"), skipped_status(&d, "manifestfifo/package.toml"))
    });
    assert!(plugins.contains(&"BasicCalculator".to_string()) || !plugins.is_empty(), "{plugins:?}");
    assert!(plugins.contains(&"calc".to_string()), "{plugins:?}");
    for (status, reason) in [&fifo, &zero, &manifest] {
        assert_eq!(*status, Status::FileRefused, "{reason}");
        assert!(reason.contains("not a regular file"), "{reason}");
    }
    assert!(fifo.1.contains("FIFO") && zero.1.contains("character device"), "{fifo:?} {zero:?}");
    assert_eq!(sparse.0, Status::FileRefused, "{}", sparse.1);
    assert!(sparse.1.contains("8589934592 bytes"), "{}", sparse.1);

    // With signatures required: the same, plus the signature files and package walks.
    let d2 = dir.clone();
    let key = [0x3b, 0x6a, 0x27, 0xbc, 0xce, 0xb6, 0xa4, 0x2d, 0x62, 0xa3, 0xa8, 0xd0, 0x2a, 0x6f, 0x0d, 0x73,
               0x65, 0x32, 0x15, 0x77, 0x1d, 0xe2, 0x43, 0xa6, 0x3a, 0xc0, 0x48, 0xa1, 0x8b, 0x59, 0xda, 0x29];
    let found = within(HANG, "discovery with signatures required", move || {
        let host = TestHost::requiring_signatures(&[&d2], &[TrustedKey::Bytes(&key)]);
        let d = host.discover();
        ["fifo.so", "zero.so", "sparse.so", "libsigfifo.so", "sigfifo", "looped", "joined"].map(|f| (f, skipped_status(&d, f)))
    });
    for (file, (status, reason)) in found {
        assert_eq!(status, Status::FileRefused, "{file}: {reason}");
        let why = match file {
            "sparse.so" => "more than",
            "looped" | "joined" => "already entered",
            _ => "not a regular file",
        };
        assert!(reason.contains(why), "{file}: {reason}");
    }
    // Loading by name walks the same traps and still finds the good package.
    let host = TestHost::new(&[&dir]);
    let calc = host.load("calc").unwrap();
    assert_eq!(calc.json(ADD, "[2, 3]").unwrap(), json!(5));
}

// ---- 6. The embedder has the last word on capabilities ----------------------

#[test]
fn capabilities_a_host_does_not_allow_fail_the_load() {
    std::env::set_var("FIDIUS_FIXTURE_VAR", "granted value");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "must not leak");
    let dir = caps_dir("sandbox_allow", "\"env:AWS_SECRET_ACCESS_KEY\", \"stdout\"");
    // Default: env:*, args and network must be allowed explicitly.
    let host = TestHost::new(&[&dir]);
    let err = host.load("caps").err().unwrap();
    assert_eq!(err.status, Status::Capability, "{}", err.message);
    assert!(err.message.contains("\"env:AWS_SECRET_ACCESS_KEY\"") && !err.message.contains("\"stdout\""), "{}", err.message);
    for cap in ["args", "network", "sockets"] {
        let d = caps_dir(&format!("sandbox_allow_{cap}"), &format!("\"{cap}\""));
        let e = TestHost::new(&[&d]).load("caps").err().unwrap();
        assert_eq!(e.status, Status::Capability, "{cap}: {}", e.message);
        assert!(e.message.contains(&format!("\"{cap}\"")), "{}", e.message);
    }
    // An allow-list replaces the default: a pattern for the variables it may see.
    let narrow = TestHost::configured(&[&dir], |b| {
        for p in ["env:FIDIUS_*", "stdout", "clocks"] {
            let p = cstr(p);
            ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
        }
    });
    let e = narrow.load("caps").err().unwrap();
    assert_eq!(e.status, Status::Capability);
    assert!(e.message.contains("env:FIDIUS_*, stdout, clocks"), "{}", e.message);
    let fine = caps_dir("sandbox_allow_fine", "\"env:FIDIUS_FIXTURE_VAR\", \"stdout\"");
    let narrow_fine = TestHost::configured(&[&fine], |b| {
        for p in ["env:FIDIUS_*", "stdout"] {
            let p = cstr(p);
            ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
        }
    });
    let caps = narrow_fine.load("caps").unwrap();
    let read_env = caps.index("read_env").unwrap();
    assert_eq!(caps.json(read_env, r#"["FIDIUS_FIXTURE_VAR"]"#).unwrap(), json!("granted value"));
    // ... and a stdout-only allow-list refuses the variable.
    let stdout_only = TestHost::configured(&[&fine], |b| {
        let p = cstr("stdout");
        ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
    });
    assert_eq!(stdout_only.load("caps").err().unwrap().status, Status::Capability);
    // `@default` keeps the default allowance and extends it.
    let extended = TestHost::configured(&[&fine], |b| {
        for p in ["@default", "env:FIDIUS_FIXTURE_VAR"] {
            let p = cstr(p);
            ok(|e| unsafe { fidius_host_builder_allow_capability(b, p.as_ptr(), e) });
        }
    });
    assert_eq!(extended.load("caps").unwrap().json(read_env, r#"["FIDIUS_FIXTURE_VAR"]"#).unwrap(), json!("granted value"));
    assert_eq!(extended.load("caps").unwrap().json(read_env, r#"["AWS_SECRET_ACCESS_KEY"]"#).unwrap(), json!(null));

    // Grants at load replace the manifest's list: the secret is not granted, so not readable.
    let grants = [cstr("stdout")];
    let ptrs: Vec<*const std::ffi::c_char> = grants.iter().map(|g| g.as_ptr()).collect();
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, ptrs.as_ptr(), ptrs.len(), e) });
    let granted = host.load_opts("caps", Some(&opts)).unwrap();
    assert_eq!(granted.json(read_env, r#"["AWS_SECRET_ACCESS_KEY"]"#).unwrap(), json!(null));
    // The embedder may grant a variable itself; an empty grant list grants nothing.
    let grants = [cstr("env:FIDIUS_FIXTURE_VAR")];
    let ptrs: Vec<*const std::ffi::c_char> = grants.iter().map(|g| g.as_ptr()).collect();
    let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, ptrs.as_ptr(), ptrs.len(), e) });
    let granted = host.load_opts("caps", Some(&opts)).unwrap();
    assert_eq!(granted.json(read_env, r#"["FIDIUS_FIXTURE_VAR"]"#).unwrap(), json!("granted value"));
    assert_eq!(granted.json(read_env, r#"["AWS_SECRET_ACCESS_KEY"]"#).unwrap(), json!(null));
    let none = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_grants(o, std::ptr::null(), 0, e) });
    let bare = host.load_opts("caps", Some(&none)).unwrap();
    assert_eq!(bare.json(read_env, r#"["FIDIUS_FIXTURE_VAR"]"#).unwrap(), json!(null));
    // Bad arguments are refused with their reason.
    unsafe {
        let o = TestOptions::new();
        let mut err = std::ptr::null_mut();
        let e = check(fidius_load_options_set_grants(o.0, std::ptr::null(), 2, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::NullArgument);
        let empty = cstr("");
        let b = fidius_host_builder_new();
        let e = check(fidius_host_builder_allow_capability(b, empty.as_ptr(), &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidArgument);
        fidius_host_builder_free(b);
    }
}

// ---- 9. Smaller ones ---------------------------------------------------------

#[test]
fn memory_limit_bounds_all_memories_of_an_instance_together() {
    let dir = scratch("sandbox_two_memories");
    hostile_wasm_package(&dir);
    let host = TestHost::new(&[&dir]);
    // Each of the two memories grows to 2 MiB + 64 KiB: under 3 MiB alone, not together.
    let limit = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_memory_limit(o, 3 << 20, e) });
    let plugin = host.load_opts("hostile", Some(&limit)).unwrap();
    let grow_both = plugin.index("grow-both").unwrap();
    let err = plugin.call(grow_both, &[]).unwrap_err();
    assert_eq!(err.status, Status::MemoryLimit, "{}", err.message);
    assert!(err.message.contains("in all"), "{}", err.message);
    assert_eq!(unwire::<u32>(&plugin.call(plugin.index("ok").unwrap(), &[]).unwrap()), 7);
    // With room for both, the same call succeeds.
    let roomy = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_memory_limit(o, 5 << 20, e) });
    let plugin = host.load_opts("hostile", Some(&roomy)).unwrap();
    assert_eq!(unwire::<i32>(&plugin.call(grow_both, &[]).unwrap()), 1, "the second memory's old size in pages");
}

#[test]
fn descriptors_and_arenas_cannot_claim_without_bound() {
    let lib = hostile("limits", &[]);
    let dir = search_path("sandbox_limits", &[&lib]);
    let host = TestHost::new(&[&dir]);
    let d = host.discover();
    let huge = d.skipped().into_iter().find(|s| s.plugin.as_deref() == Some("HugeMethods")).expect("HugeMethods is skipped");
    assert_eq!(huge.status, Status::InvalidDescriptor);
    assert!(huge.reason.contains("4294967295"), "{}", huge.reason);
    let greedy = host.load_path(&dir.join(lib.file_name().unwrap()), Some("GreedyArena")).unwrap();
    for _ in 0..2 {
        let err = greedy.call(0, &[]).unwrap_err();
        assert_eq!(err.status, Status::BufferTooSmall, "{}", err.message);
        assert!(err.message.contains("4294967295-byte arena"), "{}", err.message);
        assert_eq!(greedy.call(1, b"still here").unwrap(), b"still here");
    }
}

// ---- Cancellation from another thread ---------------------------------------

struct Token(*mut fidius_cancel);
unsafe impl Send for Token {}
unsafe impl Sync for Token {}

impl Drop for Token {
    fn drop(&mut self) {
        unsafe { fidius_cancel_free(self.0) }
    }
}

fn call_cancellable(plugin: &TestPlugin, method: u32, format: u32, input: &[u8], token: &Token) -> Result<Vec<u8>, Failure> {
    unsafe {
        let mut out = fidius_bytes { data: std::ptr::null_mut(), len: 0, release: std::ptr::null_mut() };
        let mut err = std::ptr::null_mut();
        let status = fidius_plugin_call_cancellable(plugin.0, method, format, input.as_ptr(), input.len(), token.0, &mut out, &mut err);
        check(status, err)?;
        let bytes = std::slice::from_raw_parts(out.data, out.len).to_vec();
        fidius_bytes_free(&mut out);
        Ok(bytes)
    }
}

/// Start `method` on another thread with a fresh token, trigger it after a
/// moment, and return what the call said.
fn cancel_midway(plugin: &std::sync::Arc<TestPlugin>, method: u32, format: u32, input: &'static [u8]) -> Failure {
    let token = std::sync::Arc::new(Token(fidius_cancel_new()));
    let (p, t) = (plugin.clone(), token.clone());
    let running = std::thread::spawn(move || call_cancellable(&p, method, format, input, &t));
    std::thread::sleep(Duration::from_millis(100));
    assert!(!running.is_finished(), "the call runs until cancelled");
    unsafe { fidius_cancel_trigger(token.0) };
    assert!(unsafe { fidius_cancel_is_triggered(token.0) });
    within(HANG, "a cancelled call", move || running.join().unwrap()).unwrap_err()
}

#[test]
fn a_running_wasm_call_is_cancelled_from_another_thread() {
    // A guest looping forever, with no timeout: only the token stops it.
    let dir = scratch("sandbox_cancel_spin");
    hostile_wasm_package(&dir);
    let host = TestHost::new(&[&dir]);
    for reuse in [false, true] {
        let opts = TestOptions::new().set(|o, e| unsafe { fidius_load_options_set_reuse_instance(o, reuse, e) });
        let plugin = std::sync::Arc::new(host.load_opts("hostile", Some(&opts)).unwrap());
        let spin = plugin.index("spin").unwrap();
        let e = cancel_midway(&plugin, spin, 0, b"");
        assert_eq!(e.status, Status::Cancelled, "reuse={reuse}: {}", e.message);
        assert_eq!(unwire::<u32>(&plugin.call(plugin.index("ok").unwrap(), &[]).unwrap()), 7, "serves the next call");
    }
    // A guest blocked in a host call, with no timeout.
    let dir = caps_dir("sandbox_cancel_sleep", "\"clocks\"");
    let host = TestHost::new(&[&dir]);
    let caps = std::sync::Arc::new(host.load("caps").unwrap());
    let sleep = caps.index("sleep_ms").unwrap();
    let e = cancel_midway(&caps, sleep, 1, b"[1000000000000]");
    assert_eq!(e.status, Status::Cancelled, "{}", e.message);
    assert_eq!(caps.json(sleep, "[1]").unwrap(), json!(1));
    // A token triggered before the call: nothing runs; an untriggered one changes nothing.
    let done = Token(fidius_cancel_new());
    unsafe { fidius_cancel_trigger(done.0) };
    assert_eq!(call_cancellable(&caps, sleep, 1, b"[1]", &done).unwrap_err().status, Status::Cancelled);
    let fresh = Token(fidius_cancel_new());
    assert_eq!(call_cancellable(&caps, sleep, 1, b"[1]", &fresh).unwrap(), b"1");
}

#[test]
fn a_native_call_observes_cancellation_before_it_starts() {
    let dir = search_path("sandbox_cancel_native", &[&native().v5]);
    let host = TestHost::new(&[&dir]);
    let calc = host.load("BasicCalc").unwrap();
    let args = wire(&(2i64, 3i64));
    let token = Token(fidius_cancel_new());
    assert_eq!(unwire::<i64>(&call_cancellable(&calc, 0, 0, &args, &token).unwrap()), 5);
    unsafe { fidius_cancel_trigger(token.0) };
    let e = call_cancellable(&calc, 0, 0, &args, &token).unwrap_err();
    assert_eq!(e.status, Status::Cancelled, "{}", e.message);
    // NULL: no cancellation; NULL handles elsewhere are ignored or refused.
    unsafe {
        let mut out = fidius_bytes { data: std::ptr::null_mut(), len: 0, release: std::ptr::null_mut() };
        let mut err = std::ptr::null_mut();
        check(fidius_plugin_call_cancellable(calc.0, 0, 0, args.as_ptr(), args.len(), std::ptr::null(), &mut out, &mut err), err).unwrap();
        fidius_bytes_free(&mut out);
        fidius_cancel_trigger(std::ptr::null());
        assert!(!fidius_cancel_is_triggered(std::ptr::null()));
        fidius_cancel_free(std::ptr::null_mut());
        let e = check(fidius_plugin_call_cancellable(calc.0, 0, 0, args.as_ptr(), args.len(), calc.0.cast(), &mut out, &mut err), err).unwrap_err();
        assert_eq!(e.status, Status::InvalidHandle);
    }
}
