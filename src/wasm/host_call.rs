//! The `fidius:host-call/host@0.1.0` import: how a component calls the
//! embedder's host interfaces (fidius 0.5.7+). Linked for every component,
//! as upstream does; each call carries the identity the guest was built
//! against, checked before anything is dispatched (`HostInterface::gated_dispatch`).
//!
//! The implementation runs on a thread started for the call, while the
//! guest waits, not on the thread driving the guest: that thread is then on
//! a wasmtime fiber stack, which managed runtimes cannot scan (Mono's GC
//! asserts on it) and whose size the guest already uses. Waiting is a
//! pending future, so the call's timeout and cancel token stop a guest
//! whose host function does not return (the function itself runs on to its
//! end). A fresh thread per call, not a pool: runtimes such as Mono keep
//! every thread that ran their code attached until it ends.

use wasmtime::component::Linker;

use super::plugin::ReentryGuard;
use super::sandbox::StoreState;

pub const IMPORT: &str = "fidius:host-call/host@0.1.0";

pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.instance(IMPORT)?.func_wrap_async(
        "call",
        |store: wasmtime::StoreContextMut<'_, StoreState>,
         (interface, version, hash, index, args): (String, u32, u64, u32, Vec<u8>)| {
            let interfaces = store.data().host_interfaces.clone();
            // The reused instances busy on this call chain stay busy on the
            // host function's thread: re-entering one fails instead of deadlocking.
            let busy = ReentryGuard::snapshot();
            Box::new(async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                std::thread::Builder::new()
                    .name("fidius-host-fn".into())
                    .spawn(move || {
                        let busy = ReentryGuard::inherit(busy);
                        let answer = interfaces.call(&interface, version, hash, index, &args);
                        // Released before answering: once the guest has its
                        // answer, this thread holds nothing of the host's.
                        drop((busy, interfaces));
                        let _ = tx.send(answer);
                    })
                    .map_err(|e| wasmtime::Error::msg(format!("cannot start a thread for host function {index}: {e}")))?;
                let answer = rx.await.map_err(|_| wasmtime::Error::msg("the host function's thread ended without answering"))?;
                Ok((answer,))
            })
        },
    )
}
