package fidius

/*
#include <stdlib.h>
#include "fidius.h"
#include "callbacks.h"
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Stream is a plugin's output stream: the items of a server-streaming
// (`fn m(..) -> Stream<T>`) or bidirectional (`fn m(.., Stream<In>) ->
// Stream<Out>`) method, pulled one at a time with Next (or ranged over with
// All). Items are in the format the stream was opened with: wire bytes (the
// bincode of one item) or JSON.
//
// Close releases it, cancelling the plugin's producer if items remain (a
// native plugin's drop runs, a WASM stream's resource is dropped); a
// finalizer does too if Close was never called, but late, so call Close.
// A Stream keeps what it needs of its plugin: it stays usable after
// Plugin.Close.
//
// Cancel (or NextContext's context) stops the stream from another
// goroutine, also while a Next is in progress: the stream ends with
// StatusCancelled, then io.EOF. See Cancel for what each runtime stops.
//
// Safe for concurrent use (a mutex serialises Next and Close, as the C API
// allows one thread at a time per stream; Cancel runs beside them), and it
// may move between goroutines. Close cancels a Next in progress (as Cancel
// does) and waits for it to return.
type Stream struct {
	// mu serialises Next and Close.
	mu sync.Mutex
	// life is held for reading by Cancel across fidius_stream_cancel (which
	// runs beside a Next, without mu), for writing by Close while it frees
	// ptr: freeing must not race with any other use, a cancel included.
	life sync.RWMutex
	ptr  *C.fidius_stream // written with both mu and life held
	// src is a bidirectional stream's source (nil for a server stream),
	// kept to tell a StreamSource failure's cause.
	src *sourceState
	// closing is set when Close starts: later Next calls answer ErrClosed.
	// pulling counts the Next calls in progress (or waiting for mu), for
	// Close to cancel. Next adds itself before it reads closing, and Close
	// sets closing before it reads pulling: one of them sees the other.
	closing atomic.Bool
	pulling atomic.Int32
	// why is the first cancellation's cause (the context's error, ErrClosed,
	// nil for Cancel), reported by the Next that answers StatusCancelled.
	whyMu     sync.Mutex
	cancelled bool
	why       error
}

func newStream(ptr *C.fidius_stream, src *sourceState) *Stream {
	s := &Stream{ptr: ptr, src: src}
	runtime.SetFinalizer(s, (*Stream).Close)
	return s
}

// Next returns the next item. At the end it returns io.EOF (not an error:
// the stream is finished), and io.EOF again on every later call. A failure
// (the plugin's *PluginError, a panic, a trap, a timeout, the Source's
// failure, a cancellation) ends the stream: it is returned once, and io.EOF
// afterwards. After Close, ErrClosed. An item may be empty (a non-nil
// empty slice).
func (s *Stream) Next() ([]byte, error) {
	return s.next(nil)
}

// NextContext is Next, cancelling the stream (see Cancel) when ctx is done
// before the item arrives: the stream then ends with an *Error of
// StatusCancelled that also matches ctx.Err() with errors.Is (returned by
// this call, or by the next one when the item was already on its way), and
// io.EOF afterwards. A stream cancellation is final: a context meant to
// bound one item ends the whole stream. If ctx is already done, the stream
// is cancelled before the item is asked for (so a native stream stops too).
// A goroutine watches ctx for the duration of the call.
//
// To bound a whole loop (All, Collect) by a context, with Go 1.21:
//
//	stop := context.AfterFunc(ctx, func() { s.Cancel() })
//	defer stop()
func (s *Stream) NextContext(ctx context.Context) ([]byte, error) {
	if ctx == nil {
		panic("fidius: nil Context")
	}
	return s.next(ctx)
}

func (s *Stream) next(ctx context.Context) ([]byte, error) {
	s.pulling.Add(1)
	defer s.pulling.Add(-1)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr == nil || s.closing.Load() {
		return nil, ErrClosed
	}
	unwatch := func() {}
	if ctx != nil && ctx.Done() != nil {
		unwatch = s.watch(ctx)
	}
	var item C.fidius_bytes
	var cerr *C.fidius_error
	st := C.fidius_stream_next(s.ptr, &item, &cerr)
	unwatch()
	if st == C.FIDIUS_STATUS_STREAM_END {
		if cerr != nil { // documented: no error is set at the end
			C.fidius_error_free(cerr)
		}
		return nil, io.EOF
	}
	if err := takeError(st, cerr); err != nil {
		if e, ok := err.(*Error); ok && e.Status == StatusCancelled {
			e.cause = s.cancelCause()
		}
		return nil, s.src.explain(err)
	}
	return takeBytes(&item), nil
}

// watch cancels the stream when ctx is done, until the returned function
// is called; that function returns once the watching goroutine is gone.
// Called with mu held (so Close cannot free the stream meanwhile).
func (s *Stream) watch(ctx context.Context) (unwatch func()) {
	if err := ctx.Err(); err != nil { // already done: cancel before the item is asked for
		s.cancel(err)
		return func() {}
	}
	finished := make(chan struct{})
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		select {
		case <-ctx.Done():
			s.cancel(ctx.Err())
		case <-finished:
		}
	}()
	return func() {
		close(finished)
		<-gone
	}
}

// Cancel stops the stream from any goroutine, also while another is inside
// Next: the stream ends with an *Error of StatusCancelled (returned once,
// by the Next it interrupts or by the next one), then Next answers io.EOF.
// What stops depends on the runtime:
//
//   - a WASM stream's item is stopped wherever it is (guest code within
//     about 5 ms, a call blocked in a host function at once), and its
//     instance is dropped without running the stream resource's destructor
//     (its state is unknown mid-item; cancelled between items, it may not
//     run either);
//   - a Python item in progress is stopped within about 20 ms by stopping
//     the plugin's runner process: the plugin's other open streams end
//     with it, and its next call starts a fresh runner (cancelled between
//     items, the stream just ends);
//   - a native item cannot be interrupted: one in progress finishes (its
//     Next returns the item), and the stream ends before the next one.
//
// The stream still needs Close. Cancel is idempotent, and harmless after
// Close (it returns nil). A Source feeding a bidirectional stream is not
// interrupted by it: a Source blocked in Next keeps the stream's Next waiting.
func (s *Stream) Cancel() error {
	return s.cancel(nil)
}

// cancel cancels the stream, recording why (the first cause wins).
func (s *Stream) cancel(why error) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.ptr == nil {
		return nil
	}
	s.whyMu.Lock()
	if !s.cancelled {
		s.cancelled, s.why = true, why
	}
	s.whyMu.Unlock()
	var cerr *C.fidius_error
	return takeError(C.fidius_stream_cancel(s.ptr, &cerr), cerr)
}

func (s *Stream) cancelCause() error {
	s.whyMu.Lock()
	defer s.whyMu.Unlock()
	return s.why
}

// Decode unmarshals the next item, the JSON of a stream opened with
// FormatJSON (as InvokeStream opens them), into out (a pointer, as for
// json.Unmarshal; numbers into an `any` become json.Number, as for Invoke).
// It returns io.EOF at the end, and Next's errors.
func (s *Stream) Decode(out any) error {
	return decodeItem(s.Next())(out)
}

// DecodeContext is Decode, pulling the item with NextContext.
func (s *Stream) DecodeContext(ctx context.Context, out any) error {
	if ctx == nil {
		panic("fidius: nil Context")
	}
	return decodeItem(s.next(ctx))(out)
}

func decodeItem(item []byte, err error) func(out any) error {
	return func(out any) error {
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(item))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return fmt.Errorf("fidius: stream item %s: %w", item, err)
		}
		return nil
	}
}

// Collect pulls every remaining item. It returns them with a nil error at
// the end, or the items before a failure with that failure.
func (s *Stream) Collect() ([][]byte, error) {
	var items [][]byte
	for {
		item, err := s.Next()
		if err == io.EOF {
			return items, nil
		}
		if err != nil {
			return items, err
		}
		items = append(items, item)
	}
}

// All returns an iterator over the remaining items, for Go 1.23's range
// over functions (its type is iter.Seq2[[]byte, error]'s):
//
//	for item, err := range stream.All() {
//		if err != nil { ... } // the stream's failure, yielded once, last
//	}
//
// Each step yields an item with a nil error; a failure is yielded as (nil,
// err) and ends the iteration; the end ends it quietly. When the iteration
// ends, however it ends (the last item, a failure, a break, a panic in the
// loop's body), All closes the stream: breaking out early cancels the
// plugin's producer. With older Go, call the function with a yield callback.
func (s *Stream) All() func(yield func([]byte, error) bool) {
	return func(yield func([]byte, error) bool) {
		defer s.Close()
		for {
			item, err := s.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				yield(nil, err)
				return
			}
			if !yield(item, nil) {
				return
			}
		}
	}
}

// Close releases the stream, cancelling it if it has not ended (the plugin's
// producer is dropped, exactly once), and releases a bidirectional stream's
// Source (its Close is called, if it has one). Closing twice is harmless.
//
// A Next in progress on another goroutine is cancelled first, as by Cancel
// and with its effects (a WASM item's destructor does not run, a Python
// item's runner is stopped): that Next returns StatusCancelled, matching
// ErrClosed with errors.Is, unless its item was already done. Close then
// waits for it to return before freeing the stream; Next calls made after
// Close started answer ErrClosed. So Close waits only for what cannot be
// interrupted: a native item in progress, or a bidirectional stream's
// Source blocked in Next. Without a Next in progress the producer is
// dropped normally (a WASM stream's destructor runs, within its timeout).
func (s *Stream) Close() error {
	s.closing.Store(true)
	if s.pulling.Load() > 0 {
		s.cancel(ErrClosed)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ptr != nil {
		s.life.Lock() // waits for a Cancel in progress
		C.fidius_stream_free(s.ptr)
		s.ptr = nil
		s.life.Unlock()
		runtime.SetFinalizer(s, nil)
	}
	return nil
}

// Source feeds a plugin's Stream<T> argument (a client-streaming or
// bidirectional method), one item per call of Next:
//
//   - (item, true, nil): the next item, its Fidius wire bytes (the bincode
//     of one T, whatever the call's format: the argument's item type is in
//     no interface schema); for a Python plugin, the item's JSON text
//     (fidius-python's convention: []byte("3"), whatever the call's
//     format; not JSON: StatusStreamSource). The bytes are copied before
//     Next returns to libfidius, so the Source may reuse the slice;
//   - (nil, false, nil): the end of the stream (Next is not called again);
//   - an error: a failure. The plugin sees its input end there, and the call
//     or stream fails with StatusStreamSource, an *Error that unwraps to
//     this error (errors.Is, errors.As find it). A panic in Next is
//     recovered and reported the same way.
//
// Next runs when the plugin pulls: inside CallStreaming for a client
// stream, inside Stream.Next for a bidirectional one, on that goroutine's
// OS thread (a native plugin that pulls from a thread it started runs it
// there instead); never concurrently with itself.
//
// The call takes the Source over: if it also implements io.Closer, Close
// is called exactly once when libfidius lets go of it (its input ended, the
// stream ended or was closed, the call returned, or the call failed before
// it started), on whichever goroutine did that; a panic in Close is
// recovered and dropped.
type Source interface {
	Next() (item []byte, ok bool, err error)
}

// SourceFunc makes a function a Source.
type SourceFunc func() (item []byte, ok bool, err error)

// Next calls f.
func (f SourceFunc) Next() ([]byte, bool, error) { return f() }

// SliceSource is a Source of the given items (wire bytes), in order.
func SliceSource(items ...[]byte) Source {
	i := 0
	return SourceFunc(func() ([]byte, bool, error) {
		if i == len(items) {
			return nil, false, nil
		}
		i++
		return items[i-1], true, nil
	})
}

// SeqSource is a Source of the items seq yields (wire bytes); seq may be a
// Go 1.23 iter.Seq[[]byte]. A Source is pulled while seq pushes, so seq runs
// on a goroutine of its own, started at the first pull; each yield waits
// for the next pull. When libfidius lets go of the source before seq has
// finished (the plugin stopped reading, the stream was closed), yield
// returns false: seq must then return (a seq that blocks elsewhere keeps
// its goroutine). A panic in seq fails the stream like a Source's error.
// The yielded slice may be reused once yield returns.
func SeqSource(seq func(yield func([]byte) bool)) Source {
	return &seqSource{seq: seq, pull: make(chan struct{}), items: make(chan seqItem), stop: make(chan struct{})}
}

type seqItem struct {
	item []byte
	end  bool
	err  error
}

type seqSource struct {
	seq      func(yield func([]byte) bool)
	started  bool // by Next only (never concurrent with itself)
	done     bool
	pull     chan struct{}
	items    chan seqItem
	stop     chan struct{}
	stopOnce sync.Once
}

func (s *seqSource) Next() ([]byte, bool, error) {
	if s.done {
		return nil, false, nil
	}
	if !s.started {
		s.started = true
		go s.run()
	}
	s.pull <- struct{}{}
	it := <-s.items
	if it.end || it.err != nil {
		s.done = true
		return nil, false, it.err
	}
	return it.item, true, nil
}

// run is the seq's goroutine: it answers each pull with one item.
func (s *seqSource) run() {
	send := func(it seqItem) bool {
		select {
		case s.items <- it:
			return true
		case <-s.stop:
			return false
		}
	}
	select { // the first pull started this goroutine
	case <-s.pull:
	case <-s.stop:
		return
	}
	stopped := false
	defer func() {
		if p := recover(); p != nil {
			if !stopped {
				send(seqItem{err: fmt.Errorf("fidius: stream source panicked: %v", p)})
			}
			return
		}
		if !stopped {
			send(seqItem{end: true})
		}
	}()
	s.seq(func(item []byte) bool {
		if stopped || !send(seqItem{item: item}) {
			stopped = true
			return false
		}
		select { // the item is copied before the next pull arrives
		case <-s.pull:
			return true
		case <-s.stop:
			stopped = true
			return false
		}
	})
}

// Close stops the seq's goroutine (yield returns false).
func (s *seqSource) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	return nil
}

// Answers of a Go source to libfidius (the failure's number is in the
// StatusStreamSource message).
const (
	sourceItem   = 1
	sourceEnd    = 0
	sourceFailed = -1 // Next returned an error
	sourcePanic  = -2 // Next panicked
	sourceNoMem  = -3 // no C memory for the item
)

// sourceState is what a Source's cgo.Handle holds: the Source, the C
// buffer its items are copied into (a Go pointer must not be handed to C),
// and its failure for the caller.
type sourceState struct {
	src    Source
	mu     sync.Mutex
	buf    unsafe.Pointer // C memory, freed at release
	bufCap int
	err    error
}

// newSource registers src for libfidius; the handle is deleted by
// fidiusGoSourceRelease, which libfidius calls exactly once (also when the
// call fails), or the caller when it never reaches libfidius.
func newSource(src Source) (*sourceState, cgo.Handle) {
	s := &sourceState{src: src}
	return s, newCallbackHandle(s)
}

// explain adds the Source's own failure to a StatusStreamSource error.
func (s *sourceState) explain(err error) error {
	if s == nil {
		return err
	}
	var e *Error
	if !errors.As(err, &e) || e.Status != StatusStreamSource {
		return err
	}
	s.mu.Lock()
	cause := s.err
	s.mu.Unlock()
	if cause != nil && e.cause == nil {
		e.cause = cause
		e.Message = fmt.Sprintf("%s: %v", e.Message, cause)
	}
	return err
}

func (s *sourceState) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// put copies item into the source's C buffer and answers it through item/itemLen.
func (s *sourceState) put(b []byte, item **C.uint8_t, itemLen *C.size_t) C.int32_t {
	if len(b) == 0 {
		*item, *itemLen = nil, 0
		return sourceItem
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(b) > s.bufCap {
		n := 2 * s.bufCap
		if n < len(b) {
			n = len(b)
		}
		if n < 64 {
			n = 64
		}
		p := C.realloc(s.buf, C.size_t(n))
		if p == nil {
			if s.err == nil {
				s.err = fmt.Errorf("fidius: stream source: no memory for an item of %d bytes", len(b))
			}
			return sourceNoMem
		}
		s.buf, s.bufCap = p, n
	}
	copy(unsafe.Slice((*byte)(s.buf), len(b)), b)
	*item, *itemLen = (*C.uint8_t)(s.buf), C.size_t(len(b))
	return sourceItem
}

//export fidiusGoSource
func fidiusGoSource(h C.uintptr_t, item **C.uint8_t, itemLen *C.size_t) (code C.int32_t) {
	var s *sourceState
	// A panic must not unwind into libfidius: it fails the source.
	defer func() {
		if p := recover(); p != nil {
			if s != nil {
				s.fail(fmt.Errorf("fidius: stream source panicked: %v", p))
			}
			code = sourcePanic
		}
	}()
	s = cgo.Handle(h).Value().(*sourceState)
	b, ok, err := s.src.Next()
	if err != nil {
		s.fail(err)
		return sourceFailed
	}
	if !ok {
		return sourceEnd
	}
	return s.put(b, item, itemLen)
}

//export fidiusGoSourceRelease
func fidiusGoSourceRelease(h C.uintptr_t) {
	s := cgo.Handle(h).Value().(*sourceState)
	s.mu.Lock()
	C.free(s.buf)
	s.buf, s.bufCap = nil, 0
	s.mu.Unlock()
	fidiusGoRelease(h) // deletes the handle: libfidius calls this exactly once
	if c, ok := s.src.(io.Closer); ok {
		func() {
			defer func() { _ = recover() }() // a panic must not unwind into libfidius
			c.Close()
		}()
	}
}

// --- opening streams ---------------------------------------------------------

// OpenStream starts server-streaming method `method` (`fn m(..) ->
// Stream<T>`; its index in the interface) with its arguments encoded as
// format, as for Call. Items come out in format too: wire bytes, or JSON
// where the item type is known (WASM plugins, native plugins with an
// interface schema; else StatusUnsupported). A plugin with types (WASM, or
// a schema) refuses a method that does not return a stream with
// StatusUnsupported; on a native plugin without a schema, opening a method
// of another kind is undefined behaviour, as any mismatched call. Close
// the Stream when done with it.
func (p *Plugin) OpenStream(method uint32, format Format, input []byte) (*Stream, error) {
	return p.openStream(method, format, input, nil)
}

// OpenBidiStream starts bidirectional method `method` (`fn m(..,
// Stream<In>) -> Stream<Out>`): items feeds its Stream<In> argument (wire
// bytes, whatever format is; see Source), input holds its other arguments
// in format, and the returned Stream yields its output (as for OpenStream).
// Each Stream.Next runs items.Next as often as the plugin pulls. ABI 400
// (fidius 0.4) plugins have no bidirectional streams (StatusUnsupported).
func (p *Plugin) OpenBidiStream(method uint32, format Format, input []byte, items Source) (*Stream, error) {
	if items == nil {
		return nil, &Error{Status: StatusNullArgument, Message: "nil source"}
	}
	return p.openStream(method, format, input, items)
}

func (p *Plugin) openStream(method uint32, format Format, input []byte, items Source) (*Stream, error) {
	var src *sourceState
	var h cgo.Handle
	if items != nil {
		src, h = newSource(items)
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil || p.closed() {
		if src != nil {
			fidiusGoSourceRelease(C.uintptr_t(h))
		}
		return nil, ErrClosed
	}
	var ptr *C.fidius_stream
	var cerr *C.fidius_error
	// libfidius releases the source (fidiusGoSourceRelease) exactly once,
	// also when this fails.
	st := C.fidiusgo_plugin_stream(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)),
		C.bool(items != nil), C.uintptr_t(h), &ptr, &cerr)
	runtime.KeepAlive(input)
	if err := takeError(st, cerr); err != nil {
		return nil, src.explain(err)
	}
	return newStream(ptr, src), nil
}

// CallStreaming calls client-streaming method `method` (`fn m(..,
// Stream<T>) -> R`): items feeds its Stream<T> argument (wire bytes,
// whatever format is; see Source), input holds its other arguments in
// format, and the result comes back in format, as for Call. items.Next runs
// on this goroutine, inside the call. If the Source fails, the call fails
// with StatusStreamSource (unwrapping to the Source's error) whatever the
// plugin made of its shortened input; the plugin's own error is a
// *PluginError. A method that returns a stream is refused with
// StatusUnsupported (use OpenBidiStream).
//
// There is no cancel token for a streaming call: Plugin.Close waits for it
// (as for a native call), so a Source that never ends makes Close wait.
// The Source must not close the plugin it feeds.
func (p *Plugin) CallStreaming(method uint32, format Format, input []byte, items Source) ([]byte, error) {
	if items == nil {
		return nil, &Error{Status: StatusNullArgument, Message: "nil source"}
	}
	src, h := newSource(items)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil || p.closed() {
		fidiusGoSourceRelease(C.uintptr_t(h))
		return nil, ErrClosed
	}
	var out C.fidius_bytes
	var cerr *C.fidius_error
	st := C.fidiusgo_plugin_call_streaming(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)),
		C.uintptr_t(h), &out, &cerr)
	runtime.KeepAlive(input)
	if err := takeError(st, cerr); err != nil {
		return nil, src.explain(err)
	}
	return takeBytes(&out), nil
}

// InvokeStream opens the server-streaming method named name (kebab-case or
// snake_case) with Go values as its arguments, through JSON (as Invoke):
// the Stream's items are JSON; Stream.Decode unmarshals each. For WASM
// plugins, and native plugins with an interface schema.
func (p *Plugin) InvokeStream(name string, args ...any) (*Stream, error) {
	method, input, err := p.invokeArgs(name, args)
	if err != nil {
		return nil, err
	}
	return p.openStream(method, FormatJSON, input, nil)
}

// InvokeBidiStream opens the bidirectional method named name with Go values
// as its other arguments, through JSON: items feeds its input stream (wire
// bytes: the input's item type is in no schema), and the Stream's items are
// JSON (Stream.Decode). items is released (see Source) also when this
// fails before the plugin is reached.
func (p *Plugin) InvokeBidiStream(name string, items Source, args ...any) (*Stream, error) {
	if items == nil {
		return nil, &Error{Status: StatusNullArgument, Message: "nil source"}
	}
	method, input, err := p.invokeArgs(name, args)
	if err != nil {
		closeSource(items)
		return nil, err
	}
	return p.openStream(method, FormatJSON, input, items)
}

// InvokeStreaming calls the client-streaming method named name with Go
// values as its other arguments, through JSON: items feeds its Stream<T>
// argument (wire bytes), and the result is unmarshalled into out unless out
// is nil (as for Invoke). items is released (see Source) also when this
// fails before the plugin is reached.
func (p *Plugin) InvokeStreaming(name string, out any, items Source, args ...any) error {
	if items == nil {
		return &Error{Status: StatusNullArgument, Message: "nil source"}
	}
	method, input, err := p.invokeArgs(name, args)
	if err != nil {
		closeSource(items)
		return err
	}
	result, err := p.CallStreaming(method, FormatJSON, input, items)
	if err != nil || out == nil {
		return err
	}
	return decodeResult(name, result, out)
}

// invokeArgs is name's index and args as a JSON array.
func (p *Plugin) invokeArgs(name string, args []any) (uint32, []byte, error) {
	if args == nil {
		args = []any{} // "[]", not "null"
	}
	input, err := json.Marshal(args)
	if err != nil {
		return 0, nil, fmt.Errorf("fidius: %s: arguments: %w", name, err)
	}
	method, err := p.MethodIndex(name)
	if err != nil {
		return 0, nil, err
	}
	return method, input, nil
}

// closeSource releases a Source that never reached libfidius, as libfidius would.
func closeSource(items Source) {
	if c, ok := items.(io.Closer); ok {
		defer func() { _ = recover() }()
		c.Close()
	}
}
