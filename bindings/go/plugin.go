package fidius

/*
#include <stdlib.h>
#include "fidius.h"
*/
import "C"

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// Plugin is a loaded plugin instance. Safe for concurrent use: any number
// of goroutines may call methods at once. Close cancels the WASM and Python
// calls in flight and waits for them.
type Plugin struct {
	// mu is held for reading across every C call on ptr, for writing by
	// Close while it frees ptr.
	mu   sync.RWMutex
	ptr  *C.fidius_plugin
	info PluginInfo
	// closing is closed, and stop triggered, when Close starts: calls in
	// flight are cancelled, later calls fail with ErrClosed. stop is the
	// cancel token of WASM and Python calls made without a context.
	closing   chan struct{}
	closeOnce sync.Once
	stop      *C.fidius_cancel
}

func newPlugin(ptr *C.fidius_plugin) *Plugin {
	p := &Plugin{ptr: ptr, info: copyInfo(C.fidius_plugin_get_info(ptr)), closing: make(chan struct{}), stop: C.fidius_cancel_new()}
	runtime.SetFinalizer(p, (*Plugin).Close)
	return p
}

// Close releases the plugin (its instance, and its library once no other
// plugin uses it). Closing twice is harmless.
//
// Close waits only for calls that will finish: it first makes later calls
// fail with ErrClosed and cancels every call in flight, then waits for them
// to return, then frees the plugin. A WASM call stops at once (guest code
// within about 5 ms, a call blocked in a host function such as a sleep or a
// read at once) with StatusCancelled (errors.Is(err, ErrClosed) also holds),
// so a call blocked for good cannot make Close hang. So does a Python call,
// within about 20 ms: its runner process is stopped (the plugin's open
// streams end with it). A native call cannot be interrupted: one already
// running finishes normally, and Close waits for it (as it must: freeing
// must not race with a call). Neither can a CallStreaming call, which takes
// no cancel token (see CallStreaming).
func (p *Plugin) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		C.fidius_cancel_trigger(p.stop) // ptr and stop are freed only below, after this
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr != nil {
		C.fidius_plugin_free(p.ptr)
		p.ptr = nil
		C.fidius_cancel_free(p.stop)
		p.stop = nil
		runtime.SetFinalizer(p, nil)
	}
	return nil
}

// closed reports whether Close has started.
func (p *Plugin) closed() bool {
	select {
	case <-p.closing:
		return true
	default:
		return false
	}
}

// Info describes the plugin (still available after Close).
func (p *Plugin) Info() PluginInfo { return p.info }

// Call calls method (its index in the interface, in declaration order)
// with input encoded as format, and returns the output in the same format.
// A plugin's own error is a *PluginError; anything else an *Error.
func (p *Plugin) Call(method uint32, format Format, input []byte) ([]byte, error) {
	return p.call(nil, method, format, input)
}

// CallContext is Call, stopped with StatusCancelled when ctx is done: a
// WASM call wherever it is (guest code within about 5 ms, a call blocked in
// a host function at once; the plugin serves the next call normally), a
// Python call wherever it is, within about 20 ms (its runner process is
// stopped, ending the plugin's open streams too; the next call starts a
// fresh runner), a native call only if ctx was done before it started
// (native code cannot be interrupted, so a running native call finishes).
// A call whose ctx is done before it starts is refused, whatever the
// runtime. The returned *Error also matches ctx.Err() with errors.Is. A
// goroutine watches ctx for the duration of the call.
func (p *Plugin) CallContext(ctx context.Context, method uint32, format Format, input []byte) ([]byte, error) {
	if ctx == nil {
		panic("fidius: nil Context")
	}
	return p.call(ctx, method, format, input)
}

func (p *Plugin) call(ctx context.Context, method uint32, format Format, input []byte) ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil || p.closed() {
		return nil, ErrClosed
	}
	var out C.fidius_bytes
	var cerr *C.fidius_error
	var st uint32
	var triggered C.bool // whether the call's token was triggered (by ctx or Close)
	switch {
	case ctx != nil && ctx.Done() != nil:
		token := C.fidius_cancel_new()
		unwatch := p.watch(ctx, token)
		st = uint32(C.fidius_plugin_call_cancellable(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)), token, &out, &cerr))
		unwatch()
		triggered = C.fidius_cancel_is_triggered(token)
		C.fidius_cancel_free(token)
	case p.info.Runtime == RuntimeNative:
		// A native call observes a token only before it starts, and Close
		// refuses calls from then on: nothing for a token to do.
		st = uint32(C.fidius_plugin_call(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)), &out, &cerr))
	default:
		st = uint32(C.fidius_plugin_call_cancellable(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)), p.stop, &out, &cerr))
		triggered = C.fidius_cancel_is_triggered(p.stop)
	}
	runtime.KeepAlive(input)
	if err := takeError(st, cerr); err != nil {
		if e, ok := err.(*Error); ok && e.Status == StatusCancelled && bool(triggered) {
			if ctx != nil && ctx.Err() != nil {
				e.cause = ctx.Err()
			} else {
				e.cause = ErrClosed
			}
		}
		return nil, err
	}
	return takeBytes(&out), nil
}

// watch triggers token when ctx is done or Close starts, until the
// returned function is called; that function returns once the watching
// goroutine is gone, so token may be freed right after.
func (p *Plugin) watch(ctx context.Context, token *C.fidius_cancel) (unwatch func()) {
	if ctx.Err() != nil { // already done: trigger before the call, so a native call sees it too
		C.fidius_cancel_trigger(token)
		return func() {}
	}
	finished := make(chan struct{})
	gone := make(chan struct{})
	go func() {
		defer close(gone)
		select {
		case <-ctx.Done():
			C.fidius_cancel_trigger(token)
		case <-p.closing:
			C.fidius_cancel_trigger(token)
		case <-finished:
		}
	}()
	return func() {
		close(finished)
		<-gone
	}
}

// CallWire calls method with Fidius wire bytes (the bincode tuple of the arguments).
func (p *Plugin) CallWire(method uint32, input []byte) ([]byte, error) {
	return p.Call(method, FormatWire, input)
}

// CallWireContext is CallWire, stopped when ctx is done (see CallContext).
func (p *Plugin) CallWireContext(ctx context.Context, method uint32, input []byte) ([]byte, error) {
	return p.CallContext(ctx, method, FormatWire, input)
}

// CallJSON calls method with a JSON array (or object) of the arguments
// and returns the JSON of the result. For WASM and Python plugins, and
// native plugins with an interface schema (else StatusUnsupported).
func (p *Plugin) CallJSON(method uint32, input string) (string, error) {
	out, err := p.Call(method, FormatJSON, []byte(input))
	return string(out), err
}

// CallJSONContext is CallJSON, stopped when ctx is done (see CallContext).
func (p *Plugin) CallJSONContext(ctx context.Context, method uint32, input string) (string, error) {
	out, err := p.CallContext(ctx, method, FormatJSON, []byte(input))
	return string(out), err
}

// Invoke calls the method named name (kebab-case or snake_case) with Go
// values, through JSON: args are marshalled with encoding/json as a JSON
// array, and the result is unmarshalled into out (a pointer, as for
// json.Unmarshal) unless out is nil. For WASM plugins, and native plugins
// with an interface schema.
//
// JSON follows the interface's types: records are objects with snake_case
// keys (use `json:"unit_cents"` tags), variants {"Case": payload} or "Case",
// option none is null, a map (list<tuple<K, V>>) an array of [key, value]
// pairs, list<u8> an array of numbers (encoding/json turns a []byte into
// base64: pass and decode another integer slice). 64-bit integers beyond
// ±2^53 come back as decimal strings: decode those into a json.Number
// (which takes both forms); an `any` out receives numbers as json.Number.
// A plugin's own error is a
// *PluginError, a failed call an *Error; a marshalling failure is returned
// as encoding/json reports it, wrapped. Python plugins take JSON always:
// without a schema, their methods are their module's functions.
func (p *Plugin) Invoke(name string, out any, args ...any) error {
	return p.invoke(nil, name, out, args)
}

// InvokeContext is Invoke, stopped when ctx is done (see CallContext).
func (p *Plugin) InvokeContext(ctx context.Context, name string, out any, args ...any) error {
	if ctx == nil {
		panic("fidius: nil Context")
	}
	return p.invoke(ctx, name, out, args)
}

func (p *Plugin) invoke(ctx context.Context, name string, out any, args []any) error {
	if args == nil {
		args = []any{} // "[]", not "null"
	}
	input, err := json.Marshal(args)
	if err != nil {
		return fmt.Errorf("fidius: %s: arguments: %w", name, err)
	}
	method, err := p.MethodIndex(name)
	if err != nil {
		return err
	}
	result, err := p.call(ctx, method, FormatJSON, input)
	if err != nil || out == nil {
		return err
	}
	return decodeResult(name, result, out)
}

// decodeResult unmarshals the JSON result of the call named name into out,
// numbers as json.Number (as Invoke promises).
func decodeResult(name string, result []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(result))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("fidius: %s: result %s: %w", name, result, err)
	}
	return nil
}

// MethodIndex finds a method's index by name (kebab-case or snake_case).
// A native plugin's descriptor carries no method names: without an
// interface schema, always StatusMethodIndex. A Python plugin's methods are
// its schema's, else its module's functions (in definition order).
func (p *Plugin) MethodIndex(name string) (uint32, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return 0, ErrClosed
	}
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var idx C.uint32_t
	var cerr *C.fidius_error
	if err := takeError(C.fidius_plugin_method_index(p.ptr, cs, &idx, &cerr), cerr); err != nil {
		return 0, err
	}
	return uint32(idx), nil
}

// MethodName is method's name (kebab-case); false when out of range or
// unknown (a native plugin without an interface schema).
func (p *Plugin) MethodName(method uint32) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return "", false
	}
	s := C.fidius_plugin_method_name(p.ptr, C.uint32_t(method))
	if s == nil {
		return "", false
	}
	return C.GoString(s), true
}

// KeyValue is one metadata pair; keys may repeat.
type KeyValue struct{ Key, Value string }

// MethodMetadata is method's #[method_meta] pairs.
func (p *Plugin) MethodMetadata(method uint32) ([]KeyValue, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return nil, ErrClosed
	}
	var n C.size_t
	var cerr *C.fidius_error
	if err := takeError(C.fidius_plugin_method_metadata_count(p.ptr, C.uint32_t(method), &n, &cerr), cerr); err != nil {
		return nil, err
	}
	out := make([]KeyValue, 0, int(n))
	for i := C.size_t(0); i < n; i++ {
		var k, v *C.char
		if err := takeError(C.fidius_plugin_method_metadata_get(p.ptr, C.uint32_t(method), i, &k, &v, &cerr), cerr); err != nil {
			return nil, err
		}
		out = append(out, KeyValue{C.GoString(k), C.GoString(v)})
	}
	return out, nil
}

// TraitMetadata is the interface-level metadata pairs.
func (p *Plugin) TraitMetadata() ([]KeyValue, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return nil, ErrClosed
	}
	n := C.fidius_plugin_trait_metadata_count(p.ptr)
	out := make([]KeyValue, 0, int(n))
	for i := C.size_t(0); i < n; i++ {
		var k, v *C.char
		var cerr *C.fidius_error
		if err := takeError(C.fidius_plugin_trait_metadata_get(p.ptr, i, &k, &v, &cerr), cerr); err != nil {
			return nil, err
		}
		out = append(out, KeyValue{C.GoString(k), C.GoString(v)})
	}
	return out, nil
}

// Warnings are the plugin's load warnings (e.g. an unusable .cwasm).
func (p *Plugin) Warnings() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return nil
	}
	var out []string
	for i := C.size_t(0); i < C.fidius_plugin_warning_count(p.ptr); i++ {
		out = append(out, goStringOrEmpty(C.fidius_plugin_warning(p.ptr, i)))
	}
	return out
}
