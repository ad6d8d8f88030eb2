//! A loaded WASM-component plugin: its exported Fidius interface, the
//! linked-once `InstancePre`, and calls in a fresh (or reused) store.

use std::path::Path;
use std::sync::{Arc, Mutex};

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, InstancePre, Type, Val};
use wasmtime::{Store, Trap};

use super::drive::drive;
use super::egress::{Denials, EgressHooks, EgressPolicy};
use super::options::WasmOptions;
use super::runtime::WasmRuntime;
use crate::info::{MethodInfo, Signature};
use crate::host_fn::HostInterfaces;
use super::sandbox::{Capabilities, MemoryLimitExceeded, StoreState};
use super::sockets::SocketGate;
use super::types::Types;
use super::wire;
use crate::cancel::{Cancel, Cancelled};
use crate::error::{fail, Error, PluginError, Result, Status};
use crate::stream::Feed;
use crate::value::{snake, Ty};

const HASH_EXPORT: &str = "fidius-interface-hash";
const CONFIGURE_EXPORT: &str = "fidius-configure";

/// One exported method.
pub struct Method {
    pub name: String,
    pub(super) index: ComponentExportIndex,
    pub params: Vec<(String, Ty)>,
    pub result: Option<Ty>,
    /// `#[wire(raw)]`: wire calls take and return the bytes as they are.
    pub raw: bool,
    /// Returns `result<T, plugin-error>`: `err` is the call's plugin error.
    fallible: bool,
    /// Returns a stream resource: not callable as a unary method.
    pub streaming: bool,
    /// A stream's item type, and its resource's `[method]<m>-stream.next`.
    pub item: Option<Ty>,
    pub(super) stream_next: Option<ComponentExportIndex>,
}

pub(super) use super::sandbox::Budget;

enum Mode {
    /// A fresh store and instance per call.
    Isolated,
    /// One instance, rebuilt after a failure; calls serialized.
    Reused(Mutex<Option<(Store<StoreState>, Instance)>>),
}

pub struct WasmPlugin {
    pub(super) runtime: Arc<WasmRuntime>,
    pre: InstancePre<StoreState>,
    caps: Arc<Capabilities>,
    pub methods: Vec<Method>,
    pub interface_export: String,
    pub interface_hash: u64,
    /// The capabilities granted (the manifest's, or the load's grants).
    pub granted: Vec<String>,
    pub(super) options: WasmOptions,
    configure: Option<ComponentExportIndex>,
    mode: Mode,
    /// The component imports `fidius:stream-pull`: some method takes a stream.
    pub(super) pulls: bool,
    host_interfaces: Arc<HostInterfaces>,
}

impl WasmPlugin {
    /// The interface hash the component exports.
    pub fn interface_hash(&self) -> u64 {
        self.interface_hash
    }

    /// The capabilities granted (the manifest's, or the load's grants).
    pub fn granted(&self) -> &[String] {
        &self.granted
    }

    /// The component's methods as the host describes them: every name and
    /// type is known (a component carries its types).
    pub fn method_infos(&self) -> Vec<MethodInfo> {
        self.methods
            .iter()
            .map(|m| MethodInfo {
                name: Some(m.name.clone()),
                metadata: Vec::new(),
                signature: Some(Signature {
                    params: m.params.clone(),
                    result: m.result.clone(),
                    raw: m.raw,
                    streaming: m.streaming,
                    item: m.item.clone(),
                }),
                implemented: true,
                optional: Some(false),
            })
            .collect()
    }

    /// Link and check a compiled component.
    pub fn new(
        runtime: Arc<WasmRuntime>,
        component: &Component,
        caps: Capabilities,
        options: WasmOptions,
        origin: &Path,
    ) -> Result<WasmPlugin> {
        check_socket_key(&caps, options.egress.as_deref())?;
        let (interface_export, funcs, exported_types) =
            find_interface(&runtime, component, options.load.interface_export.as_deref())?;
        let mut types = Types::new(exported_types);
        let iface = component
            .get_export_index(None, &interface_export)
            .ok_or_else(|| Error::new(Status::InvalidManifest, format!("{interface_export} is not exported")))?;
        let lookup = |name: &str| component.get_export_index(Some(&iface), name);
        let mut methods = Vec::new();
        let mut configure = None;
        // A stream resource's `next`: result<option<T>, plugin-error>.
        let stream_items: Vec<(String, Option<Ty>)> = funcs
            .iter()
            .filter(|(n, _, _)| n.starts_with("[method]") && n.ends_with("-stream.next"))
            .map(|(n, _, results)| {
                let item = match results.first().map(|t| types.ty(t)) {
                    Some(Ty::Result { ok: Some(ok), .. }) => match *ok {
                        Ty::Option(item) => Some(*item),
                        _ => None,
                    },
                    _ => None,
                };
                (n.clone(), item)
            })
            .collect();
        for (name, params, results) in funcs {
            if name.starts_with('[') {
                continue;
            }
            match name.as_str() {
                HASH_EXPORT => continue,
                CONFIGURE_EXPORT => configure = lookup(&name),
                _ => {}
            }
            if name == CONFIGURE_EXPORT {
                continue;
            }
            let index = lookup(&name).expect("listed by the component's own type");
            let params: Vec<(String, Ty)> = params.iter().map(|(n, t)| (n.clone(), types.ty(t))).collect();
            let result = results.first().map(|t| types.ty(t));
            let fallible = result.as_ref().is_some_and(Ty::is_plugin_result);
            let streaming = matches!(results.first(), Some(Type::Own(_)));
            let raw_shape = Signature::raw_shape(&params, result.as_ref());
            let raw = match options.load.raw_overrides.iter().find(|(n, _)| snake(n) == snake(&name)) {
                Some((_, raw)) if *raw && !raw_shape => {
                    return fail(
                        Status::InvalidArgument,
                        format!("method {name} cannot be raw: raw methods are list<u8> -> list<u8>"),
                    )
                }
                Some((_, raw)) => *raw,
                None => raw_shape,
            };
            let (item, stream_next) = if streaming {
                let next = format!("[method]{name}-stream.next");
                let item = stream_items.iter().find(|(n, _)| *n == next).and_then(|(_, t)| t.clone());
                match (item, lookup(&next)) {
                    (Some(item), Some(index)) => (Some(item), Some(index)),
                    _ => {
                        return fail(
                            Status::InvalidManifest,
                            format!("method {name} returns a resource without {next}: func() -> result<option<T>, plugin-error>, not a Fidius stream"),
                        )
                    }
                }
            } else {
                (None, None)
            };
            methods.push(Method { name, index, params, result, raw, fallible, streaming, item, stream_next });
        }
        if options.load.config.is_some() && configure.is_none() {
            return fail(
                Status::InvalidArgument,
                format!("{}: the component has no {CONFIGURE_EXPORT} export, so it takes no config", origin.display()),
            );
        }
        // Two keys: wasi:http is linked only when the package asks for `http`
        // and the embedder supplied a policy; otherwise a guest importing it fails here.
        let linker = if caps.http && options.egress.is_some() { runtime.http_linker()? } else { runtime.linker.clone() };
        let pre = linker.instantiate_pre(component).map_err(|e| link_error(e, &caps, options.egress.is_some()))?;
        let mode = if options.load.reuse_instance || options.load.config.is_some() {
            Mode::Reused(Mutex::new(None))
        } else {
            Mode::Isolated
        };
        let pulls = component.component_type().imports(&runtime.engine).any(|(name, _)| name == super::stream::PULL_IMPORT);
        let mut plugin = WasmPlugin {
            pulls,
            runtime,
            pre,
            caps: Arc::new(caps),
            methods,
            interface_export,
            interface_hash: 0,
            granted: Vec::new(),
            host_interfaces: Arc::new(options.host_interfaces.clone()),
            options,
            configure,
            mode,
        };
        plugin.interface_hash = plugin.read_hash(&lookup(HASH_EXPORT))?;
        if let Some(expected) = plugin.options.load.interface_hash {
            if plugin.interface_hash != expected {
                return fail(
                    Status::InterfaceHashMismatch,
                    format!(
                        "{}: interface hash is 0x{:016x}, the host expects 0x{expected:016x}",
                        plugin.interface_export, plugin.interface_hash
                    ),
                );
            }
        }
        Ok(plugin)
    }

    /// Instantiate once to read `fidius-interface-hash` (and to prove the
    /// component instantiates in this sandbox before anyone calls it).
    fn read_hash(&self, index: &Option<ComponentExportIndex>) -> Result<u64> {
        let index = index.as_ref().expect("find_interface only picks interfaces with the hash export");
        let budget = self.budget(None);
        run(HASH_EXPORT, &budget, async {
            let (mut store, instance) = self.instantiate(&budget).await?;
            let func = instance.get_func(&mut store, index).expect("exported");
            let typed = func
                .typed::<(), (u64,)>(&store)
                .map_err(|e| Error::new(Status::InvalidManifest, format!("{HASH_EXPORT} is not func() -> u64: {e}")))?;
            typed.call_async(&mut store, ()).await.map(|(h,)| h).map_err(|e| runtime_error(e, HASH_EXPORT))
        })
    }

    /// One call's budget: its deadline (from the timeout) and cancel token.
    pub(super) fn budget(&self, cancel: Option<Arc<Cancel>>) -> Budget {
        Budget { deadline: self.options.load.timeout.map(|t| std::time::Instant::now() + t), cancel }
    }

    fn new_store(&self, budget: &Budget) -> Result<Store<StoreState>> {
        let denials = Denials::default();
        let egress = self.options.egress.as_ref().filter(|_| self.caps.http).map(|policy| EgressHooks {
            policy: policy.clone(),
            plugin: self.options.name.clone(),
            log: self.options.log.clone(),
            denials: denials.clone(),
        });
        let sockets = self.options.egress.as_ref().filter(|_| self.caps.tcp || self.caps.udp).map(|policy| {
            let (name, log) = (self.options.name.clone(), self.options.log.clone());
            Arc::new(SocketGate::new(policy.clone(), name, log, denials.clone(), self.caps.tcp, self.caps.udp))
        });
        let state = StoreState::new(&self.caps, self.options.load.memory_limit, egress, sockets, self.host_interfaces.clone());
        let mut store = Store::new(&self.runtime.engine, state);
        store.limiter(|s| &mut s.limiter);
        // Registered once per store; each call's budget is read from the store.
        store.epoch_deadline_callback(|store| store.data().budget.check());
        self.arm(&mut store, budget)?;
        Ok(store)
    }

    /// The fuel each call (or stream item) starts with, where fuel is on.
    pub(super) fn fuel(&self) -> Option<u64> {
        self.runtime.fuel.then(|| self.options.load.fuel.unwrap_or(u64::MAX))
    }

    fn arm(&self, store: &mut Store<StoreState>, budget: &Budget) -> Result<()> {
        arm(store, budget, self.fuel())
    }

    pub(super) async fn instantiate(&self, budget: &Budget) -> Result<(Store<StoreState>, Instance)> {
        let mut store = self.new_store(budget)?;
        let instance = self.pre.instantiate_async(&mut store).await.map_err(|e| runtime_error(e, "instantiation"))?;
        if let (Some(config), Some(index)) = (&self.options.load.config, &self.configure) {
            let func = instance.get_func(&mut store, index).expect("exported");
            let typed = func.typed::<(&[u8],), ()>(&store).map_err(|e| {
                Error::new(Status::InvalidManifest, format!("{CONFIGURE_EXPORT} is not func(list<u8>): {e}"))
            })?;
            typed.call_async(&mut store, (config.as_slice(),)).await.map_err(|e| runtime_error(e, CONFIGURE_EXPORT))?;
            self.arm(&mut store, budget)?;
        }
        Ok((store, instance))
    }

    /// A method fed a stream needs a component that pulls one.
    pub(super) fn check_pulls(&self, method: &Method) -> Result<()> {
        if self.pulls {
            return Ok(());
        }
        fail(
            Status::Unsupported,
            format!(
                "method {}: the component does not import {}, so none of its methods takes a stream argument",
                method.name,
                super::stream::PULL_IMPORT
            ),
        )
    }

    /// The method at `index`, by the interface's declaration order.
    pub fn method(&self, index: u32) -> Result<&Method> {
        self.methods.get(index as usize).ok_or_else(|| {
            Error::new(
                Status::MethodIndex,
                format!("method index {index} is out of range: {} has {} methods", self.interface_export, self.methods.len()),
            )
        })
    }

    /// Call method `index` with the wire bytes of its arguments (raw bytes
    /// for a raw method); the output is the wire bytes of its result.
    pub fn call(&self, index: u32, input: &[u8], cancel: Option<Arc<Cancel>>) -> Result<Vec<u8>> {
        self.call_with(index, input, cancel, None)
    }

    /// As [`WasmPlugin::call`], with `feed` (if any) behind the guest's
    /// `fidius:stream-pull` import: a client-streaming call.
    pub fn call_with(&self, index: u32, input: &[u8], cancel: Option<Arc<Cancel>>, feed: Option<Arc<Feed>>) -> Result<Vec<u8>> {
        let method = self.method(index)?;
        if method.streaming {
            return fail(
                Status::Unsupported,
                format!("method {} returns a stream: open it as a stream (fidius_plugin_stream), not as a call", method.name),
            );
        }
        if feed.is_some() {
            self.check_pulls(method)?;
        }
        let budget = self.budget(cancel);
        match &self.mode {
            Mode::Isolated => run(&method.name, &budget, std::pin::pin!(async {
                let (mut store, instance) = self.instantiate(&budget).await?;
                store.data_mut().feed = feed;
                let result = invoke(method, &mut store, &instance, input).await;
                with_denials(result, store.data())
            })),
            Mode::Reused(slot) => {
                // A host function calling back into this plugin on the thread
                // its call runs on would wait for itself.
                let _busy = ReentryGuard::enter(slot as *const _ as usize).ok_or_else(|| {
                    Error::new(
                        Status::Unsupported,
                        format!(
                            "{}: re-entrant call: this plugin's reused instance is busy with a call on this thread \
                             (a host function called back into it); load it with fresh instances to re-enter it",
                            method.name
                        ),
                    )
                })?;
                let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
                // Taken out for the call: a call stopped at its deadline drops
                // the instance with it, and the next call starts afresh.
                let live = slot.take();
                let (result, keep) = run(&method.name, &budget, std::pin::pin!(async {
                    let (mut store, instance) = match live {
                        Some(live) => live,
                        None => self.instantiate(&budget).await?,
                    };
                    self.arm(&mut store, &budget)?;
                    store.data().denials(); // only this call's
                    store.data_mut().feed = feed;
                    let result = invoke(method, &mut store, &instance, input).await;
                    store.data_mut().feed = None;
                    let result = with_denials(result, store.data());
                    // A trap leaves the instance in an unknown state: start afresh next call.
                    let healthy = match &result {
                        Ok(_) => true,
                        Err(e) => e.status == Status::PluginError || e.status == Status::Serialization,
                    };
                    Ok((result, healthy.then_some((store, instance))))
                }))?;
                *slot = keep;
                result
            }
        }
    }
}

/// Run one guest operation to completion, or stop it at the call's
/// deadline or cancellation wherever it is: in guest code the epoch
/// callback traps it; blocked in a host function (a clock, a stream, an
/// HTTP response), the pending future is dropped, which releases its
/// store and pool slot. The per-call and per-item paths pass `operation`
/// pinned (`pin!(async {..})`): built in place, the future (over a KiB) is
/// not copied on each move; one-off operations (load, stream open) need not.
pub(super) fn run<T>(during: &str, budget: &Budget, operation: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    let deadline = budget.deadline.map(tokio::time::Instant::from_std);
    let cancel = budget.cancel.clone();
    if cancel.as_ref().is_some_and(|c| c.is_triggered()) {
        return fail(Status::Cancelled, format!("{during}: the call was cancelled before it started"));
    }
    if deadline.is_none() && cancel.is_none() {
        return drive(operation);
    }
    drive(async move {
        let timed_out = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        let cancelled = async {
            match &cancel {
                Some(c) => c.triggered().await,
                None => std::future::pending().await,
            }
        };
        // The operation first: most calls finish at their first poll, and
        // then no timer is ever registered.
        tokio::select! {
            biased;
            result = operation => result,
            () = timed_out => Err(Error::new(Status::Timeout, format!("{during}: the call ran past its timeout (blocked in a host call)"))),
            () = cancelled => Err(Error::new(Status::Cancelled, format!("{during}: the call was cancelled"))),
        }
    })
}

/// Set the per-call budgets: deadline, cancellation and fuel. At every
/// epoch tick (5 ms) a running guest is checked against its deadline
/// and token (by the store's callback, [`Budget::check`]).
pub(super) fn arm(store: &mut Store<StoreState>, budget: &Budget, fuel: Option<u64>) -> Result<()> {
    let watched = budget.deadline.is_some() || budget.cancel.is_some();
    store.set_epoch_deadline(if watched { 1 } else { u64::MAX / 2 });
    store.data_mut().budget = budget.clone();
    if let Some(fuel) = fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::new(Status::Trap, format!("cannot set fuel: {e}")))?;
    }
    Ok(())
}

thread_local! {
    /// The reused instances with a call running on this thread.
    static BUSY: std::cell::RefCell<Vec<usize>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Marks reused instances busy on this thread (and the host-function
/// threads it waits on) for the length of a call.
pub(super) enum ReentryGuard {
    /// A call's own instance (no allocation on the call path).
    One(usize),
    /// The instances a host function's thread inherits.
    Inherited(Vec<usize>),
}

impl ReentryGuard {
    fn enter(instance: usize) -> Option<ReentryGuard> {
        BUSY.with(|b| {
            let mut busy = b.borrow_mut();
            (!busy.contains(&instance)).then(|| {
                busy.push(instance);
                ReentryGuard::One(instance)
            })
        })
    }

    /// The instances busy on this thread.
    pub(super) fn snapshot() -> Vec<usize> {
        BUSY.with(|b| b.borrow().clone())
    }

    /// Mark `instances` busy on this (new) thread too.
    pub(super) fn inherit(instances: Vec<usize>) -> ReentryGuard {
        BUSY.with(|b| b.borrow_mut().extend(&instances));
        ReentryGuard::Inherited(instances)
    }
}

impl Drop for ReentryGuard {
    fn drop(&mut self) {
        BUSY.with(|b| {
            let mut busy = b.borrow_mut();
            match self {
                ReentryGuard::One(i) => busy.retain(|b| b != i),
                ReentryGuard::Inherited(mine) => busy.retain(|b| !mine.contains(b)),
            }
        });
    }
}

/// `tcp` and `udp` need their second key, a policy that decides on
/// sockets: without it the load fails, naming the key, rather than
/// loading a plugin whose every socket would silently fail.
fn check_socket_key(caps: &Capabilities, policy: Option<&dyn EgressPolicy>) -> Result<()> {
    let asked: Vec<&str> = [("tcp", caps.tcp), ("udp", caps.udp)].iter().filter(|(_, on)| *on).map(|(c, _)| *c).collect();
    if asked.is_empty() || policy.is_some_and(|p| p.governs_sockets()) {
        return Ok(());
    }
    let missing = match policy {
        None => "no egress policy is registered (host default or per plugin)",
        Some(_) => "the egress policy has no socket callback (fidius_egress_policy_set_socket_callback)",
    };
    fail(
        Status::Capability,
        format!(
            "the package asks for {}, whose second key is the host's socket policy: {missing}",
            asked.iter().map(|c| format!("\"{c}\"")).collect::<Vec<_>>().join(" and ")
        ),
    )
}

/// A failed call says which of its requests the egress policy denied.
fn with_denials(result: Result<Vec<u8>>, state: &StoreState) -> Result<Vec<u8>> {
    let denials = state.denials();
    match result {
        Err(mut e) if !denials.is_empty() => {
            e.message = format!("{} ({})", e.message, denials.join("; "));
            Err(e)
        }
        other => other,
    }
}

async fn invoke(method: &Method, store: &mut Store<StoreState>, instance: &Instance, input: &[u8]) -> Result<Vec<u8>> {
    let func = instance.get_func(&mut *store, &method.index).expect("exported");
    if method.raw {
        return call_raw(method, store, func, input).await;
    }
    let args = wire::params(&method.params, input).map_err(|e| e.context(format!("method {}", method.name)))?;
    let returns = method.result.is_some() as usize;
    let mut results = [Val::Bool(false)];
    func.call_async(&mut *store, &args, &mut results[..returns]).await.map_err(|e| runtime_error(e, &method.name))?;
    let [result] = results;
    // The outcome: for `result<T, plugin-error>`, `ok` is the value and `err` the plugin error.
    let (ty, value) = match (&method.result, (returns == 1).then_some(result)) {
        (Some(Ty::Result { ok, .. }), Some(Val::Result(r))) if method.fallible => match r {
            Ok(v) => (ok.as_deref(), v.map(|b| *b)),
            Err(e) => return Err(Error::plugin(plugin_error(e.as_deref()))),
        },
        (ty, v) => (ty.as_ref(), v),
    };
    let mut out = Vec::new();
    if let (Some(ty), Some(v)) = (ty, value) {
        wire::encode(ty, &v, &mut out)?;
    }
    Ok(out)
}

/// Raw methods go through the typed (bulk copy) path, never a per-byte value list.
async fn call_raw(method: &Method, store: &mut Store<StoreState>, func: Func, input: &[u8]) -> Result<Vec<u8>> {
    let typecheck = |e: wasmtime::Error| Error::new(Status::Serialization, format!("raw method {}: {e}", method.name));
    if method.fallible {
        let typed = func.typed::<(&[u8],), (Result<Vec<u8>, WitPluginError>,)>(&*store).map_err(typecheck)?;
        match typed.call_async(&mut *store, (input,)).await.map_err(|e| runtime_error(e, &method.name))?.0 {
            Ok(bytes) => Ok(bytes),
            Err(e) => Err(Error::plugin(PluginError { code: e.code, message: e.message, details: e.details })),
        }
    } else {
        let typed = func.typed::<(&[u8],), (Vec<u8>,)>(&*store).map_err(typecheck)?;
        typed.call_async(&mut *store, (input,)).await.map(|(bytes,)| bytes).map_err(|e| runtime_error(e, &method.name))
    }
}

/// The WIT `record plugin-error` every fidius interface declares.
#[derive(wasmtime::component::ComponentType, wasmtime::component::Lift)]
#[component(record)]
struct WitPluginError {
    code: String,
    message: String,
    details: Option<String>,
}

pub(super) fn plugin_error(v: Option<&Val>) -> PluginError {
    let field = |fields: &[(String, Val)], name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
    match v {
        Some(Val::Record(fields)) => PluginError {
            code: match field(fields, "code") {
                Some(Val::String(s)) => s,
                _ => "WASM_ERROR".into(),
            },
            message: match field(fields, "message") {
                Some(Val::String(s)) => s,
                _ => String::new(),
            },
            details: match field(fields, "details") {
                Some(Val::Option(Some(b))) => match *b {
                    Val::String(s) => Some(s),
                    _ => None,
                },
                _ => None,
            },
        },
        other => PluginError { code: "WASM_ERROR".into(), message: format!("{other:?}"), details: None },
    }
}

type FuncSig = (String, Vec<(String, Type)>, Vec<Type>);
/// An exported interface: its name, functions (in declaration order) and named types.
type Found = (String, Vec<FuncSig>, Vec<(String, Type)>);

/// Find the exported Fidius interface: the one named, or the single export
/// carrying `fidius-interface-hash`.
fn find_interface(runtime: &WasmRuntime, component: &Component, wanted: Option<&str>) -> Result<Found> {
    let engine = &runtime.engine;
    let ty = component.component_type();
    let mut exported = Vec::new();
    let mut candidates = Vec::new();
    for (name, item) in ty.exports(engine) {
        exported.push(name.to_string());
        let ComponentItem::ComponentInstance(inst) = item.ty else { continue };
        let funcs: Vec<FuncSig> = inst
            .exports(engine)
            .filter_map(|(fname, item)| match item.ty {
                ComponentItem::ComponentFunc(f) => Some((
                    fname.to_string(),
                    f.params().map(|(n, t)| (n.to_string(), t)).collect(),
                    f.results().collect(),
                )),
                _ => None,
            })
            .collect();
        let types: Vec<(String, Type)> = inst
            .exports(engine)
            .filter_map(|(tname, item)| match item.ty {
                ComponentItem::Type(t) => Some((tname.to_string(), t)),
                _ => None,
            })
            .collect();
        let is_fidius = funcs.iter().any(|(n, _, _)| n == HASH_EXPORT);
        match wanted {
            Some(w) if w == name => {
                if !is_fidius {
                    return fail(Status::InvalidManifest, format!("{name} does not export {HASH_EXPORT}: not a Fidius interface"));
                }
                return Ok((name.to_string(), funcs, types));
            }
            None if is_fidius => candidates.push((name.to_string(), funcs, types)),
            _ => {}
        }
    }
    match (wanted, candidates.len()) {
        (Some(w), _) => fail(
            Status::InvalidManifest,
            format!("the component does not export interface {w} (it exports: {})", exported.join(", ")),
        ),
        (None, 1) => Ok(candidates.pop().unwrap()),
        (None, 0) => fail(
            Status::InvalidManifest,
            format!("the component exports no Fidius interface (none has {HASH_EXPORT}; exports: {})", exported.join(", ")),
        ),
        (None, _) => {
            let names: Vec<&str> = candidates.iter().map(|(n, _, _)| n.as_str()).collect();
            fail(
                Status::InvalidManifest,
                format!("the component exports several Fidius interfaces ({}): name one in the load options", names.join(", ")),
            )
        }
    }
}

/// Map a wasmtime failure to the status that says what happened.
pub(super) fn runtime_error(e: wasmtime::Error, during: &str) -> Error {
    if e.downcast_ref::<Cancelled>().is_some() {
        return Error::new(Status::Cancelled, format!("{during}: the call was cancelled"));
    }
    if let Some(limit) = e.downcast_ref::<MemoryLimitExceeded>() {
        return Error::new(Status::MemoryLimit, format!("{during}: {limit}"));
    }
    let status = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Status::Timeout,
        Some(Trap::OutOfFuel) => Status::FuelExhausted,
        Some(Trap::StackOverflow) => Status::StackOverflow,
        _ => Status::Trap,
    };
    let what = match status {
        Status::Timeout => "the call ran past its timeout".to_string(),
        Status::FuelExhausted => "the call ran out of fuel".to_string(),
        _ => format!("{e:#}"),
    };
    Error::new(status, format!("{during}: {what}"))
}

/// Why a component cannot be linked in this sandbox.
fn link_error(e: wasmtime::Error, caps: &Capabilities, has_policy: bool) -> Error {
    let text = format!("{e:#}");
    if text.contains("wasi:http") {
        let missing = match (caps.http, has_policy) {
            (false, false) => "the package does not declare the `http` capability, and no egress policy is registered",
            (false, true) => "the package does not declare the `http` capability",
            _ => "no egress policy is registered (host default or per plugin)",
        };
        return Error::new(
            Status::Capability,
            format!("the component imports wasi:http, which needs the `http` capability and an egress policy: {missing}"),
        );
    }
    Error::new(Status::Capability, format!("the component needs imports this sandbox does not provide: {text}"))
}
