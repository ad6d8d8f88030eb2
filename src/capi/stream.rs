//! Streaming methods: output streams pulled as C iterators, and C callbacks
//! that feed a plugin's `Stream<T>` argument.

use std::ffi::c_void;
use std::ptr;
use std::sync::{Arc, Mutex};

use super::egress::{fidius_destroy_fn, UserData};
use super::plugin::{fidius_bytes, fidius_plugin, parse_format};
use super::{c_bytes, fidius_error, guard, guard_value, handle, out_param, Handle};
use crate::cancel::Cancel;
use crate::error::{Error, Result, Status};
use crate::plugin::PluginStream;
use crate::stream::ItemSource;

/// Feeds a plugin's `Stream<T>` argument (a client-streaming or
/// bidirectional method), one item per call. Answer with:
/// - `1`: an item: `*item` and `*item_len` are its Fidius wire bytes (the
///   bincode of one `T`; `*item` may be NULL when `*item_len` is 0).
///   libfidius copies them as soon as the callback returns, so they need to
///   stay valid only until then;
/// - `0`: the end of the stream (every later pull is answered for you);
/// - a negative number: a failure. The plugin sees its input end there, and
///   the call or stream then fails with FIDIUS_STATUS_STREAM_SOURCE, whose
///   message carries the number.
///
/// Items are always wire bytes, whatever the call's format: the `Stream<T>`
/// argument appears in no interface schema, so its item type is unknown.
/// Python plugins are the exception: their items cross as JSON
/// (fidius-python's convention), so each item is the JSON text of one item.
///
/// It runs on the thread that makes the plugin pull: the caller of
/// `fidius_plugin_call_streaming` for a client stream, the caller of
/// `fidius_stream_next` for a bidirectional one, on that thread's own stack
/// (for WASM plugins too: never on a guest's fiber stack). Only when the
/// plugin itself pulls from a thread it started (a native plugin may) does
/// it run there; it is never called by two threads at once. While it runs,
/// the call's timeout is not counted against the plugin.
pub type fidius_stream_source_fn =
    Option<unsafe extern "C" fn(user_data: *mut c_void, item: *mut *const u8, item_len: *mut usize) -> i32>;

/// A plugin's output stream (a server-streaming or bidirectional method).
/// Created by `fidius_plugin_stream`, owned by the caller, released with
/// `fidius_stream_free` (which cancels it if items remain). One thread at a
/// time may use a stream, but it may move between threads; any number of
/// streams of one plugin (and calls) may run at once. A stream keeps what it
/// needs of its plugin, so it may outlive `fidius_plugin_free`.
/// `fidius_stream_cancel` is the one function any thread may call on a
/// stream while another uses it.
pub struct fidius_stream {
    _opaque: [u8; 0],
}
handle!(fidius_stream => StreamBox, 0x4649_4453_5452_4d31);

pub struct StreamBox {
    /// Locked by the one thread pulling; a second puller waits.
    stream: Mutex<PluginStream>,
    /// Not behind the lock: cancelling reaches a stream mid-item.
    cancel: Arc<Cancel>,
}

struct CSource {
    next: unsafe extern "C" fn(*mut c_void, *mut *const u8, *mut usize) -> i32,
    user: UserData,
}

impl ItemSource for CSource {
    fn next(&mut self) -> Result<Option<Vec<u8>>> {
        let (mut item, mut len): (*const u8, usize) = (ptr::null(), 0);
        match unsafe { (self.next)(self.user.get(), &mut item, &mut len) } {
            1 => match (item.is_null(), len) {
                (true, 0) => Ok(Some(Vec::new())),
                (true, _) => Err(Error::new(Status::StreamSource, format!("the stream source answered a NULL item of {len} bytes"))),
                (false, _) => Ok(Some(unsafe { std::slice::from_raw_parts(item, len) }.to_vec())),
            },
            0 => Ok(None),
            code if code < 0 => Err(Error::new(Status::StreamSource, format!("the stream source failed with {code}"))),
            code => Err(Error::new(Status::StreamSource, format!("the stream source answered {code}, not 1 (item), 0 (end) or a negative failure"))),
        }
    }
}

/// The source, owning its user data from here on: `destroy` runs when it
/// goes (at once when there is no callback).
fn source(next: fidius_stream_source_fn, user_data: *mut c_void, destroy: fidius_destroy_fn) -> Option<Box<dyn ItemSource>> {
    let user = UserData { data: user_data, destroy };
    next.map(|next| Box::new(CSource { next, user }) as Box<dyn ItemSource>)
}

/// Start method `method` as an output stream. Without a source (`source`
/// NULL) it is a server stream (`fn m(..) -> Stream<T>`); with one, a
/// bidirectional stream (`fn m(.., Stream<In>) -> Stream<Out>`) whose input
/// the source feeds (see `fidius_stream_source_fn`). `input` holds the
/// method's other arguments encoded as `format` (as for
/// `fidius_plugin_call`); items come out in `format` too: wire bytes (the
/// bincode of one item), or JSON where the item type is known (WASM plugins,
/// native plugins with an interface schema). On success `*stream` receives
/// the stream; pull it with `fidius_stream_next`.
///
/// `destroy` (may be NULL) is called exactly once with `user_data`, when the
/// plugin no longer needs the source: when its input ends, when the stream
/// ends or is freed, or at once if this function fails. **Unlike the
/// callback registrations (egress, log, host interfaces), a failure here
/// still calls `destroy`**: the source is the call's from the start, so the
/// caller never releases `user_data` itself.
///
/// Native descriptors do not say which methods stream: the caller states
/// the kind by the function it uses and whether it gives a source, and a
/// wrong kind on a native plugin without an interface schema is undefined
/// behaviour, as with any mismatched call. With a schema, or for a WASM
/// plugin, a method that does not return a stream is refused with
/// UNSUPPORTED, as is a source for a component that pulls none.
///
/// Limits: a WASM stream runs in an instance of its own for its whole life
/// (also for plugins that reuse one instance for calls), so the memory
/// limit applies to the stream as a whole, while the timeout and fuel apply
/// to each item (and to starting the stream). Native streams require the
/// PluginAllocated buffer strategy; ABI 400 (fidius 0.4) plugins have server
/// streams only. Errors: as `fidius_plugin_call`, and UNSUPPORTED (not a
/// stream, JSON with an unknown item type, a bidirectional stream on ABI
/// 400), STREAM_SOURCE. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_stream(
    plugin: *const fidius_plugin,
    method: u32,
    format: u32,
    input: *const u8,
    input_len: usize,
    source: fidius_stream_source_fn,
    user_data: *mut c_void,
    destroy: fidius_destroy_fn,
    stream: *mut *mut fidius_stream,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        // Owned first: dropped (destroy called) on every path that fails.
        let source = self::source(source, user_data, destroy);
        let out = out_param(stream, "stream")?;
        *out = ptr::null_mut();
        let format = parse_format(format)?;
        let plugin = &fidius_plugin::get(plugin)?.plugin;
        let cancel = Arc::new(Cancel::new());
        let started = plugin.stream(method, format, c_bytes(input, input_len, "input")?, source, Some(cancel.clone()))?;
        *out = fidius_stream::into_raw(StreamBox { stream: Mutex::new(started), cancel });
        Ok(())
    })
}

/// Call client-streaming method `method` (`fn m(.., Stream<T>) -> R`):
/// `source` (required) feeds its `Stream<T>` argument, `input` holds its
/// other arguments in `format`, and `*output` receives its result, as for
/// `fidius_plugin_call`. If the source fails, the call fails with
/// STREAM_SOURCE whatever the plugin made of its shortened input. `destroy`
/// is called as for `fidius_plugin_stream` (by the time this returns).
/// A method that returns a stream is refused with UNSUPPORTED (use
/// `fidius_plugin_stream` with a source); the other kind checks are as
/// there. Errors: as `fidius_plugin_call`, NULL_ARGUMENT (no source),
/// STREAM_SOURCE. Thread-safe.
#[no_mangle]
pub unsafe extern "C" fn fidius_plugin_call_streaming(
    plugin: *const fidius_plugin,
    method: u32,
    format: u32,
    input: *const u8,
    input_len: usize,
    source: fidius_stream_source_fn,
    user_data: *mut c_void,
    destroy: fidius_destroy_fn,
    output: *mut fidius_bytes,
    error: *mut *mut fidius_error,
) -> Status {
    guard(error, || {
        let fed = self::source(source, user_data, destroy);
        let out = out_param(output, "output")?;
        *out = fidius_bytes::EMPTY;
        let fed = fed.ok_or_else(|| Error::new(Status::NullArgument, "source is NULL"))?;
        let format = parse_format(format)?;
        let plugin = &fidius_plugin::get(plugin)?.plugin;
        *out = fidius_bytes::from_output(plugin.call_streaming(method, format, c_bytes(input, input_len, "input")?, fed, None)?);
        Ok(())
    })
}

/// The next item of `stream`: FIDIUS_STATUS_OK with `*item` a new buffer
/// owned by the caller (release with `fidius_bytes_free`; an item may be
/// empty: `{NULL, 0}`), or FIDIUS_STATUS_STREAM_END at the end (`*item`
/// empty, no error set). A failure (the plugin's error with its code,
/// message and details, a panic, a trap, a timeout, the source's failure)
/// ends the stream: its status is returned once, with the error, and every
/// later call answers STREAM_END. The plugin's side of the stream is
/// released as soon as it ends. Errors: as for the call that started it,
/// NULL_ARGUMENT, INVALID_HANDLE. One thread at a time per stream (a second
/// caller waits for the first); `fidius_stream_cancel` stops it from another.
#[no_mangle]
pub unsafe extern "C" fn fidius_stream_next(stream: *mut fidius_stream, item: *mut fidius_bytes, error: *mut *mut fidius_error) -> Status {
    guard_or(error, Status::StreamEnd, || {
        let out = out_param(item, "item")?;
        *out = fidius_bytes::EMPTY;
        let stream = fidius_stream::get(stream)?;
        let mut stream = stream.stream.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match stream.next()? {
            Some(bytes) => {
                *out = fidius_bytes::from_vec(bytes);
                true
            }
            None => false,
        })
    })
}

/// [`guard`] for a body that answers whether it succeeded fully: `otherwise`
/// (a status that is not a failure) when it did not.
fn guard_or(error: *mut *mut fidius_error, otherwise: Status, body: impl FnOnce() -> Result<bool>) -> Status {
    let mut full = true;
    match guard(error, || body().map(|f| full = f)) {
        Status::Ok if !full => otherwise,
        status => status,
    }
}

/// Cancel `stream` from any thread, also while another thread is in
/// `fidius_stream_next` on it: the stream ends with FIDIUS_STATUS_CANCELLED
/// (returned once by the `fidius_stream_next` it interrupts, or by the
/// next one), and then answers STREAM_END. A WASM stream's item is stopped
/// wherever it is (guest code at the next 5 ms epoch tick, a blocked host
/// call at once), and its instance goes with it without running the
/// resource's destructor (its state is unknown mid-item); a Python item is
/// stopped within 20 ms by stopping the plugin's runner (then its other
/// open streams end too, and its next call starts a fresh runner); a
/// native item cannot be interrupted, so a native stream ends before its
/// next item. The stream still needs `fidius_stream_free`, which must not
/// race with any other use of it. Idempotent. Errors: NULL_ARGUMENT,
/// INVALID_HANDLE.
#[no_mangle]
pub unsafe extern "C" fn fidius_stream_cancel(stream: *const fidius_stream, error: *mut *mut fidius_error) -> Status {
    guard(error, || {
        fidius_stream::get(stream)?.cancel.trigger();
        Ok(())
    })
}

/// Release a stream, cancelling it if it has not ended: the plugin's
/// producer is dropped (a native plugin's `drop_fn` runs, a WASM stream's
/// resource is dropped, which runs its destructor, within its timeout), and
/// a bidirectional stream's source is destroyed. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn fidius_stream_free(stream: *mut fidius_stream) {
    guard_value((), || {
        fidius_stream::free(stream);
        Ok(())
    })
}
