//! The `fidius:host-call/host@0.1.0` import: how a component calls the
//! embedder's host interfaces (fidius 0.5.7+). Linked for every component,
//! as upstream does; each call carries the identity the guest was built
//! against, checked before anything is dispatched (`HostInterface::gated_dispatch`).
//!
//! The implementation runs synchronously on the thread driving the call
//! (the thread that called the plugin), so a host function may call
//! plugins itself. Its time counts toward the call's timeout, but a host
//! function is the embedder's own code and is not interrupted: the call
//! stops at the first guest instruction after it returns.

use wasmtime::component::Linker;

use super::sandbox::StoreState;

pub const IMPORT: &str = "fidius:host-call/host@0.1.0";

pub fn add_to_linker(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.instance(IMPORT)?.func_wrap(
        "call",
        |store: wasmtime::StoreContextMut<'_, StoreState>,
         (interface, version, hash, index, args): (String, u32, u64, u32, Vec<u8>)| {
            let interfaces = store.data().host_interfaces.clone();
            Ok((interfaces.call(&interface, version, hash, index, &args),))
        },
    )
}
