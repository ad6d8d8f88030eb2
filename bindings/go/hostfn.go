package fidius

/*
#include <stdlib.h>
#include "fidius.h"
#include "callbacks.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"unsafe"
)

// HostFunc implements a host interface (fidius `#[host_interface]`) that
// plugins call back into. One function serves the whole interface,
// dispatching on index, the function's position in the trait (from 0).
// input is the wire encoding (bincode) of the function's arguments as a
// tuple; it is a copy, so fn may keep it. The answer is:
//
//   - the wire bytes of the return value, with a nil error (a function
//     returning () or Result<(), _> answers nothing: nil or empty);
//   - a *PluginError (also wrapped, as errors.As finds it): the plugin sees
//     the function's PluginError with its Code, Message and Details
//     (Details only when HasDetails);
//   - any other error: the plugin sees the host function panicking, with
//     the error's text (a fidius plugin's client reports a host panic);
//   - a panic in fn is recovered and answered the same way, with
//     "host function panicked: ..." (it never unwinds into libfidius).
//
// A native plugin's calls run fn on the thread the plugin calls from (the
// calling goroutine's, or one the plugin started); a WASM plugin's on a
// thread libfidius starts for the call while the guest waits (so a
// Context's cancellation or LoadOptions.Timeout stops a guest waiting on
// fn, while fn itself runs on to its end). fn runs concurrently when
// several goroutines call plugins, and may call plugins itself (but
// re-entering a WASM plugin loaded with ReuseInstance from within its own
// call fails with StatusUnsupported). libfidius answers an index past the
// interface's function count itself, without calling fn.
type HostFunc func(index uint32, input []byte) ([]byte, error)

// HostInterface is a host interface registered with libfidius: the
// identity plugins were built against (name, hash, version, function
// count) and the HostFunc implementing it, for HostConfig.HostInterfaces or
// LoadOptions.HostInterfaces. Hosts, load options and plugins that use it
// hold their own references: it may be closed right after it is
// registered, and the Go function stays reachable until libfidius releases
// its last reference.
//
// Native plugins: a library importing the interface is bound to it when
// loaded (a version or hash mismatch fails the load with
// StatusHostInterface). Binding is once per library in the process: while
// one implementation is still in use (by a host or plugin), loading the
// same library with another HostInterface of that name fails with
// StatusHostInterface. WASM plugins: each call names the interface,
// version and hash, checked on every call.
type HostInterface struct {
	mu   sync.RWMutex
	ptr  *C.fidius_host_interface
	name string
}

// NewHostInterface makes a host interface. name is the `#[host_interface]`
// trait's name ("Kv"); hash, version and fnCount are the constants the macro
// generates for it (Kv_HOST_INTERFACE_HASH, Kv_HOST_INTERFACE_VERSION,
// Kv_HOST_FN_COUNT); a native plugin's expectations are also listed by
// Plugin.DescribeJSON (its "host_imports").
func NewHostInterface(name string, hash uint64, version, fnCount uint32, fn HostFunc) (*HostInterface, error) {
	if err := CheckLibrary(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, &Error{Status: StatusNullArgument, Message: "nil host function"}
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	h := newCallbackHandle(fn)
	var p *C.fidius_host_interface
	var cerr *C.fidius_error
	st := C.fidiusgo_host_interface_new(cname, C.uint64_t(hash), C.uint32_t(version), C.uint32_t(fnCount), C.uintptr_t(h), &p, &cerr)
	if err := takeError(st, cerr); err != nil {
		fidiusGoRelease(C.uintptr_t(h)) // documented: destroy is not called on failure
		return nil, err
	}
	i := &HostInterface{ptr: p, name: name}
	runtime.SetFinalizer(i, (*HostInterface).Close)
	return i, nil
}

// Name is the interface's name, as given to NewHostInterface.
func (i *HostInterface) Name() string { return i.name }

// Close releases the caller's reference. Closing twice is harmless.
func (i *HostInterface) Close() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.ptr != nil {
		C.fidius_host_interface_free(i.ptr)
		i.ptr = nil
		runtime.SetFinalizer(i, nil)
	}
	return nil
}

func (i *HostInterface) use(f func(*C.fidius_host_interface) error) error {
	i.mu.RLock()
	defer i.mu.RUnlock()
	if i.ptr == nil {
		return ErrClosed
	}
	return f(i.ptr)
}

// hostCString is s as a C string libfidius accepts: valid UTF-8, no NUL.
func hostCString(s string) *C.char {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "\uFFFD")
	return C.CString(s)
}

// hostCallFail answers call with a host function failure (the plugin sees a panic).
func hostCallFail(call *C.fidius_host_call, message string) {
	cs := hostCString(message)
	defer C.free(unsafe.Pointer(cs))
	C.fidius_host_call_set_failure(call, cs, nil)
}

// hostCallAnswer answers call with fn's result.
func hostCallAnswer(call *C.fidius_host_call, out []byte, err error) {
	if err == nil {
		if len(out) > 0 {
			var cerr *C.fidius_error
			st := C.fidius_host_call_set_output(call, bytesArg(out), C.size_t(len(out)), &cerr)
			runtime.KeepAlive(out)
			if e := takeError(st, cerr); e != nil {
				hostCallFail(call, fmt.Sprintf("host function output refused: %v", e))
			}
		}
		return
	}
	var pe *PluginError
	if !errors.As(err, &pe) {
		hostCallFail(call, err.Error())
		return
	}
	code, message := hostCString(pe.Code), hostCString(pe.Message)
	defer C.free(unsafe.Pointer(code))
	defer C.free(unsafe.Pointer(message))
	var details *C.char
	if pe.HasDetails {
		details = hostCString(pe.Details)
		defer C.free(unsafe.Pointer(details))
	}
	var cerr *C.fidius_error
	if e := takeError(C.fidius_host_call_set_error(call, code, message, details, &cerr), cerr); e != nil {
		hostCallFail(call, fmt.Sprintf("host function error refused: %v (the error: %v)", e, err))
	}
}

//export fidiusGoHostFn
func fidiusGoHostFn(h C.uintptr_t, index C.uint32_t, input *C.uint8_t, inputLen C.size_t, call *C.fidius_host_call) {
	// The input is borrowed for this call only: fn gets a copy.
	in := make([]byte, int(inputLen))
	if inputLen > 0 {
		copy(in, unsafe.Slice((*byte)(unsafe.Pointer(input)), int(inputLen)))
	}
	var out []byte
	var err error
	panicked := func() (panicked bool) {
		defer func() {
			if p := recover(); p != nil {
				panicked = true
				err = fmt.Errorf("host function panicked: %v", p)
			}
		}()
		fn := cgo.Handle(h).Value().(HostFunc)
		out, err = fn(uint32(index), in)
		return false
	}()
	if panicked {
		hostCallFail(call, err.Error())
		return
	}
	// A panic while answering (an error's Error method, say) must not unwind into C either.
	defer func() {
		if p := recover(); p != nil {
			hostCallFail(call, fmt.Sprintf("host function panicked: %v", p))
		}
	}()
	hostCallAnswer(call, out, err)
}
