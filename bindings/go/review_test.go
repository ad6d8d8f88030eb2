package fidius

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// A Request used from another goroutine during and after its callback: under
// -race this fails if the guard's state is written without synchronisation;
// after the callback every method sees the request closed.
func TestRequestGuardAcrossGoroutines(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer srv.Close()
	var kept *Request
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	policy, err := NewEgressPolicy(func(req *Request) Verdict {
		kept = req
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				h := req.Host()
				mu.Lock()
				seen[h]++
				mu.Unlock()
			}
		}()
		time.Sleep(20 * time.Millisecond)
		return Allow
	})
	if err != nil {
		t.Fatal(err)
	}
	defer policy.Close()
	if err := policy.SetAllowPrivateRanges(true); err != nil {
		t.Fatal(err)
	}
	h := newHost(t, HostConfig{Egress: policy})
	fetch := load(t, h, "fetch", nil)
	if got, err := fetch.CallJSON(0, `["`+srv.URL+`/g"]`); err != nil || got != `"200 hello"` {
		t.Fatalf("fetch: %q, %v", got, err)
	}
	time.Sleep(10 * time.Millisecond)
	close(stop)
	wg.Wait()
	if seen["127.0.0.1"] == 0 || seen[""] == 0 {
		t.Errorf("want reads during (127.0.0.1) and after (\"\") the callback: %v", seen)
	}
	if err := kept.SetHeader("a", "b"); err != ErrClosed {
		t.Errorf("SetHeader after the callback: %v", err)
	}
	if _, err := kept.Headers(); err != ErrClosed {
		t.Errorf("Headers after the callback: %v", err)
	}
	if kept.Port() != 0 || kept.Addresses() != nil {
		t.Errorf("Port/Addresses after the callback: %d %v", kept.Port(), kept.Addresses())
	}
}

// libfidius does not call destroy when registering the log callback fails:
// NewHost must release the handle it made for it.
func TestLogRegistrationFailureReleasesHandle(t *testing.T) {
	before := atomicLive()
	failLogRegistration = true
	_, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, Log: func(int, string) {}})
	failLogRegistration = false
	if !errors.Is(err, StatusNullArgument) {
		t.Fatalf("NewHost with a refused log callback: %v", err)
	}
	if n := atomicLive() - before; n != 0 {
		t.Errorf("%d callback handles leaked", n)
	}
	h, err := NewHost(HostConfig{SearchPaths: []string{pluginDir(t)}, Log: func(int, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if atomicLive() != before+1 {
		t.Errorf("a registered log callback is not counted")
	}
	h.Close()
	if atomicLive() != before {
		t.Errorf("log callback not released after Close")
	}
}
