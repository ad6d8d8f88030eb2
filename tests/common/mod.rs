//! Shared test harness: builds the fixture plugins (published fidius crates,
//! and hostile hand-made libraries), lays out search paths, and wraps the C
//! entry points so tests read as C callers would use them.
#![allow(dead_code)]

use std::ffi::{c_char, CStr, CString};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr;
use std::sync::OnceLock;

use fidius::capi::*;
use fidius::Status;


pub mod python_fixtures;
pub mod schema_fixtures;
pub mod sign;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where fixture workspaces build (shared by all of them, not by the library).
pub fn fixture_target() -> PathBuf {
    repo().join("target").join("fixtures")
}

fn run(cmd: &mut Command) {
    let status = cmd.status().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed: {status}");
}

/// The native fixture libraries, built once per test binary (cargo's lock
/// serializes concurrent builds across binaries).
pub struct NativeFixtures {
    pub v5: PathBuf,
    pub v4: PathBuf,
    /// `MarkerPlugin` (fidius 0.5.9), whose library constructor writes the file named by `$FIDIUS_TEST_MARKER`.
    pub marker: PathBuf,
    /// `StreamerImpl` (fidius 0.5.9): server, client and bidirectional streams.
    pub stream: PathBuf,
    /// `LegacyCounter` (fidius 0.4.2): a server stream (0.4.2 has no other kind).
    pub stream_v4: PathBuf,
}

pub fn native() -> &'static NativeFixtures {
    static BUILT: OnceLock<NativeFixtures> = OnceLock::new();
    BUILT.get_or_init(|| {
        run(Command::new(env!("CARGO"))
            .args(["build", "-j2", "--quiet", "--manifest-path"])
            .arg(repo().join("tests/fixtures/native/Cargo.toml"))
            .arg("--target-dir")
            .arg(fixture_target()));
        let dir = fixture_target().join("debug");
        NativeFixtures {
            v5: dir.join("libfixture_v5.so"),
            v4: dir.join("libfixture_v4.so"),
            marker: dir.join("libfixture_marker.so"),
            stream: dir.join("libfixture_stream.so"),
            stream_v4: dir.join("libfixture_stream_v4.so"),
        }
    })
}

/// The schema of `StreamerImpl` (`libfixture_stream.so`), written by
/// `fidius_build::emit_wit()` from the crate's build.rs into
/// tests/fixtures/native/stream/wit/ (gitignored) when [`native`] builds.
pub fn stream_wit() -> PathBuf {
    native();
    let wit = repo().join("tests/fixtures/native/stream/wit/streamer.wit");
    assert!(wit.is_file(), "the fixture build did not make {}", wit.display());
    wit
}

/// The WASM fixture packages (published fidius 0.5.9 guest crates), built
/// once and laid out as package directories: calc, caps, fetch, hostfn,
/// files, net, stream.
pub fn wasm_packages() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let out = fixture_target().join("wasm-packages");
        run(Command::new("bash").arg(repo().join("tests/fixtures/wasm/build.sh")).arg(&out));
        out
    })
}

/// A scratch search path with copies of the named WASM fixture packages,
/// each manifest passed through `edit` (name, text) -> text.
pub fn wasm_search_path(name: &str, packages: &[&str], edit: impl Fn(&str, &str) -> String) -> PathBuf {
    let dir = scratch(name);
    for p in packages {
        let src = wasm_packages().join(p);
        let dst = dir.join(p);
        std::fs::create_dir_all(&dst).unwrap();
        for f in std::fs::read_dir(&src).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dst.join(f.file_name().unwrap())).unwrap();
        }
        let manifest = dst.join("package.toml");
        let text = std::fs::read_to_string(&manifest).unwrap();
        std::fs::write(&manifest, edit(p, &text)).unwrap();
    }
    dir
}

/// A package holding the hostile WAT component of tests/hostile/hostile.wat.
pub fn hostile_wasm_package(dir: &Path) {
    let pkg = dir.join("hostile");
    std::fs::create_dir_all(&pkg).unwrap();
    let wasm = wat::parse_file(repo().join("tests/hostile/hostile.wat")).expect("hostile.wat parses");
    std::fs::write(pkg.join("hostile.wasm"), wasm).unwrap();
    std::fs::write(
        pkg.join("package.toml"),
        "[package]\nname = \"hostile\"\nversion = \"0.1.0\"\ninterface = \"hostile\"\ninterface_version = 1\nruntime = \"wasm\"\n\n[metadata]\n\n[wasm]\ncomponent = \"hostile.wasm\"\n",
    )
    .unwrap();
}

/// A hand-written C library from tests/hostile, compiled with the system cc.
/// Serialized, and renamed into place, so parallel tests never see a half-written file.
pub fn hostile(name: &str, defines: &[&str]) -> PathBuf {
    static COMPILED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut compiled = COMPILED.lock().unwrap_or_else(|p| p.into_inner());
    let out_dir = fixture_target().join("hostile");
    std::fs::create_dir_all(&out_dir).unwrap();
    let tag = defines.join("_").replace(['=', '-'], "");
    let out = out_dir.join(format!("lib{name}{tag}.so"));
    if compiled.contains(&out) {
        return out;
    }
    let partial = out.with_extension(format!("{}.partial", std::process::id()));
    let mut cmd = Command::new("cc");
    cmd.args(["-shared", "-fPIC", "-Wall", "-Wextra", "-o"]).arg(&partial);
    for d in defines {
        cmd.arg(format!("-D{d}"));
    }
    run(cmd.arg(repo().join("tests/hostile").join(format!("{name}.c"))));
    std::fs::rename(&partial, &out).unwrap();
    compiled.push(out.clone());
    out
}

/// A fresh, empty directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A scratch search path holding copies of `files`.
pub fn search_path(name: &str, files: &[&Path]) -> PathBuf {
    let dir = scratch(name);
    for f in files {
        std::fs::copy(f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

/// What a failed C call reported, copied out of its `fidius_error`.
#[derive(Debug, Clone)]
pub struct Failure {
    pub status: Status,
    pub message: String,
    pub plugin_code: Option<String>,
    pub plugin_message: Option<String>,
    pub plugin_details: Option<String>,
}

pub unsafe fn opt_str(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| CStr::from_ptr(p).to_str().expect("libfidius strings are UTF-8").to_owned())
}

/// Turn a status + error object into a Result, freeing the error. Also
/// checks the contract that the error's status equals the returned one.
pub unsafe fn check(status: Status, error: *mut fidius_error) -> Result<(), Failure> {
    if status == Status::Ok {
        assert!(error.is_null(), "success must leave *error NULL");
        return Ok(());
    }
    assert!(!error.is_null(), "failure ({status:?}) must fill *error");
    assert_eq!(fidius_error_status(error), status);
    let failure = Failure {
        status,
        message: opt_str(fidius_error_message(error)).expect("an error always has a message"),
        plugin_code: opt_str(fidius_error_plugin_code(error)),
        plugin_message: opt_str(fidius_error_plugin_message(error)),
        plugin_details: opt_str(fidius_error_plugin_details(error)),
    };
    fidius_error_free(error);
    Err(failure)
}

/// Assert that a setter taking an error out-parameter succeeded.
pub fn ok(f: impl FnOnce(*mut *mut fidius_error) -> Status) {
    let mut err = ptr::null_mut();
    unsafe { check(f(&mut err), err).unwrap() }
}

/// Run `f` on another thread and wait at most `limit` for it: a hang fails
/// the test with `what` instead of stalling the suite.
pub fn within<T: Send + 'static>(limit: std::time::Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).unwrap_or_else(|_| panic!("{what} did not return within {limit:?}"))
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A host over the given search paths, built through the C API.
#[derive(Debug)]
pub struct TestHost(pub *mut fidius_host);

unsafe impl Send for TestHost {}
unsafe impl Sync for TestHost {}

pub struct HostOptions<'a> {
    pub paths: &'a [&'a Path],
    pub interface_hash: Option<u64>,
    pub buffer_strategy: Option<u32>,
    pub strict: bool,
}

impl TestHost {
    pub fn new(paths: &[&Path]) -> TestHost {
        Self::with(HostOptions { paths, interface_hash: None, buffer_strategy: None, strict: false })
    }

    pub fn with(o: HostOptions<'_>) -> TestHost {
        unsafe {
            let b = fidius_host_builder_new();
            let mut err = ptr::null_mut();
            for p in o.paths {
                let p = cstr(p.to_str().unwrap());
                check(fidius_host_builder_add_search_path(b, p.as_ptr(), &mut err), err).unwrap();
            }
            if let Some(h) = o.interface_hash {
                check(fidius_host_builder_set_interface_hash(b, h, &mut err), err).unwrap();
            }
            if let Some(s) = o.buffer_strategy {
                check(fidius_host_builder_set_buffer_strategy(b, s, &mut err), err).unwrap();
            }
            if o.strict {
                check(fidius_host_builder_set_load_policy(b, 1, &mut err), err).unwrap();
            }
            let mut host = ptr::null_mut();
            check(fidius_host_builder_build(b, &mut host, &mut err), err).unwrap();
            fidius_host_builder_free(b);
            TestHost(host)
        }
    }

    /// A host over `paths`, with `configure` applied to its builder first
    /// (each setter through the C API; use [`ok`] on their statuses).
    pub fn configured(paths: &[&Path], configure: impl FnOnce(*mut fidius_host_builder)) -> TestHost {
        unsafe {
            let b = fidius_host_builder_new();
            let mut err = ptr::null_mut();
            for p in paths {
                let p = cstr(p.to_str().unwrap());
                check(fidius_host_builder_add_search_path(b, p.as_ptr(), &mut err), err).unwrap();
            }
            configure(b);
            let mut host = ptr::null_mut();
            check(fidius_host_builder_build(b, &mut host, &mut err), err).unwrap();
            fidius_host_builder_free(b);
            TestHost(host)
        }
    }

    pub fn load(&self, name: &str) -> Result<TestPlugin, Failure> {
        self.load_with(name, None)
    }

    pub fn load_with(&self, name: &str, config: Option<&[u8]>) -> Result<TestPlugin, Failure> {
        let opts = config.map(|c| {
            let o = TestOptions::new();
            unsafe {
                let mut err = ptr::null_mut();
                check(fidius_load_options_set_config(o.0, c.as_ptr(), c.len(), &mut err), err).unwrap();
            }
            o
        });
        self.load_opts(name, opts.as_ref())
    }

    pub fn load_opts(&self, name: &str, opts: Option<&TestOptions>) -> Result<TestPlugin, Failure> {
        unsafe {
            let mut plugin = ptr::null_mut();
            let mut err = ptr::null_mut();
            let name = cstr(name);
            let status = fidius_host_load(self.0, name.as_ptr(), opts.map_or(ptr::null(), |o| o.0), &mut plugin, &mut err);
            let result = check(status, err).map(|()| TestPlugin(plugin));
            if result.is_err() {
                assert!(plugin.is_null(), "a failed load leaves *plugin NULL");
            }
            result
        }
    }

    pub fn load_path(&self, path: &Path, name: Option<&str>) -> Result<TestPlugin, Failure> {
        unsafe {
            let mut plugin = ptr::null_mut();
            let mut err = ptr::null_mut();
            let path = cstr(path.to_str().unwrap());
            let name = name.map(cstr);
            let status = fidius_host_load_path(
                self.0,
                path.as_ptr(),
                name.as_ref().map_or(ptr::null(), |n| n.as_ptr()),
                ptr::null(),
                &mut plugin,
                &mut err,
            );
            check(status, err).map(|()| TestPlugin(plugin))
        }
    }

    pub fn discover(&self) -> TestDiscovery {
        unsafe {
            let mut d = ptr::null_mut();
            let mut err = ptr::null_mut();
            check(fidius_host_discover(self.0, &mut d, &mut err), err).unwrap();
            TestDiscovery(d)
        }
    }
}

impl Drop for TestHost {
    fn drop(&mut self) {
        unsafe { fidius_host_free(self.0) }
    }
}

/// Load options built through the C API.
pub struct TestOptions(pub *mut fidius_load_options);

impl TestOptions {
    pub fn new() -> TestOptions {
        TestOptions(fidius_load_options_new())
    }

    /// Apply one setter, asserting success.
    pub fn set(self, f: impl FnOnce(*mut fidius_load_options, *mut *mut fidius_error) -> Status) -> TestOptions {
        let mut err = ptr::null_mut();
        unsafe { check(f(self.0, &mut err), err).unwrap() };
        self
    }
}

impl Drop for TestOptions {
    fn drop(&mut self) {
        unsafe { fidius_load_options_free(self.0) }
    }
}

#[derive(Debug)]
pub struct TestPlugin(pub *mut fidius_plugin);

unsafe impl Send for TestPlugin {}
unsafe impl Sync for TestPlugin {}

impl TestPlugin {
    pub fn call_format(&self, method: u32, format: u32, input: &[u8]) -> Result<Vec<u8>, Failure> {
        unsafe {
            let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            let status = fidius_plugin_call(self.0, method, format, input.as_ptr(), input.len(), &mut out, &mut err);
            check(status, err).map_err(|f| {
                assert!(out.data.is_null() && out.len == 0, "a failed call leaves the output empty");
                f
            })?;
            let bytes = if out.data.is_null() { Vec::new() } else { std::slice::from_raw_parts(out.data, out.len).to_vec() };
            fidius_bytes_free(&mut out);
            assert!(out.data.is_null() && out.len == 0 && out.release.is_null(), "fidius_bytes_free resets the buffer");
            Ok(bytes)
        }
    }

    /// A call with Fidius wire bytes.
    pub fn call(&self, method: u32, input: &[u8]) -> Result<Vec<u8>, Failure> {
        self.call_format(method, 0, input)
    }

    pub fn info(&self) -> Info {
        unsafe { Info::read(fidius_plugin_get_info(self.0)) }
    }

    /// A JSON call: JSON text in, JSON value out.
    pub fn json(&self, method: u32, input: &str) -> Result<serde_json::Value, Failure> {
        let out = self.call_format(method, 1, input.as_bytes())?;
        Ok(serde_json::from_slice(&out).expect("JSON output parses"))
    }

    /// The index of a method by name, through the C API.
    pub fn index(&self, name: &str) -> Result<u32, Failure> {
        unsafe {
            let mut i = u32::MAX;
            let mut err = ptr::null_mut();
            let n = cstr(name);
            check(fidius_plugin_method_index(self.0, n.as_ptr(), &mut i, &mut err), err).map(|()| i)
        }
    }

    /// The `fidius_plugin_describe` document.
    pub fn describe(&self) -> serde_json::Value {
        unsafe {
            let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            check(fidius_plugin_describe(self.0, &mut out, &mut err), err).unwrap();
            let doc = serde_json::from_slice(std::slice::from_raw_parts(out.data, out.len)).unwrap();
            fidius_bytes_free(&mut out);
            doc
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        unsafe {
            (0..fidius_plugin_warning_count(self.0)).map(|i| opt_str(fidius_plugin_warning(self.0, i)).unwrap()).collect()
        }
    }
}

impl Drop for TestPlugin {
    fn drop(&mut self) {
        unsafe { fidius_plugin_free(self.0) }
    }
}

/// A plugin description copied out of a `fidius_plugin_info`.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    pub name: String,
    pub interface_name: String,
    pub interface_hash: u64,
    pub interface_version: u32,
    pub runtime: u32,
    pub buffer_strategy: u32,
    pub capabilities: u64,
    pub method_count: u32,
    pub abi_version: u32,
    pub path: String,
}

impl Info {
    pub unsafe fn read(i: *const fidius_plugin_info) -> Info {
        assert!(!i.is_null());
        Info {
            name: opt_str(fidius_plugin_info_name(i)).unwrap(),
            interface_name: opt_str(fidius_plugin_info_interface_name(i)).unwrap(),
            interface_hash: fidius_plugin_info_interface_hash(i),
            interface_version: fidius_plugin_info_interface_version(i),
            runtime: fidius_plugin_info_runtime(i) as u32,
            buffer_strategy: fidius_plugin_info_buffer_strategy(i) as u32,
            capabilities: fidius_plugin_info_capabilities(i),
            method_count: fidius_plugin_info_method_count(i),
            abi_version: fidius_plugin_info_abi_version(i),
            path: opt_str(fidius_plugin_info_path(i)).unwrap(),
        }
    }
}

pub struct TestDiscovery(pub *mut fidius_discovery);

#[derive(Debug, Clone)]
pub struct SkippedEntry {
    pub path: String,
    pub plugin: Option<String>,
    pub status: Status,
    pub reason: String,
}

impl TestDiscovery {
    pub fn plugins(&self) -> Vec<Info> {
        unsafe {
            let n = fidius_discovery_plugin_count(self.0);
            assert!(fidius_discovery_plugin(self.0, n).is_null(), "out of range gives NULL");
            (0..n).map(|i| Info::read(fidius_discovery_plugin(self.0, i))).collect()
        }
    }

    pub fn skipped(&self) -> Vec<SkippedEntry> {
        unsafe {
            let n = fidius_discovery_skipped_count(self.0);
            assert!(fidius_discovery_skipped_path(self.0, n).is_null(), "out of range gives NULL");
            (0..n)
                .map(|i| SkippedEntry {
                    path: opt_str(fidius_discovery_skipped_path(self.0, i)).unwrap(),
                    plugin: opt_str(fidius_discovery_skipped_plugin(self.0, i)),
                    status: fidius_discovery_skipped_status(self.0, i),
                    reason: opt_str(fidius_discovery_skipped_reason(self.0, i)).unwrap(),
                })
                .collect()
        }
    }
}

impl Drop for TestDiscovery {
    fn drop(&mut self) {
        unsafe { fidius_discovery_free(self.0) }
    }
}

/// Fidius wire encoding of test arguments (bincode 1.3, as the plugins use).
pub fn wire<T: serde::Serialize>(value: &T) -> Vec<u8> {
    fidius::wire::encode(value)
}

pub fn unwire<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> T {
    bincode::deserialize(bytes).expect("output decodes as the method's return type")
}

/// A trusted key handed to the builder: its 32 raw bytes, or a `.public` file.
pub enum TrustedKey<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl TestHost {
    /// A host over `paths` that requires signatures by one of `keys`
    /// (`fidius_host_builder_set_require_signature` and the trusted-key setters).
    pub fn requiring_signatures(paths: &[&Path], keys: &[TrustedKey<'_>]) -> TestHost {
        TestHost::configured(paths, |b| unsafe {
            ok(|e| fidius_host_builder_set_require_signature(b, true, e));
            for key in keys {
                match key {
                    TrustedKey::Bytes(k) => ok(|e| fidius_host_builder_add_trusted_key(b, k.as_ptr(), k.len(), e)),
                    TrustedKey::File(f) => {
                        let f = cstr(f.to_str().unwrap());
                        ok(|e| fidius_host_builder_add_trusted_key_file(b, f.as_ptr(), e))
                    }
                }
            }
        })
    }

    /// `fidius_host_precompile_component`: `.cwasm` bytes for this build.
    pub fn precompile(&self, wasm: &[u8]) -> Vec<u8> {
        unsafe {
            let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            check(fidius_host_precompile_component(self.0, wasm.as_ptr(), wasm.len(), &mut out, &mut err), err).unwrap();
            let bytes = std::slice::from_raw_parts(out.data, out.len).to_vec();
            fidius_bytes_free(&mut out);
            bytes
        }
    }

    /// `fidius_host_load_fid`.
    pub fn load_fid(&self, path: &Path, opts: Option<&TestOptions>) -> Result<TestPlugin, Failure> {
        unsafe {
            let mut plugin = ptr::null_mut();
            let mut err = ptr::null_mut();
            let path = cstr(path.to_str().unwrap());
            let status = fidius_host_load_fid(self.0, path.as_ptr(), opts.map_or(ptr::null(), |o| o.0), &mut plugin, &mut err);
            let result = check(status, err).map(|()| TestPlugin(plugin));
            if result.is_err() {
                assert!(plugin.is_null(), "a failed load leaves *plugin NULL");
            }
            result
        }
    }

    /// `fidius_host_unpack_fid`: the extracted package directory.
    pub fn unpack_fid(&self, path: &Path, dest: &Path) -> Result<PathBuf, Failure> {
        unsafe {
            let mut out = fidius_bytes { data: ptr::null_mut(), len: 0, release: ptr::null_mut() };
            let mut err = ptr::null_mut();
            let (path, dest) = (cstr(path.to_str().unwrap()), cstr(dest.to_str().unwrap()));
            let status = fidius_host_unpack_fid(self.0, path.as_ptr(), dest.as_ptr(), &mut out, &mut err);
            check(status, err).map_err(|f| {
                assert!(out.data.is_null() && out.len == 0, "a failed unpack leaves the output empty");
                f
            })?;
            let dir = String::from_utf8(std::slice::from_raw_parts(out.data, out.len).to_vec()).unwrap();
            fidius_bytes_free(&mut out);
            Ok(PathBuf::from(dir))
        }
    }
}
