package fidius

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
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

// The rule a binding applies at load: same MAJOR and, before 1.0, same MINOR.
func TestCompatibleVersions(t *testing.T) {
	for _, c := range []struct {
		library, binding string
		ok               bool
	}{
		{"0.1.0", "0.1.0", true},
		{"0.1.7", "0.1.0", true},      // patch difference
		{"0.1.0", "0.1.3", true},      // either way
		{"1.4.2", "1.2.0", true},      // minor difference after 1.0
		{"0.1.0-rc.1", "0.1.0", true}, // a semver pre-release suffix is ignored
		{"0.2.0", "0.1.0", false},     // minor difference before 1.0
		{"0.1.0", "0.2.0", false},
		{"1.0.0", "0.1.0", false}, // major difference
		{"2.0.0", "1.9.9", false},
		{"", "0.1.0", false}, // malformed
		{"0.1", "0.1.0", false},
		{"0.1.0.0", "0.1.0", false},
		{"0.x.0", "0.1.0", false},
		{"v0.1.0", "0.1.0", false},
		{"0.1.0-", "0.1.0", false},
		{"0.1.0", "garbage", false},
	} {
		err := CompatibleVersions(c.library, c.binding)
		if (err == nil) != c.ok {
			t.Errorf("CompatibleVersions(%q, %q) = %v, want compatible %v", c.library, c.binding, err, c.ok)
		}
	}
	if err := CheckLibrary(); err != nil {
		t.Fatalf("the library under test is refused: %v", err)
	}
	ve := &VersionError{Library: "0.2.0", Binding: "0.1.0", Path: "/x/libfidius.so", Reason: "minor versions differ"}
	if !errors.Is(ve, ErrVersionMismatch) || !strings.Contains(ve.Error(), "0.2.0") ||
		!strings.Contains(ve.Error(), "0.1.0") || !strings.Contains(ve.Error(), "/x/libfidius.so") {
		t.Errorf("VersionError: %v", ve)
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
	for _, name := range []string{"BasicCalc", "OtherCalc", "ArenaImpl", "ConfiguredGreeter", "LegacyCalc", "LegacyArena", "TypedImpl", "calc", "caps", "fetch"} {
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
	if p := found["TypedImpl"]; p.Runtime != RuntimeNative || p.InterfaceName != "Typed" || p.MethodCount != 11 {
		t.Errorf("TypedImpl: %+v", p)
	}
	if len(d.Skipped) != 0 { // the schema beside libfixture_typed.so is no plugin, and not reported as one
		t.Errorf("skipped: %+v", d.Skipped)
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

// --- interface schemas, describe, Invoke, cancellation -----------------------

// typedWIT is TypedImpl's schema, the sidecar beside libfixture_typed.so.
func typedWIT(t *testing.T) string {
	return filepath.Join(pluginDir(t), "libfixture_typed.so.wit")
}

// typedAlone is a search path holding libfixture_typed.so without its
// sidecar schema: TypedImpl then has no method names or types.
func typedAlone(t *testing.T) string {
	dir := t.TempDir()
	copyFile(t, filepath.Join(pluginDir(t), "libfixture_typed.so"), filepath.Join(dir, "libfixture_typed.so"))
	return dir
}

const priceJSON = `[{"id": 1, "sku": "tea", "qty": 3, "unit_cents": 250}]`

func TestSchemas(t *testing.T) {
	wit, err := os.ReadFile(typedWIT(t))
	if err != nil {
		t.Fatal(err)
	}
	alone := typedAlone(t)
	bare, err := NewHost(HostConfig{SearchPaths: []string{alone}})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	// Without a schema: no names, no JSON.
	p := load(t, bare, "TypedImpl", nil)
	if _, err := p.CallJSON(2, priceJSON); !errors.Is(err, StatusUnsupported) {
		t.Errorf("JSON without a schema: %v", err)
	}
	if _, err := p.MethodIndex("price"); !errors.Is(err, StatusMethodIndex) {
		t.Errorf("MethodIndex without a schema: %v", err)
	}

	// LoadOptions.Schema (text) and LoadOptions.SchemaFile.
	for _, opts := range []*LoadOptions{{Schema: string(wit)}, {SchemaFile: typedWIT(t)}} {
		p := load(t, bare, "TypedImpl", opts)
		idx, err := p.MethodIndex("price")
		if err != nil || idx != 2 {
			t.Fatalf("MethodIndex(price) = %d, %v", idx, err)
		}
		if got, err := p.CallJSON(idx, priceJSON); err != nil || got != "750" {
			t.Errorf("price with %+v: %q, %v", opts.SchemaFile, got, err)
		}
		if name, ok := p.MethodName(6); !ok || name != "totals" {
			t.Errorf("MethodName(6) = %q", name)
		}
	}

	// HostConfig.Schemas (text) and HostConfig.SchemaFiles.
	for _, cfg := range []HostConfig{{Schemas: []string{string(wit)}}, {SchemaFiles: []string{typedWIT(t)}}} {
		cfg.SearchPaths = []string{alone}
		h, err := NewHost(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := load(t, h, "TypedImpl", nil)
		h.Close()
		if got, err := p.CallJSON(2, priceJSON); err != nil || got != "750" {
			t.Errorf("price with a host schema: %q, %v", got, err)
		}
	}

	// Errors: not WIT; both Schema and SchemaFile; a schema listing fewer methods than the plugin has.
	if _, err := NewHost(HostConfig{Schemas: []string{"not wit {"}}); !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("host schema that is not WIT: %v", err)
	}
	if _, err := NewHost(HostConfig{SchemaFiles: []string{filepath.Join(alone, "missing.wit")}}); !errors.Is(err, StatusIO) {
		t.Errorf("missing schema file: %v", err)
	}
	if _, err := bare.Load("TypedImpl", &LoadOptions{Schema: "not wit {"}); !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("load schema that is not WIT: %v", err)
	}
	if _, err := bare.Load("TypedImpl", &LoadOptions{Schema: string(wit), SchemaFile: typedWIT(t)}); !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("Schema and SchemaFile: %v", err)
	}
	short := "package fixture:short;\ninterface typed {\n  greet: func(name: string) -> string;\n}\n"
	_, err = bare.Load("TypedImpl", &LoadOptions{Schema: short})
	var fe *Error
	if !errors.As(err, &fe) || fe.Status != StatusSchemaMismatch {
		t.Errorf("a schema with fewer methods: %v", err)
	}
}

func TestTypedJSON(t *testing.T) {
	h := newHost(t, HostConfig{})
	typed := load(t, h, "TypedImpl", nil) // its schema comes from libfixture_typed.so.wit
	price, err := typed.MethodIndex("price")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := typed.CallJSON(price, priceJSON); err != nil || got != "750" {
		t.Errorf("price: %q, %v", got, err)
	}
	totals, err := typed.MethodIndex("totals")
	if err != nil {
		t.Fatal(err)
	}
	got, err := typed.CallJSON(totals, `[[{"id": 1, "sku": "tea", "qty": 2, "unit_cents": 5}, {"id": 2, "sku": "cup", "qty": 1, "unit_cents": 7, "note": "blue"}]]`)
	if err != nil || strings.ReplaceAll(got, " ", "") != `[{"sku":"tea","cents":10},{"sku":"cup","cents":7}]` {
		t.Errorf("totals: %q, %v", got, err)
	}
	// Arguments by name (an object), and an error naming the path.
	if got, err := typed.CallJSON(price, `{"order": {"id": 1, "sku": "x", "qty": 2, "unit_cents": -4}}`); err != nil || got != "-8" {
		t.Errorf("price by name: %q, %v", got, err)
	}
	_, err = typed.CallJSON(price, `[{"id": 1, "sku": "x", "qty": -1, "unit_cents": 1}]`)
	var fe *Error
	if !errors.As(err, &fe) || !strings.Contains(fe.Message, "qty") {
		t.Errorf("qty -1: %v", err)
	}
}

func TestDescribe(t *testing.T) {
	h := newHost(t, HostConfig{})
	typed := load(t, h, "TypedImpl", nil)
	d, err := typed.Describe()
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "TypedImpl" || d.Interface != "Typed" || d.Runtime != "native" || d.ABIVersion != 500 || d.BufferStrategy != "plugin-allocated" {
		t.Errorf("describe: %+v", d)
	}
	if d.InterfaceHash != typed.Info().InterfaceHash || !strings.HasSuffix(d.TypesFrom, "libfixture_typed.so.wit") {
		t.Errorf("hash %#x (info %#x), types from %q", d.InterfaceHash, typed.Info().InterfaceHash, d.TypesFrom)
	}
	if len(d.Methods) != 11 || d.Methods[2].Name != "price" || d.Methods[2].Returns != "s64" ||
		!reflect.DeepEqual(d.Methods[2].Params, []Param{{"order", "order"}}) {
		t.Fatalf("methods: %+v", d.Methods)
	}
	if m := d.Methods[8]; m.Name != "divide" || m.Fallible == nil || !*m.Fallible || m.Result != "result<s64, plugin-error>" {
		t.Errorf("divide: %+v", m)
	}
	if m := d.Methods[10]; m.Name != "nothing" || m.Params == nil || len(m.Params) != 0 || m.Returns != "" || !m.Implemented {
		t.Errorf("nothing: %+v", m)
	}
	order := d.Type("order")
	if order == nil || order.Kind != "record" || len(order.Fields) != 5 || order.Fields[3] != (Param{"unit-cents", "s64"}) {
		t.Errorf("type order: %+v", order)
	}
	if shape := d.Type("shape"); shape == nil || shape.Kind != "variant" || len(shape.Cases) != 3 || shape.Cases[1] != (TypeCase{"circle", "f64"}) {
		t.Errorf("type shape: %+v", shape)
	}
	var raw map[string]any
	if err := json.Unmarshal(d.JSON, &raw); err != nil || raw["name"] != "TypedImpl" {
		t.Errorf("JSON: %v %v", raw, err)
	}

	// A native plugin without a schema: names and types unknown.
	basic := load(t, h, "BasicCalc", nil)
	if d, err := basic.Describe(); err != nil || d.TypesFrom != "" || d.Methods[0].Name != "" || d.Methods[0].Params != nil ||
		d.Methods[0].Fallible != nil || d.Metadata["owner"] != "fixtures" || d.CapabilityBits == nil {
		t.Errorf("BasicCalc: %+v, %v", d, err)
	}
	// A WASM component: its own types.
	calc := load(t, h, "calc", nil)
	if d, err := calc.Describe(); err != nil || d.Runtime != "wasm" || d.TypesFrom != "component" || d.Methods[0].Name != "add" ||
		d.Capabilities == nil || d.CapabilityBits != nil || d.Type("point") == nil {
		t.Errorf("calc: %+v, %v", d, err)
	}
	basic.Close()
	if _, err := basic.Describe(); err != ErrClosed {
		t.Errorf("Describe after Close: %v", err)
	}
}

// Go types for TypedImpl's records (snake_case keys).
type order struct {
	ID        uint64  `json:"id"`
	SKU       string  `json:"sku"`
	Qty       uint32  `json:"qty"`
	UnitCents int64   `json:"unit_cents"`
	Note      *string `json:"note,omitempty"`
}

type line struct {
	SKU   string `json:"sku"`
	Cents int64  `json:"cents"`
}

func TestInvoke(t *testing.T) {
	h := newHost(t, HostConfig{})
	typed := load(t, h, "TypedImpl", nil)
	var cents int64
	if err := typed.Invoke("price", &cents, order{ID: 1, SKU: "tea", Qty: 3, UnitCents: 250}); err != nil || cents != 750 {
		t.Errorf("price: %d, %v", cents, err)
	}
	note := "gift"
	var lines []line
	if err := typed.Invoke("totals", &lines, []order{{ID: 1, SKU: "tea", Qty: 2, UnitCents: 5}, {ID: 2, SKU: "cup", Qty: 1, UnitCents: 7, Note: &note}}); err != nil ||
		!reflect.DeepEqual(lines, []line{{"tea", 10}, {"cup", 7}}) {
		t.Errorf("totals: %+v, %v", lines, err)
	}
	var greeting string
	if err := typed.Invoke("greet", &greeting, "Go"); err != nil || greeting != "Hello, Go!" {
		t.Errorf("greet: %q, %v", greeting, err)
	}
	// 64-bit integers: Go's marshal writes them exactly; the result here is a string anyway.
	var widths string
	if err := typed.Invoke("widths", &widths, int8(-1), int16(-2), int32(-3), int64(-4), uint8(5), uint16(6), uint32(7), uint64(1<<64-1)); err != nil ||
		widths != "-1,-2,-3,-4,5,6,7,18446744073709551615" {
		t.Errorf("widths: %q, %v", widths, err)
	}
	var doubled *uint32
	if err := typed.Invoke("maybe_double", &doubled, 21); err != nil || doubled == nil || *doubled != 42 {
		t.Errorf("maybe_double(21): %v, %v", doubled, err)
	}
	if err := typed.Invoke("maybe-double", &doubled, nil); err != nil || doubled != nil {
		t.Errorf("maybe-double(nil): %v, %v", doubled, err)
	}
	var area float64
	if err := typed.Invoke("area", &area, map[string]any{"Rect": map[string]float64{"w": 2, "h": 3}}); err != nil || area != 6 {
		t.Errorf("area: %v, %v", area, err)
	}
	var scaled map[string]float64
	if err := typed.Invoke("scale", &scaled, map[string]float64{"Circle": 1.5}, 2.0); err != nil || scaled["Circle"] != 3 {
		t.Errorf("scale: %v, %v", scaled, err)
	}
	var pairs [][2]any // a map is [key, value] pairs, in no particular order
	if err := typed.Invoke("tally", &pairs, []string{"a", "b", "a"}); err != nil || len(pairs) != 2 {
		t.Fatalf("tally: %v, %v", pairs, err)
	}
	counts := map[any]string{}
	for _, kv := range pairs {
		counts[kv[0]] = kv[1].(json.Number).String()
	}
	if !reflect.DeepEqual(counts, map[any]string{"a": "2", "b": "1"}) {
		t.Errorf("tally: %v", counts)
	}
	// list<u8> is an array of numbers; encoding/json writes a []byte as base64 (refused) and
	// reads one only from base64: use another integer slice.
	var nums []uint16
	if err := typed.Invoke("reverse", &nums, []uint16{1, 2, 3}); err != nil || !reflect.DeepEqual(nums, []uint16{3, 2, 1}) {
		t.Errorf("reverse: %v %v", nums, err)
	}
	if err := typed.Invoke("nothing", nil); err != nil {
		t.Errorf("nothing: %v", err)
	}
	// Beyond 2^53 a 64-bit integer is a decimal string (either way in, a string out);
	// json.Number takes both forms.
	var big json.Number
	if err := typed.Invoke("price", &big, map[string]any{"id": 1, "sku": "x", "qty": 2, "unit_cents": "9007199254740993"}); err != nil ||
		big != "18014398509481986" {
		t.Errorf("price beyond 2^53: %#v, %v", big, err)
	}
	if err := typed.Invoke("price", &big, order{ID: 1, SKU: "x", Qty: 2, UnitCents: 21}); err != nil || big != "42" {
		t.Errorf("price into a json.Number: %#v, %v", big, err)
	}
	var anything any
	if err := typed.Invoke("price", &anything, order{ID: 1, SKU: "x", Qty: 2, UnitCents: 21}); err != nil || anything != json.Number("42") {
		t.Errorf("price into an any: %#v, %v", anything, err)
	}
	checkDivZero(t, typed.Invoke("divide", &cents, 7, 0))
	if err := typed.Invoke("divide", &cents, 7, 2); err != nil || cents != 3 {
		t.Errorf("divide(7, 2): %d, %v", cents, err)
	}
	if err := typed.Invoke("no-such-method", nil); !errors.Is(err, StatusMethodIndex) {
		t.Errorf("unknown method: %v", err)
	}
	if err := typed.Invoke("price", &cents, "not an order"); !errors.Is(err, StatusSerialization) && !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("bad argument: %v", err)
	}
	if err := typed.Invoke("greet", &cents, "x"); err == nil {
		t.Errorf("result into the wrong type: %v", err)
	}
	if err := typed.Invoke("greet", &greeting, func() {}); err == nil {
		t.Errorf("an argument encoding/json cannot marshal: no error")
	}

	// WASM plugins alike.
	calc := load(t, h, "calc", nil)
	var sum int64
	if err := calc.Invoke("add", &sum, 2, 40); err != nil || sum != 42 {
		t.Errorf("calc add: %d, %v", sum, err)
	}
	type point struct {
		X     int32  `json:"x"`
		Y     int32  `json:"y"`
		Label string `json:"label"`
	}
	var moved point
	if err := calc.Invoke("shift", &moved, point{1, 2, "p"}, 3); err != nil || moved.X != 4 || moved.Y != 2 {
		t.Errorf("calc shift: %+v, %v", moved, err)
	}
	checkDivZero(t, calc.Invoke("divide", &sum, 7, 0))
}

// loadCaps loads the caps package, whose sleep_ms blocks in a host call
// (wasi:clocks). Its manifest asks for env:FIDIUS_FIXTURE_VAR, which the
// default allow-list refuses; @default keeps the default allowance.
func loadCaps(t *testing.T) *Plugin {
	h := newHost(t, HostConfig{AllowCapabilities: []string{"@default", "env:FIDIUS_FIXTURE_VAR"}})
	return load(t, h, "caps", nil)
}

// cancelAfter cancels a context 100 ms from now and returns when it did.
func cancelAfter(ctx context.Context) (context.Context, func() time.Time) {
	ctx, cancel := context.WithCancel(ctx)
	at := make(chan time.Time, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		at <- time.Now()
		cancel()
	}()
	return ctx, func() time.Time { return <-at }
}

func TestCancel(t *testing.T) {
	caps := loadCaps(t)
	sleep, err := caps.MethodIndex("sleep_ms")
	if err != nil || sleep != 5 {
		t.Fatalf("sleep_ms: %d, %v", sleep, err)
	}
	for _, via := range []string{"CallJSONContext", "InvokeContext", "CallContext"} {
		ctx, cancelledAt := cancelAfter(context.Background())
		start := time.Now()
		switch via {
		case "CallJSONContext":
			_, err = caps.CallJSONContext(ctx, sleep, "[1000000000000]")
		case "InvokeContext":
			err = caps.InvokeContext(ctx, "sleep_ms", nil, uint64(1000000000000))
		case "CallContext":
			_, err = caps.CallContext(ctx, sleep, FormatWire, binary.LittleEndian.AppendUint64(nil, 1000000000000))
		}
		returned := time.Now()
		var fe *Error
		if !errors.As(err, &fe) || fe.Status != StatusCancelled || !errors.Is(err, StatusCancelled) || !errors.Is(err, context.Canceled) {
			t.Fatalf("%s: sleep_ms cancelled: %v", via, err)
		}
		if lag := returned.Sub(cancelledAt()); returned.Sub(start) < 90*time.Millisecond || lag > time.Second {
			t.Errorf("%s: returned %v after the start, %v after the cancel", via, returned.Sub(start), lag)
		}
		var slept uint64 // the plugin serves the next call
		if err := caps.InvokeContext(context.Background(), "sleep_ms", &slept, 1); err != nil || slept != 1 {
			t.Errorf("%s: sleep_ms(1) after a cancelled call: %d, %v", via, slept, err)
		}
	}

	// A deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := caps.CallJSONContext(ctx, sleep, "[1000000000000]"); !errors.Is(err, StatusCancelled) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline: %v", err)
	}
	// A context that is never done changes nothing.
	live, stop := context.WithCancel(context.Background())
	if got, err := caps.CallJSONContext(live, sleep, "[2]"); err != nil || got != "2" {
		t.Errorf("live context: %q, %v", got, err)
	}
	stop()

	// Native: observed before the call starts.
	h := newHost(t, HostConfig{})
	basic := load(t, h, "BasicCalc", nil)
	if out, err := basic.CallWireContext(context.Background(), calcAdd, wireI64Pair(2, 3)); err != nil || binary.LittleEndian.Uint64(out) != 5 {
		t.Errorf("native call with a context: %v, %v", out, err)
	}
	done, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	if _, err := basic.CallWireContext(done, calcAdd, wireI64Pair(2, 3)); !errors.Is(err, StatusCancelled) || !errors.Is(err, context.Canceled) {
		t.Errorf("native call with a done context: %v", err)
	}
	typed := load(t, h, "TypedImpl", nil)
	if err := typed.InvokeContext(done, "greet", nil, "x"); !errors.Is(err, StatusCancelled) {
		t.Errorf("native Invoke with a done context: %v", err)
	}
}

// A WASM call looping in guest code (caps.spin: never calls the host), with
// no timeout, stops when its context is cancelled from another goroutine,
// and the plugin serves the next call.
func TestCancelSpinningCall(t *testing.T) {
	caps := loadCaps(t)
	spin, err := caps.MethodIndex("spin")
	if err != nil || spin != 7 {
		t.Fatalf("spin: %d, %v", spin, err)
	}
	for _, via := range []string{"InvokeContext", "CallContext"} {
		ctx, cancelledAt := cancelAfter(context.Background())
		errs := make(chan error, 1)
		go func() {
			switch via {
			case "InvokeContext":
				errs <- caps.InvokeContext(ctx, "spin", nil, uint64(math.MaxUint64))
			case "CallContext":
				_, err := caps.CallContext(ctx, spin, FormatWire, binary.LittleEndian.AppendUint64(nil, math.MaxUint64))
				errs <- err
			}
		}()
		select {
		case err := <-errs:
			var fe *Error
			if !errors.As(err, &fe) || fe.Status != StatusCancelled || !errors.Is(err, context.Canceled) {
				t.Fatalf("%s: spin(u64::MAX) cancelled: %v", via, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: spin(u64::MAX) still running 10 s after the start (cancelled at %v)", via, cancelledAt())
		}
		var rounds uint64 // the plugin serves the next call
		if err := caps.InvokeContext(context.Background(), "spin", &rounds, 1000); err != nil || rounds != 1000 {
			t.Errorf("%s: spin(1000) after a cancelled spin: %d, %v", via, rounds, err)
		}
	}
}

func TestCloseCancelsBlockedCalls(t *testing.T) {
	caps := loadCaps(t)
	// Calls blocked for good (no timeout; no context, or one never
	// cancelled): Close must not wait for them to end by themselves.
	errs := make(chan error, 3)
	go func() {
		_, err := caps.CallJSON(5, "[1000000000000]")
		errs <- err
	}()
	go func() {
		errs <- caps.InvokeContext(context.Background(), "sleep_ms", nil, 1000000000000)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		errs <- caps.InvokeContext(ctx, "sleep_ms", nil, 1000000000000)
	}()
	time.Sleep(200 * time.Millisecond)
	closed := make(chan struct{})
	start := time.Now()
	go func() {
		caps.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs on blocked calls")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	for i := 0; i < 3; i++ {
		var err error
		select {
		case err = <-errs:
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked call did not return after Close")
		}
		if !errors.Is(err, StatusCancelled) || !errors.Is(err, ErrClosed) {
			t.Errorf("call in flight at Close: %v", err)
		}
	}
	if _, err := caps.CallJSON(5, "[1]"); err != ErrClosed {
		t.Errorf("call after Close: %v", err)
	}
	if err := caps.InvokeContext(ctx, "sleep_ms", nil, 1); err != ErrClosed {
		t.Errorf("InvokeContext after Close: %v", err)
	}
}

// --- host functions -------------------------------------------------------------

// KvUser method indices (tests/fixtures/{native,wasm}/hostfn: KvUserImpl and
// the package hostfn), which call back into the host interface Kv: index 0
// get(key) -> Option<String>, 1 put(key, value) -> Result<(), PluginError>.
const (
	kvFetch       = 0
	kvStore       = 1
	kvCopy        = 2
	kvHostHash    = 3
	kvHostVersion = 4
)

func wireStrings(ss ...string) []byte {
	var out []byte
	for _, s := range ss {
		out = append(out, wireString(s)...)
	}
	return out
}

// readWireString decodes a wire string at the start of b; the rest follows it.
func readWireString(b []byte) (s string, rest []byte, ok bool) {
	if len(b) < 8 {
		return "", nil, false
	}
	n := binary.LittleEndian.Uint64(b)
	if uint64(len(b)-8) < n {
		return "", nil, false
	}
	return string(b[8 : 8+n]), b[8+n:], true
}

// kvStoreImpl is a Kv host interface over a Go map.
type kvStoreImpl struct {
	mu    sync.Mutex
	data  map[string]string
	calls int
}

func (kv *kvStoreImpl) fn(index uint32, input []byte) ([]byte, error) {
	key, rest, ok := readWireString(input)
	if !ok {
		return nil, errors.New("kv: malformed key")
	}
	kv.mu.Lock()
	defer kv.mu.Unlock()
	kv.calls++
	switch index {
	case 0: // get(key) -> Option<String>
		v, found := kv.data[key]
		if !found {
			return []byte{0}, nil
		}
		return append([]byte{1}, wireString(v)...), nil
	case 1: // put(key, value) -> Result<(), PluginError>
		value, _, ok := readWireString(rest)
		if !ok {
			return nil, errors.New("kv: malformed value")
		}
		switch key {
		case "forbidden":
			return nil, &PluginError{Code: "DENIED", Message: "that key is not yours", Details: `{"key":"forbidden"}`, HasDetails: true}
		case "wrapped":
			return nil, fmt.Errorf("kv: %w", &PluginError{Code: "WRAPPED", Message: "found through errors.As"})
		case "fail":
			return nil, errors.New("disk on fire")
		case "panic":
			panic("kv exploded")
		case "gc":
			runtime.GC() // a collection inside a host function
		}
		kv.data[key] = value
		return nil, nil // (): nothing to answer
	}
	return nil, fmt.Errorf("kv: no function %d", index)
}

func (kv *kvStoreImpl) get(key string) (string, bool) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.data[key]
	return v, ok
}

func kvFetchCall(p *Plugin, key string) (value string, found bool, err error) {
	out, err := p.CallWire(kvFetch, wireString(key))
	if err != nil {
		return "", false, err
	}
	if len(out) == 1 && out[0] == 0 {
		return "", false, nil
	}
	if len(out) < 1 || out[0] != 1 {
		return "", false, fmt.Errorf("fetch: bad output %q", out)
	}
	v, rest, ok := readWireString(out[1:])
	if !ok || len(rest) != 0 {
		return "", false, fmt.Errorf("fetch: bad output %q", out)
	}
	return v, true, nil
}

func wantPluginCode(t *testing.T, label string, err error, code string) *PluginError {
	t.Helper()
	var pe *PluginError
	if !errors.As(err, &pe) {
		t.Errorf("%s: want a *PluginError %s, got %T %v", label, code, err, err)
		return nil
	}
	if pe.Code != code {
		t.Errorf("%s: code %q (message %q), want %s", label, pe.Code, pe.Message, code)
	}
	return pe
}

// exerciseKv runs the KvUser methods of p against kv (registered for p).
func exerciseKv(t *testing.T, p *Plugin, kv *kvStoreImpl, runtime string) {
	t.Helper()
	key, value := "greeting-"+runtime, "hello from the "+runtime+" plugin, ünïcode"
	if _, err := p.CallWire(kvStore, wireStrings(key, value)); err != nil {
		t.Fatalf("%s store: %v", runtime, err)
	}
	if got, ok := kv.get(key); !ok || got != value {
		t.Errorf("%s store: the Go map has %q (%v)", runtime, got, ok)
	}
	if got, found, err := kvFetchCall(p, key); err != nil || !found || got != value {
		t.Errorf("%s fetch: %q %v %v", runtime, got, found, err)
	}
	if _, found, err := kvFetchCall(p, "missing"); err != nil || found {
		t.Errorf("%s fetch(missing): found %v, %v", runtime, found, err)
	}
	// copy: two host calls in one plugin call.
	if out, err := p.CallWire(kvCopy, wireStrings(key, key+"-copy")); err != nil || len(out) != 1 || out[0] != 1 {
		t.Errorf("%s copy: %q %v", runtime, out, err)
	}
	if got, _ := kv.get(key + "-copy"); got != value {
		t.Errorf("%s copy: the Go map has %q", runtime, got)
	}
	if _, err := p.CallWire(kvStore, wireStrings("gc", "collected")); err != nil {
		t.Errorf("%s store(gc): %v", runtime, err)
	}

	// A *PluginError from the host function reaches the plugin, which returns it unchanged.
	_, err := p.CallWire(kvStore, wireStrings("forbidden", "x"))
	if pe := wantPluginCode(t, runtime+" store(forbidden)", err, "DENIED"); pe != nil {
		if pe.Message != "that key is not yours" || !pe.HasDetails || strings.ReplaceAll(pe.Details, " ", "") != `{"key":"forbidden"}` {
			t.Errorf("%s store(forbidden): message %q details %q (%v)", runtime, pe.Message, pe.Details, pe.HasDetails)
		}
		if !errors.Is(err, StatusPluginError) {
			t.Errorf("%s store(forbidden): not StatusPluginError", runtime)
		}
	}
	_, err = p.CallWire(kvStore, wireStrings("wrapped", "x"))
	if pe := wantPluginCode(t, runtime+" store(wrapped)", err, "WRAPPED"); pe != nil && pe.HasDetails {
		t.Errorf("%s store(wrapped): details %q", runtime, pe.Details)
	}
	// Any other error, or a panic, is a host failure: the plugin sees the host panicking.
	_, err = p.CallWire(kvStore, wireStrings("fail", "x"))
	if pe := wantPluginCode(t, runtime+" store(fail)", err, "HOST_PANIC"); pe != nil && !strings.Contains(pe.Message, "disk on fire") {
		t.Errorf("%s store(fail): message %q", runtime, pe.Message)
	}
	_, err = p.CallWire(kvStore, wireStrings("panic", "x"))
	if pe := wantPluginCode(t, runtime+" store(panic)", err, "HOST_PANIC"); pe != nil &&
		(!strings.Contains(pe.Message, "host function panicked") || !strings.Contains(pe.Message, "kv exploded")) {
		t.Errorf("%s store(panic): message %q", runtime, pe.Message)
	}
	// ... and the plugin keeps serving.
	if got, found, err := kvFetchCall(p, key); err != nil || !found || got != value {
		t.Errorf("%s fetch after the panic: %q %v %v", runtime, got, found, err)
	}
}

// TestHostFunctions has every native assertion: a native library is bound to
// one implementation of an interface per process at a time (and, once bound,
// no longer answers "not bound" without one: that check comes first).
func TestHostFunctions(t *testing.T) {
	before := atomicLive()

	// Without Kv: read the identity the plugins were built against; their
	// host calls fail with fidius' "not bound".
	var hash uint64
	var version uint32
	func() {
		h := newHost(t, HostConfig{})
		for _, name := range []string{"KvUserImpl", "hostfn"} {
			p := load(t, h, name, nil)
			out, err := p.CallWire(kvHostHash, nil)
			if err != nil || len(out) != 8 {
				t.Fatalf("%s host_hash: %q %v", name, out, err)
			}
			if got := binary.LittleEndian.Uint64(out); hash == 0 {
				hash = got
			} else if got != hash {
				t.Errorf("native and WASM Kv hashes differ: %#x, %#x", hash, got)
			}
			out, err = p.CallWire(kvHostVersion, nil)
			if err != nil || len(out) != 4 {
				t.Fatalf("%s host_version: %q %v", name, out, err)
			}
			version = binary.LittleEndian.Uint32(out)
			_, err = p.CallWire(kvFetch, wireString("k"))
			wantPluginCode(t, name+" fetch without Kv", err, "HOST_NOT_BOUND")
			p.Close()
		}
		h.Close()
	}()
	if version != 1 || hash == 0 {
		t.Fatalf("Kv identity: version %d hash %#x", version, hash)
	}

	if _, err := NewHostInterface("Kv", hash, version, 2, nil); !errors.Is(err, StatusNullArgument) {
		t.Errorf("nil HostFunc: %v", err)
	}
	if _, err := NewHostInterface("", hash, version, 2, (&kvStoreImpl{}).fn); !errors.Is(err, StatusInvalidArgument) {
		t.Errorf("empty name: %v", err)
	}
	if live := atomicLive(); live != before {
		t.Errorf("refused interfaces left %d handles", live-before)
	}

	// Kv on the host: both plugins store into the Go map.
	kv := &kvStoreImpl{data: map[string]string{}}
	iface, err := NewHostInterface("Kv", hash, version, 2, kv.fn)
	if err != nil {
		t.Fatal(err)
	}
	if iface.Name() != "Kv" {
		t.Errorf("Name() = %q", iface.Name())
	}
	h, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, HostInterfaces: []*HostInterface{iface}})
	if err != nil {
		t.Fatal(err)
	}
	iface.Close() // the host holds its own reference
	iface.Close()
	native, err := h.Load("KvUserImpl", nil)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := h.Load("hostfn", nil)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC() // the HostFunc stays reachable through its handle
	exerciseKv(t, native, kv, "native")
	exerciseKv(t, wasm, kv, "wasm")
	// Concurrent calls, each calling Kv (a WASM plugin's host calls run on a thread started for them).
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 5; i++ {
				key := fmt.Sprintf("g%d-%d", g, i)
				if _, err := wasm.CallWire(kvStore, wireStrings(key, "v")); err != nil {
					t.Errorf("concurrent store %s: %v", key, err)
				} else if got, found, err := kvFetchCall(native, key); err != nil || !found || got != "v" {
					t.Errorf("concurrent fetch %s (native): %q %v %v", key, got, found, err)
				}
			}
		}(g)
	}
	wg.Wait()
	if desc, err := native.DescribeJSON(); err != nil || !strings.Contains(string(desc), `"host_imports"`) {
		t.Errorf("describe: %s %v", desc, err)
	} else {
		var d struct {
			HostImports []struct {
				Name    string `json:"name"`
				Version uint32 `json:"version"`
				Bound   bool   `json:"bound"`
			} `json:"host_imports"`
		}
		if err := json.Unmarshal(desc, &d); err != nil || len(d.HostImports) != 1 || d.HostImports[0].Name != "Kv" ||
			d.HostImports[0].Version != version || !d.HostImports[0].Bound {
			t.Errorf("describe host_imports: %+v %v", d.HostImports, err)
		}
	}

	// A second, different implementation: the WASM plugin takes it through its
	// load options; the native library, bound to a live one, refuses it.
	other := &kvStoreImpl{data: map[string]string{}}
	otherIface, err := NewHostInterface("Kv", hash, version, 2, other.fn)
	if err != nil {
		t.Fatal(err)
	}
	defer otherIface.Close()
	wasm2, err := h.Load("hostfn", &LoadOptions{HostInterfaces: []*HostInterface{otherIface}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wasm2.CallWire(kvStore, wireStrings("only-other", "2")); err != nil {
		t.Errorf("store through the load options' Kv: %v", err)
	}
	if _, ok := other.get("only-other"); !ok {
		t.Errorf("the load options' Kv did not get the store")
	}
	if _, ok := kv.get("only-other"); ok {
		t.Errorf("the host's Kv got a store meant for the load options' one")
	}
	wasm2.Close()
	if _, err := h.Load("KvUserImpl", &LoadOptions{HostInterfaces: []*HostInterface{otherIface}}); !errors.Is(err, StatusHostInterface) {
		t.Errorf("native library bound to a live implementation, loaded with another: %v", err)
	}
	// A mismatched identity fails a native load.
	badIface, err := NewHostInterface("Kv", hash^1, version, 2, other.fn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Load("KvUserImpl", &LoadOptions{HostInterfaces: []*HostInterface{badIface}}); !errors.Is(err, StatusHostInterface) {
		t.Errorf("native load with a mismatched hash: %v", err)
	}
	badIface.Close()

	// The plugins keep the interface after the host is closed.
	h.Close()
	if atomicLive() == before {
		t.Errorf("Kv released while plugins use it")
	}
	if _, found, err := kvFetchCall(native, "greeting-native"); err != nil || !found {
		t.Errorf("native fetch after the host closed: %v %v", found, err)
	}
	native.Close()
	wasm.Close()

	// The first implementation is gone: the library binds to the other one.
	h2 := newHost(t, HostConfig{})
	native2 := load(t, h2, "KvUserImpl", &LoadOptions{HostInterfaces: []*HostInterface{otherIface}})
	if _, err := native2.CallWire(kvStore, wireStrings("native-other", "3")); err != nil {
		t.Errorf("store through the rebound native library: %v", err)
	}
	if _, ok := other.get("native-other"); !ok {
		t.Errorf("the rebound native library did not reach the other Kv")
	}
	native2.Close()
	h2.Close()
	otherIface.Close()
	if live := atomicLive(); live != before {
		t.Errorf("%d callback handles still live after closing everything", live-before)
	}
}
