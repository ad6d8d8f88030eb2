//! Python plugins: `runtime = "python"` Fidius packages, run out of process.
//!
//! Each loaded Python plugin gets a `python3` runner process of its own
//! (`runner.py`), which imports the package's entry module as fidius-python
//! does and answers calls over a socket. Out of process rather than an
//! embedded interpreter: libfidius never links or loads libpython (hosts
//! that never use Python pay nothing, and a Python host using the ctypes
//! binding has no second interpreter in its process); a plugin that hangs,
//! crashes or grows without bound is a process libfidius kills, so the
//! timeout and memory limit hold; and plugins run in parallel, each under its
//! own GIL. The price is a round trip per call (see the README's benchmarks).
//! Python code is not sandboxed: like a native library it runs with the host
//! user's rights, which is why the package signature checks apply to it.

mod process;
mod stage;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::cancel::Cancel;
use crate::error::{fail, Error, PluginError, Result, Status};
use crate::package::{Manifest, PackageFiles};
use crate::stream::{Feed, ItemStream};
use crate::value::{json as convert, Ty};
use process::{Reply, Runner};

/// The least time a runner is given to start and import the plugin.
const MIN_IMPORT_TIME: Duration = Duration::from_secs(60);

/// What a Python plugin is loaded with.
#[derive(Clone)]
pub struct PythonOptions {
    /// The interpreter to run (`python3` on the PATH by default).
    pub interpreter: PathBuf,
    /// Per call (and per stream item), the runner is killed at this deadline.
    pub timeout: Option<Duration>,
    /// The runner process's address space (RLIMIT_AS), in bytes.
    pub memory_limit: Option<usize>,
    /// JSON, passed to the module's `__fidius_configure__`.
    pub config: Option<Value>,
}

/// A loaded Python plugin: its runner, and what its module exports.
pub struct PythonPlugin {
    shared: Arc<Shared>,
    /// The module's public functions (or the configured instance's
    /// methods), in definition order.
    pub methods: Vec<String>,
    /// The module's `__interface_hash__`.
    pub interface_hash: u64,
}

struct Shared {
    name: String,
    dir: PathBuf,
    module: String,
    options: PythonOptions,
    runner: Mutex<Slot>,
    next_stream: AtomicU64,
    /// The verified files, written out for the interpreter (signed or archived packages).
    _staged: Option<stage::Staged>,
}

struct Slot {
    runner: Option<Runner>,
    /// Bumped each time a runner starts: streams of an older one have ended.
    generation: u64,
}

/// Load the Python package whose files are `files`.
pub fn load_package(files: &PackageFiles, manifest: &Manifest, options: PythonOptions) -> Result<PythonPlugin> {
    let python = manifest.python.as_ref().ok_or_else(|| Error::new(Status::InvalidManifest, "no [python] section"))?;
    let module = python.entry_module.clone();
    if module.is_empty() || !module.split('.').all(|p| !p.is_empty() && p.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())) {
        return fail(Status::InvalidManifest, format!("entry_module = \"{module}\" is not a Python module name"));
    }
    let (dir, staged) = match stage::Staged::of(files)? {
        Some(staged) => (staged.dir().to_path_buf(), Some(staged)),
        None => (files.origin().to_path_buf(), None),
    };
    let shared = Arc::new(Shared {
        name: manifest.package.name.clone(),
        dir,
        module,
        options,
        runner: Mutex::new(Slot { runner: None, generation: 0 }),
        next_stream: AtomicU64::new(1),
        _staged: staged,
    });
    let loaded = shared.start()?;
    let mut slot = shared.runner.lock().unwrap_or_else(|p| p.into_inner());
    slot.runner = Some(loaded.0);
    slot.generation = 1;
    drop(slot);
    let (hash, methods) = loaded.1;
    Ok(PythonPlugin { shared, methods, interface_hash: hash })
}

impl Shared {
    /// Start a runner and import the plugin in it. The import gets the
    /// call timeout but at least [`MIN_IMPORT_TIME`]: starting an
    /// interpreter and importing vendored packages on a busy machine can
    /// take seconds, and a module that hangs at import is still stopped.
    fn start(&self) -> Result<(Runner, (u64, Vec<String>))> {
        let mut runner = Runner::spawn(&self.options.interpreter, self.options.memory_limit)?;
        let request = json!({
            "op": "load",
            "dir": self.dir.to_string_lossy(),
            "module": self.module,
            "configured": self.options.config.is_some(),
            "config": self.options.config,
        });
        let in_package = |e: Error| e.context(format!("Python plugin {}", self.name));
        let import_time = self.options.timeout.map_or(MIN_IMPORT_TIME, |t| t.max(MIN_IMPORT_TIME));
        let reply = runner.exchange(&request, &[], Some(import_time), None, None).map_err(|e| match e.status {
            // No frame back at all: the interpreter is not a Python that runs the runner.
            Status::Trap | Status::Serialization => in_package(Error::new(
                Status::LibraryLoad,
                format!(
                    "{} did not run the Python runner ({}){}",
                    self.options.interpreter.display(),
                    e.message,
                    match self.options.memory_limit {
                        Some(limit) => format!("; is the memory limit ({limit} bytes) too small for the interpreter to start?"),
                        None => String::new(),
                    }
                ),
            )),
            _ => in_package(e),
        })?;
        // The runner says whether importing or configuring failed.
        let configuring = reply.message.get("phase").and_then(Value::as_str) == Some("configure");
        let loaded = match answer(reply) {
            Ok(Answer::Value(v)) => v,
            Err(e) if e.status == Status::PluginError => {
                let p = e.plugin_error.as_deref().cloned().unwrap_or(PluginError { code: String::new(), message: e.message.clone(), details: None });
                let traceback = p
                    .details
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|d| d.get("traceback").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_default();
                let (status, what) = if configuring {
                    (Status::ConfigRejected, format!("{}.__fidius_configure__ rejected the config", self.module))
                } else {
                    (Status::LibraryLoad, format!("importing {} failed", self.module))
                };
                return Err(in_package(Error::new(status, format!("{what}: {}: {}\n{traceback}", p.code, p.message))));
            }
            // The runner's own refusal (a config for a module without __fidius_configure__).
            Err(e) if e.status == Status::Serialization => return Err(in_package(Error::new(Status::InvalidArgument, e.message))),
            Err(e) => return Err(in_package(e)),
            Ok(other) => return fail(Status::Serialization, format!("Python plugin {}: unexpected load reply {other:?}", self.name)),
        };
        let hash = match loaded.get("hash").and_then(Value::as_u64) {
            Some(h) => h,
            None => {
                return fail(
                    Status::InvalidManifest,
                    format!(
                        "Python plugin {}: module {} has no integer __interface_hash__ (generate it with `fidius python-stub`)",
                        self.name, self.module
                    ),
                )
            }
        };
        let methods = loaded
            .get("methods")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|m| m.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        Ok((runner, (hash, methods)))
    }

    /// One exchange with the plugin's runner (started again if an earlier
    /// one was stopped), and the runner generation it ran in.
    fn exchange(
        &self,
        request: &Value,
        data: &[u8],
        feed: Option<&Feed>,
        generation: Option<u64>,
        cancel: Option<&Cancel>,
    ) -> Result<(Reply, u64)> {
        // A stream source feeding this plugin runs on this thread while it
        // holds the runner: calling the plugin from there would wait for itself.
        let _busy = Busy::enter(self as *const Shared as usize).ok_or_else(|| {
            Error::new(
                Status::Unsupported,
                format!(
                    "Python plugin {}: re-entrant call: its runner is busy with a call on this thread \
                     (a stream source called the plugin it feeds)",
                    self.name
                ),
            )
        })?;
        let mut slot = self.runner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = generation {
            if slot.generation != g || slot.runner.is_none() {
                return fail(
                    Status::Trap,
                    "the plugin's Python runner was stopped (a call failed, ran past its timeout or was cancelled), which ended this stream",
                );
            }
        }
        if slot.runner.is_none() {
            let (runner, _) = self.start()?;
            slot.runner = Some(runner);
            slot.generation += 1;
        }
        let result = slot.runner.as_mut().expect("started").exchange(request, data, self.options.timeout, feed, cancel);
        match result {
            Ok(reply) => Ok((reply, slot.generation)),
            Err(e) => {
                // A stopped, broken or dead runner is killed (dropped), never reused.
                slot.runner = None;
                Err(e.context(format!("Python plugin {}", self.name)))
            }
        }
    }
}

thread_local! {
    /// The Python plugins with an exchange running on this thread.
    static BUSY: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks a plugin busy on this thread for one exchange.
struct Busy(usize);

impl Busy {
    fn enter(plugin: usize) -> Option<Busy> {
        BUSY.with(|b| {
            let mut busy = b.borrow_mut();
            (!busy.contains(&plugin)).then(|| {
                busy.push(plugin);
                Busy(plugin)
            })
        })
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.with(|b| b.borrow_mut().retain(|p| *p != self.0));
    }
}

#[derive(Debug)]
enum Answer {
    Value(Value),
    Bytes(Vec<u8>),
    End,
}

/// Read `bytes` as a runner's output, frame after frame, as the host reads
/// its socket, and take each reply as a call's outcome: what the fuzz
/// target `python_reply` drives. Returns how many replies were read.
#[doc(hidden)]
pub fn read_replies(bytes: &[u8]) -> usize {
    let mut rest = bytes;
    let mut read = 0;
    loop {
        let reply = process::read_reply(|buf| match rest.split_at_checked(buf.len()) {
            Some((head, tail)) => {
                buf.copy_from_slice(head);
                rest = tail;
                Ok(())
            }
            None => fail(Status::Trap, "the Python runner closed its output"),
        });
        let Ok(reply) = reply else { return read };
        read += 1;
        let _ = answer(reply);
    }
}

/// A runner's reply as the call's outcome.
fn answer(reply: Reply) -> Result<Answer> {
    let Reply { mut message, data } = reply;
    if let Some(v) = message.get_mut("ok") {
        return Ok(Answer::Value(v.take()));
    }
    if let Some(v) = message.get_mut("item") {
        return Ok(Answer::Value(v.take()));
    }
    if message.get("ok_raw").is_some() {
        return Ok(Answer::Bytes(data));
    }
    if message.get("end").is_some() {
        return Ok(Answer::End);
    }
    if let Some(e) = message.get("error") {
        let text = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
        return Err(Error::plugin(PluginError {
            code: text("code").unwrap_or_else(|| "PythonError".into()),
            message: text("message").unwrap_or_default(),
            details: text("details"),
        }));
    }
    if let Some(why) = message.get("fail").and_then(Value::as_str) {
        return fail(Status::Serialization, why.to_string());
    }
    fail(Status::Serialization, format!("the Python runner sent an unknown reply: {message}"))
}

/// JSON call arguments as the runner takes them (empty input: none).
fn args_value(input: &[u8]) -> Result<Value> {
    if input.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let value: Value = serde_json::from_slice(input)
        .map_err(|e| Error::new(Status::Serialization, format!("input is not valid JSON: {e}")))?;
    match value {
        Value::Array(_) | Value::Object(_) => Ok(value),
        other => fail(Status::Serialization, format!("the arguments are {other}, not an array or an object")),
    }
}

impl PythonPlugin {
    /// Call `method` (its Python name) with JSON arguments (an array, or an
    /// object by parameter name); the output is the JSON of its result.
    /// With `feed`, a client-streaming call: the host-fed iterator is the
    /// first argument.
    /// `cancel` stops the call wherever it is (its runner is stopped).
    pub fn call_json(&self, method: &str, input: &[u8], feed: Option<&Feed>, cancel: Option<&Cancel>) -> Result<Vec<u8>> {
        let request = json!({ "op": "call", "m": method, "args": args_value(input)?, "fed": feed.is_some() });
        match answer(self.shared.exchange(&request, &[], feed, None, cancel)?.0)? {
            Answer::Value(v) => Ok(serde_json::to_vec(&v).expect("JSON values serialize")),
            _ => fail(Status::Serialization, format!("method {method}: an unexpected reply")),
        }
    }

    /// Call raw method `method`: bytes in (as `bytes`), bytes out.
    pub fn call_raw(&self, method: &str, input: &[u8], cancel: Option<&Cancel>) -> Result<Vec<u8>> {
        let request = json!({ "op": "call", "m": method, "raw": true });
        match answer(self.shared.exchange(&request, input, None, None, cancel)?.0)? {
            Answer::Bytes(b) => Ok(b),
            _ => fail(Status::Serialization, format!("method {method}: an unexpected reply")),
        }
    }

    /// Start `method` as a stream (its result is iterated: a generator);
    /// with `feed`, bidirectional. Items are JSON, or the wire bytes of
    /// `wire_item` when given.
    pub fn stream(
        &self,
        method: &str,
        input: &[u8],
        feed: Option<Arc<Feed>>,
        wire_item: Option<Ty>,
        cancel: Option<Arc<Cancel>>,
    ) -> Result<PythonStream> {
        let id = self.shared.next_stream.fetch_add(1, Ordering::Relaxed);
        let request = json!({ "op": "open", "id": id, "m": method, "args": args_value(input)?, "fed": feed.is_some() });
        let (reply, generation) = self.shared.exchange(&request, &[], feed.as_deref(), None, cancel.as_deref())?;
        answer(reply)?;
        Ok(PythonStream { shared: self.shared.clone(), id, generation, feed, wire_item, cancel, ended: false })
    }
}

/// A Python plugin's output stream: its generator, in the runner.
pub struct PythonStream {
    shared: Arc<Shared>,
    id: u64,
    generation: u64,
    feed: Option<Arc<Feed>>,
    wire_item: Option<Ty>,
    cancel: Option<Arc<Cancel>>,
    ended: bool,
}

impl ItemStream for PythonStream {
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        if self.ended {
            return Ok(None);
        }
        let request = json!({ "op": "next", "id": self.id });
        let step = self
            .shared
            .exchange(&request, &[], self.feed.as_deref(), Some(self.generation), self.cancel.as_deref())
            .and_then(|(reply, _)| answer(reply));
        let item = match step {
            Ok(Answer::Value(v)) => v,
            Ok(_) => {
                self.ended = true;
                return Ok(None);
            }
            Err(e) => {
                self.ended = true;
                return Err(e);
            }
        };
        let text = serde_json::to_vec(&item).expect("JSON values serialize");
        match &self.wire_item {
            None => Ok(Some(text)),
            Some(ty) => {
                let mut wrapped = Vec::with_capacity(text.len() + 2);
                wrapped.push(b'[');
                wrapped.extend_from_slice(&text);
                wrapped.push(b']');
                convert::args_to_wire(&[("item".to_string(), ty.clone())], &wrapped).map(Some).map_err(|e| {
                    self.ended = true;
                    e.context("a stream item")
                })
            }
        }
    }
}

impl Drop for PythonStream {
    fn drop(&mut self) {
        if !self.ended {
            // Closes the generator (its `finally` runs), in the runner it came from.
            let request = json!({ "op": "close", "id": self.id });
            let _ = self.shared.exchange(&request, &[], None, Some(self.generation), None);
        }
    }
}

/// The interpreter when the host names none.
pub fn default_interpreter() -> PathBuf {
    Path::new("python3").to_path_buf()
}
