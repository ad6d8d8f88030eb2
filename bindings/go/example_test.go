package fidius_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"libfidius.invalid/fidius"
)

// plugins is where the examples find plugins: the fixture plugins of the
// source tree (make -C examples-c build/plugins), or $FIDIUS_PLUGIN_DIR.
func plugins() string {
	if dir := os.Getenv("FIDIUS_PLUGIN_DIR"); dir != "" {
		return dir
	}
	return "../../examples-c/build/plugins"
}

// Load plugins and call them: a WASM component with JSON, a native cdylib
// with Fidius wire bytes (bincode: two little-endian i64 in, one out).
func Example() {
	host, err := fidius.NewHost(fidius.HostConfig{SearchPaths: []string{plugins()}})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()

	calc, err := host.Load("calc", nil) // a WASM package
	if err != nil {
		log.Fatal(err)
	}
	defer calc.Close()
	add, err := calc.MethodIndex("add")
	if err != nil {
		log.Fatal(err)
	}
	sum, err := calc.CallJSON(add, "[2, 40]")
	fmt.Println(calc.Info().Runtime, sum, err)

	native, err := host.Load("BasicCalc", nil) // a native plugin
	if err != nil {
		log.Fatal(err)
	}
	defer native.Close()
	in := binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 20), 22)
	out, err := native.CallWire(0, in)
	fmt.Println(native.Info().Runtime, int64(binary.LittleEndian.Uint64(out)), err)
	// Output:
	// wasm 42 <nil>
	// native 42 <nil>
}

// Invoke calls a method by name with Go values (through JSON); a plugin's own
// error comes back as a *PluginError.
func ExamplePlugin_Invoke() {
	host, err := fidius.NewHost(fidius.HostConfig{SearchPaths: []string{plugins()}})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	calc, err := host.Load("calc", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer calc.Close()

	var sum int64
	err = calc.Invoke("add", &sum, 2, 40)
	fmt.Println(sum, err)

	var quotient int64
	err = calc.Invoke("divide", &quotient, 7, 0)
	var pe *fidius.PluginError
	if errors.As(err, &pe) {
		fmt.Println(pe.Code, pe.Message, errors.Is(err, fidius.StatusPluginError))
	}
	// Output:
	// 42 <nil>
	// DIV_ZERO division by zero true
}

// An egress policy decides on each outbound HTTP request of a WASM plugin
// before anything is sent, and may change its headers (here: inject a secret
// the plugin never holds).
func ExampleNewEgressPolicy() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Println("server saw", r.URL.Path, "with", r.Header.Get("Authorization"))
		w.Write([]byte("hello"))
	}))
	defer api.Close()
	allowed := strings.TrimPrefix(api.URL, "http://")

	policy, err := fidius.NewEgressPolicy(func(req *fidius.Request) fidius.Verdict {
		if req.Authority() != allowed {
			req.SetDenyReason("only the API is allowed")
			return fidius.Deny
		}
		req.SetHeader("authorization", "Bearer secret")
		return fidius.Allow
	})
	if err != nil {
		log.Fatal(err)
	}
	// The test server is on 127.0.0.1, which the SSRF floor keeps from policies by default.
	policy.SetAllowPrivateRanges(true)
	host, err := fidius.NewHost(fidius.HostConfig{SearchPaths: []string{plugins()}, Egress: policy})
	policy.Close() // the host holds its own reference
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	fetch, err := host.Load("fetch", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer fetch.Close()

	var got string
	err = fetch.Invoke("fetch", &got, api.URL+"/data")
	fmt.Println(got, err)
	err = fetch.Invoke("fetch", &got, "http://example.com/")
	fmt.Println("denied:", errors.Is(err, fidius.StatusPluginError))
	// Output:
	// server saw /data with Bearer secret
	// 200 hello <nil>
	// denied: true
}

// A context stops a WASM call wherever it is, here blocked in a host sleep;
// the plugin serves the next call.
func ExamplePlugin_InvokeContext() {
	host, err := fidius.NewHost(fidius.HostConfig{
		SearchPaths: []string{plugins()},
		// the caps fixture's manifest asks for an environment variable
		AllowCapabilities: []string{"@default", "env:FIDIUS_FIXTURE_VAR"},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	caps, err := host.Load("caps", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer caps.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = caps.InvokeContext(ctx, "sleep_ms", nil, uint64(60_000)) // a minute
	fmt.Println(errors.Is(err, context.DeadlineExceeded), errors.Is(err, fidius.StatusCancelled),
		time.Since(start) < 30*time.Second)

	var slept uint64
	err = caps.InvokeContext(context.Background(), "sleep_ms", &slept, uint64(1))
	fmt.Println(slept, err)
	// Output:
	// true true true
	// 1 <nil>
}

// Streams: a server stream's items pulled one by one (io.EOF at the end), and
// a client stream fed by a Source of wire items (here: u64, little-endian).
func ExamplePlugin_InvokeStream() {
	host, err := fidius.NewHost(fidius.HostConfig{SearchPaths: []string{plugins()}})
	if err != nil {
		log.Fatal(err)
	}
	defer host.Close()
	streamer, err := host.Load("stream", nil) // count(n, marker) -> Stream<u64>, sum(start, Stream<u64>) -> u64
	if err != nil {
		log.Fatal(err)
	}
	defer streamer.Close()

	counts, err := streamer.InvokeStream("count", 3, "")
	if err != nil {
		log.Fatal(err)
	}
	defer counts.Close()
	var got []uint64
	for {
		var n uint64
		if err := counts.Decode(&n); err == io.EOF {
			break
		} else if err != nil {
			log.Fatal(err)
		}
		got = append(got, n)
	}
	fmt.Println(got)

	var items [][]byte
	for _, v := range []uint64{1, 2, 3} {
		items = append(items, binary.LittleEndian.AppendUint64(nil, v))
	}
	var total uint64
	err = streamer.InvokeStreaming("sum", &total, fidius.SliceSource(items...), 10)
	fmt.Println(total, err)
	// Output:
	// [0 1 2]
	// 16 <nil>
}
