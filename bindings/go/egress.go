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
	"sync"
	"unsafe"
)

// Verdict is an egress policy's decision on one request.
type Verdict uint32

const (
	// Allow dispatches the request (with the header changes the policy made).
	Allow Verdict = C.FIDIUS_EGRESS_VERDICT_ALLOW
	// Deny does not dispatch it; the guest sees an HTTP "request denied" error.
	Deny Verdict = C.FIDIUS_EGRESS_VERDICT_DENY
)

// EgressFunc decides on one outbound HTTP request of a WASM plugin, before
// anything is sent. It is called on a thread libfidius starts for it, which
// ends when it returns (never the thread of the goroutine that called the
// plugin, which waits for the verdict),
// concurrently when several requests are in flight, and must not call
// into the plugin whose request it is deciding. The Request is valid only
// during the call. A panic denies the request (the panic value becomes the
// deny reason).
//
// The destination is resolved before the function is asked: Request.Host,
// Port and Addresses say where the request really goes, whatever spelling
// the guest used. Requests whose destination resolves only to private or
// special-purpose addresses (loopback, RFC 1918, link-local, ...) are
// denied by the SSRF floor without asking, unless the policy allows them
// (EgressPolicy.SetAllowPrivateRanges).
type EgressFunc func(req *Request) Verdict

// EgressPolicy is an egress callback registered with libfidius. Hosts,
// load options and plugins that use it hold their own references: the
// policy may be closed right after it is registered, and the Go function
// stays reachable until libfidius releases its last reference.
type EgressPolicy struct {
	mu    sync.RWMutex
	ptr   *C.fidius_egress_policy
	hooks *policyHooks
}

// policyHooks are a policy's Go functions, behind the one cgo.Handle that
// libfidius passes to each of its callbacks as user data.
type policyHooks struct {
	egress   EgressFunc
	mu       sync.RWMutex
	socket   SocketFunc
	response ResponseFunc
}

// NewEgressPolicy wraps fn as a policy, for HostConfig.Egress or LoadOptions.Egress.
func NewEgressPolicy(fn EgressFunc) (*EgressPolicy, error) {
	if err := CheckLibrary(); err != nil {
		return nil, err
	}
	if fn == nil {
		return nil, &Error{Status: StatusNullArgument, Message: "nil egress function"}
	}
	hooks := &policyHooks{egress: fn}
	h := newCallbackHandle(hooks)
	var p *C.fidius_egress_policy
	var cerr *C.fidius_error
	if err := takeError(C.fidiusgo_egress_policy_new(C.uintptr_t(h), &p, &cerr), cerr); err != nil {
		fidiusGoRelease(C.uintptr_t(h)) // documented: destroy is not called on failure
		return nil, err
	}
	e := &EgressPolicy{ptr: p, hooks: hooks}
	runtime.SetFinalizer(e, (*EgressPolicy).Close)
	return e, nil
}

// Close releases the caller's reference. Closing twice is harmless.
func (e *EgressPolicy) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ptr != nil {
		C.fidius_egress_policy_free(e.ptr)
		e.ptr = nil
		runtime.SetFinalizer(e, nil)
	}
	return nil
}

// SetAllowPrivateRanges lets (or stops letting) this policy's requests go
// to private and special-purpose addresses (loopback, RFC 1918,
// link-local with the cloud metadata service, carrier-grade NAT,
// unique-local, multicast), which the SSRF floor otherwise removes before
// the EgressFunc is asked. Off by default; for policies that reach services
// on the host's own network on purpose (and tests against a loopback
// server). Applies to requests decided afterwards, wherever the policy is
// registered.
func (e *EgressPolicy) SetAllowPrivateRanges(allow bool) error {
	return e.use(func(p *C.fidius_egress_policy) error {
		var cerr *C.fidius_error
		return takeError(C.fidius_egress_policy_set_allow_private_ranges(p, C.bool(allow), &cerr), cerr)
	})
}

func (e *EgressPolicy) use(f func(*C.fidius_egress_policy) error) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.ptr == nil {
		return ErrClosed
	}
	return f(e.ptr)
}

// Request is one outbound HTTP request seen by an EgressFunc. It is valid
// only during that call; afterwards its methods return zero values and
// ErrClosed. Its methods may be called from other goroutines: the borrowed C
// request is guarded by a lock, so a call either finishes before the
// callback returns (which waits for it) or sees the request closed.
type Request struct {
	mu sync.RWMutex
	c  *C.fidius_http_request
}

// Header is one header field; a name given several times appears once per value.
type Header struct {
	Name  string // lowercase
	Value []byte // as the guest sent it
}

// use runs f with the C request held valid; false when the callback is over.
func (r *Request) use(f func(*C.fidius_http_request)) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.c == nil {
		return false
	}
	f(r.c)
	return true
}

// useErr is use for fallible methods: ErrClosed when the callback is over.
func (r *Request) useErr(f func(*C.fidius_http_request) error) error {
	var err error
	if !r.use(func(c *C.fidius_http_request) { err = f(c) }) {
		return ErrClosed
	}
	return err
}

// invalidate ends the request's validity, waiting for methods in flight.
func (r *Request) invalidate() {
	r.mu.Lock()
	r.c = nil
	r.mu.Unlock()
}

func (r *Request) str(f func(*C.fidius_http_request) *C.char) string {
	var s string
	r.use(func(c *C.fidius_http_request) { s = goStringOrEmpty(f(c)) })
	return s
}

// Method is the request method, e.g. "GET".
func (r *Request) Method() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_method(c) })
}

// Scheme is "http" or "https".
func (r *Request) Scheme() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_scheme(c) })
}

// Authority is "host" or "host:port" as the guest wrote it (Host, Port and
// Addresses say where the request really goes).
func (r *Request) Authority() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_authority(c) })
}

// Host is the destination host, canonical: an IP address in standard form
// ("127.0.0.1" for 127.1, 2130706433, ...; "::1") or a DNS name in lower
// case without a final dot.
func (r *Request) Host() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_host(c) })
}

// Port is the destination port (the scheme's default when the authority has none).
func (r *Request) Port() uint16 {
	var port uint16
	r.use(func(c *C.fidius_http_request) { port = uint16(C.fidius_http_request_port(c)) })
	return port
}

// Addresses are the addresses the request will be sent to (and only to
// those: there is no second lookup), as text, in the order they are tried.
func (r *Request) Addresses() []string {
	var out []string
	r.use(func(c *C.fidius_http_request) {
		n := C.fidius_http_request_address_count(c)
		out = make([]string, 0, int(n))
		for i := C.size_t(0); i < n; i++ {
			if a := C.fidius_http_request_address(c, i); a != nil {
				out = append(out, C.GoString(a))
			}
		}
	})
	return out
}

// PathAndQuery is e.g. "/v1/items?page=2".
func (r *Request) PathAndQuery() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_path_and_query(c) })
}

// Plugin is the name of the plugin making the request.
func (r *Request) Plugin() string {
	return r.str(func(c *C.fidius_http_request) *C.char { return C.fidius_http_request_plugin(c) })
}

// Headers copies the request's header fields.
func (r *Request) Headers() ([]Header, error) {
	var out []Header
	err := r.useErr(func(c *C.fidius_http_request) error {
		n := C.fidius_http_request_header_count(c)
		out = make([]Header, 0, int(n))
		for i := C.size_t(0); i < n; i++ {
			var name *C.char
			var value *C.uint8_t
			var vlen C.size_t
			var cerr *C.fidius_error
			if err := takeError(C.fidius_http_request_header(c, i, &name, &value, &vlen, &cerr), cerr); err != nil {
				return err
			}
			v := make([]byte, int(vlen))
			if vlen > 0 {
				copy(v, unsafe.Slice((*byte)(unsafe.Pointer(value)), int(vlen)))
			}
			out = append(out, Header{Name: C.GoString(name), Value: v})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetHeader sets header name to value, replacing every existing value (for
// example to inject Authorization, so the guest never holds the secret).
func (r *Request) SetHeader(name, value string) error {
	return r.header(name, value, false)
}

// AddHeader adds a value for header name, keeping existing ones.
func (r *Request) AddHeader(name, value string) error {
	return r.header(name, value, true)
}

func (r *Request) header(name, value string, add bool) error {
	return r.useErr(func(c *C.fidius_http_request) error {
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		cvalue := C.CBytes([]byte(value))
		defer C.free(cvalue)
		var cerr *C.fidius_error
		var st uint32
		if add {
			st = uint32(C.fidius_http_request_add_header(c, cname, (*C.uint8_t)(cvalue), C.size_t(len(value)), &cerr))
		} else {
			st = uint32(C.fidius_http_request_set_header(c, cname, (*C.uint8_t)(cvalue), C.size_t(len(value)), &cerr))
		}
		return takeError(st, cerr)
	})
}

// RemoveHeader removes every value of header name (absent is fine).
func (r *Request) RemoveHeader(name string) error {
	return r.useErr(func(c *C.fidius_http_request) error {
		cname := C.CString(name)
		defer C.free(unsafe.Pointer(cname))
		var cerr *C.fidius_error
		return takeError(C.fidius_http_request_remove_header(c, cname, &cerr), cerr)
	})
}

// SetDenyReason gives the reason for a Deny verdict. It reaches the host
// (the failed call's error and the log), never the guest.
func (r *Request) SetDenyReason(reason string) error {
	return r.useErr(func(c *C.fidius_http_request) error {
		cs := C.CString(reason)
		defer C.free(unsafe.Pointer(cs))
		var cerr *C.fidius_error
		return takeError(C.fidius_http_request_set_deny_reason(c, cs, &cerr), cerr)
	})
}

//export fidiusGoEgress
func fidiusGoEgress(h C.uintptr_t, creq *C.fidius_http_request) (verdict C.uint32_t) {
	req := &Request{c: creq}
	defer func() {
		if p := recover(); p != nil {
			_ = req.SetDenyReason(fmt.Sprintf("egress policy panicked: %v", p))
			verdict = C.uint32_t(Deny)
		}
		req.invalidate() // the request is borrowed for this call only
	}()
	fn := cgo.Handle(h).Value().(*policyHooks).egress
	return C.uint32_t(fn(req))
}
