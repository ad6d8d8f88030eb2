//! A loaded plugin of any runtime: calls (JSON ones converted here, once
//! for every runtime), method names, and its description.

use std::sync::Arc;

use crate::cancel::Cancel;
use crate::error::{fail, Error, Result, Status};
pub use crate::info::{BufferStrategy, Format, Meta, MethodInfo, PluginInfo, Runtime, Signature};
use crate::schema::Interface;
use crate::value::{json, Ty};
use crate::native::NativePlugin;
use crate::output::Output;
use crate::python::PythonPlugin;
use crate::stream::{with_feed, Feed, ItemSource, ItemStream};
use crate::wasm::WasmPlugin;

/// A loaded plugin: one instance, callable from many threads at once.
pub struct Plugin {
    info: PluginInfo,
    methods: Vec<MethodInfo>,
    trait_metadata: Meta,
    warnings: Vec<String>,
    /// Where the method types come from: "component", a schema's origin, or None.
    types_from: Option<String>,
    /// Packages: the capabilities granted.
    capabilities: Vec<String>,
    backend: Backend,
}

enum Backend {
    Native(NativePlugin),
    Wasm(WasmPlugin),
    Python(PythonPlugin),
}

impl Plugin {
    /// A native plugin, with the interface schema that describes it (if any).
    pub(crate) fn native(plugin: NativePlugin, schema: Option<(Arc<Interface>, String)>) -> Result<Self> {
        let entry = plugin.entry();
        let info = entry.info.clone();
        let count = info.method_count as usize;
        let mut methods: Vec<MethodInfo> = entry
            .method_metadata
            .iter()
            .enumerate()
            .map(|(i, m)| MethodInfo {
                name: None,
                metadata: m.clone(),
                signature: None,
                implemented: plugin.has_method(i as u32),
                optional: None,
            })
            .collect();
        let types_from = match schema {
            None => None,
            Some((iface, origin)) => {
                if iface.methods.len() < count {
                    return fail(
                        Status::SchemaMismatch,
                        format!(
                            "plugin {}: the schema ({origin}; interface {}) has {} methods, the plugin has {count}: it describes another interface or an older revision",
                            info.name,
                            iface.name,
                            iface.methods.len()
                        ),
                    );
                }
                for (i, sig) in iface.methods.iter().enumerate() {
                    let signature = Some(sig.signature());
                    match methods.get_mut(i) {
                        Some(m) => {
                            m.name = Some(sig.name.clone());
                            m.signature = signature;
                        }
                        // Beyond the descriptor's methods: optional methods of
                        // a newer revision, which this plugin was built without.
                        None => methods.push(MethodInfo {
                            name: Some(sig.name.clone()),
                            metadata: Vec::new(),
                            signature,
                            implemented: false,
                            optional: Some(true),
                        }),
                    }
                }
                Some(origin)
            }
        };
        Ok(Plugin {
            info,
            methods,
            trait_metadata: entry.trait_metadata.clone(),
            warnings: Vec::new(),
            types_from,
            capabilities: Vec::new(),
            backend: Backend::Native(plugin),
        })
    }

    pub(crate) fn wasm(mut info: PluginInfo, plugin: WasmPlugin, warnings: Vec<String>) -> Self {
        let methods = plugin.method_infos();
        info.interface_hash = plugin.interface_hash();
        info.method_count = methods.len() as u32;
        let capabilities = plugin.granted().to_vec();
        Plugin {
            info,
            methods,
            trait_metadata: Vec::new(),
            warnings,
            types_from: Some("component".into()),
            capabilities,
            backend: Backend::Wasm(plugin),
        }
    }

    /// A Python plugin; with a schema, its methods are the schema's (each
    /// must be in the module) and its calls also take wire bytes.
    pub(crate) fn python(mut info: PluginInfo, plugin: PythonPlugin, schema: Option<(Arc<Interface>, String)>) -> Result<Self> {
        info.interface_hash = plugin.interface_hash;
        let (methods, types_from) = match schema {
            Some((iface, origin)) => {
                let missing: Vec<&str> = iface
                    .methods
                    .iter()
                    .map(|m| m.name.as_str())
                    .filter(|n| !plugin.methods.iter().any(|p| *p == crate::value::snake(n)))
                    .collect();
                if !missing.is_empty() {
                    return fail(
                        Status::SchemaMismatch,
                        format!(
                            "Python plugin {}: the schema ({origin}; interface {}) has methods the module does not define: {}",
                            info.name,
                            iface.name,
                            missing.join(", ")
                        ),
                    );
                }
                let methods: Vec<MethodInfo> = iface
                    .methods
                    .iter()
                    .map(|sig| MethodInfo {
                        name: Some(sig.name.clone()),
                        metadata: Vec::new(),
                        signature: Some(sig.signature()),
                        implemented: true,
                        optional: None,
                    })
                    .collect();
                (methods, Some(origin))
            }
            // The module's own functions, in definition order: callable by
            // name (or that order's index) with JSON.
            None => (
                plugin
                    .methods
                    .iter()
                    .map(|n| MethodInfo { name: Some(n.clone()), metadata: Vec::new(), signature: None, implemented: true, optional: None })
                    .collect(),
                None,
            ),
        };
        info.method_count = methods.len() as u32;
        Ok(Plugin {
            info,
            methods,
            trait_metadata: Vec::new(),
            warnings: Vec::new(),
            types_from,
            capabilities: Vec::new(),
            backend: Backend::Python(plugin),
        })
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Call method `index` (its position in the interface) with `input` in `format`.
    /// The output is the plugin's own buffer where it allocated one (native
    /// PluginAllocated), else bytes libfidius owns; either way it derefs to `[u8]`.
    #[inline]
    pub fn call(&self, index: u32, format: Format, input: &[u8]) -> Result<Output> {
        self.call_cancellable(index, format, input, None)
    }

    /// As [`Plugin::call`], stopped with [`Status::Cancelled`] once `cancel`
    /// is triggered: a WASM call wherever it is (guest code at the next epoch
    /// tick, a blocked host call at once); a native call only before it
    /// starts, since native code cannot be interrupted safely.
    #[inline(always)]
    pub fn call_cancellable(&self, index: u32, format: Format, input: &[u8], cancel: Option<Arc<Cancel>>) -> Result<Output> {
        if let Some(MethodInfo { signature: Some(sig), name, .. }) = self.methods.get(index as usize) {
            if sig.streaming {
                // A native init slot would hand back a stream handle as if it were output.
                return fail(
                    Status::Unsupported,
                    format!("method {} returns a stream: open it with fidius_plugin_stream", name.as_deref().unwrap_or("?")),
                );
            }
        }
        if let Backend::Python(p) = &self.backend {
            return self.call_python(p, index, format, input, None, cancel.as_deref()).map(Output::Owned);
        }
        match format {
            Format::Wire => self.call_wire(index, input, cancel),
            Format::Json => self.call_json(index, input, cancel).map(Output::Owned),
        }
    }

    /// A Python plugin's call: JSON goes to the module as it is; wire bytes
    /// (and raw methods) need the method's types, from a schema.
    fn call_python(
        &self,
        p: &PythonPlugin,
        index: u32,
        format: Format,
        input: &[u8],
        feed: Option<&Feed>,
        cancel: Option<&Cancel>,
    ) -> Result<Vec<u8>> {
        let method = self.method(index)?;
        if cancel.is_some_and(Cancel::is_triggered) {
            return fail(Status::Cancelled, format!("plugin {}: the call was cancelled before it started", self.info.name));
        }
        let name = crate::value::snake(method.name.as_deref().unwrap_or_default());
        let in_method = |e: Error| e.context(format!("method {name}"));
        match (format, &method.signature) {
            (_, Some(sig)) if sig.raw && feed.is_none() => {
                let bytes = match format {
                    Format::Json => json::raw_arg(input).map_err(in_method)?,
                    Format::Wire => input.to_vec(),
                };
                let out = p.call_raw(&name, &bytes, cancel)?;
                Ok(match format {
                    Format::Json => serde_json::to_vec(&out.iter().map(|b| serde_json::Value::from(*b)).collect::<Vec<_>>()).expect("JSON"),
                    Format::Wire => out,
                })
            }
            (Format::Json, None) => p.call_json(&name, input, feed, cancel),
            // With types, JSON is checked and normalized by them both ways,
            // as for the other runtimes.
            (Format::Json, Some(sig)) => {
                let wire = json::args_to_wire(&sig.params, input).map_err(in_method)?;
                let out = self.call_python(p, index, Format::Wire, &wire, feed, cancel)?;
                json::output_to_json(sig.outcome(), &out).map_err(in_method)
            }
            (Format::Wire, None) => Err(self.untyped()),
            (Format::Wire, Some(sig)) => {
                let args = python_args(sig, input).map_err(in_method)?;
                let out = p.call_json(&name, &args, feed, cancel)?;
                match sig.outcome() {
                    None => Ok(Vec::new()),
                    Some(ty) => json_value_to_wire(ty, &out).map_err(|e| in_method(e.context("the plugin's result"))),
                }
            }
        }
    }

    #[inline(always)]
    fn call_wire(&self, index: u32, input: &[u8], cancel: Option<Arc<Cancel>>) -> Result<Output> {
        match &self.backend {
            Backend::Native(p) => {
                // Past the descriptor's methods only a schema's optional
                // methods can be (a NULL slot is the native call's to report).
                if index >= self.info.method_count && (index as usize) < self.methods.len() {
                    self.check_implemented(index)?;
                }
                if let Some(c) = cancel {
                    if c.is_triggered() {
                        return fail(Status::Cancelled, format!("plugin {}: the call was cancelled before it started", self.info.name));
                    }
                }
                p.call(index, input)
            }
            Backend::Wasm(p) => p.call(index, input, cancel).map(Output::Owned),
            Backend::Python(_) => unreachable!("Python calls go through call_python"),
        }
    }

    /// A JSON call: the wire call, with the arguments and the result
    /// converted by the method's types (the rules in [`crate::value::json`]).
    fn call_json(&self, index: u32, input: &[u8], cancel: Option<Arc<Cancel>>) -> Result<Vec<u8>> {
        let method = self.method(index)?;
        let sig = self.typed(method)?;
        let in_method = |e: Error| e.context(format!("method {}", method.name.as_deref().unwrap_or("?")));
        if sig.raw {
            let bytes = json::raw_arg(input).map_err(in_method)?;
            let out = self.call_wire(index, &bytes, cancel)?;
            return Ok(serde_json::to_vec(&out.iter().map(|b| serde_json::Value::from(*b)).collect::<Vec<_>>()).expect("JSON"));
        }
        let wire = json::args_to_wire(&sig.params, input).map_err(in_method)?;
        let out = self.call_wire(index, &wire, cancel)?;
        json::output_to_json(sig.outcome(), &out).map_err(in_method)
    }

    /// Start method `index` as a stream: a server stream (`fn m(..) ->
    /// Stream<T>`), or, with `source`, a bidirectional one (`fn m(..,
    /// Stream<In>) -> Stream<Out>`), the source feeding its `Stream<In>`
    /// argument. `input` holds the other arguments in `format`; items come
    /// out in `format` too (JSON where the item type is known). Source items
    /// are always wire bytes: the `Stream<In>` argument is in no schema.
    /// `cancel` stops a WASM stream's item wherever it is.
    pub fn stream(
        &self,
        index: u32,
        format: Format,
        input: &[u8],
        source: Option<Box<dyn ItemSource>>,
        cancel: Option<Arc<Cancel>>,
    ) -> Result<PluginStream> {
        let method = self.method(index)?;
        let name = method.name.as_deref().unwrap_or("?");
        let cancel_token = cancel.clone();
        if let Some(sig) = &method.signature {
            if !sig.streaming {
                return fail(
                    Status::Unsupported,
                    format!(
                        "method {name} does not return a stream: call it (fidius_plugin_call, or fidius_plugin_call_streaming \
                         when it takes a stream argument)"
                    ),
                );
            }
        }
        if let Backend::Python(p) = &self.backend {
            let feed = source.map(|s| Arc::new(Feed::new(s)));
            let python_name = crate::value::snake(name);
            let started = match format {
                Format::Json => p.stream(&python_name, input, feed.clone(), None, cancel.clone()),
                Format::Wire => {
                    let sig = self.typed(method)?;
                    let Some(item) = &sig.item else {
                        return fail(Status::Unsupported, format!("method {name}: its stream's item type is unknown, so items cannot be wire bytes"));
                    };
                    let args = python_args(sig, input)?;
                    p.stream(&python_name, &args, feed.clone(), Some(item.clone()), cancel.clone())
                }
            };
            let inner = match (started, &feed) {
                (Err(e), Some(feed)) => return with_feed(Err(e), feed),
                (started, _) => started?,
            };
            return Ok(PluginStream { inner: Some(Box::new(inner)), json_item: None, feed, cancel: cancel_token });
        }
        let (wire, json_item) = match format {
            Format::Wire => (std::borrow::Cow::Borrowed(input), None),
            Format::Json => {
                let sig = self.typed(method)?;
                let Some(item) = &sig.item else {
                    return fail(Status::Unsupported, format!("method {name}: its stream's item type is unknown, so items cannot be JSON"));
                };
                let wire = json::args_to_wire(&sig.params, input).map_err(|e| e.context(format!("method {name}")))?;
                (std::borrow::Cow::Owned(wire), Some(item.clone()))
            }
        };
        self.check_implemented(index)?;
        let feed = source.map(|s| Arc::new(Feed::new(s)));
        let started: Result<Box<dyn ItemStream>> = match &self.backend {
            Backend::Native(p) => p.stream(index, &wire, feed.clone()).map(|s| Box::new(s) as Box<dyn ItemStream>),
            Backend::Wasm(p) => p.stream(index, &wire, feed.clone(), cancel).map(|s| Box::new(s) as Box<dyn ItemStream>),
            Backend::Python(_) => unreachable!("handled above"),
        };
        let inner = match (started, &feed) {
            (Err(e), Some(feed)) => return with_feed(Err(e), feed),
            (started, _) => started?,
        };
        Ok(PluginStream { inner: Some(inner), json_item, feed, cancel: cancel_token })
    }

    /// Call client-streaming method `index` (`fn m(.., Stream<T>) -> R`):
    /// `source` feeds its `Stream<T>` argument (wire bytes per item),
    /// `input` holds the other arguments in `format`, and the output is its
    /// result. A source failure fails the call with the source's error.
    pub fn call_streaming(
        &self,
        index: u32,
        format: Format,
        input: &[u8],
        source: Box<dyn ItemSource>,
        cancel: Option<Arc<Cancel>>,
    ) -> Result<Output> {
        let method = self.method(index)?;
        let name = method.name.as_deref().unwrap_or("?");
        if method.signature.as_ref().is_some_and(|s| s.streaming) {
            return fail(
                Status::Unsupported,
                format!("method {name} returns a stream: open it with fidius_plugin_stream (with a source when it also takes one)"),
            );
        }
        if let Backend::Python(p) = &self.backend {
            let feed = Feed::new(source);
            let out = self.call_python(p, index, format, input, Some(&feed), cancel.as_deref());
            feed.close();
            return with_feed(out, &feed).map(Output::Owned);
        }
        let (wire, outcome) = match format {
            Format::Wire => (std::borrow::Cow::Borrowed(input), None),
            Format::Json => {
                let sig = self.typed(method)?;
                let wire = json::args_to_wire(&sig.params, input).map_err(|e| e.context(format!("method {name}")))?;
                (std::borrow::Cow::Owned(wire), Some(sig.outcome()))
            }
        };
        self.check_implemented(index)?;
        if let Some(c) = &cancel {
            if c.is_triggered() && matches!(self.backend, Backend::Native(_)) {
                return fail(Status::Cancelled, format!("plugin {}: the call was cancelled before it started", self.info.name));
            }
        }
        let feed = Arc::new(Feed::new(source));
        let out = match &self.backend {
            Backend::Native(p) => p.call_fed(index, &wire, feed.clone()),
            Backend::Wasm(p) => p.call_with(index, &wire, cancel, Some(feed.clone())).map(Output::Owned),
            Backend::Python(_) => unreachable!("handled above"),
        };
        feed.close();
        let out = with_feed(out, &feed)?;
        match outcome {
            None => Ok(out),
            Some(ty) => json::output_to_json(ty, &out).map(Output::Owned).map_err(|e| e.context(format!("method {name}"))),
        }
    }

    /// The method's types, for a conversion between JSON and wire bytes.
    fn typed<'a>(&self, method: &'a MethodInfo) -> Result<&'a Signature> {
        method.signature.as_ref().ok_or_else(|| self.untyped())
    }

    /// Why a call needs types this plugin does not have.
    fn untyped(&self) -> Error {
        let (runtime, takes, not, sidecar) = match self.backend {
            Backend::Python(_) => ("Python", "JSON", "wire bytes", ""),
            _ => ("native", "wire bytes", "JSON", ", <library>.wit"),
        };
        Error::new(
            Status::Unsupported,
            format!(
                "plugin {} is a {runtime} plugin without an interface schema, so its calls take {takes}, not {not} \
                 (give it one: fidius_load_options_set_schema{sidecar} or fidius_host_builder_add_schema)",
                self.info.name
            ),
        )
    }

    /// A native plugin's optional methods past its descriptor (known from a
    /// newer schema) are not implemented.
    fn check_implemented(&self, index: u32) -> Result<()> {
        if matches!(self.backend, Backend::Native(_)) && index >= self.info.method_count {
            return fail(
                Status::NotImplemented,
                format!(
                    "plugin {} does not implement method {index} ({}), an optional method it was built without",
                    self.info.name,
                    self.methods.get(index as usize).and_then(|m| m.name.as_deref()).unwrap_or("?")
                ),
            );
        }
        Ok(())
    }

    pub fn methods(&self) -> &[MethodInfo] {
        &self.methods
    }

    pub fn method(&self, index: u32) -> Result<&MethodInfo> {
        self.methods.get(index as usize).ok_or_else(|| {
            Error::new(
                Status::MethodIndex,
                format!("method index {index} is out of range: plugin {} has {} methods", self.info.name, self.methods.len()),
            )
        })
    }

    /// The index of the method called `name` (kebab-case or snake_case).
    pub fn method_index(&self, name: &str) -> Result<u32> {
        let wanted = name.replace('_', "-");
        if let Some(i) = self.methods.iter().position(|m| m.name.as_deref().is_some_and(|n| n.replace('_', "-") == wanted)) {
            return Ok(i as u32);
        }
        let why = if self.types_from.is_none() && matches!(self.backend, Backend::Native(_)) {
            "native plugin descriptors carry no method names: use the method's index (its declaration order), or give the plugin an interface schema"
        } else {
            "no such method"
        };
        fail(Status::MethodIndex, format!("plugin {} has no method named {name}: {why}", self.info.name))
    }

    /// The interface-level metadata pairs.
    pub fn trait_metadata(&self) -> &Meta {
        &self.trait_metadata
    }

    /// Things the host should know about how the plugin was loaded
    /// (e.g. a precompiled `.cwasm` that could not be used, and why).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// A native plugin's host imports (null for other runtimes: a
    /// component names the interface on each call).
    fn host_imports(&self) -> serde_json::Value {
        match &self.backend {
            Backend::Native(p) => p
                .host()
                .imports
                .iter()
                .map(|i| {
                    serde_json::json!({
                        "name": i.name,
                        "hash": format!("0x{:016x}", i.hash),
                        "version": i.version,
                        "bound": p.host().is_bound(&i.name),
                    })
                })
                .collect(),
            Backend::Wasm(_) | Backend::Python(_) => serde_json::Value::Null,
        }
    }

    /// The plugin's self-description (the document `fidius_plugin_describe`
    /// returns; its shape is in the header docs).
    pub fn describe(&self) -> serde_json::Value {
        use serde_json::json;
        let info = &self.info;
        let pairs = |m: &Meta| serde_json::Value::Object(m.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        let mut named = Vec::new();
        for m in &self.methods {
            if let Some(sig) = &m.signature {
                sig.params.iter().for_each(|(_, t)| t.collect_named(&mut named));
                if let Some(r) = &sig.result {
                    r.collect_named(&mut named);
                }
                if let Some(item) = &sig.item {
                    item.collect_named(&mut named);
                }
            }
        }
        let methods: Vec<serde_json::Value> = self
            .methods
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let sig = m.signature.as_ref();
                json!({
                    "index": i,
                    "name": m.name,
                    "params": sig.map(|s| s.params.iter().map(|(n, t)| json!({"name": n, "type": t.wit()})).collect::<Vec<_>>()),
                    "result": sig.and_then(|s| s.result.as_ref()).map(Ty::wit),
                    "returns": sig.map(|s| s.outcome().map(Ty::wit)),
                    "fallible": sig.map(Signature::fallible),
                    "raw": sig.map(|s| s.raw),
                    "streaming": sig.map(|s| s.streaming),
                    "stream_item": sig.and_then(|s| s.item.as_ref()).map(Ty::wit),
                    "optional": m.optional,
                    "implemented": m.implemented,
                    "metadata": pairs(&m.metadata),
                })
            })
            .collect();
        json!({
            "name": info.name,
            "interface": info.interface_name,
            "interface_hash": format!("0x{:016x}", info.interface_hash),
            "interface_version": info.interface_version,
            "runtime": match info.runtime { Runtime::Native => "native", Runtime::Wasm => "wasm", Runtime::Python => "python" },
            "abi_version": (info.abi_version != 0).then_some(info.abi_version),
            "buffer_strategy": info.buffer_strategy.map(|b| match b {
                BufferStrategy::PluginAllocated => "plugin-allocated",
                BufferStrategy::Arena => "arena",
            }),
            "capability_bits": (info.runtime == Runtime::Native).then_some(info.capabilities),
            "capabilities": (info.runtime != Runtime::Native).then_some(&self.capabilities),
            "types_from": self.types_from,
            "metadata": pairs(&self.trait_metadata),
            "host_imports": self.host_imports(),
            "methods": methods,
            "types": named.iter().map(|n| n.describe()).collect::<Vec<_>>(),
        })
    }
}

/// A plugin's output stream: pull items with [`PluginStream::next`] until
/// it answers `None`; dropping it early cancels the plugin's stream (its
/// producer is dropped: native `drop_fn`, the WASM resource's destructor).
/// Used by one thread at a time; it may move between threads, and it may
/// outlive the [`Plugin`] it came from.
pub struct PluginStream {
    /// None once ended: the plugin's stream is released at its end, not at drop.
    inner: Option<Box<dyn ItemStream>>,
    /// Items are converted to JSON by this type.
    json_item: Option<Ty>,
    /// A bidirectional stream's input, whose failure ends it.
    feed: Option<Arc<Feed>>,
    /// Triggered from any thread: the stream ends (a WASM item or Python
    /// runner wherever it is, a native stream before its next item).
    cancel: Option<Arc<Cancel>>,
}

impl PluginStream {
    /// The next item (wire bytes, or JSON), `None` at the end. After an
    /// error the stream has ended: every later call answers `None`.
    pub fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(inner) = self.inner.as_mut() else { return Ok(None) };
        let cancelled = || Error::new(Status::Cancelled, "the stream was cancelled");
        let step = if self.cancel.as_ref().is_some_and(|c| c.is_triggered()) {
            Err(cancelled())
        } else {
            inner.next()
        };
        let step = match (step, &self.json_item) {
            (Ok(Some(item)), Some(ty)) => json::output_to_json(Some(ty), &item).map(Some),
            (step, _) => step,
        };
        if matches!(step, Ok(Some(_))) {
            return step;
        }
        self.inner = None;
        match self.feed.take() {
            Some(feed) => {
                feed.close();
                with_feed(step, &feed)
            }
            None => step,
        }
    }
}

/// A call's wire arguments as the JSON array a Python plugin takes, with
/// 64-bit integers kept as numbers (Python reads them exactly).
fn python_args(sig: &Signature, input: &[u8]) -> Result<Vec<u8>> {
    json::output_to_exact_json(Some(&Ty::Tuple(sig.params.iter().map(|(_, t)| t.clone()).collect())), input)
        .map_err(|e| e.context("the arguments"))
}

/// One JSON value (a plugin's result) as the wire bytes of `ty`.
fn json_value_to_wire(ty: &Ty, value: &[u8]) -> Result<Vec<u8>> {
    let mut wrapped = Vec::with_capacity(value.len() + 2);
    wrapped.push(b'[');
    wrapped.extend_from_slice(value);
    wrapped.push(b']');
    json::args_to_wire(&[("result".to_string(), ty.clone())], &wrapped)
}
