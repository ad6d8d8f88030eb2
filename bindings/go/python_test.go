package fidius

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Python plugins (runtime = "python" packages), run by libfidius in a
// python3 runner process per plugin. The fixture is the pycalc package
// (make -C examples-c build/python-plugins): a search path holding the
// package directory pycalc/, the same package as pycalc.fid, its interface
// schema pycalc.wit and its __interface_hash__ in pycalc.hash.

// Pycalc's methods in the schema's order.
const (
	pyAdd    = 0
	pyGreet  = 1
	pyEcho   = 2
	pyDivide = 3
	pyCount  = 4
	pyTotal  = 5
	pyCrash  = 6
	pySpin   = 7
	pyWhoami = 8
)

// pythonDir is the Python fixture directory: FIDIUS_PYTHON_PLUGIN_DIR, else
// python-plugins beside the native/WASM fixture directory.
func pythonDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("FIDIUS_PYTHON_PLUGIN_DIR")
	if dir == "" {
		dir = filepath.Join(filepath.Dir(filepath.Clean(pluginDir(t))), "python-plugins")
	}
	if _, err := os.Stat(filepath.Join(dir, "pycalc", "package.toml")); err != nil {
		t.Fatalf("the Python fixture is not at %s (make -C examples-c build/python-plugins): %v", dir, err)
	}
	return dir
}

func pythonFile(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(pythonDir(t), name)
}

// pycalcHash is the module's __interface_hash__, as the fixture build wrote it.
func pycalcHash(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile(pythonFile(t, "pycalc.hash"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 64)
	if err != nil {
		t.Fatalf("pycalc.hash: %v", err)
	}
	return h
}

// pyHost is a host whose search paths are the Python fixture directory and
// the native/WASM one.
func pyHost(t *testing.T, cfg HostConfig) *Host {
	t.Helper()
	cfg.SearchPaths = append([]string{pythonDir(t)}, cfg.SearchPaths...)
	return newHost(t, cfg)
}

// withSchema adds pycalc.wit to opts (a copy; nil: new options).
func withSchema(t *testing.T, opts *LoadOptions) *LoadOptions {
	t.Helper()
	o := LoadOptions{}
	if opts != nil {
		o = *opts
	}
	o.SchemaFile = pythonFile(t, "pycalc.wit")
	return &o
}

func loadPycalc(t *testing.T, opts *LoadOptions) *Plugin {
	t.Helper()
	return load(t, pyHost(t, HostConfig{}), "pycalc", opts)
}

func callJSON(t *testing.T, p *Plugin, method uint32, input string) string {
	t.Helper()
	out, err := p.CallJSON(method, input)
	if err != nil {
		t.Fatalf("method %d %s: %v", method, input, err)
	}
	return out
}

func methodIdx(t *testing.T, p *Plugin, name string) uint32 {
	t.Helper()
	i, err := p.MethodIndex(name)
	if err != nil {
		t.Fatalf("MethodIndex(%s): %v", name, err)
	}
	return i
}

func wantStatus(t *testing.T, label string, err error, want Status) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Status != want || !errors.Is(err, want) {
		t.Fatalf("%s: want %v, got %T %v", label, want, err, err)
	}
	return e
}

// Without a schema a Python plugin's methods are its module's functions:
// called by name, with JSON (or Go values through Invoke) only.
func TestPythonJSONByName(t *testing.T) {
	p := loadPycalc(t, nil)
	info := p.Info()
	if info.Name != "pycalc" || info.Runtime != RuntimePython || info.Runtime.String() != "python" {
		t.Errorf("info: %+v", info)
	}
	if info.InterfaceHash != pycalcHash(t) {
		t.Errorf("interface hash %#x, want __interface_hash__ %#x", info.InterfaceHash, pycalcHash(t))
	}
	add := methodIdx(t, p, "add")
	if got := callJSON(t, p, add, "[2, 40]"); got != "42" {
		t.Errorf("add(2, 40) = %s", got)
	}
	if got := callJSON(t, p, add, `{"a": 1, "b": 2}`); got != "3" {
		t.Errorf("add by parameter name = %s", got)
	}
	// greet uses the requirement `fidius package pack` vendored.
	if got := callJSON(t, p, methodIdx(t, p, "greet"), `["Ada"]`); got != `"Hello, Ada!"` {
		t.Errorf("greet = %s", got)
	}
	if got := callJSON(t, p, methodIdx(t, p, "whoami"), ""); got != `"module"` {
		t.Errorf("whoami = %s", got)
	}
	// Invoke: Go values in and out.
	var sum int64
	if err := p.Invoke("add", &sum, 2, 40); err != nil || sum != 42 {
		t.Errorf("Invoke add = %d, %v", sum, err)
	}
	var greeting string
	if err := p.Invoke("greet", &greeting, "Go"); err != nil || greeting != "Hello, Go!" {
		t.Errorf("Invoke greet = %q, %v", greeting, err)
	}
	var who string
	if err := p.Invoke("whoami", &who); err != nil || who != "module" {
		t.Errorf("Invoke whoami = %q, %v", who, err)
	}
	// Wire bytes need the types, which only a schema gives.
	_, err := p.CallWire(add, wireI64Pair(1, 2))
	wantStatus(t, "a wire call without a schema", err, StatusUnsupported)
	_, err = p.MethodIndex("nope")
	wantStatus(t, "MethodIndex(nope)", err, StatusMethodIndex)
	if err := p.Invoke("nope", nil); !errors.Is(err, StatusMethodIndex) {
		t.Errorf("Invoke nope: %v", err)
	}
	d, err := p.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.Runtime != "python" || d.TypesFrom != "" || d.InterfaceHash != pycalcHash(t) {
		t.Errorf("describe: runtime %q types_from %q hash %#x", d.Runtime, d.TypesFrom, d.InterfaceHash)
	}
}

// With pycalc.wit the schema's order and types apply: wire calls, and the
// raw method echo takes and returns bytes as they are.
func TestPythonSchemaWire(t *testing.T) {
	wit := pythonFile(t, "pycalc.wit")
	p := loadPycalc(t, withSchema(t, nil))
	for name, want := range map[string]uint32{"add": pyAdd, "greet": pyGreet, "echo": pyEcho, "divide": pyDivide,
		"count": pyCount, "total": pyTotal, "crash": pyCrash, "spin": pySpin, "whoami": pyWhoami} {
		if got := methodIdx(t, p, name); got != want {
			t.Errorf("MethodIndex(%s) = %d, want %d (the schema's order)", name, got, want)
		}
	}
	if got := callAdd(t, p, 40, 2); got != 42 {
		t.Errorf("wire add = %d", got)
	}
	out, err := p.CallWire(pyGreet, wireString("Bo"))
	if err != nil {
		t.Fatal(err)
	}
	if got := unwireString(t, out); got != "Hello, Bo!" {
		t.Errorf("wire greet = %q", got)
	}
	out, err = p.CallWire(pyEcho, []byte{1, 2, 3})
	if err != nil || !reflect.DeepEqual(out, []byte{3, 2, 1}) {
		t.Errorf("raw echo = %v, %v", out, err)
	}
	if got := callJSON(t, p, pyEcho, "[[1, 2, 3]]"); got != "[3,2,1]" {
		t.Errorf("JSON echo = %s", got)
	}
	out, err = p.CallWire(pyDivide, wireI64Pair(9, 2))
	if err != nil || len(out) != 8 || int64(unwireU64(t, out)) != 4 {
		t.Errorf("wire divide(9, 2) = %x, %v", out, err)
	}
	// The result must fit its declared type: Python's int outgrows s64.
	_, err = p.CallWire(pyAdd, wireI64Pair(math.MaxInt64, 1))
	wantStatus(t, "add(MaxInt64, 1)", err, StatusSerialization)
	d, err := p.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.TypesFrom != wit || len(d.Methods) < 9 || d.Methods[pyDivide].Result != "result<s64, plugin-error>" ||
		d.Methods[pyCount].StreamItem != "u64" || d.Methods[pyAdd].Name != "add" {
		t.Errorf("describe with the schema: %s", d.JSON)
	}
}

// divide(a, 0) raises fidius.PluginError: a *PluginError with the code,
// message and details; any other exception has its class as the code and
// its traceback in the details.
func TestPythonPluginErrors(t *testing.T) {
	p := loadPycalc(t, withSchema(t, nil))
	_, err := p.CallJSON(pyDivide, "[7, 0]")
	checkDivZero(t, err)
	checkDivZero(t, p.Invoke("divide", nil, 7, 0))
	var q int64
	if err := p.Invoke("divide", &q, 7, 2); err != nil || q != 3 {
		t.Errorf("divide(7, 2) = %d, %v", q, err)
	}

	_, err = p.CallJSON(pyCrash, "")
	pe := wantPluginCode(t, "crash", err, "ValueError")
	if pe == nil {
		t.FailNow()
	}
	if pe.Message != "boom" || !pe.HasDetails {
		t.Fatalf("crash: message %q details %q (present %v)", pe.Message, pe.Details, pe.HasDetails)
	}
	var details struct {
		Traceback string `json:"traceback"`
	}
	if err := json.Unmarshal([]byte(pe.Details), &details); err != nil || !strings.Contains(details.Traceback, "pycalc_plugin.py") ||
		!strings.Contains(details.Traceback, "ValueError: boom") {
		t.Errorf("crash details: %q (%v)", pe.Details, err)
	}
	// Wrong arguments: with the schema, refused by its types (libfidius
	// checks JSON against them, as for the other runtimes); without, the
	// module's own TypeError, reported as any exception is. The plugin serves on.
	_, err = p.CallJSON(pyAdd, "[1]")
	wantStatus(t, "add(1) with the schema", err, StatusSerialization)
	untyped := loadPycalc(t, nil)
	_, err = untyped.CallJSON(methodIdx(t, untyped, "add"), "[1]")
	wantPluginCode(t, "add(1) without a schema", err, "TypeError")
	if got := callJSON(t, p, pyAdd, "[1, 1]"); got != "2" {
		t.Errorf("add after the errors = %s", got)
	}
}

// A load with a JSON config gets the instance its module's
// __fidius_configure__ returns; instances are independent.
func TestPythonConfig(t *testing.T) {
	h := pyHost(t, HostConfig{})
	ada := load(t, h, "pycalc", withSchema(t, &LoadOptions{Config: []byte(`{"name": "ada"}`)}))
	if got := callJSON(t, ada, pyWhoami, ""); got != `"ada"` {
		t.Errorf("configured whoami = %s", got)
	}
	var who string
	if err := ada.Invoke("whoami", &who); err != nil || who != "ada" {
		t.Errorf("Invoke whoami = %q, %v", who, err)
	}
	if got := callJSON(t, ada, pyAdd, "[2, 3]"); got != "5" {
		t.Errorf("configured add = %s", got)
	}
	plain := load(t, h, "pycalc", withSchema(t, nil))
	if got := callJSON(t, plain, pyWhoami, ""); got != `"module"` {
		t.Errorf("unconfigured whoami = %s", got)
	}
	// A config the module rejects (KeyError in __fidius_configure__), and one that is not JSON.
	_, err := h.Load("pycalc", &LoadOptions{Config: []byte(`{"nom": 1}`)})
	if e := wantStatus(t, "a rejected config", err, StatusConfigRejected); !strings.Contains(e.Message, "KeyError") {
		t.Errorf("rejected config: %s", e.Message)
	}
	_, err = h.Load("pycalc", &LoadOptions{Config: []byte{0, 1}})
	wantStatus(t, "a config that is not JSON", err, StatusInvalidArgument)
	// The interface hash is checked when the load pins one.
	_, err = h.Load("pycalc", &LoadOptions{InterfaceHash: 0x1234})
	wantStatus(t, "a wrong interface hash", err, StatusInterfaceHashMismatch)
	load(t, h, "pycalc", &LoadOptions{InterfaceHash: pycalcHash(t)})
}

// LoadOptions.Timeout kills a runner stuck in spin() (StatusTimeout); the
// next call starts a fresh one.
func TestPythonTimeout(t *testing.T) {
	p := loadPycalc(t, withSchema(t, &LoadOptions{Timeout: 500 * time.Millisecond}))
	for round := 0; round < 2; round++ {
		started := time.Now()
		_, err := p.CallJSON(pySpin, "")
		wantStatus(t, "spin", err, StatusTimeout)
		if took := time.Since(started); took < 400*time.Millisecond || took > 20*time.Second {
			t.Errorf("round %d: spin stopped after %v (timeout 500ms)", round, took)
		}
		if got := callJSON(t, p, pyAdd, "[20, 22]"); got != "42" {
			t.Errorf("round %d: add after the timeout = %s", round, got)
		}
		if got := callAdd(t, p, 1, 2); got != 3 {
			t.Errorf("round %d: wire add after the timeout = %d", round, got)
		}
	}
}

// count(n) is a generator: a server stream; total(items) takes a host-fed
// iterator: a client stream, whose items are JSON texts for Python plugins.
func TestPythonStreams(t *testing.T) {
	p := loadPycalc(t, withSchema(t, nil))

	s, err := p.OpenStream(pyCount, FormatJSON, []byte("[4]"))
	if err != nil {
		t.Fatal(err)
	}
	items, err := s.Collect()
	s.Close()
	if err != nil || len(items) != 4 {
		t.Fatalf("count(4), JSON: %q, %v", items, err)
	}
	for i, item := range items {
		if string(item) != strconv.Itoa(i) {
			t.Errorf("JSON item %d = %q", i, item)
		}
	}
	// With the schema the items can be wire bytes too.
	s, err = p.OpenStream(pyCount, FormatWire, wireU64(4))
	if err != nil {
		t.Fatal(err)
	}
	items, err = s.Collect()
	s.Close()
	if err != nil || !reflect.DeepEqual(u64Items(t, items), upTo(4)) {
		t.Errorf("count(4), wire: %v", err)
	}
	// By name, decoding each item.
	s, err = p.InvokeStream("count", 3)
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for {
		var v uint64
		if err := s.Decode(&v); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	s.Close()
	if !reflect.DeepEqual(got, upTo(3)) {
		t.Errorf("InvokeStream count(3) = %v", got)
	}
	// A stream closed early (its generator closed in the runner), then a call.
	s, err = p.OpenStream(pyCount, FormatJSON, []byte("[1000000]"))
	if err != nil {
		t.Fatal(err)
	}
	if item, err := s.Next(); err != nil || string(item) != "0" {
		t.Errorf("first item of count(1000000): %q, %v", item, err)
	}
	s.Close()
	if got := callJSON(t, p, pyAdd, "[1, 2]"); got != "3" {
		t.Errorf("add after an early close = %s", got)
	}

	// The client stream, fed JSON items.
	out, err := p.CallStreaming(pyTotal, FormatJSON, nil, SliceSource([]byte("3"), []byte("2"), []byte("1")))
	if err != nil || string(out) != "6" {
		t.Errorf("total(3, 2, 1) = %q, %v", out, err)
	}
	out, err = p.CallStreaming(pyTotal, FormatWire, nil, SliceSource([]byte("40"), []byte("2")))
	if err != nil || len(out) != 8 || unwireU64(t, out) != 42 {
		t.Errorf("total(40, 2), wire result = %x, %v (items are still JSON)", out, err)
	}
	var total uint64
	if err := p.InvokeStreaming("total", &total, SeqSource(func(yield func([]byte) bool) {
		for i := 1; i <= 100; i++ {
			if !yield([]byte(strconv.Itoa(i))) {
				return
			}
		}
	})); err != nil || total != 5050 {
		t.Errorf("InvokeStreaming total(1..100) = %d, %v", total, err)
	}
	if err := p.InvokeStreaming("total", &total, SliceSource()); err != nil || total != 0 {
		t.Errorf("total() = %d, %v", total, err)
	}
	// A source's own error, and an item that is not JSON (wire bytes are not what Python takes).
	mine := errors.New("source broke")
	_, err = p.CallStreaming(pyTotal, FormatJSON, nil, SourceFunc(func() ([]byte, bool, error) { return nil, false, mine }))
	if wantStatus(t, "a failing source", err, StatusStreamSource); !errors.Is(err, mine) {
		t.Errorf("a failing source: %v does not unwrap to the source's error", err)
	}
	_, err = p.CallStreaming(pyTotal, FormatJSON, nil, SliceSource(wireU64(3)))
	wantStatus(t, "a wire item", err, StatusStreamSource)
	if got := callJSON(t, p, pyAdd, "[2, 2]"); got != "4" {
		t.Errorf("add after the failed client streams = %s", got)
	}
}

// Eight goroutines call one Python plugin at once (the runner serializes
// them), half with wire bytes, half with JSON.
func TestPythonConcurrentCalls(t *testing.T) {
	p := loadPycalc(t, withSchema(t, nil))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := int64(0); g < 8; g++ {
		wg.Add(1)
		go func(g int64) {
			defer wg.Done()
			for i := int64(0); i < 100; i++ {
				var got int64
				if i%2 == 0 {
					out, err := p.CallWire(pyAdd, wireI64Pair(g, i))
					if err != nil || len(out) != 8 {
						errs <- fmt.Errorf("goroutine %d: wire add(%d, %d): %x, %v", g, g, i, out, err)
						return
					}
					got = int64(binary.LittleEndian.Uint64(out))
				} else if err := p.Invoke("add", &got, g, i); err != nil {
					errs <- fmt.Errorf("goroutine %d: Invoke add(%d, %d): %v", g, g, i, err)
					return
				}
				if got != g+i {
					errs <- fmt.Errorf("goroutine %d: add(%d, %d) = %d", g, g, i, got)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// The .fid the CLI packed loads from memory (staged privately for the
// interpreter), and discovery lists the package as a Python plugin.
func TestPythonFidAndDiscover(t *testing.T) {
	h, err := NewHost(HostConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p, err := h.LoadFid(pythonFile(t, "pycalc.fid"), withSchema(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Info().Runtime != RuntimePython || p.Info().InterfaceHash != pycalcHash(t) {
		t.Errorf("fid info: %+v", p.Info())
	}
	var greeting string
	if err := p.Invoke("greet", &greeting, "Fid"); err != nil || greeting != "Hello, Fid!" {
		t.Errorf("greet from the .fid = %q, %v", greeting, err)
	}
	if got := callAdd(t, p, 2, 3); got != 5 {
		t.Errorf("wire add from the .fid = %d", got)
	}

	d, err := pyHost(t, HostConfig{}).Discover()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, info := range d.Plugins {
		if info.Name == "pycalc" {
			found = true
			if info.Runtime != RuntimePython {
				t.Errorf("discovered pycalc: %+v", info)
			}
		}
	}
	if !found {
		t.Errorf("discovery did not list pycalc: %+v", d)
	}
}

// HostConfig.PythonInterpreter: a missing interpreter fails only Python
// loads (StatusLibraryLoad, naming it); native and WASM plugins of the
// same host load and work, since libfidius never loads libpython.
func TestPythonInterpreter(t *testing.T) {
	const missing = "/nonexistent/python3"
	h := pyHost(t, HostConfig{PythonInterpreter: missing})
	_, err := h.Load("pycalc", nil)
	if e := wantStatus(t, "pycalc with "+missing, err, StatusLibraryLoad); !strings.Contains(e.Message, missing) {
		t.Errorf("the message does not name the interpreter: %s", e.Message)
	}
	_, err = h.LoadFid(pythonFile(t, "pycalc.fid"), nil)
	if e := wantStatus(t, "the .fid with "+missing, err, StatusLibraryLoad); !strings.Contains(e.Message, missing) {
		t.Errorf("the message does not name the interpreter: %s", e.Message)
	}
	native := load(t, h, "BasicCalc", nil)
	if got := callAdd(t, native, 1, 2); got != 3 {
		t.Errorf("BasicCalc add = %d", got)
	}
	wasm := load(t, h, "calc", nil)
	var sum int64
	if err := wasm.Invoke("add", &sum, 1, 2); err != nil || sum != 3 {
		t.Errorf("calc add = %d, %v", sum, err)
	}

	// A path, and a command name looked up on the PATH.
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Fatalf("python3 is not on the PATH: %v", err)
	}
	for _, interpreter := range []string{python, "python3"} {
		p := load(t, pyHost(t, HostConfig{PythonInterpreter: interpreter}), "pycalc", nil)
		var who string
		if err := p.Invoke("whoami", &who); err != nil || who != "module" {
			t.Errorf("interpreter %s: whoami = %q, %v", interpreter, who, err)
		}
	}
	// The zero value is the default, python3 (every other test uses it); a
	// NUL byte would cut the C string short, so the binding refuses it.
	for _, bad := range []string{"\x00", "/usr/bin/python3\x00junk"} {
		_, err := NewHost(HostConfig{PythonInterpreter: bad})
		wantStatus(t, fmt.Sprintf("PythonInterpreter %q", bad), err, StatusInvalidArgument)
	}
}

// Python calls honour cancellation: a context stops a spinning call within
// about 20 ms of its deadline (the runner is stopped; the next call starts
// a fresh one), a context done before the call refuses it, and Plugin.Close
// stops a call in flight instead of waiting for it. The plugin's Timeout
// (30 s) is only a safety net here: StatusTimeout would mean the context
// did nothing.
func TestPythonCallsAreCancellable(t *testing.T) {
	p := loadPycalc(t, withSchema(t, &LoadOptions{Timeout: 30 * time.Second}))
	for round := 0; round < 2; round++ {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		started := time.Now()
		_, err := p.CallJSONContext(ctx, pySpin, "")
		took := time.Since(started)
		cancel()
		wantStatus(t, "spin under a 50 ms context", err, StatusCancelled)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("round %d: %v does not match context.DeadlineExceeded", round, err)
		}
		if took < 40*time.Millisecond || took > 5*time.Second {
			t.Errorf("round %d: spin stopped after %v (deadline 50 ms)", round, took)
		}
		t.Logf("round %d: spin stopped after %v", round, took)
		if got := callJSON(t, p, pyAdd, "[20, 22]"); got != "42" {
			t.Errorf("round %d: add after the cancelled spin = %s", round, got)
		}
		if got := callAdd(t, p, 1, 2); got != 3 {
			t.Errorf("round %d: wire add after the cancelled spin = %d", round, got)
		}
	}
	// Cancelled from another goroutine, through InvokeContext.
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	err := p.InvokeContext(ctx, "spin", nil)
	wantStatus(t, "spin cancelled from another goroutine", err, StatusCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not match context.Canceled", err)
	}
	// A context done before the call: refused (add would have answered at once).
	_, err = p.CallJSONContext(ctx, pyAdd, "[1, 2]")
	wantStatus(t, "add under a done context", err, StatusCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not match context.Canceled", err)
	}
	// A live context changes nothing.
	if out, err := p.CallJSONContext(context.Background(), pyAdd, "[1, 2]"); err != nil || out != "3" {
		t.Errorf("add under a live context: %s, %v", out, err)
	}

	// Close stops a spinning call (no context) instead of waiting for it.
	spun := make(chan error, 1)
	go func() {
		_, err := p.CallJSON(pySpin, "")
		spun <- err
	}()
	time.Sleep(200 * time.Millisecond) // let the call start
	started := time.Now()
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		t.Fatal("Plugin.Close hangs on a spinning Python call")
	}
	if took := time.Since(started); took > 5*time.Second {
		t.Errorf("Close took %v", took)
	}
	if err := <-spun; !errors.Is(err, StatusCancelled) || !errors.Is(err, ErrClosed) {
		t.Errorf("the spinning call Close stopped: %v (want StatusCancelled and ErrClosed)", err)
	}
	if _, err := p.CallJSON(pyAdd, "[1, 2]"); !errors.Is(err, ErrClosed) {
		t.Errorf("a call after Close: %v", err)
	}

	// A stream outlives Plugin.Close (its runner with it).
	q := loadPycalc(t, withSchema(t, nil))
	s, err := q.OpenStream(pyCount, FormatJSON, []byte("[3]"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q.Close()
	items, err := s.Collect()
	if err != nil || len(items) != 3 || string(items[2]) != "2" {
		t.Errorf("the stream after Plugin.Close: %q, %v", items, err)
	}
}

// Stream.Cancel stops a Python stream being pulled on another goroutine
// (its runner is stopped: the next call starts a fresh one), and
// DecodeContext cancels one when its context is done.
func TestPythonStreamCancel(t *testing.T) {
	p := loadPycalc(t, withSchema(t, nil))
	s, err := p.OpenStream(pyCount, FormatWire, wireU64(1<<40))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var pulled atomic.Int64
	done := pullUntilError(s, nil, &pulled)
	waitPulled(t, &pulled, 50)
	started := time.Now()
	if err := s.Cancel(); err != nil {
		t.Fatal(err)
	}
	err = waitErr(t, "Cancel", done)
	wantStatus(t, "the Python stream Cancel stopped", err, StatusCancelled)
	t.Logf("stopped %v after Cancel, %d items", time.Since(started), pulled.Load())
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("after the cancellation: %v, want io.EOF", err)
	}
	s.Close()
	if got := callJSON(t, p, pyAdd, "[2, 3]"); got != "5" {
		t.Errorf("add after a cancelled stream = %s", got)
	}

	// By name, decoding under a context.
	s, err = p.InvokeStream("count", 100)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var v uint64
	for i := uint64(0); i < 3; i++ {
		if err := s.DecodeContext(ctx, &v); err != nil || v != i {
			t.Fatalf("item %d: %d, %v", i, v, err)
		}
	}
	cancel()
	err = s.DecodeContext(ctx, &v)
	wantStatus(t, "DecodeContext with a done context", err, StatusCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("%v does not match context.Canceled", err)
	}
	if err := s.Decode(&v); err != io.EOF {
		t.Errorf("then: %v, want io.EOF", err)
	}
	s.Close()
	var sum int64
	if err := p.Invoke("add", &sum, 40, 2); err != nil || sum != 42 {
		t.Errorf("add after the cancelled streams = %d, %v", sum, err)
	}
}
