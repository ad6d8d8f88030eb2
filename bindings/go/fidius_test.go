package fidius

import (
	"encoding/binary"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The fixture search path: native plugins built with fidius 0.5.9 / 0.4.2 and
// the WASM packages (make -C examples-c build/plugins).
func pluginDir(t *testing.T) string {
	dir := os.Getenv("FIDIUS_PLUGIN_DIR")
	if dir == "" {
		dir = "../../examples-c/build/plugins"
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture plugins not found at %s (make -C examples-c build/plugins): %v", dir, err)
	}
	return dir
}

func newHost(t *testing.T, cfg HostConfig) *Host {
	t.Helper()
	cfg.SearchPaths = append(cfg.SearchPaths, pluginDir(t))
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func load(t *testing.T, h *Host, name string, opts *LoadOptions) *Plugin {
	t.Helper()
	p, err := h.Load(name, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// Calc method indices (declaration order).
const (
	calcAdd    = 0
	calcGreet  = 1
	calcDivide = 3
)

// Wire format: bincode 1.3 (little-endian fixed-width integers, u64 lengths).
func wireI64Pair(a, b int64) []byte {
	out := make([]byte, 16)
	binary.LittleEndian.PutUint64(out, uint64(a))
	binary.LittleEndian.PutUint64(out[8:], uint64(b))
	return out
}

func wireString(s string) []byte {
	out := make([]byte, 8+len(s))
	binary.LittleEndian.PutUint64(out, uint64(len(s)))
	copy(out[8:], s)
	return out
}

func callAdd(t *testing.T, p *Plugin, a, b int64) int64 {
	t.Helper()
	out, err := p.CallWire(calcAdd, wireI64Pair(a, b))
	if err != nil {
		t.Fatalf("%s add: %v", p.Info().Name, err)
	}
	if len(out) != 8 {
		t.Fatalf("%s add: %d output bytes", p.Info().Name, len(out))
	}
	return int64(binary.LittleEndian.Uint64(out))
}

func checkDivZero(t *testing.T, err error) {
	t.Helper()
	var pe *PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("divide(7, 0): want *PluginError, got %T %v", err, err)
	}
	if !errors.Is(err, StatusPluginError) {
		t.Errorf("errors.Is(err, StatusPluginError) is false")
	}
	if pe.Code != "DIV_ZERO" || pe.Message != "division by zero" {
		t.Errorf("plugin error: code %q message %q", pe.Code, pe.Message)
	}
	if !pe.HasDetails || strings.ReplaceAll(pe.Details, " ", "") != `{"dividend":7}` {
		t.Errorf("plugin error details: %q (present %v)", pe.Details, pe.HasDetails)
	}
}

func TestVersion(t *testing.T) {
	if Version() != HeaderVersion {
		t.Fatalf("library %s, header %s", Version(), HeaderVersion)
	}
}

func TestDiscover(t *testing.T) {
	h := newHost(t, HostConfig{})
	d, err := h.Discover()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]PluginInfo{}
	for _, p := range d.Plugins {
		found[p.Name] = p
	}
	for _, name := range []string{"BasicCalc", "OtherCalc", "ArenaImpl", "ConfiguredGreeter", "LegacyCalc", "LegacyArena", "calc", "caps", "fetch"} {
		if _, ok := found[name]; !ok {
			t.Errorf("discovery did not find %s (found %v, skipped %v)", name, d.Plugins, d.Skipped)
		}
	}
	if p := found["BasicCalc"]; p.Runtime != RuntimeNative || p.ABIVersion != 500 || p.InterfaceName != "Calc" {
		t.Errorf("BasicCalc: %+v", p)
	}
	if p := found["LegacyCalc"]; p.ABIVersion != 400 {
		t.Errorf("LegacyCalc: %+v", p)
	}
	if p := found["calc"]; p.Runtime != RuntimeWASM {
		t.Errorf("calc: %+v", p)
	}
}

func TestNativePlugins(t *testing.T) {
	h := newHost(t, HostConfig{})
	basic := load(t, h, "BasicCalc", nil)
	if got := callAdd(t, basic, 2, 3); got != 5 {
		t.Errorf("BasicCalc add(2, 3) = %d", got)
	}
	out, err := basic.CallWire(calcGreet, wireString("Go"))
	if err != nil {
		t.Fatal(err)
	}
	if want := wireString("Hello, Go!"); string(out) != string(want) {
		t.Errorf("greet: %q", out)
	}
	_, err = basic.CallWire(calcDivide, wireI64Pair(7, 0))
	checkDivZero(t, err)

	// JSON needs type information native plugins do not carry.
	_, err = basic.CallJSON(calcAdd, "[2, 3]")
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != StatusUnsupported || !errors.Is(err, StatusUnsupported) {
		t.Errorf("JSON on a native plugin: %v", err)
	}
	if _, err := basic.MethodIndex("add"); !errors.Is(err, StatusMethodIndex) {
		t.Errorf("MethodIndex on a native plugin: %v", err)
	}
	if _, err := basic.CallWire(99, nil); !errors.Is(err, StatusMethodIndex) {
		t.Errorf("method 99: %v", err)
	}
	meta, err := basic.MethodMetadata(calcAdd)
	if err != nil || len(meta) != 2 || meta[0] != (KeyValue{"kind", "math"}) {
		t.Errorf("add metadata: %v %v", meta, err)
	}

	legacy := load(t, h, "LegacyCalc", nil)
	if legacy.Info().ABIVersion != 400 {
		t.Errorf("LegacyCalc ABI %d", legacy.Info().ABIVersion)
	}
	if got := callAdd(t, legacy, 40, 2); got != 42 {
		t.Errorf("LegacyCalc add(40, 2) = %d", got)
	}
}

func TestWasmPlugin(t *testing.T) {
	h := newHost(t, HostConfig{})
	calc := load(t, h, "calc", &LoadOptions{Timeout: 5 * time.Second, MemoryLimit: 64 << 20})
	if calc.Info().Runtime != RuntimeWASM {
		t.Fatalf("calc runtime %v", calc.Info().Runtime)
	}
	add, err := calc.MethodIndex("add")
	if err != nil {
		t.Fatal(err)
	}
	if name, ok := calc.MethodName(add); !ok || name != "add" {
		t.Errorf("MethodName(%d) = %q", add, name)
	}
	if got, err := calc.CallJSON(add, "[2, 40]"); err != nil || got != "42" {
		t.Errorf("calc add [2, 40] = %q, %v", got, err)
	}
	if got := callAdd(t, calc, 20, 22); got != 42 {
		t.Errorf("calc add wire = %d", got)
	}
	divide, err := calc.MethodIndex("divide")
	if err != nil {
		t.Fatal(err)
	}
	_, err = calc.CallJSON(divide, "[7, 0]")
	checkDivZero(t, err)
	_, err = calc.CallJSON(add, `["x"]`)
	if !errors.Is(err, StatusSerialization) && !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("bad JSON arguments: %v", err)
	}
}

func TestNotFound(t *testing.T) {
	h := newHost(t, HostConfig{})
	_, err := h.Load("NoSuchPlugin", nil)
	if !errors.Is(err, StatusPluginNotFound) {
		t.Fatalf("want PLUGIN_NOT_FOUND, got %v", err)
	}
	t.Logf("%v", err)
}

func TestEgress(t *testing.T) {
	var mu sync.Mutex
	var arrived []*http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, r)
		mu.Unlock()
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	allowed := strings.TrimPrefix(srv.URL, "http://") // 127.0.0.1:PORT

	before := atomicLive()
	var asked, guestHeaders []string
	policy, err := NewEgressPolicy(func(req *Request) Verdict {
		mu.Lock()
		asked = append(asked, req.Method()+" "+req.Scheme()+"://"+req.Authority()+req.PathAndQuery()+" by "+req.Plugin())
		mu.Unlock()
		if req.Authority() != allowed {
			req.SetDenyReason("only the test server is allowed")
			return Deny
		}
		if err := req.SetHeader("authorization", "Bearer go-token"); err != nil {
			panic(err)
		}
		headers, err := req.Headers()
		if err != nil {
			panic(err)
		}
		for _, h := range headers {
			if h.Name == "x-guest" {
				mu.Lock()
				guestHeaders = append(guestHeaders, string(h.Value))
				mu.Unlock()
				if err := req.RemoveHeader("x-guest"); err != nil {
					panic(err)
				}
			}
		}
		return Allow
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	h, err := NewHost(HostConfig{
		SearchPaths: []string{pluginDir(t)},
		Egress:      policy,
		Log: func(level int, msg string) {
			mu.Lock()
			logs = append(logs, msg)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	policy.Close() // the host holds its own reference
	fetch, err := h.Load("fetch", nil)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := fetch.MethodIndex("fetch")
	if err != nil {
		t.Fatal(err)
	}

	got, err := fetch.CallJSON(idx, `["`+srv.URL+`/data"]`)
	if err != nil || got != `"200 hello"` {
		t.Fatalf("allowed fetch: %q, %v", got, err)
	}
	mu.Lock()
	if len(arrived) != 1 || arrived[0].Header.Get("Authorization") != "Bearer go-token" || arrived[0].URL.Path != "/data" {
		t.Errorf("the allowed request did not arrive with the injected header: %v", arrived)
	}
	mu.Unlock()

	// A header the guest sets is visible to the policy, which strips it.
	withHeaders, err := fetch.MethodIndex("fetch_with_headers")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := fetch.CallJSON(withHeaders, `["`+srv.URL+`/h", [["x-guest", "from-plugin"]]]`); err != nil || got != `"200 hello"` {
		t.Fatalf("fetch_with_headers: %q, %v", got, err)
	}
	mu.Lock()
	if len(guestHeaders) != 1 || guestHeaders[0] != "from-plugin" {
		t.Errorf("policy saw guest headers %q", guestHeaders)
	}
	if len(arrived) != 2 || arrived[1].Header.Get("X-Guest") != "" || arrived[1].Header.Get("Authorization") != "Bearer go-token" {
		t.Errorf("second request: %v", arrived[1:])
	}
	mu.Unlock()

	denied := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1) + "/other"
	_, err = fetch.CallJSON(idx, `["`+denied+`"]`)
	var pe *PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("denied fetch: want *PluginError, got %v", err)
	}
	t.Logf("denied: code %s, guest saw %q, host: %s", pe.Code, pe.Message, pe.HostMessage)
	mu.Lock()
	if len(arrived) != 2 {
		t.Errorf("the denied request arrived: %d requests", len(arrived))
	}
	if len(asked) != 3 {
		t.Errorf("policy asked %d times: %v", len(asked), asked)
	}
	mu.Unlock()

	h.Close()
	if atomicLive() == before {
		t.Errorf("callbacks released while the plugin still uses the policy")
	}
	fetch.Close()
	if live := atomicLive(); live != before {
		t.Errorf("%d callback handles still live after closing everything", live-before)
	}
	mu.Lock()
	defer mu.Unlock()
	if !containsSubstring(logs, "only the test server is allowed") {
		t.Errorf("no log line with the deny reason: %q", logs)
	}
}

func containsSubstring(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func atomicLive() int64 {
	liveMu.Lock()
	defer liveMu.Unlock()
	return liveCallbacks
}

func TestEgressPanicDenies(t *testing.T) {
	var arrived int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&arrived, 1)
	}))
	defer srv.Close()
	policy, err := NewEgressPolicy(func(req *Request) Verdict { panic("policy bug") })
	if err != nil {
		t.Fatal(err)
	}
	defer policy.Close()
	h := newHost(t, HostConfig{})
	fetch := load(t, h, "fetch", &LoadOptions{Egress: policy})
	_, err = fetch.CallJSON(0, `["`+srv.URL+`"]`)
	var pe *PluginError
	if !errors.As(err, &pe) || !strings.Contains(pe.HostMessage, "policy bug") {
		t.Errorf("want a denied request naming the panic, got %v", err)
	}
	if atomic.LoadInt32(&arrived) != 0 {
		t.Errorf("request arrived although the policy panicked")
	}
}

func TestConcurrentCalls(t *testing.T) {
	h := newHost(t, HostConfig{})
	basic := load(t, h, "BasicCalc", nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				out, err := basic.CallWire(calcAdd, wireI64Pair(int64(g), int64(i)))
				if err != nil || int64(binary.LittleEndian.Uint64(out)) != int64(g+i) {
					t.Errorf("add(%d, %d): %v %v", g, i, out, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	h := newHost(t, HostConfig{})
	p := load(t, h, "BasicCalc", nil)
	h.Close()
	if got := callAdd(t, p, 1, 1); got != 2 { // plugins outlive their host
		t.Errorf("add after host close: %d", got)
	}
	p.Close()
	p.Close()
	if _, err := p.CallWire(calcAdd, wireI64Pair(1, 1)); err != ErrClosed {
		t.Errorf("call after close: %v", err)
	}
	if _, err := h.Load("BasicCalc", nil); err != ErrClosed {
		t.Errorf("load after host close: %v", err)
	}
	if p.Info().Name != "BasicCalc" {
		t.Errorf("info after close: %+v", p.Info())
	}
}

func TestFinalizerReleasesCallbacks(t *testing.T) {
	before := atomicLive()
	func() {
		policy, err := NewEgressPolicy(func(*Request) Verdict { return Deny })
		if err != nil {
			t.Fatal(err)
		}
		h, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, Egress: policy})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Load("fetch", nil); err != nil {
			t.Fatal(err)
		}
		// policy, h and the plugin are dropped without Close.
	}()
	deadline := time.Now().Add(10 * time.Second)
	for atomicLive() != before && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if live := atomicLive(); live != before {
		t.Errorf("finalizers did not release everything: %d callbacks live", live-before)
	}
}
