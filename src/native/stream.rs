//! Streaming methods of native plugins: the plugin's output stream handle
//! (server and bidirectional), and the input stream handle the host builds
//! for a `Stream<T>` argument (client and bidirectional, ABI 500 only).

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, Mutex};

use libloading::Library;

use super::abi::{self, StreamHandle};
use super::plugin::{non_null, outcome, NativePlugin, MAX_ARENA};
use crate::error::{fail, Error, Result, Status};
use crate::info::BufferStrategy;
use crate::output::{Output, PluginBuffer};
use crate::stream::{Feed, ItemStream, StreamKind};

/// The first item buffer; it grows to the largest item asked for.
const FIRST_ITEM_BUFFER: usize = 1024;

impl NativePlugin {
    /// The slot of a streaming method, after the checks the descriptor allows.
    fn streaming_slot(&self, index: u32, kind: StreamKind) -> Result<*const ()> {
        let info = &self.entry.info;
        if index >= info.method_count {
            return fail(
                Status::MethodIndex,
                format!("method index {index} is out of range: plugin {} has {} methods", info.name, info.method_count),
            );
        }
        if self.entry.strategy != BufferStrategy::PluginAllocated {
            return fail(
                Status::Unsupported,
                format!("plugin {} uses the Arena buffer strategy, which has no streaming methods (fidius requires PluginAllocated)", info.name),
            );
        }
        if kind != StreamKind::Server && info.abi_version == abi::ABI_400 {
            return fail(
                Status::Unsupported,
                format!("plugin {} uses ABI 400 (fidius 0.4), which has server streams only", info.name),
            );
        }
        let slot = unsafe { *self.entry.vtable.add(index as usize) };
        if slot.is_null() {
            return fail(Status::NotImplemented, format!("plugin {} does not implement method {index} (an optional method)", info.name));
        }
        Ok(slot)
    }

    /// Start method `index` as a server stream (`feed` None) or a
    /// bidirectional one (the host's items feed its `Stream<T>` argument).
    pub fn stream(&self, index: u32, input: &[u8], feed: Option<Arc<Feed>>) -> Result<NativeStream> {
        let kind = if feed.is_some() { StreamKind::Bidi } else { StreamKind::Server };
        let slot = self.streaming_slot(index, kind)?;
        let in_len = input_len(input)?;
        let mut source = feed.map(InputStream::new);
        let (mut out_ptr, mut out_len) = (ptr::null_mut::<u8>(), 0u32);
        let status = unsafe {
            match (&mut source, self.entry.info.abi_version) {
                (Some(source), _) => {
                    let f: abi::StreamIn500 = std::mem::transmute(slot);
                    f(self.instance, source.handle(), non_null(input), in_len, &mut out_ptr, &mut out_len)
                }
                (None, abi::ABI_400) => {
                    let f: abi::PluginAllocated400 = std::mem::transmute(slot);
                    f(non_null(input), in_len, &mut out_ptr, &mut out_len)
                }
                (None, _) => {
                    let f: abi::PluginAllocated500 = std::mem::transmute(slot);
                    f(self.instance, non_null(input), in_len, &mut out_ptr, &mut out_len)
                }
            }
        };
        let name = &self.entry.info.name;
        let free = self.entry.free_buffer.expect("validated at load");
        if status != abi::STATUS_OK {
            let payload = (!out_ptr.is_null()).then(|| unsafe { PluginBuffer::new(out_ptr, out_len as usize, free) });
            return Err(outcome(name, status, payload.map(|b| Output::Plugin(b).into_vec())).unwrap_err());
        }
        if out_ptr.is_null() {
            return fail(Status::Serialization, format!("plugin {name}: method {index} returned no stream handle"));
        }
        if out_len != 0 {
            // A unary method's output, not a stream handle: give it back.
            drop(unsafe { PluginBuffer::new(out_ptr, out_len as usize, free) });
            return fail(Status::Unsupported, not_a_handle(name, index, &format!("{out_len} bytes")));
        }
        // An empty unary result comes back as a length-0 buffer whose
        // pointer fidius leaves dangling (unaligned, near 0): never read it
        // as a handle. A real handle is the plugin's boxed StreamHandle,
        // whose functions are the plugin library's own code.
        if (out_ptr as usize) % std::mem::align_of::<StreamHandle>() != 0 || (out_ptr as usize) < 4096 {
            drop(unsafe { PluginBuffer::new(out_ptr, 0, free) });
            return fail(Status::Unsupported, not_a_handle(name, index, "an empty result"));
        }
        let handle = out_ptr as *mut StreamHandle;
        let (next, drop_fn) = unsafe { ((*handle).next as *const (), (*handle).drop_fn as *const ()) };
        if !same_object(next, slot) || !same_object(drop_fn, slot) {
            // Not the plugin's code: calling it (even drop_fn) could run
            // anything, so the memory is left alone.
            return fail(Status::Unsupported, not_a_handle(name, index, "a structure whose functions are not the plugin's code"));
        }
        Ok(NativeStream {
            handle,
            buffer: vec![0; FIRST_ITEM_BUFFER],
            plugin: name.clone(),
            input: source,
            _library: self.library.clone(),
        })
    }

    /// Call client-streaming method `index`: the host's items feed its
    /// `Stream<T>` argument, and it returns one result.
    pub fn call_fed(&self, index: u32, input: &[u8], feed: Arc<Feed>) -> Result<Output> {
        let slot = self.streaming_slot(index, StreamKind::Client)?;
        let in_len = input_len(input)?;
        let mut source = InputStream::new(feed);
        let (mut out_ptr, mut out_len) = (ptr::null_mut::<u8>(), 0u32);
        let status = unsafe {
            let f: abi::StreamIn500 = std::mem::transmute(slot);
            f(self.instance, source.handle(), non_null(input), in_len, &mut out_ptr, &mut out_len)
        };
        // The plugin has returned: its hold on the input ends here (and a
        // plugin that never wrapped it, e.g. on a decode failure, never drops it).
        drop(source);
        self.allocated_output(status, out_ptr, out_len)
    }
}

fn not_a_handle(plugin: &str, index: u32, what: &str) -> String {
    format!(
        "plugin {plugin}: method {index} returned {what}, not a stream handle: it is not a streaming method \
         (native descriptors do not say which methods stream; the caller's kind was wrong)"
    )
}

/// Whether two code addresses lie in the same loaded object (dladdr).
fn same_object(a: *const (), b: *const ()) -> bool {
    unsafe {
        let (mut ia, mut ib): (libc::Dl_info, libc::Dl_info) = (std::mem::zeroed(), std::mem::zeroed());
        libc::dladdr(a.cast(), &mut ia) != 0 && libc::dladdr(b.cast(), &mut ib) != 0 && ia.dli_fbase == ib.dli_fbase
    }
}

fn input_len(input: &[u8]) -> Result<u32> {
    u32::try_from(input.len()).map_err(|_| Error::new(Status::InvalidArgument, "input is larger than 4 GiB"))
}

/// A plugin's output stream. Items are pulled into a host buffer that
/// grows to the size the plugin asks for; `drop_fn` runs exactly once, at
/// the end, on a failure, or when the stream is dropped early (cancel).
pub struct NativeStream {
    handle: *mut StreamHandle,
    buffer: Vec<u8>,
    plugin: String,
    /// The input stream of a bidirectional method: freed after the output
    /// (which holds the plugin's end of it) is dropped.
    input: Option<Box<InputStream>>,
    // Producer code lives in the library (never unmapped; held for form).
    _library: Arc<Library>,
}

// Fidius streams are `Send` (their producers are `Send + 'static`).
unsafe impl Send for NativeStream {}

impl NativeStream {
    fn finish(&mut self) {
        let handle = std::mem::replace(&mut self.handle, ptr::null_mut());
        if !handle.is_null() {
            unsafe { ((*handle).drop_fn)(handle) };
        }
        if let Some(input) = &self.input {
            input.feed.close();
        }
    }

    fn pull(&mut self) -> Result<Option<Vec<u8>>> {
        let mut grown = false;
        loop {
            let cap = u32::try_from(self.buffer.len()).unwrap_or(u32::MAX);
            let mut len = 0u32;
            let status = unsafe { ((*self.handle).next)(self.handle, self.buffer.as_mut_ptr(), cap, &mut len) };
            match status {
                abi::STATUS_OK if len <= cap => return Ok(Some(self.buffer[..len as usize].to_vec())),
                abi::STATUS_OK => {
                    return fail(Status::Serialization, format!("plugin {}: a stream item claims {len} bytes in a {cap}-byte buffer", self.plugin))
                }
                abi::STATUS_STREAM_END => return Ok(None),
                abi::STATUS_BUFFER_TOO_SMALL => {
                    // The plugin keeps the item and says how much it needs:
                    // grow once and ask again.
                    if grown || len <= cap || len as usize > MAX_ARENA {
                        return fail(
                            Status::BufferTooSmall,
                            format!(
                                "plugin {}: a stream item asked for a {len}-byte buffer (have {cap}, at most {MAX_ARENA})",
                                self.plugin
                            ),
                        );
                    }
                    self.buffer.resize(len as usize, 0);
                    grown = true;
                }
                other => {
                    let payload = self.buffer[..(len.min(cap)) as usize].to_vec();
                    return Err(outcome(&self.plugin, other, Some(payload)).unwrap_err().context("stream item"));
                }
            }
        }
    }
}

impl ItemStream for NativeStream {
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        if self.handle.is_null() {
            return Ok(None);
        }
        let step = self.pull();
        if !matches!(step, Ok(Some(_))) {
            self.finish();
        }
        step
    }
}

impl Drop for NativeStream {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The stream handle the host builds for a plugin's `Stream<T>` argument.
/// The plugin pulls items from it (on its own thread: the caller's during a
/// client-streaming call, the puller's for a bidirectional stream) and calls
/// `drop_fn` when done with it. The memory stays the host's: it is freed
/// once the plugin has returned (client) or its output stream is dropped
/// (bidirectional), so a `drop_fn` that never comes leaks nothing.
#[repr(C)]
struct InputStream {
    // First: the plugin's pointer is to this.
    handle: StreamHandle,
    feed: Arc<Feed>,
    /// An item that did not fit the plugin's buffer, kept for its retry.
    pending: Mutex<Option<Vec<u8>>>,
}

impl InputStream {
    fn new(feed: Arc<Feed>) -> Box<InputStream> {
        let mut input = Box::new(InputStream {
            handle: StreamHandle { next: input_next, drop_fn: input_drop, state: ptr::null_mut() },
            feed,
            pending: Mutex::new(None),
        });
        input.handle.state = &mut *input as *mut InputStream as *mut c_void;
        input
    }

    fn handle(&mut self) -> *mut StreamHandle {
        &mut self.handle
    }
}

unsafe extern "C" fn input_next(handle: *mut StreamHandle, buf: *mut u8, cap: u32, out_len: *mut u32) -> i32 {
    catch_unwind(AssertUnwindSafe(|| {
        if handle.is_null() || out_len.is_null() || (buf.is_null() && cap > 0) {
            return abi::STATUS_SERIALIZATION_ERROR;
        }
        let input = &*((*handle).state as *const InputStream);
        let mut pending = input.pending.lock().unwrap_or_else(|p| p.into_inner());
        let Some(item) = pending.take().or_else(|| input.feed.pull()) else {
            return abi::STATUS_STREAM_END;
        };
        let Ok(len) = u32::try_from(item.len()) else {
            return abi::STATUS_SERIALIZATION_ERROR;
        };
        *out_len = len;
        if len > cap {
            *pending = Some(item);
            return abi::STATUS_BUFFER_TOO_SMALL;
        }
        if len > 0 {
            ptr::copy_nonoverlapping(item.as_ptr(), buf, item.len());
        }
        abi::STATUS_OK
    }))
    .unwrap_or(abi::STATUS_PANIC)
}

unsafe extern "C" fn input_drop(handle: *mut StreamHandle) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        if !handle.is_null() {
            (*((*handle).state as *const InputStream)).feed.close();
        }
    }));
}
