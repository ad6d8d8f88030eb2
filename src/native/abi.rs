//! The in-memory layout native Fidius plugins export (ABI 400 and 500).
//!
//! Mirrors the `#[repr(C)]` structs of `fidius-guest` 0.4.x and 0.5.x; see
//! `shared/fidius-facts.md` §1. Only the host's reading side is declared.

use std::ffi::{c_char, c_void};

pub(crate) const REGISTRY_MAGIC: [u8; 8] = *b"FIDIUS\0\0";
pub(crate) const REGISTRY_VERSION: u32 = 1;
pub(crate) const REGISTRY_SYMBOL: &[u8] = b"fidius_get_registry\0";

/// fidius 0.4.x.
pub(crate) const ABI_400: u32 = 400;
/// fidius 0.5.x: adds construct/destroy and the instance argument.
pub(crate) const ABI_500: u32 = 500;

/// `size_of::<PluginDescriptor>()` as each ABI's plugins write it.
pub(crate) const DESCRIPTOR_SIZE_400: u32 = 104;
pub(crate) const DESCRIPTOR_SIZE_500: u32 = 120;

/// More descriptors than this in one library is taken as corruption.
pub(crate) const MAX_PLUGINS_PER_LIBRARY: u32 = 4096;
/// The most methods a descriptor may claim: a method table of more is a
/// corrupt or hostile descriptor, not an interface (fidius caps optional
/// methods at 64, and real interfaces have a few dozen methods at most).
pub(crate) const MAX_METHODS: u32 = 4096;

/// Plugin status codes (`fidius-guest/src/status.rs`).
pub(crate) const STATUS_OK: i32 = 0;
pub(crate) const STATUS_BUFFER_TOO_SMALL: i32 = -1;
pub(crate) const STATUS_SERIALIZATION_ERROR: i32 = -2;
pub(crate) const STATUS_PLUGIN_ERROR: i32 = -3;
pub(crate) const STATUS_PANIC: i32 = -4;
/// A stream's `next`: no more items (fidius 0.4+).
pub(crate) const STATUS_STREAM_END: i32 = -5;

#[repr(C)]
pub struct PluginRegistry {
    pub magic: [u8; 8],
    pub registry_version: u32,
    pub plugin_count: u32,
    pub descriptors: *const *const PluginDescriptor,
}

#[repr(C)]
pub struct MetaKv {
    pub key: *const c_char,
    pub value: *const c_char,
}

#[repr(C)]
pub struct MethodMetaEntry {
    pub kvs: *const MetaKv,
    pub kv_count: u32,
}

pub type FreeBufferFn = unsafe extern "C" fn(*mut u8, usize);
pub type ConstructFn = unsafe extern "C" fn(*const u8, u32) -> *mut c_void;
pub type DestroyFn = unsafe extern "C" fn(*mut c_void);

/// The ABI 400 prefix; ABI 500 appends `construct` and `destroy`
/// ([`DescriptorTail500`]), read only when `descriptor_size` says they exist.
#[repr(C)]
pub struct PluginDescriptor {
    pub descriptor_size: u32,
    pub abi_version: u32,
    pub interface_name: *const c_char,
    pub interface_hash: u64,
    pub interface_version: u32,
    pub capabilities: u64,
    pub buffer_strategy: u8,
    pub plugin_name: *const c_char,
    pub vtable: *const c_void,
    pub free_buffer: Option<FreeBufferFn>,
    pub method_count: u32,
    pub method_metadata: *const MethodMetaEntry,
    pub trait_metadata: *const MetaKv,
    pub trait_metadata_count: u32,
}

#[repr(C)]
pub struct DescriptorTail500 {
    pub construct: Option<ConstructFn>,
    pub destroy: Option<DestroyFn>,
}

pub type RegistryFn = unsafe extern "C" fn() -> *const PluginRegistry;

// Vtable slot signatures. 0.5 passes the instance first.
pub type PluginAllocated400 = unsafe extern "C" fn(*const u8, u32, *mut *mut u8, *mut u32) -> i32;
pub type Arena400 = unsafe extern "C" fn(*const u8, u32, *mut u8, u32, *mut u32, *mut u32) -> i32;
pub type PluginAllocated500 =
    unsafe extern "C" fn(*mut c_void, *const u8, u32, *mut *mut u8, *mut u32) -> i32;
pub type Arena500 =
    unsafe extern "C" fn(*mut c_void, *const u8, u32, *mut u8, u32, *mut u32, *mut u32) -> i32;

/// A stream of bincode items (`fidius-guest` `FidiusStreamHandle`, the same
/// in 0.4 and 0.5). Whoever built it owns it; the other side calls `next`
/// (into the caller's buffer: `-1` with the size it needs keeps the item for
/// a retry) and `drop_fn` exactly once, which frees it.
#[repr(C)]
pub struct StreamHandle {
    pub next: StreamNextFn,
    pub drop_fn: StreamDropFn,
    pub state: *mut c_void,
}
pub type StreamNextFn = unsafe extern "C" fn(*mut StreamHandle, *mut u8, u32, *mut u32) -> i32;
pub type StreamDropFn = unsafe extern "C" fn(*mut StreamHandle);

/// A client-streaming or bidirectional slot (ABI 500 only): the host's input
/// stream, then the non-stream arguments; the output is the result's bytes
/// (client) or an output `StreamHandle` (bidirectional).
pub type StreamIn500 =
    unsafe extern "C" fn(*mut c_void, *mut StreamHandle, *const u8, u32, *mut *mut u8, *mut u32) -> i32;

// The layout is the ABI: catch a drift at compile time.
#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<PluginRegistry>() == 24);
    assert!(std::mem::size_of::<PluginDescriptor>() == DESCRIPTOR_SIZE_400 as usize);
    assert!(std::mem::offset_of!(PluginDescriptor, buffer_strategy) == 40);
    assert!(std::mem::offset_of!(PluginDescriptor, free_buffer) == 64);
    assert!(std::mem::offset_of!(PluginDescriptor, trait_metadata_count) == 96);
    assert!(
        std::mem::size_of::<PluginDescriptor>() + std::mem::size_of::<DescriptorTail500>()
            == DESCRIPTOR_SIZE_500 as usize
    );
    assert!(std::mem::size_of::<MethodMetaEntry>() == 16);
    assert!(std::mem::size_of::<MetaKv>() == 16);
    assert!(std::mem::size_of::<StreamHandle>() == 24);
};
