//! The host: where plugins are looked for, what they must satisfy, and
//! loading them by name.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};


use ed25519_dalek::VerifyingKey;

use crate::capability::CapabilityPolicy;
pub use crate::options::{LoadOptions, LogHook, LogLevel};
use crate::error::{fail, Error, Result, Status};
use crate::native::{self, NativeLibrary, NativePlugin};
use crate::fid::Archive;
use crate::host_fn::{HostInterface, HostInterfaces};
use crate::files;
use crate::package::{Manifest, PackageFiles, MANIFEST};
use crate::plugin::{BufferStrategy, Plugin, PluginInfo, Runtime};
use crate::schema::{Interface, Schema};
use crate::python;
use crate::signing;
use crate::wasm::{self, EgressPolicy, WasmOptions, WasmRuntime};

/// How `load` treats broken candidates it meets while looking for a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LoadPolicy {
    /// Skip libraries that fail to open or validate, and keep looking
    /// (the reasons are in the "not found" message).
    #[default]
    Lenient,
    /// Fail on the first library in the search paths that fails to open or validate.
    Strict,
}

/// Collects a host's settings; `build` checks them.
#[derive(Clone, Default)]
pub struct HostBuilder {
    egress: Option<Arc<dyn EgressPolicy>>,
    log: Option<Arc<LogHook>>,
    search_paths: Vec<PathBuf>,
    load_policy: LoadPolicy,
    require_signature: bool,
    trusted_keys: Vec<VerifyingKey>,
    interface_hash: Option<u64>,
    buffer_strategy: Option<BufferStrategy>,
    capabilities: CapabilityPolicy,
    trust_precompiled: bool,
    schemas: Vec<Arc<Schema>>,
    host_interfaces: HostInterfaces,
    python: Option<PathBuf>,
    compile_cache: Option<wasm::CompileCache>,
}

impl HostBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a directory to scan (one level deep), in priority order.
    pub fn search_path(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.search_paths.push(path.into());
        self
    }

    pub fn load_policy(&mut self, policy: LoadPolicy) -> &mut Self {
        self.load_policy = policy;
        self
    }

    /// Refuse plugins not signed by one of the trusted keys.
    pub fn require_signature(&mut self, on: bool) -> &mut Self {
        self.require_signature = on;
        self
    }

    pub fn trusted_key(&mut self, key: VerifyingKey) -> &mut Self {
        self.trusted_keys.push(key);
        self
    }

    /// Native plugins must have this interface hash.
    pub fn interface_hash(&mut self, hash: u64) -> &mut Self {
        self.interface_hash = Some(hash);
        self
    }

    /// Native plugins must use this buffer strategy.
    pub fn buffer_strategy(&mut self, strategy: BufferStrategy) -> &mut Self {
        self.buffer_strategy = Some(strategy);
        self
    }

    /// Allow packages capabilities matching `pattern` (see [`CapabilityPolicy::allow`]).
    pub fn allow_capability(&mut self, pattern: &str) -> Result<&mut Self> {
        self.capabilities.allow(pattern)?;
        Ok(self)
    }

    /// Deserialize a package's precompiled `.cwasm` (machine code) even when
    /// no trusted key's signature covers it. Off by default: an unsigned
    /// `.cwasm` is ignored, with a warning, and the `.wasm` compiled instead.
    pub fn trust_precompiled(&mut self, on: bool) -> &mut Self {
        self.trust_precompiled = on;
        self
    }

    /// An interface schema for native plugins of the interfaces it declares
    /// (matched by name), where no load option or `<library>.wit` gives one.
    pub fn schema(&mut self, schema: Schema) -> &mut Self {
        self.schemas.push(Arc::new(schema));
        self
    }

    /// Offer a host interface to every plugin (a later one of the same name
    /// replaces it).
    pub fn host_interface(&mut self, interface: Arc<HostInterface>) -> &mut Self {
        self.host_interfaces.0.retain(|i| i.name != interface.name);
        self.host_interfaces.0.push(interface);
        self
    }

    /// The default egress policy for WASM plugins' outbound HTTP.
    pub fn egress_policy(&mut self, policy: Arc<dyn EgressPolicy>) -> &mut Self {
        self.egress = Some(policy);
        self
    }

    /// The interpreter Python plugins run in (default: `python3` on the PATH).
    pub fn python_interpreter(&mut self, path: impl Into<PathBuf>) -> &mut Self {
        self.python = Some(path.into());
        self
    }

    /// Keep compiled components in `dir` (see [`wasm::CompileCache`]):
    /// refused unless it is private to this user.
    pub fn compile_cache(&mut self, dir: &Path) -> Result<&mut Self> {
        self.compile_cache = Some(wasm::CompileCache::open(dir)?);
        Ok(self)
    }

    /// Receive egress denials and load warnings.
    pub fn log_hook(&mut self, hook: Arc<LogHook>) -> &mut Self {
        self.log = Some(hook);
        self
    }

    pub fn build(&self) -> Result<Host> {
        if self.require_signature && self.trusted_keys.is_empty() {
            return fail(Status::InvalidArgument, "require_signature is on but no trusted key was given");
        }
        Ok(Host { config: Arc::new(self.clone()), runtimes: Arc::default() })
    }
}

/// A plugin host. Immutable once built; share it freely across threads.
#[derive(Clone)]
pub struct Host {
    config: Arc<HostBuilder>,
    /// WASM engines, made on first use: without and with fuel metering.
    runtimes: Arc<[Mutex<Option<Arc<WasmRuntime>>>; 2]>,
}

/// A file or directory discovery passed over, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    /// The plugin's name, when the library got far enough to tell.
    pub plugin: Option<String>,
    pub error: Error,
}

/// The result of scanning the search paths.
#[derive(Debug, Clone, Default)]
pub struct Discovery {
    pub plugins: Vec<PluginInfo>,
    pub skipped: Vec<Skipped>,
}

/// One thing found in a search path.
enum Candidate {
    Library(PathBuf),
    Package(PathBuf),
}

impl Host {
    pub fn builder() -> HostBuilder {
        HostBuilder::new()
    }

    /// List every plugin in the search paths, and every candidate passed over with the reason.
    pub fn discover(&self) -> Discovery {
        let mut found = Discovery::default();
        for candidate in self.candidates(&mut found.skipped) {
            match candidate {
                Candidate::Library(path) => match self.open_library(&path) {
                    Ok(lib) => {
                        for entry in lib.entries {
                            let (plugin, result) = match entry {
                                Ok(e) => (Some(e.info.name.clone()), self.check_expectations(&e.info).map(|()| e)),
                                Err(bad) => (bad.plugin, Err(bad.error)),
                            };
                            match result {
                                Ok(e) => found.plugins.push(e.info.clone()),
                                Err(error) => found.skipped.push(Skipped { path: path.clone(), plugin, error }),
                            }
                        }
                    }
                    Err(error) => found.skipped.push(Skipped { path, plugin: None, error }),
                },
                Candidate::Package(dir) => match Manifest::read(&dir) {
                    Ok(manifest) if manifest.info(&dir).is_none() => {}
                    Ok(manifest) => match self.open_package(&dir) {
                        Ok((verified, _)) => found.plugins.extend(verified.info(&dir)),
                        Err(error) => found.skipped.push(Skipped { path: dir, plugin: Some(manifest.package.name), error }),
                    },
                    Err(error) => found.skipped.push(Skipped { path: dir, plugin: None, error }),
                },
            }
        }
        found
    }

    /// Load the plugin called `name` (a native plugin's type name, or a package's name).
    pub fn load(&self, name: &str, options: &LoadOptions) -> Result<Plugin> {
        let mut passed_over = Vec::new();
        for candidate in self.candidates(&mut passed_over) {
            match candidate {
                Candidate::Library(path) => match self.open_library(&path) {
                    Ok(lib) => {
                        if let Some(plugin) = self.instantiate(&lib, Some(name), options) {
                            return plugin;
                        }
                    }
                    Err(error) if self.config.load_policy == LoadPolicy::Strict => return Err(error),
                    Err(error) => passed_over.push(Skipped { path, plugin: None, error }),
                },
                Candidate::Package(dir) => match Manifest::read(&dir) {
                    Ok(manifest) if manifest.package.name == name && manifest.info(&dir).is_some() => {
                        return self.load_package_dir(&dir, name, options);
                    }
                    Ok(_) => {}
                    Err(error) => passed_over.push(Skipped { path: dir, plugin: None, error }),
                },
            }
        }
        Err(not_found(name, &self.config.search_paths, &passed_over))
    }

    /// Load a plugin from the library at `path`. `name` picks one of several
    /// plugins in it; NULL/None takes the only one.
    pub fn load_path(&self, path: &Path, name: Option<&str>, options: &LoadOptions) -> Result<Plugin> {
        let lib = self.open_library(path)?;
        if name.is_none() && lib.entries.len() != 1 {
            return fail(
                Status::InvalidArgument,
                format!("{} holds {} plugins: name the one to load", path.display(), lib.entries.len()),
            );
        }
        self.instantiate(&lib, name, options).unwrap_or_else(|| {
            Err(Error::new(
                Status::PluginNotFound,
                format!("{} holds no plugin named {}", path.display(), name.unwrap_or("?")),
            ))
        })
    }

    /// Make a plugin from the entry named `name` (any entry when None):
    /// None when no entry has that name.
    fn instantiate(&self, lib: &NativeLibrary, name: Option<&str>, options: &LoadOptions) -> Option<Result<Plugin>> {
        let in_file = |e: Error| e.context(lib.path.display());
        for entry in &lib.entries {
            let entry = match entry {
                Ok(entry) if name.is_none_or(|n| entry.info.name == n) => entry,
                Ok(_) => continue,
                // A descriptor that failed validation and carries the wanted name:
                // report why, rather than "not found".
                Err(bad) if name.is_none() || bad.plugin.as_deref() == name => {
                    return Some(Err(in_file(bad.error.clone())))
                }
                Err(_) => continue,
            };
            let plugin = self
                .check_expectations(&entry.info)
                .and_then(|()| check_hash(&entry.info, options.interface_hash))
                .and_then(|()| self.schema_for(&lib.path, &entry.info, options))
                .and_then(|schema| {
                    let imports = lib.host_imports.as_ref().map_err(Error::clone)?;
                    let offered = options.host_interfaces.over(&self.config.host_interfaces);
                    let host = native::host_imports::bind(imports, &offered)?;
                    let native = NativePlugin::new(lib.library.clone(), entry.clone(), options.config.as_deref(), host)?;
                    Plugin::native(native, schema)
                })
                .map_err(in_file);
            return Some(plugin);
        }
        None
    }

    /// The schema for a native plugin: the load's, else `<library file>.wit`
    /// beside the library (signed as `<library file>.wit.sig` when
    /// signatures are required), else the host's for its interface.
    fn schema_for(&self, library: &Path, info: &PluginInfo, options: &LoadOptions) -> Result<Option<(Arc<Interface>, String)>> {
        let matching = |schema: &Schema, strict: bool| {
            let found = if strict { schema.interface_named(&info.interface_name) } else { schema.interface(&info.interface_name) };
            found.map(|i| (i, schema.origin.clone()))
        };
        if let Some(schema) = &options.schema {
            return matching(schema, false).map(Some).ok_or_else(|| {
                Error::new(
                    Status::SchemaMismatch,
                    format!(
                        "plugin {}: the schema given for the load declares interfaces {}, none of them {}",
                        info.name,
                        schema.names().join(", "),
                        info.interface_name
                    ),
                )
            });
        }
        let sidecar = schema_path_for(library);
        if let Some(bytes) = files::read_optional(&sidecar, files::MAX_MANIFEST_BYTES)? {
            if self.config.require_signature {
                signing::verify(&bytes, &signing::sig_path_for(&sidecar), &self.config.trusted_keys)?;
            }
            let schema = Schema::from_bytes(&bytes, &sidecar.display().to_string())?;
            if let Some(found) = matching(&schema, true) {
                return Ok(Some(found));
            }
        }
        Ok(self.config.schemas.iter().find_map(|s| matching(s, true)))
    }

    fn load_package(&self, info: PluginInfo, manifest: &Manifest, files: &PackageFiles, options: &LoadOptions) -> Result<Plugin> {
        if info.runtime == Runtime::Python {
            return self.load_python(info, manifest, files, options);
        }
        let runtime = self.wasm_runtime(options.fuel.is_some())?;
        let options = WasmOptions {
            name: info.name.clone(),
            egress: options.egress.clone().or_else(|| self.config.egress.clone()),
            log: self.config.log.clone(),
            capabilities: self.config.capabilities.clone(),
            trust_precompiled: self.config.trust_precompiled,
            host_interfaces: options.host_interfaces.over(&self.config.host_interfaces),
            compile_cache: self.config.compile_cache.clone(),
            load: options.clone(),
        };
        let loaded = wasm::load_package(runtime, files, manifest, options)?;
        if let Some(log) = &self.config.log {
            for w in &loaded.warnings {
                log.log(LogLevel::Warn, &format!("plugin {}: {w}", info.name));
            }
        }
        Ok(Plugin::wasm(info, loaded.plugin, loaded.warnings))
    }

    fn load_python(&self, info: PluginInfo, manifest: &Manifest, files: &PackageFiles, options: &LoadOptions) -> Result<Plugin> {
        // Settings that would promise a sandbox Python plugins do not have
        // fail the load rather than be silently ignored.
        let unenforceable = [
            (options.grants.is_some(), "capability grants"),
            (options.egress.is_some(), "an egress policy"),
            (options.fuel.is_some(), "fuel"),
        ];
        let asked: Vec<&str> = unenforceable.iter().filter(|(set, _)| *set).map(|(_, what)| *what).collect();
        if !asked.is_empty() {
            return fail(
                Status::Unsupported,
                format!(
                    "Python plugin {}: {} cannot be enforced: Python code runs unsandboxed, with the host user's rights \
                     (a timeout and a memory limit can be)",
                    info.name,
                    asked.join(", ")
                ),
            );
        }
        let config = match &options.config {
            None => None,
            Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                Error::new(Status::InvalidArgument, format!("Python plugins take their config as JSON (for __fidius_configure__): {e}"))
            })?),
        };
        let python_options = python::PythonOptions {
            interpreter: self.config.python.clone().unwrap_or_else(python::default_interpreter),
            timeout: options.timeout,
            memory_limit: options.memory_limit,
            config,
        };
        let plugin = python::load_package(files, manifest, python_options)?;
        let got = PluginInfo { interface_hash: plugin.interface_hash, ..info.clone() };
        self.check_expectations(&got).and_then(|()| check_hash(&got, options.interface_hash))?;
        // The schema: the load's, else the host's for the package's interface.
        let schema = match &options.schema {
            Some(schema) => Some(schema.interface(&info.interface_name).map(|i| (i, schema.origin.clone())).ok_or_else(|| {
                Error::new(
                    Status::SchemaMismatch,
                    format!("plugin {}: the schema given for the load declares no interface {}", info.name, info.interface_name),
                )
            })?),
            None => self.config.schemas.iter().find_map(|s| s.interface_named(&info.interface_name).map(|i| (i, s.origin.clone()))),
        };
        Plugin::python(info, plugin, schema)
    }

    /// Load the package in `dir`, found by its (not yet verified) manifest
    /// under the name `name`.
    fn load_package_dir(&self, dir: &Path, name: &str, options: &LoadOptions) -> Result<Plugin> {
        let (manifest, files) = self.open_package(dir)?;
        if manifest.package.name != name {
            return fail(
                Status::InvalidManifest,
                format!("{}: the package's name changed to {} while it was read", dir.display(), manifest.package.name),
            );
        }
        let info = manifest.info(dir).ok_or_else(|| Error::new(Status::InvalidManifest, format!("{}: not a wasm or python package", dir.display())))?;
        self.load_package(info, &manifest, &files, options)
    }

    /// A package directory's manifest and files. With signatures required,
    /// every signed file is read into memory once and verified, and the
    /// manifest, component and `.cwasm` are then taken from those bytes.
    fn open_package(&self, dir: &Path) -> Result<(Manifest, PackageFiles)> {
        let files = if self.config.require_signature {
            let content = signing::read_package(dir)?;
            let sig = files::read_optional(&dir.join(signing::PACKAGE_SIG), files::MAX_SMALL_FILE_BYTES)?;
            signing::verify_package(dir, &content, sig.as_deref(), &self.config.trusted_keys)?;
            PackageFiles::in_memory(dir, content, true)
        } else {
            PackageFiles::on_disk(dir)
        };
        Ok((files.manifest()?, files))
    }

    /// Load the package in the `.fid` archive at `path` (`fidius package
    /// pack`). The archive is read and extracted into memory once, its
    /// `package.sig` verified against the extracted content when signatures
    /// are required, and the package loaded from those bytes: nothing is
    /// written to disk, and the archive is not needed afterwards.
    pub fn load_fid(&self, path: &Path, options: &LoadOptions) -> Result<Plugin> {
        let (content, sig) = Archive::read(path)?.into_package();
        if self.config.require_signature {
            signing::verify_package(path, &content, sig.as_deref(), &self.config.trusted_keys)?;
        }
        let files = PackageFiles::in_memory(path, content, self.config.require_signature);
        let manifest = files.manifest()?;
        let info = manifest.info(path).ok_or_else(|| {
            Error::new(
                Status::Unsupported,
                format!("{}: a rust-runtime package holds source code; load the library built from it", path.display()),
            )
        })?;
        self.load_package(info, &manifest, &files, options)
    }

    /// Extract the package in the `.fid` archive at `path` into `dest`, as
    /// `dest/<name>-<version>` from its manifest (replacing a directory of
    /// that name), and return that directory. Only the package's content is
    /// written (the files a package signature covers, and `package.sig`).
    /// With signatures required, nothing is written unless the archive's
    /// `package.sig` verifies that content, and the name comes from the
    /// verified manifest.
    pub fn unpack_fid(&self, path: &Path, dest: &Path) -> Result<PathBuf> {
        let archive = Archive::read(path)?;
        let content = archive.signed_content();
        if self.config.require_signature {
            signing::verify_package(path, &content, archive.signature(), &self.config.trusted_keys)?;
        }
        let manifest = content
            .get(MANIFEST)
            .ok_or_else(|| Error::new(Status::Archive, format!("{}: the package has no {MANIFEST}", path.display())))?;
        let manifest = Manifest::from_bytes(manifest, &path.join(MANIFEST))?;
        archive.unpack(dest, &manifest.dir_name()?)
    }

    /// The host's WASM engine (one per fuel setting), made on first use and
    /// shared with other hosts of the same setting ([`WasmRuntime::shared`]).
    pub fn wasm_runtime(&self, fuel: bool) -> Result<Arc<WasmRuntime>> {
        let mut slot = self.runtimes[fuel as usize].lock().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        Ok(slot.insert(WasmRuntime::shared(fuel)?).clone())
    }

    /// Ahead-of-time compile a component into `.cwasm` bytes that packages
    /// loaded by this libfidius build can use (`[wasm].precompiled`).
    pub fn precompile_component(&self, wasm: &[u8]) -> Result<Vec<u8>> {
        wasm::precompile(&*self.wasm_runtime(false)?, wasm)
    }

    /// The host's expectations on native plugins (interface hash, buffer strategy).
    fn check_expectations(&self, info: &PluginInfo) -> Result<()> {
        let name = &info.name;
        if let Some(expected) = self.config.interface_hash {
            if info.interface_hash != expected {
                return fail(
                    Status::InterfaceHashMismatch,
                    format!(
                        "plugin {name}: interface hash is 0x{:016x}, the host expects 0x{expected:016x}",
                        info.interface_hash
                    ),
                );
            }
        }
        if let (Some(expected), Some(got)) = (self.config.buffer_strategy, info.buffer_strategy) {
            if got != expected {
                return fail(
                    Status::BufferStrategy,
                    format!("plugin {name}: buffer strategy is {got:?}, the host expects {expected:?}"),
                );
            }
        }
        Ok(())
    }

    /// Verify (when required) and open a library.
    fn open_library(&self, path: &Path) -> Result<NativeLibrary> {
        let in_file = |e: Error| e.context(path.display());
        if !self.config.require_signature {
            return native::library::open(path, native::Source::Path).map_err(in_file);
        }
        // Read once, verify those bytes, and load those same bytes.
        let bytes = files::read_regular(path, files::MAX_LIBRARY_BYTES)?;
        signing::verify(&bytes, &signing::sig_path_for(path), &self.config.trusted_keys).map_err(in_file)?;
        native::library::open(path, native::Source::Bytes(&bytes)).map_err(in_file)
    }

    /// Files and package directories in the search paths, in a stable order.
    fn candidates(&self, skipped: &mut Vec<Skipped>) -> Vec<Candidate> {
        let mut out = Vec::new();
        for dir in &self.config.search_paths {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) => {
                    skipped.push(Skipped {
                        path: dir.clone(),
                        plugin: None,
                        error: Error::new(Status::Io, format!("search path cannot be read: {e}")),
                    });
                    continue;
                }
            };
            let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            paths.sort();
            for path in paths {
                if path.is_dir() {
                    match std::fs::metadata(path.join(MANIFEST)) {
                        Ok(m) if m.is_file() => out.push(Candidate::Package(path)),
                        Ok(m) => skipped.push(Skipped {
                            path: path.join(MANIFEST),
                            plugin: None,
                            error: Error::new(Status::FileRefused, format!("{MANIFEST} is {}, not a regular file", files::kind(&m))),
                        }),
                        Err(_) => {}
                    }
                } else if path.extension().is_some_and(|e| e == std::env::consts::DLL_EXTENSION) {
                    out.push(Candidate::Library(path));
                }
            }
        }
        out
    }
}

/// Where a library's interface schema is looked for: `<file name>.wit`
/// beside it (`libcalc.so` -> `libcalc.so.wit`), as signatures are named.
pub fn schema_path_for(library: &Path) -> PathBuf {
    let mut name = library.file_name().unwrap_or_default().to_os_string();
    name.push(".wit");
    library.with_file_name(name)
}

/// The per-load expected hash.
fn check_hash(info: &PluginInfo, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(h) if h != info.interface_hash => fail(
            Status::InterfaceHashMismatch,
            format!("plugin {}: interface hash is 0x{:016x}, the load expects 0x{h:016x}", info.name, info.interface_hash),
        ),
        _ => Ok(()),
    }
}

fn not_found(name: &str, search_paths: &[PathBuf], passed_over: &[Skipped]) -> Error {
    let paths: Vec<String> = search_paths.iter().map(|p| p.display().to_string()).collect();
    let mut message = format!("no plugin named {name} in the search paths [{}]", paths.join(", "));
    if !passed_over.is_empty() {
        message.push_str("; passed over: ");
        let reasons: Vec<String> = passed_over.iter().map(|s| s.error.message.clone()).collect();
        message.push_str(&reasons.join("; "));
    }
    Error::new(Status::PluginNotFound, message)
}
