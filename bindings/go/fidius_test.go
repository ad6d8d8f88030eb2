package fidius

import (
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
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

// allStatuses lists every Status constant of the package.
var allStatuses = []Status{
	StatusOK, StatusNullArgument, StatusInvalidUTF8, StatusInvalidArgument, StatusInvalidHandle,
	StatusInternalPanic, StatusIO, StatusUnsupported, StatusPluginNotFound, StatusNotAPlugin,
	StatusLibraryLoad, StatusArchitectureMismatch, StatusInvalidMagic, StatusRegistryVersion,
	StatusABIVersion, StatusInvalidDescriptor, StatusBufferStrategy, StatusInterfaceHashMismatch,
	StatusConfigRejected, StatusSignatureRequired, StatusSignatureInvalid, StatusInvalidManifest,
	StatusCapability, StatusMethodIndex, StatusNotImplemented, StatusPluginError, StatusPluginPanic,
	StatusSerialization, StatusUnknownStatus, StatusBufferTooSmall, StatusTimeout, StatusMemoryLimit,
	StatusFuelExhausted, StatusTrap, StatusStackOverflow, StatusArchive, StatusFileRefused,
	StatusSchemaMismatch, StatusCancelled,
}

func TestStatusNames(t *testing.T) {
	if StatusFileRefused != 61 || StatusFileRefused.String() != "file refused" {
		t.Errorf("StatusFileRefused = %d %q", int32(StatusFileRefused), StatusFileRefused.String())
	}
	if StatusArchive != 60 {
		t.Errorf("StatusArchive = %d", int32(StatusArchive))
	}
	// Every status the package declares is one libfidius knows (bindings/check_drift.py
	// checks the other direction against the header).
	for _, s := range allStatuses {
		if s.String() == "unknown status" {
			t.Errorf("libfidius does not know status %d", int32(s))
		}
	}
	if RuntimeUnknown.String() != "unknown" || (PluginInfo{}).Runtime != RuntimeUnknown {
		t.Errorf("RuntimeUnknown: %v", RuntimeUnknown)
	}
}

func TestFileRefused(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "libfifo.so")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	h, err := NewHost(HostConfig{SearchPaths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	// Refused before it is opened (reading a FIFO would block).
	_, err = h.LoadPath(fifo, "", nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != StatusFileRefused || !strings.Contains(fe.Message, "FIFO") {
		t.Errorf("LoadPath(FIFO): %v", err)
	}
	d, err := h.Discover()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Skipped) != 1 || d.Skipped[0].Path != fifo || d.Skipped[0].Status != StatusFileRefused {
		t.Errorf("discovery skipped %+v", d.Skipped)
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

func TestTrustPrecompiled(t *testing.T) {
	// Behaviour (an unsigned .cwasm is used only with this on) is tested on the Rust side.
	h := newHost(t, HostConfig{TrustPrecompiled: true})
	calc := load(t, h, "calc", nil)
	if got := callAdd(t, calc, 40, 2); got != 42 {
		t.Errorf("calc add = %d", got)
	}
}

func TestAllowCapabilities(t *testing.T) {
	t.Setenv("FIDIUS_FIXTURE_VAR", "go-value")
	// By default env:* is not allowed: caps (asking for env:FIDIUS_FIXTURE_VAR) is refused.
	h := newHost(t, HostConfig{})
	_, err := h.Load("caps", nil)
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != StatusCapability || !strings.Contains(fe.Message, "env:FIDIUS_FIXTURE_VAR") {
		t.Errorf("caps with the default allow-list: %v", err)
	}
	d, err := h.Discover()
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, p := range d.Plugins {
		listed = listed || p.Name == "caps"
	}
	if !listed {
		t.Errorf("discovery no longer lists caps")
	}

	h = newHost(t, HostConfig{AllowCapabilities: []string{"env:FIDIUS_*", "stdout", "clocks"}})
	caps := load(t, h, "caps", nil)
	idx, err := caps.MethodIndex("read_env")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := caps.CallJSON(idx, `["FIDIUS_FIXTURE_VAR"]`); err != nil || got != `"go-value"` {
		t.Errorf("read_env with env:FIDIUS_* allowed: %q, %v", got, err)
	}

	// One pattern replaces the default: stdout alone does not allow the rest.
	h = newHost(t, HostConfig{AllowCapabilities: []string{"stdout"}})
	if _, err := h.Load("caps", nil); !errors.Is(err, StatusCapability) {
		t.Errorf("caps with only stdout allowed: %v", err)
	}

	if _, err := NewHost(HostConfig{AllowCapabilities: []string{""}}); !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("empty pattern: %v", err)
	}
}

func TestGrants(t *testing.T) {
	t.Setenv("FIDIUS_FIXTURE_VAR", "secret")
	h := newHost(t, HostConfig{})
	for _, grants := range [][]string{{"stdout"}, {}} {
		caps := load(t, h, "caps", &LoadOptions{Grants: grants})
		idx, err := caps.MethodIndex("read_env")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := caps.CallJSON(idx, `["FIDIUS_FIXTURE_VAR"]`); err != nil || got != "null" {
			t.Errorf("read_env with grants %q: %q, %v", grants, got, err)
		}
	}
}

// packFid writes a .fid archive (tar + bzip2) of the calc fixture package.
func packFid(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("tar"); err != nil {
		t.Skip("tar not found")
	}
	if _, err := exec.LookPath("bzip2"); err != nil {
		t.Skip("bzip2 not found")
	}
	tmp := t.TempDir()
	pkg := filepath.Join(tmp, "calc-0.1.0")
	if err := os.Mkdir(pkg, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"package.toml", "calc.wasm"} {
		copyFile(t, filepath.Join(pluginDir(t), "calc", f), filepath.Join(pkg, f))
	}
	fid := filepath.Join(tmp, "calc-0.1.0.fid")
	if out, err := exec.Command("tar", "-cjf", fid, "-C", tmp, "calc-0.1.0").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	return fid
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestFid(t *testing.T) {
	fid := packFid(t)
	h := newHost(t, HostConfig{})
	calc, err := h.LoadFid(fid, &LoadOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer calc.Close()
	if calc.Info().Name != "calc" || callAdd(t, calc, 2, 40) != 42 {
		t.Errorf("calc from .fid: %+v", calc.Info())
	}

	dest := filepath.Join(t.TempDir(), "dest")
	dir, err := h.UnpackFid(fid, dest)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dest, "calc-0.1.0"); filepath.Clean(dir) != want {
		t.Errorf("UnpackFid = %q, want %q", dir, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "package.toml")); err != nil {
		t.Error(err)
	}
	unpacked, err := NewHost(HostConfig{SearchPaths: []string{dest}})
	if err != nil {
		t.Fatal(err)
	}
	defer unpacked.Close()
	if p := load(t, unpacked, "calc", nil); callAdd(t, p, 40, 2) != 42 {
		t.Errorf("unpacked calc")
	}

	bad := filepath.Join(t.TempDir(), "bad.fid")
	if err := os.WriteFile(bad, []byte("not an archive"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h.LoadFid(bad, nil); !errors.Is(err, StatusArchive) {
		t.Errorf("LoadFid(garbage): %v", err)
	}
	if _, err := h.UnpackFid(bad, dest+"2"); !errors.Is(err, StatusArchive) {
		t.Errorf("UnpackFid(garbage): %v", err)
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
	port := serverPort(t, srv)

	before := atomicLive()
	var asked, guestHeaders []string
	var destinations []destination
	policy, err := NewEgressPolicy(func(req *Request) Verdict {
		mu.Lock()
		asked = append(asked, req.Method()+" "+req.Scheme()+"://"+req.Authority()+req.PathAndQuery()+" by "+req.Plugin())
		destinations = append(destinations, destination{req.Host(), req.Port(), req.Addresses()})
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
	// The test server is on 127.0.0.1, which the SSRF floor would keep the policy from seeing.
	if err := policy.SetAllowPrivateRanges(true); err != nil {
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
	if want := (destination{"127.0.0.1", port, []string{"127.0.0.1"}}); len(destinations) != 1 || !reflect.DeepEqual(destinations[0], want) {
		t.Errorf("policy saw destinations %+v, want %+v", destinations, want)
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
	// A name: the canonical host is the lower-case name, with every address it resolved to.
	if d := destinations[len(destinations)-1]; d.Host != "localhost" || d.Port != port || !containsString(d.Addresses, "127.0.0.1") {
		t.Errorf("policy saw %+v for localhost", d)
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

type destination struct {
	Host      string
	Port      uint16
	Addresses []string
}

func serverPort(t *testing.T, srv *httptest.Server) uint16 {
	t.Helper()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(p)
}

func containsString(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
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
	if err := policy.SetAllowPrivateRanges(true); err != nil { // the server is on 127.0.0.1
		t.Fatal(err)
	}
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

func TestEgressSSRFFloor(t *testing.T) {
	var arrived int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt32(&arrived, 1)
		w.Write([]byte("hello"))
	}))
	defer srv.Close()
	var asked int32
	policy, err := NewEgressPolicy(func(req *Request) Verdict {
		atomic.AddInt32(&asked, 1)
		return Allow
	})
	if err != nil {
		t.Fatal(err)
	}
	defer policy.Close()
	h := newHost(t, HostConfig{Egress: policy})
	fetch := load(t, h, "fetch", nil)
	// Private ranges not allowed: the floor denies 127.0.0.1 before the policy is asked.
	_, err = fetch.CallJSON(0, `["`+srv.URL+`/floor"]`)
	var pe *PluginError
	if !errors.As(err, &pe) || !errors.Is(err, StatusPluginError) || !strings.Contains(pe.HostMessage, "SSRF floor") {
		t.Errorf("request to 127.0.0.1 without allow_private_ranges: %v", err)
	}
	if n := atomic.LoadInt32(&asked); n != 0 {
		t.Errorf("the policy was asked %d times", n)
	}
	if n := atomic.LoadInt32(&arrived); n != 0 {
		t.Errorf("%d requests arrived", n)
	}
	// Lifting the floor applies to requests decided afterwards.
	if err := policy.SetAllowPrivateRanges(true); err != nil {
		t.Fatal(err)
	}
	if got, err := fetch.CallJSON(0, `["`+srv.URL+`/lifted"]`); err != nil || got != `"200 hello"` {
		t.Errorf("after SetAllowPrivateRanges(true): %q, %v", got, err)
	}
	if atomic.LoadInt32(&asked) != 1 || atomic.LoadInt32(&arrived) != 1 {
		t.Errorf("asked %d, arrived %d", atomic.LoadInt32(&asked), atomic.LoadInt32(&arrived))
	}
	policy.Close()
	if err := policy.SetAllowPrivateRanges(false); err != ErrClosed {
		t.Errorf("SetAllowPrivateRanges after Close: %v", err)
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
