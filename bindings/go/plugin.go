package fidius

/*
#include <stdlib.h>
#include "fidius.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"
)

// Plugin is a loaded plugin instance. Safe for concurrent use: any number
// of goroutines may call methods at once. Close waits for calls in flight.
type Plugin struct {
	mu   sync.RWMutex
	ptr  *C.fidius_plugin
	info PluginInfo
}

func newPlugin(ptr *C.fidius_plugin) *Plugin {
	p := &Plugin{ptr: ptr, info: copyInfo(C.fidius_plugin_get_info(ptr))}
	runtime.SetFinalizer(p, (*Plugin).Close)
	return p
}

// Close releases the plugin (its instance, and its library once no other
// plugin uses it). Closing twice is harmless.
func (p *Plugin) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ptr != nil {
		C.fidius_plugin_free(p.ptr)
		p.ptr = nil
		runtime.SetFinalizer(p, nil)
	}
	return nil
}

// Info describes the plugin (still available after Close).
func (p *Plugin) Info() PluginInfo { return p.info }

// Call calls method (its index in the interface, in declaration order)
// with input encoded as format, and returns the output in the same format.
// A plugin's own error is a *PluginError; anything else an *Error.
func (p *Plugin) Call(method uint32, format Format, input []byte) ([]byte, error) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.ptr == nil {
		return nil, ErrClosed
	}
	var out C.fidius_bytes
	var cerr *C.fidius_error
	st := C.fidius_plugin_call(p.ptr, C.uint32_t(method), C.uint32_t(format), bytesArg(input), C.size_t(len(input)), &out, &cerr)
	runtime.KeepAlive(input)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	return takeBytes(&out), nil
}

// CallWire calls method with Fidius wire bytes (the bincode tuple of the arguments).
func (p *Plugin) CallWire(method uint32, input []byte) ([]byte, error) {
	return p.Call(method, FormatWire, input)
}

// CallJSON calls method with a JSON array (or object) of the arguments
// and returns the JSON of the result. WASM plugins only.
func (p *Plugin) CallJSON(method uint32, input string) (string, error) {
	out, err := p.Call(method, FormatJSON, []byte(input))
	return string(out), err
}

// MethodIndex finds a method's index by name (kebab-case or snake_case).
// Native plugins carry no method names: always StatusMethodIndex for them.
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
// when the plugin is native.
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
