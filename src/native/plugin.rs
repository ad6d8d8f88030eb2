//! One instance of a native plugin, and calls through its vtable.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use libloading::Library;

use super::abi;
use super::library::NativeEntry;
use crate::error::{fail, Error, Result, Status};
use super::host_imports::Bound;
use crate::info::BufferStrategy;
use crate::output::{Output, PluginBuffer};
use crate::wire;

/// The most an Arena plugin may ask its host buffer to grow to: a plugin
/// claiming up to 4 GiB would otherwise have the host allocate it.
pub(crate) const MAX_ARENA: usize = 256 << 20;

/// Arena plugins write into a host buffer; this is its first size, as in fidius-host.
const ARENA_INITIAL: usize = 4096;

thread_local! {
    /// Per-thread arena, reused across calls (plugins run on the caller's thread).
    static ARENA: RefCell<Vec<u8>> = RefCell::new(Vec::new());
}

/// A constructed native plugin instance (ABI 500) or the stateless plugin (ABI 400).
pub struct NativePlugin {
    pub(super) entry: Arc<NativeEntry>,
    pub(super) instance: *mut c_void,
    /// Its library's host imports, and the interfaces bound for them (kept
    /// alive while it lives).
    host: Bound,
    // Declared last: dropped after `instance` is destroyed.
    pub(super) library: Arc<Library>,
}

// Fidius methods take `&self`, and fidius-host shares handles across threads;
// the plugin contract is that instances are Send + Sync.
unsafe impl Send for NativePlugin {}
unsafe impl Sync for NativePlugin {}

impl NativePlugin {
    /// Construct an instance. `config` is the bincode of the plugin's config
    /// type (fidius 0.5 `config = C`), or `None` for a plain plugin.
    /// `host`: the host interfaces bound into its library
    /// (`host_imports::bind`), which must outlive the instance.
    pub fn new(
        library: Arc<Library>,
        entry: Arc<NativeEntry>,
        config: Option<&[u8]>,
        host: Bound,
    ) -> Result<Self> {
        let name = &entry.info.name;
        let instance = match (entry.info.abi_version, config) {
            (abi::ABI_400, Some(_)) => {
                return fail(
                    Status::InvalidArgument,
                    format!("plugin {name} uses ABI 400 (fidius 0.4), which has no configured instances"),
                )
            }
            (abi::ABI_400, None) => ptr::null_mut(),
            (_, config) => {
                let construct = entry.construct.expect("validated at load");
                let bytes = config.unwrap_or(&[]);
                let len = u32::try_from(bytes.len())
                    .map_err(|_| Error::new(Status::InvalidArgument, "config is larger than 4 GiB"))?;
                let instance = unsafe { construct(non_null(bytes), len) };
                if instance.is_null() {
                    return fail(
                        Status::ConfigRejected,
                        format!(
                            "plugin {name} returned no instance for the given config ({} bytes); a configured \
                             plugin needs the bincode of its config type",
                            bytes.len()
                        ),
                    );
                }
                instance
            }
        };
        Ok(NativePlugin { entry, instance, host, library })
    }

    pub fn entry(&self) -> &NativeEntry {
        &self.entry
    }

    /// Its library's host imports and what is bound for them.
    pub fn host(&self) -> &Bound {
        &self.host
    }

    /// Whether method `index` exists and its vtable slot is filled.
    pub fn has_method(&self, index: u32) -> bool {
        index < self.entry.info.method_count && unsafe { !(*self.entry.vtable.add(index as usize)).is_null() }
    }

    /// Call method `index` with the Fidius wire bytes of its arguments.
    #[inline]
    pub fn call(&self, index: u32, input: &[u8]) -> Result<Output> {
        let info = &self.entry.info;
        if index >= info.method_count {
            return fail(
                Status::MethodIndex,
                format!("method index {index} is out of range: plugin {} has {} methods", info.name, info.method_count),
            );
        }
        let in_len = u32::try_from(input.len())
            .map_err(|_| Error::new(Status::InvalidArgument, "input is larger than 4 GiB"))?;
        let slot = unsafe { *self.entry.vtable.add(index as usize) };
        if slot.is_null() {
            return fail(
                Status::NotImplemented,
                format!("plugin {} does not implement method {index} (an optional method)", info.name),
            );
        }
        match self.entry.strategy {
            BufferStrategy::PluginAllocated => self.call_plugin_allocated(slot, input, in_len),
            BufferStrategy::Arena => self.call_arena(slot, input, in_len).map(Output::Owned),
        }
    }

    #[inline]
    fn call_plugin_allocated(&self, slot: *const (), input: &[u8], in_len: u32) -> Result<Output> {
        let mut out_ptr: *mut u8 = ptr::null_mut();
        let mut out_len: u32 = 0;
        let status = unsafe {
            if self.entry.info.abi_version == abi::ABI_400 {
                let f: abi::PluginAllocated400 = std::mem::transmute(slot);
                f(non_null(input), in_len, &mut out_ptr, &mut out_len)
            } else {
                let f: abi::PluginAllocated500 = std::mem::transmute(slot);
                f(self.instance, non_null(input), in_len, &mut out_ptr, &mut out_len)
            }
        };
        self.allocated_output(status, out_ptr, out_len)
    }

    /// A PluginAllocated call's outcome. The plugin's buffer is handed on
    /// as it is, and goes back to the plugin's allocator (with its exact
    /// length) when released: no copy.
    #[inline]
    pub(super) fn allocated_output(&self, status: i32, out_ptr: *mut u8, out_len: u32) -> Result<Output> {
        let free = self.entry.free_buffer.expect("validated at load");
        let output = (!out_ptr.is_null()).then(|| unsafe { PluginBuffer::new(out_ptr, out_len as usize, free) });
        match (status, output) {
            (abi::STATUS_OK, Some(buffer)) => Ok(Output::Plugin(buffer)),
            (status, output) => outcome(&self.entry.info.name, status, output.map(|b| Output::Plugin(b).into_vec())).map(Output::Owned),
        }
    }

    fn call_arena(&self, slot: *const (), input: &[u8], in_len: u32) -> Result<Vec<u8>> {
        // Taken out of the thread-local for the call, so a re-entrant call
        // on this thread gets its own buffer instead of a borrow panic.
        let mut arena = ARENA.with(|a| std::mem::take(&mut *a.borrow_mut()));
        if arena.len() < ARENA_INITIAL {
            arena.resize(ARENA_INITIAL, 0);
        }
        let result = self.call_arena_with(slot, input, in_len, &mut arena);
        ARENA.with(|a| *a.borrow_mut() = arena);
        result
    }

    fn call_arena_with(&self, slot: *const (), input: &[u8], in_len: u32, arena: &mut Vec<u8>) -> Result<Vec<u8>> {
        let mut retried = false;
        loop {
            let cap = u32::try_from(arena.len()).unwrap_or(u32::MAX);
            let (mut offset, mut len) = (0u32, 0u32);
            let status = unsafe {
                if self.entry.info.abi_version == abi::ABI_400 {
                    let f: abi::Arena400 = std::mem::transmute(slot);
                    f(non_null(input), in_len, arena.as_mut_ptr(), cap, &mut offset, &mut len)
                } else {
                    let f: abi::Arena500 = std::mem::transmute(slot);
                    f(self.instance, non_null(input), in_len, arena.as_mut_ptr(), cap, &mut offset, &mut len)
                }
            };
            if status == abi::STATUS_BUFFER_TOO_SMALL {
                // The plugin says how much it needs; like fidius-host we grow
                // once and call again, which runs the method a second time.
                if len as usize > MAX_ARENA {
                    return fail(
                        Status::BufferTooSmall,
                        format!(
                            "plugin {} asked for a {len}-byte arena, more than the {MAX_ARENA} bytes a host arena may grow to",
                            self.entry.info.name
                        ),
                    );
                }
                if retried || (len as usize) <= arena.len() {
                    return fail(
                        Status::BufferTooSmall,
                        format!("plugin {} asked for a {len}-byte arena and still did not fit", self.entry.info.name),
                    );
                }
                arena.resize(len as usize, 0);
                retried = true;
                continue;
            }
            let end = offset as usize + len as usize;
            if end > arena.len() {
                return fail(
                    Status::Serialization,
                    format!("plugin {} wrote past its arena ({end} > {})", self.entry.info.name, arena.len()),
                );
            }
            let bytes = arena[offset as usize..end].to_vec();
            return outcome(&self.entry.info.name, status, Some(bytes));
        }
    }
}

/// Map a plugin status and its payload to the call's result.
#[cold]
pub(super) fn outcome(name: &str, status: i32, output: Option<Vec<u8>>) -> Result<Vec<u8>> {
    match status {
        abi::STATUS_OK => output.ok_or_else(|| {
            Error::new(Status::Serialization, format!("plugin {name} returned a NULL output buffer"))
        }),
        abi::STATUS_PLUGIN_ERROR => Err(Error::plugin(wire::decode_plugin_error(output.as_deref().unwrap_or(&[])))),
        abi::STATUS_PANIC => {
            let message = match output.as_deref() {
                Some(bytes) if !bytes.is_empty() => wire::decode_string(bytes)
                    .unwrap_or_else(|| String::from_utf8_lossy(bytes).into_owned()),
                // Arena plugins and stream items report panics without a message.
                _ => "no panic message (Arena plugins and stream items do not carry one)".to_string(),
            };
            fail(Status::PluginPanic, format!("plugin {name} panicked: {message}"))
        }
        abi::STATUS_SERIALIZATION_ERROR => fail(
            Status::Serialization,
            format!("plugin {name} could not decode the input or encode the output (wrong argument types?)"),
        ),
        abi::STATUS_BUFFER_TOO_SMALL => {
            fail(Status::BufferTooSmall, format!("plugin {name} reported its output buffer too small"))
        }
        other => fail(Status::UnknownStatus, format!("plugin {name} returned unknown status {other}")),
    }
}

impl Drop for NativePlugin {
    fn drop(&mut self) {
        if let (false, Some(destroy)) = (self.instance.is_null(), self.entry.destroy) {
            unsafe { destroy(self.instance) };
        }
    }
}

/// Plugins build a slice from the input pointer: never hand them NULL, even for empty input.
pub(super) fn non_null(bytes: &[u8]) -> *const u8 {
    if bytes.is_empty() {
        NonNull::<u8>::dangling().as_ptr()
    } else {
        bytes.as_ptr()
    }
}
