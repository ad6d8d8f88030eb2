// Package fidius hosts Fidius plugins (native cdylibs, sandboxed WASM
// components, and Python packages run in a python3 process each) from Go,
// through libfidius' C API (fidius.h).
//
// Ownership: Host, Plugin, Stream, EgressPolicy and HostInterface wrap a C handle each. Close
// releases it; a finalizer releases it too if Close was never called, but
// finalizers run late or not at all, so call Close. Everything else
// (PluginInfo, Discovery, errors) is copied into Go values and needs no
// release.
//
// Threads: a Host and a Plugin may be used from any number of goroutines at
// once. Close makes later calls fail with ErrClosed and waits for calls in
// flight on the same object (the C API forbids freeing while a call runs;
// the wrapper enforces it). Plugin.Close first cancels its WASM and Python
// calls in flight, so it waits only for calls that will finish (see
// Plugin.Close).
//
// Cancellation: CallContext, CallJSONContext and InvokeContext stop a call
// when its context is done (a WASM or Python call wherever it is, a native
// call only if the context was done before it started). Stream.Cancel and
// Stream.NextContext stop a stream, also from another goroutine while one
// is in Stream.Next. The error then has Status StatusCancelled and also
// matches ctx.Err() with errors.Is.
//
// Errors: every failure is an *Error carrying a Status, or a *PluginError
// when the plugin itself returned an error (Status PLUGIN_ERROR). Both
// match their Status with errors.Is:
//
//	if errors.Is(err, fidius.StatusPluginNotFound) { ... }
//	var pe *fidius.PluginError
//	if errors.As(err, &pe) { fmt.Println(pe.Code, pe.Message, pe.Details) }
package fidius

/*
#cgo pkg-config: fidius
#include <stdlib.h>
#include "fidius.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// Status is a libfidius result code (fidius_status). The numbers are stable.
// A Status is also an error value, so errors.Is(err, StatusX) tests a
// returned error's status.
type Status int32

const (
	StatusOK                    Status = C.FIDIUS_STATUS_OK
	StatusNullArgument          Status = C.FIDIUS_STATUS_NULL_ARGUMENT
	StatusInvalidUTF8           Status = C.FIDIUS_STATUS_INVALID_UTF8
	StatusInvalidArgument       Status = C.FIDIUS_STATUS_INVALID_ARGUMENT
	StatusInvalidHandle         Status = C.FIDIUS_STATUS_INVALID_HANDLE
	StatusInternalPanic         Status = C.FIDIUS_STATUS_INTERNAL_PANIC
	StatusIO                    Status = C.FIDIUS_STATUS_IO
	StatusUnsupported           Status = C.FIDIUS_STATUS_UNSUPPORTED
	StatusPluginNotFound        Status = C.FIDIUS_STATUS_PLUGIN_NOT_FOUND
	StatusNotAPlugin            Status = C.FIDIUS_STATUS_NOT_A_PLUGIN
	StatusLibraryLoad           Status = C.FIDIUS_STATUS_LIBRARY_LOAD
	StatusArchitectureMismatch  Status = C.FIDIUS_STATUS_ARCHITECTURE_MISMATCH
	StatusInvalidMagic          Status = C.FIDIUS_STATUS_INVALID_MAGIC
	StatusRegistryVersion       Status = C.FIDIUS_STATUS_REGISTRY_VERSION
	StatusABIVersion            Status = C.FIDIUS_STATUS_ABI_VERSION
	StatusInvalidDescriptor     Status = C.FIDIUS_STATUS_INVALID_DESCRIPTOR
	StatusBufferStrategy        Status = C.FIDIUS_STATUS_BUFFER_STRATEGY
	StatusInterfaceHashMismatch Status = C.FIDIUS_STATUS_INTERFACE_HASH_MISMATCH
	StatusConfigRejected        Status = C.FIDIUS_STATUS_CONFIG_REJECTED
	StatusSignatureRequired     Status = C.FIDIUS_STATUS_SIGNATURE_REQUIRED
	StatusSignatureInvalid      Status = C.FIDIUS_STATUS_SIGNATURE_INVALID
	StatusInvalidManifest       Status = C.FIDIUS_STATUS_INVALID_MANIFEST
	StatusCapability            Status = C.FIDIUS_STATUS_CAPABILITY
	StatusMethodIndex           Status = C.FIDIUS_STATUS_METHOD_INDEX
	StatusNotImplemented        Status = C.FIDIUS_STATUS_NOT_IMPLEMENTED
	StatusPluginError           Status = C.FIDIUS_STATUS_PLUGIN_ERROR
	StatusPluginPanic           Status = C.FIDIUS_STATUS_PLUGIN_PANIC
	StatusSerialization         Status = C.FIDIUS_STATUS_SERIALIZATION
	StatusUnknownStatus         Status = C.FIDIUS_STATUS_UNKNOWN_STATUS
	StatusBufferTooSmall        Status = C.FIDIUS_STATUS_BUFFER_TOO_SMALL
	StatusTimeout               Status = C.FIDIUS_STATUS_TIMEOUT
	StatusMemoryLimit           Status = C.FIDIUS_STATUS_MEMORY_LIMIT
	StatusFuelExhausted         Status = C.FIDIUS_STATUS_FUEL_EXHAUSTED
	StatusTrap                  Status = C.FIDIUS_STATUS_TRAP
	StatusStackOverflow         Status = C.FIDIUS_STATUS_STACK_OVERFLOW
	StatusArchive               Status = C.FIDIUS_STATUS_ARCHIVE
	StatusFileRefused           Status = C.FIDIUS_STATUS_FILE_REFUSED
	StatusSchemaMismatch        Status = C.FIDIUS_STATUS_SCHEMA_MISMATCH
	StatusCancelled             Status = C.FIDIUS_STATUS_CANCELLED
	StatusHostInterface         Status = C.FIDIUS_STATUS_HOST_INTERFACE
	// StatusStreamEnd is the end of a Stream: Stream.Next answers io.EOF
	// for it, never an error.
	StatusStreamEnd Status = C.FIDIUS_STATUS_STREAM_END
	// StatusStreamSource: the Source feeding a plugin's Stream<T> argument
	// failed (returned an error or panicked); the *Error unwraps to that error.
	StatusStreamSource Status = C.FIDIUS_STATUS_STREAM_SOURCE
)

// String is libfidius' description of the status ("plugin error", ...).
func (s Status) String() string { return C.GoString(C.fidius_status_name(C.uint32_t(s))) }

// Error makes a Status usable as an errors.Is target.
func (s Status) Error() string { return fmt.Sprintf("fidius: %s (%d)", s.String(), int32(s)) }

// Error is a failed libfidius call: its status and libfidius' message (which
// names the values involved).
type Error struct {
	Status  Status
	Message string
	// cause is why a call or stream was cancelled (the context's error, or
	// ErrClosed when Plugin.Close or Stream.Close cancelled it); nil otherwise.
	cause error
}

func (e *Error) Error() string {
	return fmt.Sprintf("fidius: %s: %s", e.Status.String(), e.Message)
}

// Is reports whether target is this error's Status.
func (e *Error) Is(target error) bool {
	s, ok := target.(Status)
	return ok && s == e.Status
}

// Unwrap is why a call or stream was cancelled (StatusCancelled): the
// context's error (context.Canceled, context.DeadlineExceeded) or ErrClosed
// (nil for Stream.Cancel); for
// StatusStreamSource, the error the Source returned (or its recovered
// panic); nil otherwise. So errors.Is(err, context.Canceled) holds for a
// call its context stopped, and errors.Is(err, mySourceErr) for a call
// whose Source failed with mySourceErr.
func (e *Error) Unwrap() error { return e.cause }

// PluginError is an error the plugin itself returned (a Fidius PluginError,
// status StatusPluginError).
type PluginError struct {
	Code    string // PluginError.code, e.g. "DIV_ZERO"
	Message string // PluginError.message, as the plugin wrote it
	// Details is PluginError.details (a JSON document by convention);
	// HasDetails says whether the plugin gave any.
	Details    string
	HasDetails bool
	// HostMessage is libfidius' whole message about the failure (for
	// example with an egress policy's deny reason, which the guest never sees).
	HostMessage string
}

func (e *PluginError) Error() string {
	return fmt.Sprintf("fidius: plugin error %s: %s", e.Code, e.Message)
}

// Is reports whether target is StatusPluginError.
func (e *PluginError) Is(target error) bool {
	s, ok := target.(Status)
	return ok && s == StatusPluginError
}

// ErrClosed is returned by methods of a Host, Plugin or EgressPolicy after Close.
var ErrClosed = errors.New("fidius: use of a closed handle")

// takeError turns a status and its error object into a Go error, releasing
// the object. (cgo gives the status as C.fidius_status or as uint32,
// depending on how it wraps the call.)
func takeError[S ~uint32](st S, cerr *C.fidius_error) error {
	if st == 0 {
		if cerr != nil {
			C.fidius_error_free(cerr)
		}
		return nil
	}
	if cerr == nil {
		return &Error{Status: Status(st), Message: Status(st).String()}
	}
	defer C.fidius_error_free(cerr)
	st = S(C.fidius_error_status(cerr)) // the same status, as the error object records it
	msg := C.GoString(C.fidius_error_message(cerr))
	if code := C.fidius_error_plugin_code(cerr); code != nil {
		pe := &PluginError{Code: C.GoString(code), HostMessage: msg}
		if m := C.fidius_error_plugin_message(cerr); m != nil {
			pe.Message = C.GoString(m)
		}
		if d := C.fidius_error_plugin_details(cerr); d != nil {
			pe.Details, pe.HasDetails = C.GoString(d), true
		}
		return pe
	}
	return &Error{Status: Status(st), Message: msg}
}

// Version is the loaded library's version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.fidius_version()) }

// HeaderVersion is the version of the fidius.h this package was compiled against.
var HeaderVersion = fmt.Sprintf("%d.%d.%d", C.FIDIUS_VERSION_MAJOR, C.FIDIUS_VERSION_MINOR, C.FIDIUS_VERSION_PATCH)

// Format is the encoding of a call's input and output.
type Format uint32

const (
	// FormatWire is the Fidius wire format: the bincode (1.3, legacy
	// config) tuple of the arguments; the output is the bincode of the result.
	FormatWire Format = C.FIDIUS_FORMAT_WIRE
	// FormatJSON is a JSON array (or object) of the arguments; the output
	// is the JSON of the result. For plugins whose types are known: WASM
	// plugins, Python plugins (always: JSON goes to the module as it is),
	// and native plugins with an interface schema (LoadOptions.Schema,
	// HostConfig.Schemas, or a "<library>.wit" beside the library); a native
	// plugin without one answers StatusUnsupported.
	FormatJSON Format = C.FIDIUS_FORMAT_JSON
)

// Runtime says how a plugin runs.
type Runtime uint32

const (
	// RuntimeUnknown: not a plugin description (a zero PluginInfo).
	RuntimeUnknown Runtime = C.FIDIUS_RUNTIME_UNKNOWN
	RuntimeNative  Runtime = C.FIDIUS_RUNTIME_NATIVE
	RuntimeWASM    Runtime = C.FIDIUS_RUNTIME_WASM
	RuntimePython  Runtime = C.FIDIUS_RUNTIME_PYTHON
)

func (r Runtime) String() string {
	switch r {
	case RuntimeUnknown:
		return "unknown"
	case RuntimeNative:
		return "native"
	case RuntimeWASM:
		return "wasm"
	case RuntimePython:
		return "python"
	}
	return fmt.Sprintf("Runtime(%d)", uint32(r))
}

// BufferStrategy is a native plugin's buffer strategy.
type BufferStrategy uint32

const (
	BufferStrategyNone            BufferStrategy = C.FIDIUS_BUFFER_STRATEGY_NONE
	BufferStrategyPluginAllocated BufferStrategy = C.FIDIUS_BUFFER_STRATEGY_PLUGIN_ALLOCATED
	BufferStrategyArena           BufferStrategy = C.FIDIUS_BUFFER_STRATEGY_ARENA
)

// LoadPolicy says what loading by name does with broken libraries.
type LoadPolicy uint32

const (
	LoadLenient LoadPolicy = C.FIDIUS_LOAD_POLICY_LENIENT
	LoadStrict  LoadPolicy = C.FIDIUS_LOAD_POLICY_STRICT
)

// PluginInfo describes a plugin (a copy of a fidius_plugin_info).
type PluginInfo struct {
	Name             string
	InterfaceName    string
	InterfaceHash    uint64 // 0 where not known (packages before loading)
	InterfaceVersion uint32
	Runtime          Runtime
	BufferStrategy   BufferStrategy
	Capabilities     uint64
	MethodCount      uint32 // 0 where not known (packages before loading)
	ABIVersion       uint32 // 400 or 500 for native plugins, 0 for packages
	Path             string
}

func goStringOrEmpty(s *C.char) string {
	if s == nil {
		return ""
	}
	return C.GoString(s)
}

func copyInfo(info *C.fidius_plugin_info) PluginInfo {
	if info == nil {
		return PluginInfo{}
	}
	return PluginInfo{
		Name:             goStringOrEmpty(C.fidius_plugin_info_name(info)),
		InterfaceName:    goStringOrEmpty(C.fidius_plugin_info_interface_name(info)),
		InterfaceHash:    uint64(C.fidius_plugin_info_interface_hash(info)),
		InterfaceVersion: uint32(C.fidius_plugin_info_interface_version(info)),
		Runtime:          Runtime(C.fidius_plugin_info_runtime(info)),
		BufferStrategy:   BufferStrategy(C.fidius_plugin_info_buffer_strategy(info)),
		Capabilities:     uint64(C.fidius_plugin_info_capabilities(info)),
		MethodCount:      uint32(C.fidius_plugin_info_method_count(info)),
		ABIVersion:       uint32(C.fidius_plugin_info_abi_version(info)),
		Path:             goStringOrEmpty(C.fidius_plugin_info_path(info)),
	}
}

// bytesArg returns a C view of b for the duration of a call (nil when empty).
func bytesArg(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(&b[0]))
}

// takeBytes copies a libfidius buffer into Go memory and releases it.
func takeBytes(b *C.fidius_bytes) []byte {
	out := make([]byte, int(b.len))
	if b.data != nil {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(b.data)), int(b.len)))
	}
	C.fidius_bytes_free(b)
	return out
}
