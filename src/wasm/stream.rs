//! Streaming methods of components: the `fidius:stream-pull` import a guest
//! pulls its `Stream<T>` argument through, and output streams (a method
//! returning the resource `<m>-stream`, whose `next` yields
//! `result<option<T>, plugin-error>`).
//!
//! A stream owns a store and instance of its own for its whole life (also
//! for plugins whose calls reuse one instance, as fidius-host does), so
//! many streams of one plugin run at once. Its limits: the timeout and the
//! fuel budget apply to each item (and to starting the stream), the memory
//! limit to the stream's instance as a whole.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Func, Linker, ResourceAny, Val};
use wasmtime::Store;

use super::drive::on_calling_thread;
use super::plugin::{arm, plugin_error, run, runtime_error, Budget, WasmPlugin};
use super::sandbox::StoreState;
use super::wire;
use crate::cancel::Cancel;
use crate::error::{fail, Error, Result, Status};
use crate::stream::{Feed, ItemStream};
use crate::value::Ty;

pub const PULL_IMPORT: &str = "fidius:stream-pull/pull@0.1.0";

/// Link `fidius:stream-pull` for every component, as upstream does: a guest
/// pulling outside a fed call sees an empty stream. The host's source runs
/// on the thread driving the guest, on its own stack.
pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.instance(PULL_IMPORT)?.func_wrap_async("next", |store: wasmtime::StoreContextMut<'_, StoreState>, (): ()| {
        let feed = store.data().feed.clone();
        Box::new(async move {
            let item = match feed {
                Some(feed) => on_calling_thread(move || feed.pull()).await,
                None => None,
            };
            Ok((item,))
        })
    })
}

impl WasmPlugin {
    /// Start method `index` as a server stream (`feed` None) or a
    /// bidirectional one, in a store of its own.
    pub fn stream(&self, index: u32, input: &[u8], feed: Option<Arc<Feed>>, cancel: Option<Arc<Cancel>>) -> Result<WasmStream> {
        let method = self.method(index)?;
        let (Some(item), Some(next_index)) = (&method.item, &method.stream_next) else {
            return fail(
                Status::Unsupported,
                format!("method {} does not return a stream: call it (fidius_plugin_call or fidius_plugin_call_streaming)", method.name),
            );
        };
        if feed.is_some() {
            self.check_pulls(method)?;
        }
        let args = wire::params(&method.params, input).map_err(|e| e.context(format!("method {}", method.name)))?;
        let budget = self.budget(cancel.clone());
        let (store, resource, next) = run(&method.name, &budget, async {
            let (mut store, instance) = self.instantiate(&budget).await?;
            store.data_mut().feed = feed;
            let func = instance.get_func(&mut store, &method.index).expect("exported");
            let mut results = [Val::Bool(false)];
            func.call_async(&mut store, &args, &mut results).await.map_err(|e| runtime_error(e, &method.name))?;
            let Val::Resource(resource) = results[0].clone() else {
                return fail(Status::Serialization, format!("method {} did not return a stream resource", method.name));
            };
            let next = instance.get_func(&mut store, next_index).expect("exported");
            Ok((store, resource, next))
        })?;
        Ok(WasmStream {
            live: Some(Live { store, resource, next }),
            item: item.clone(),
            during: format!("{} stream", method.name),
            timeout: self.options.load.timeout,
            fuel: self.fuel(),
            cancel,
        })
    }
}

/// A component's output stream.
pub struct WasmStream {
    /// None once ended: the store (and its pool slot) went with it.
    live: Option<Live>,
    item: Ty,
    during: String,
    timeout: Option<Duration>,
    fuel: Option<u64>,
    cancel: Option<Arc<Cancel>>,
}

struct Live {
    store: Store<StoreState>,
    resource: ResourceAny,
    next: Func,
}

impl WasmStream {
    fn budget(&self) -> Budget {
        Budget { deadline: self.timeout.map(|t| std::time::Instant::now() + t), cancel: self.cancel.clone() }
    }

    /// Drop the resource (the guest's destructor: its cancel), then the store.
    fn close(&mut self) {
        let Some(mut live) = self.live.take() else { return };
        let budget = self.budget();
        if arm(&mut live.store, &budget, self.fuel).is_ok() {
            // A destructor that traps or overruns only ends what is ending anyway.
            let _ = run(&self.during, &budget, async {
                live.resource.resource_drop_async(&mut live.store).await.map_err(|e| runtime_error(e, "stream drop"))
            });
        }
    }
}

impl ItemStream for WasmStream {
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let budget = self.budget();
        let Some(live) = self.live.as_mut() else { return Ok(None) };
        let step = arm(&mut live.store, &budget, self.fuel).and_then(|()| {
            run(&self.during, &budget, std::pin::pin!(async {
                let mut out = [Val::Bool(false)];
                live.next
                    .call_async(&mut live.store, &[Val::Resource(live.resource)], &mut out)
                    .await
                    .map_err(|e| runtime_error(e, &self.during))?;
                let [out] = out;
                match out {
                    Val::Result(Ok(Some(v))) => match *v {
                        Val::Option(Some(item)) => {
                            let mut bytes = Vec::new();
                            wire::encode(&self.item, &item, &mut bytes)?;
                            Ok(Some(bytes))
                        }
                        Val::Option(None) => Ok(None),
                        other => fail(Status::Serialization, format!("{}: next returned {other:?}, not an option", self.during)),
                    },
                    Val::Result(Err(e)) => Err(Error::plugin(plugin_error(e.as_deref()))),
                    other => fail(Status::Serialization, format!("{}: next returned {other:?}, not a result", self.during)),
                }
            }))
        });
        match step {
            Ok(Some(item)) => Ok(Some(item)),
            Ok(None) => {
                self.close();
                Ok(None)
            }
            Err(e) => {
                // Stopped or trapped mid-item: the instance's state is
                // unknown, so no destructor runs in it; the store just goes.
                let clean = e.status == Status::PluginError || e.status == Status::Serialization;
                if clean {
                    self.close();
                } else {
                    self.live = None;
                }
                Err(e)
            }
        }
    }
}

impl Drop for WasmStream {
    fn drop(&mut self) {
        self.close();
    }
}
