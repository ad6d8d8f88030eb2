package fidius

/*
#include <stdlib.h>
#include "fidius.h"
#include "callbacks.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"runtime/cgo"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// HostConfig holds a host's settings (the C API's fidius_host_builder).
// The zero value is a host with no search paths and no requirements.
type HostConfig struct {
	// SearchPaths are scanned for plugins (one level deep), in order.
	SearchPaths []string
	// LoadPolicy: LoadLenient (default) passes over broken libraries when
	// loading by name; LoadStrict fails on the first.
	LoadPolicy LoadPolicy
	// RequireSignature requires every plugin to carry a signature by one of
	// TrustedKeys / TrustedKeyFiles (Ed25519, 32 raw bytes).
	RequireSignature bool
	TrustedKeys      [][]byte
	TrustedKeyFiles  []string
	// TrustPrecompiled deserializes a package's precompiled .cwasm even
	// when no trusted key's signature covers it. Off by default: such a
	// .cwasm is ignored (with a Plugin.Warnings entry and a log line) and
	// the .wasm is compiled instead. A .cwasm is machine code run
	// unchecked: turn this on only when whoever can write the search paths
	// is as trusted as the host itself.
	TrustPrecompiled bool
	// CompileCache, when not empty, is a directory (an absolute path; made
	// with mode 0700 when missing) where compiled WASM components are kept
	// as .cwasm files, so that the next process loading the same component
	// deserializes it instead of compiling it. Off by default. Entries are
	// named by the component's SHA-256 and the engine's compatibility
	// (wasmtime version and settings). They are machine code run unchecked,
	// so the directory is the trust boundary: it must be owned by the user
	// running the host and writable by no one else (StatusFileRefused from
	// NewHost otherwise; should it change later, each load compiles without
	// it and says so in Plugin.Warnings); an entry is read only when it is a
	// regular 0600 file of this user, and is written under a fresh name with
	// mode 0600 and renamed into place. A corrupt or stale entry is compiled
	// afresh and replaced. A relative path is StatusInvalidArgument (from
	// libfidius), a NUL byte in it StatusInvalidArgument (C would cut it short).
	CompileCache string
	// AllowCapabilities is the host's allow-list of package capabilities:
	// names ("stdout", "http", "env:HOME") or patterns where * matches any
	// run of characters ("env:LOG_*", "*"). Empty (the default) allows every
	// capability except "env:*", "args", "network" and "fs:*"; any pattern replaces
	// that default, so list everything packages may have ("@default" stands
	// for the default allowance: {"@default", "env:LOG_*"} extends it). A package asking
	// for a capability the host does not allow fails to load with
	// StatusCapability, naming it. An empty pattern is StatusInvalidArgument.
	AllowCapabilities []string
	// Schemas are interface schemas (WIT text, as `fidius wit` or
	// fidius_build::emit_wit() write it), one or more interfaces each;
	// SchemaFiles are read when the host is built (at most 1 MiB each).
	// Native plugins whose interface one declares (matched by name: the
	// trait PriceEngine is the WIT interface price-engine) get method names
	// and types from it, so they can be called by name, with FormatJSON and
	// Invoke, and described; unless their LoadOptions.Schema or a
	// "<library>.wit" beside the library gives one. Not valid WIT is
	// StatusInvalidArgument, naming where.
	Schemas     []string
	SchemaFiles []string
	// InterfaceHash, when not 0, is required of native plugins.
	InterfaceHash uint64
	// BufferStrategy, when not BufferStrategyNone, is required of native plugins.
	BufferStrategy BufferStrategy
	// Egress is the default egress policy of WASM plugins (nil: no
	// outbound HTTP; packages declaring the "http" capability fail to load).
	Egress *EgressPolicy
	// HostInterfaces are offered to every plugin the host loads (host
	// functions, see HostInterface); one named like an earlier one replaces it.
	HostInterfaces []*HostInterface
	// PythonInterpreter is the interpreter Python plugins (runtime =
	// "python" packages) run in: a path, or a command name looked up on the
	// PATH. Empty (the default) is "python3". Each loaded Python plugin runs
	// in a process of its own started from it; libfidius never loads
	// libpython, so a host that loads no Python plugin needs no Python, and a
	// missing interpreter fails only Python loads (StatusLibraryLoad, naming
	// it). A NUL byte in it is StatusInvalidArgument (C would cut it short).
	PythonInterpreter string
	// Log receives the host's log lines (level 1 error, 2 warning, 3 info):
	// egress denials, load warnings. It is called on any thread,
	// concurrently, and must not block for long.
	Log func(level int, message string)
}

// Host finds and loads plugins. Safe for concurrent use. Plugins loaded from
// a host stay valid after the host is closed.
type Host struct {
	mu  sync.RWMutex
	ptr *C.fidius_host
}

// NewHost builds a host from cfg. It fails with a *VersionError
// (errors.Is(err, ErrVersionMismatch)) when the libfidius loaded is not
// compatible with the fidius.h this package was compiled against.
func NewHost(cfg HostConfig) (*Host, error) {
	if err := CheckLibrary(); err != nil {
		return nil, err
	}
	b := C.fidius_host_builder_new()
	if b == nil {
		return nil, &Error{Status: StatusInternalPanic, Message: "fidius_host_builder_new returned NULL (out of memory)"}
	}
	defer C.fidius_host_builder_free(b)

	var cerr *C.fidius_error
	for _, p := range cfg.SearchPaths {
		cs := C.CString(p)
		st := C.fidius_host_builder_add_search_path(b, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	if cfg.PythonInterpreter != "" {
		if err := setPath("PythonInterpreter", cfg.PythonInterpreter, func(cs *C.char, cerr **C.fidius_error) C.enum_fidius_status {
			return C.fidius_host_builder_set_python_interpreter(b, cs, cerr)
		}); err != nil {
			return nil, err
		}
	}
	if cfg.LoadPolicy != LoadLenient {
		if err := takeError(C.fidius_host_builder_set_load_policy(b, C.uint32_t(cfg.LoadPolicy), &cerr), cerr); err != nil {
			return nil, err
		}
	}
	if cfg.RequireSignature {
		if err := takeError(C.fidius_host_builder_set_require_signature(b, true, &cerr), cerr); err != nil {
			return nil, err
		}
	}
	if cfg.TrustPrecompiled {
		if err := takeError(C.fidius_host_builder_set_trust_precompiled(b, true, &cerr), cerr); err != nil {
			return nil, err
		}
	}
	if cfg.CompileCache != "" {
		if err := setPath("CompileCache", cfg.CompileCache, func(cs *C.char, cerr **C.fidius_error) C.enum_fidius_status {
			return C.fidius_host_builder_set_compile_cache(b, cs, cerr)
		}); err != nil {
			return nil, err
		}
	}
	for _, pattern := range cfg.AllowCapabilities {
		cs := C.CString(pattern)
		st := C.fidius_host_builder_allow_capability(b, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	for _, k := range cfg.TrustedKeys {
		st := C.fidius_host_builder_add_trusted_key(b, bytesArg(k), C.size_t(len(k)), &cerr)
		runtime.KeepAlive(k)
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	for _, f := range cfg.TrustedKeyFiles {
		cs := C.CString(f)
		st := C.fidius_host_builder_add_trusted_key_file(b, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	for _, wit := range cfg.Schemas {
		w := []byte(wit)
		st := C.fidius_host_builder_add_schema(b, bytesArg(w), C.size_t(len(w)), &cerr)
		runtime.KeepAlive(w)
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	for _, f := range cfg.SchemaFiles {
		cs := C.CString(f)
		st := C.fidius_host_builder_add_schema_file(b, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return nil, err
		}
	}
	if cfg.InterfaceHash != 0 {
		if err := takeError(C.fidius_host_builder_set_interface_hash(b, C.uint64_t(cfg.InterfaceHash), &cerr), cerr); err != nil {
			return nil, err
		}
	}
	if cfg.BufferStrategy != BufferStrategyNone {
		if err := takeError(C.fidius_host_builder_set_buffer_strategy(b, C.uint32_t(cfg.BufferStrategy), &cerr), cerr); err != nil {
			return nil, err
		}
	}
	if cfg.Egress != nil {
		if err := cfg.Egress.use(func(p *C.fidius_egress_policy) error {
			return takeError(C.fidius_host_builder_set_egress_policy(b, p, &cerr), cerr)
		}); err != nil {
			return nil, err
		}
	}
	for _, hi := range cfg.HostInterfaces {
		if hi == nil {
			return nil, &Error{Status: StatusNullArgument, Message: "HostConfig.HostInterfaces: nil interface"}
		}
		if err := hi.use(func(p *C.fidius_host_interface) error {
			return takeError(C.fidius_host_builder_add_host_interface(b, p, &cerr), cerr)
		}); err != nil {
			return nil, err
		}
	}
	if cfg.Log != nil {
		h := newCallbackHandle(cfg.Log)
		if err := takeError(C.fidiusgo_set_log_callback(b, C.uintptr_t(h), C.bool(failLogRegistration), &cerr), cerr); err != nil {
			fidiusGoRelease(C.uintptr_t(h)) // documented: destroy is not called on failure
			return nil, err
		}
	}

	var host *C.fidius_host
	if err := takeError(C.fidius_host_builder_build(b, &host, &cerr), cerr); err != nil {
		return nil, err
	}
	h := &Host{ptr: host}
	runtime.SetFinalizer(h, (*Host).Close)
	return h, nil
}

// Close releases the host. Plugins loaded from it remain usable. Closing
// twice is harmless.
func (h *Host) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ptr != nil {
		C.fidius_host_free(h.ptr)
		h.ptr = nil
		runtime.SetFinalizer(h, nil)
	}
	return nil
}

// Skipped is a file or directory discovery passed over, and why.
type Skipped struct {
	Path   string
	Plugin string // the plugin's name when the file got far enough to tell, else ""
	Status Status
	Reason string
}

// Discovery is what a scan of the search paths found.
type Discovery struct {
	Plugins []PluginInfo
	Skipped []Skipped
}

// Discover scans the search paths. Problems with individual files are not
// errors but entries in Skipped.
func (h *Host) Discover() (*Discovery, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ptr == nil {
		return nil, ErrClosed
	}
	var d *C.fidius_discovery
	var cerr *C.fidius_error
	if err := takeError(C.fidius_host_discover(h.ptr, &d, &cerr), cerr); err != nil {
		return nil, err
	}
	defer C.fidius_discovery_free(d)
	out := &Discovery{}
	for i := C.size_t(0); i < C.fidius_discovery_plugin_count(d); i++ {
		out.Plugins = append(out.Plugins, copyInfo(C.fidius_discovery_plugin(d, i)))
	}
	for i := C.size_t(0); i < C.fidius_discovery_skipped_count(d); i++ {
		out.Skipped = append(out.Skipped, Skipped{
			Path:   goStringOrEmpty(C.fidius_discovery_skipped_path(d, i)),
			Plugin: goStringOrEmpty(C.fidius_discovery_skipped_plugin(d, i)),
			Status: Status(C.fidius_discovery_skipped_status(d, i)),
			Reason: goStringOrEmpty(C.fidius_discovery_skipped_reason(d, i)),
		})
	}
	return out, nil
}

// LoadOptions are per-load settings. The zero value (or nil) is the default.
type LoadOptions struct {
	// Config is the bincode of the plugin's config type (fidius 0.5
	// `config = C`); for a Python plugin, JSON text, passed to its module's
	// __fidius_configure__ (not JSON: StatusInvalidArgument). nil means no
	// config.
	Config []byte
	// InterfaceHash, when not 0, is required of the plugin (native, WASM,
	// or a Python module's __interface_hash__).
	InterfaceHash uint64
	// Egress overrides the host's egress policy for this WASM plugin.
	Egress *EgressPolicy
	// HostInterfaces are offered to this plugin before the host's interfaces
	// of the same name (host functions, see HostInterface).
	HostInterfaces []*HostInterface
	// InterfaceExport picks the component's exported interface (WASM).
	InterfaceExport string
	// Timeout stops WASM calls that run longer (0: none). Rounded up to
	// whole milliseconds. For a Python plugin it bounds each call and stream
	// item: the runner process is killed (StatusTimeout) and the next call
	// starts a fresh one. A Context, Plugin.Close and Stream.Cancel stop a
	// Python call or stream item too, by stopping the runner the same way
	// (StatusCancelled).
	Timeout time.Duration
	// MemoryLimit caps each WASM instance's memory in bytes (0: 4 GiB); for
	// a Python plugin, its runner process's address space (0: no limit).
	MemoryLimit uint64
	// Fuel gives each WASM call this much fuel (0: unmetered). Not for Python plugins.
	Fuel uint64
	// ReuseInstance keeps one WASM instance for all calls.
	ReuseInstance bool
	// WireRaw says, per method name, whether a WASM method is #[wire(raw)].
	WireRaw map[string]bool
	// Grants, when not nil, are exactly the capabilities this package load
	// gets, replacing the manifest's list; an empty non-nil slice grants
	// nothing. They are the embedder's own word for this load: the host's
	// AllowCapabilities do not apply to them.
	Grants []string
	// Schema (WIT text) or SchemaFile (read when the load starts, at most
	// 1 MiB) is this native plugin's interface schema, overriding a
	// "<library>.wit" and HostConfig.Schemas; set at most one. With one
	// interface it applies whatever the plugin's interface is called. It
	// must list at least the plugin's methods (else StatusSchemaMismatch);
	// methods beyond them are optional methods the plugin lacks
	// (StatusNotImplemented when called). WIT cannot pin the interface
	// hash: set InterfaceHash where that matters. Ignored for WASM plugins.
	// A Python plugin with a schema takes the schema's method order, wire
	// bytes and raw methods; without one, its methods are its module's
	// functions, called by name with JSON only.
	Schema     string
	SchemaFile string
}

func (o *LoadOptions) build() (*C.fidius_load_options, error) {
	if o == nil {
		return nil, nil
	}
	opts := C.fidius_load_options_new()
	if opts == nil {
		return nil, &Error{Status: StatusInternalPanic, Message: "fidius_load_options_new returned NULL (out of memory)"}
	}
	fail := func(err error) (*C.fidius_load_options, error) {
		C.fidius_load_options_free(opts)
		return nil, err
	}
	var cerr *C.fidius_error
	if o.Config != nil {
		st := C.fidius_load_options_set_config(opts, bytesArg(o.Config), C.size_t(len(o.Config)), &cerr)
		runtime.KeepAlive(o.Config)
		if err := takeError(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.InterfaceHash != 0 {
		if err := takeError(C.fidius_load_options_set_interface_hash(opts, C.uint64_t(o.InterfaceHash), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.Egress != nil {
		if err := o.Egress.use(func(p *C.fidius_egress_policy) error {
			return takeError(C.fidius_load_options_set_egress_policy(opts, p, &cerr), cerr)
		}); err != nil {
			return fail(err)
		}
	}
	for _, hi := range o.HostInterfaces {
		if hi == nil {
			return fail(&Error{Status: StatusNullArgument, Message: "LoadOptions.HostInterfaces: nil interface"})
		}
		if err := hi.use(func(p *C.fidius_host_interface) error {
			return takeError(C.fidius_load_options_add_host_interface(opts, p, &cerr), cerr)
		}); err != nil {
			return fail(err)
		}
	}
	if o.InterfaceExport != "" {
		cs := C.CString(o.InterfaceExport)
		st := C.fidius_load_options_set_interface_export(opts, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.Timeout > 0 {
		ms := (o.Timeout + time.Millisecond - 1) / time.Millisecond
		if err := takeError(C.fidius_load_options_set_timeout_ms(opts, C.uint64_t(ms), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.MemoryLimit != 0 {
		if err := takeError(C.fidius_load_options_set_memory_limit(opts, C.uint64_t(o.MemoryLimit), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.Fuel != 0 {
		if err := takeError(C.fidius_load_options_set_fuel(opts, C.uint64_t(o.Fuel), &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	if o.ReuseInstance {
		if err := takeError(C.fidius_load_options_set_reuse_instance(opts, true, &cerr), cerr); err != nil {
			return fail(err)
		}
	}
	for name, raw := range o.WireRaw {
		cs := C.CString(name)
		st := C.fidius_load_options_set_wire_raw(opts, cs, C.bool(raw), &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.Grants != nil {
		if err := setGrants(opts, o.Grants); err != nil {
			return fail(err)
		}
	}
	if o.Schema != "" && o.SchemaFile != "" {
		return fail(&Error{Status: StatusInvalidArgument, Message: "LoadOptions: set Schema or SchemaFile, not both"})
	}
	if o.Schema != "" {
		w := []byte(o.Schema)
		st := C.fidius_load_options_set_schema(opts, bytesArg(w), C.size_t(len(w)), &cerr)
		runtime.KeepAlive(w)
		if err := takeError(st, cerr); err != nil {
			return fail(err)
		}
	}
	if o.SchemaFile != "" {
		cs := C.CString(o.SchemaFile)
		st := C.fidius_load_options_set_schema_file(opts, cs, &cerr)
		C.free(unsafe.Pointer(cs))
		if err := takeError(st, cerr); err != nil {
			return fail(err)
		}
	}
	return opts, nil
}

// setGrants passes grants as a C array of C strings (C memory: cgo forbids
// handing C a Go array of pointers).
func setGrants(opts *C.fidius_load_options, grants []string) error {
	var arr **C.char
	if n := len(grants); n > 0 {
		arr = (**C.char)(C.calloc(C.size_t(n), C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		if arr == nil {
			return &Error{Status: StatusInternalPanic, Message: "calloc failed (out of memory)"}
		}
		defer C.free(unsafe.Pointer(arr))
		elems := unsafe.Slice(arr, n)
		for i, g := range grants {
			elems[i] = C.CString(g)
		}
		defer func() {
			for _, p := range elems {
				C.free(unsafe.Pointer(p))
			}
		}()
	}
	var cerr *C.fidius_error
	return takeError(C.fidius_load_options_set_grants(opts, arr, C.size_t(len(grants)), &cerr), cerr)
}

// Load loads the plugin named name (a native plugin's type name or a
// package's name) from the search paths. opts may be nil.
func (h *Host) Load(name string, opts *LoadOptions) (*Plugin, error) {
	return h.load(false, "", name, opts)
}

// LoadPath loads a native plugin from the library at path; name picks one
// plugin of several in the library ("" when it holds exactly one).
func (h *Host) LoadPath(path, name string, opts *LoadOptions) (*Plugin, error) {
	if path == "" {
		return nil, &Error{Status: StatusInvalidArgument, Message: "empty path"}
	}
	return h.load(false, path, name, opts)
}

// LoadFid loads the package in the .fid archive at path (tar + bzip2, as
// `fidius package pack` writes it). The archive is extracted into memory
// (nothing is written to disk) and, with signatures required, its
// package.sig must verify the content. opts may be nil.
func (h *Host) LoadFid(path string, opts *LoadOptions) (*Plugin, error) {
	if path == "" {
		return nil, &Error{Status: StatusInvalidArgument, Message: "empty path"}
	}
	return h.load(true, path, "", opts)
}

// UnpackFid extracts the package in the .fid archive at path into destDir
// (created if missing), as destDir/<name>-<version> (replacing a directory
// of that name), and returns that directory's path. The same checks as
// LoadFid apply; a refused or failed extraction leaves nothing behind.
func (h *Host) UnpackFid(path, destDir string) (string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ptr == nil {
		return "", ErrClosed
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	cdest := C.CString(destDir)
	defer C.free(unsafe.Pointer(cdest))
	var out C.fidius_bytes
	var cerr *C.fidius_error
	if err := takeError(C.fidius_host_unpack_fid(h.ptr, cpath, cdest, &out, &cerr), cerr); err != nil {
		return "", err
	}
	return string(takeBytes(&out)), nil
}

func (h *Host) load(fid bool, path, name string, opts *LoadOptions) (*Plugin, error) {
	copts, err := opts.build()
	if err != nil {
		return nil, err
	}
	defer C.fidius_load_options_free(copts) // the load copies what it needs

	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ptr == nil {
		return nil, ErrClosed
	}
	var cname *C.char
	if name != "" || path == "" {
		cname = C.CString(name)
		defer C.free(unsafe.Pointer(cname))
	}
	var plugin *C.fidius_plugin
	var cerr *C.fidius_error
	var st uint32
	if fid {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		st = uint32(C.fidius_host_load_fid(h.ptr, cpath, copts, &plugin, &cerr))
	} else if path == "" {
		st = uint32(C.fidius_host_load(h.ptr, cname, copts, &plugin, &cerr))
	} else {
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		st = uint32(C.fidius_host_load_path(h.ptr, cpath, cname, copts, &plugin, &cerr))
	}
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	return newPlugin(plugin), nil
}

// PrecompileComponent compiles WebAssembly component bytes ahead of time
// into .cwasm bytes for a package's [wasm].precompiled file.
func (h *Host) PrecompileComponent(component []byte) ([]byte, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.ptr == nil {
		return nil, ErrClosed
	}
	var out C.fidius_bytes
	var cerr *C.fidius_error
	st := C.fidius_host_precompile_component(h.ptr, bytesArg(component), C.size_t(len(component)), &out, &cerr)
	runtime.KeepAlive(component)
	if err := takeError(st, cerr); err != nil {
		return nil, err
	}
	return takeBytes(&out), nil
}

// --- callback handles ---------------------------------------------------------

// failLogRegistration makes NewHost register its log callback as NULL, so
// libfidius refuses it (tests of the failure path).
var failLogRegistration bool

// liveCallbacks counts Go callbacks libfidius still references (tests check
// that every destroy callback ran).
var liveCallbacks int64
var liveMu sync.Mutex

func newCallbackHandle(v any) cgo.Handle {
	liveMu.Lock()
	liveCallbacks++
	liveMu.Unlock()
	return cgo.NewHandle(v)
}

//export fidiusGoRelease
func fidiusGoRelease(h C.uintptr_t) {
	cgo.Handle(h).Delete()
	liveMu.Lock()
	liveCallbacks--
	liveMu.Unlock()
}

//export fidiusGoLog
func fidiusGoLog(h C.uintptr_t, level C.uint32_t, message *C.char) {
	defer func() { _ = recover() }() // a panic must not unwind into libfidius
	fn := cgo.Handle(h).Value().(func(int, string))
	fn(int(level), C.GoString(message))
}

// setPath hands a HostConfig path to a builder setter as a C string,
// refusing one with a NUL byte (C would read it cut short there).
func setPath(field, value string, set func(*C.char, **C.fidius_error) C.enum_fidius_status) error {
	if strings.IndexByte(value, 0) >= 0 {
		return &Error{Status: StatusInvalidArgument, Message: fmt.Sprintf("HostConfig.%s %q contains a NUL byte", field, value)}
	}
	cs := C.CString(value)
	defer C.free(unsafe.Pointer(cs))
	var cerr *C.fidius_error
	return takeError(set(cs, &cerr), cerr)
}
