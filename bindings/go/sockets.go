package fidius

/*
#include <stdlib.h>
#include "fidius.h"
#include "callbacks.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// SocketUse says what a SocketRequest is about.
type SocketUse uint32

const (
	// SocketTCPConnect is an outgoing TCP connection (TCP listen is never allowed, and never asked).
	SocketTCPConnect SocketUse = C.FIDIUS_SOCKET_USE_TCP_CONNECT
	// SocketUDPBind binds the local end of a UDP socket.
	SocketUDPBind SocketUse = C.FIDIUS_SOCKET_USE_UDP_BIND
	// SocketUDPSend is a datagram to a peer (a connected peer, or one send_to).
	SocketUDPSend SocketUse = C.FIDIUS_SOCKET_USE_UDP_SEND
	// SocketDNSLookup resolves a host name; a denial is a resolver failure for the guest.
	SocketDNSLookup SocketUse = C.FIDIUS_SOCKET_USE_DNS_LOOKUP
)

// ResponseDirective is what a ResponseFunc wants done with a response.
type ResponseDirective uint32

const (
	// Forward hands the response to the guest.
	Forward ResponseDirective = C.FIDIUS_RESPONSE_DIRECTIVE_FORWARD
	// RetryOnce discards it and sends the request again, once: the EgressFunc
	// is asked again with a fresh copy of the request as the guest made it,
	// and the body is replayed. Honoured only when Response.RetryAvailable.
	RetryOnce ResponseDirective = C.FIDIUS_RESPONSE_DIRECTIVE_RETRY_ONCE
)

// SocketFunc decides on one socket operation of a WASM plugin whose package
// has the tcp or udp capability: the second key of those capabilities (a
// package asking for them does not load under a policy without one). It runs
// like an EgressFunc; a panic denies. Peers in private ranges are refused
// before it is asked unless the policy allows them (SetAllowPrivateRanges).
type SocketFunc func(req *SocketRequest) Verdict

// ResponseFunc sees the status and headers of each HTTP response to a
// request the policy allowed, before the guest does. The Request is the one
// that was sent, read-only (its setters fail with StatusInvalidArgument). It
// runs like an EgressFunc; a panic forwards.
type ResponseFunc func(req *Request, resp *Response) ResponseDirective

// SetSocketFunc makes the policy decide on sockets (nil removes it; plugins
// already loaded then have every socket denied). Set it before loading the
// plugins it is for.
func (e *EgressPolicy) SetSocketFunc(fn SocketFunc) error {
	return e.use(func(p *C.fidius_egress_policy) error {
		e.hooks.mu.Lock()
		e.hooks.socket = fn
		e.hooks.mu.Unlock()
		var cerr *C.fidius_error
		return takeError(C.fidiusgo_egress_policy_set_socket_callback(p, C.bool(fn != nil), &cerr), cerr)
	})
}

// SetResponseFunc has the policy see every HTTP response head (nil removes it).
func (e *EgressPolicy) SetResponseFunc(fn ResponseFunc) error {
	return e.use(func(p *C.fidius_egress_policy) error {
		e.hooks.mu.Lock()
		e.hooks.response = fn
		e.hooks.mu.Unlock()
		var cerr *C.fidius_error
		return takeError(C.fidiusgo_egress_policy_set_response_callback(p, C.bool(fn != nil), &cerr), cerr)
	})
}

// SocketRequest is one socket operation seen by a SocketFunc, valid only
// during that call (afterwards its methods return zero values / ErrClosed).
type SocketRequest struct {
	mu sync.RWMutex
	c  *C.fidius_socket_request
}

func (r *SocketRequest) use(f func(*C.fidius_socket_request)) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.c == nil {
		return false
	}
	f(r.c)
	return true
}

func (r *SocketRequest) invalidate() {
	r.mu.Lock()
	r.c = nil
	r.mu.Unlock()
}

// Use says what the request is about.
func (r *SocketRequest) Use() SocketUse {
	var u SocketUse
	r.use(func(c *C.fidius_socket_request) { u = SocketUse(C.fidius_socket_request_use(c)) })
	return u
}

func (r *SocketRequest) optString(f func(*C.fidius_socket_request) *C.char) (string, bool) {
	var s string
	var ok bool
	r.use(func(c *C.fidius_socket_request) {
		if p := f(c); p != nil {
			s, ok = C.GoString(p), true
		}
	})
	return s, ok
}

// Host is the name looked up (SocketDNSLookup), or the name this plugin
// instance looked up that resolved to the address (connect, send); ok is
// false when there is none (a bare address, or a bind).
func (r *SocketRequest) Host() (host string, ok bool) {
	return r.optString(func(c *C.fidius_socket_request) *C.char { return C.fidius_socket_request_host(c) })
}

// Address is the peer's (for a bind, the local) address as text; ok is false for a lookup.
func (r *SocketRequest) Address() (address string, ok bool) {
	return r.optString(func(c *C.fidius_socket_request) *C.char { return C.fidius_socket_request_address(c) })
}

// Port goes with Address; 0 for a lookup.
func (r *SocketRequest) Port() uint16 {
	var port uint16
	r.use(func(c *C.fidius_socket_request) { port = uint16(C.fidius_socket_request_port(c)) })
	return port
}

// Plugin is the name of the plugin asking.
func (r *SocketRequest) Plugin() string {
	s, _ := r.optString(func(c *C.fidius_socket_request) *C.char { return C.fidius_socket_request_plugin(c) })
	return s
}

// SetDenyReason gives the reason for a Deny verdict; it reaches the host, never the guest.
func (r *SocketRequest) SetDenyReason(reason string) error {
	var err error
	if !r.use(func(c *C.fidius_socket_request) {
		cs := C.CString(reason)
		defer C.free(unsafe.Pointer(cs))
		var cerr *C.fidius_error
		err = takeError(C.fidius_socket_request_set_deny_reason(c, cs, &cerr), cerr)
	}) {
		return ErrClosed
	}
	return err
}

// Response is the head of an HTTP response seen by a ResponseFunc, valid
// only during that call.
type Response struct {
	mu sync.RWMutex
	c  *C.fidius_http_response
}

func (r *Response) use(f func(*C.fidius_http_response)) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.c == nil {
		return false
	}
	f(r.c)
	return true
}

func (r *Response) invalidate() {
	r.mu.Lock()
	r.c = nil
	r.mu.Unlock()
}

// Status is the status code, e.g. 401.
func (r *Response) Status() uint16 {
	var s uint16
	r.use(func(c *C.fidius_http_response) { s = uint16(C.fidius_http_response_status(c)) })
	return s
}

// RetryAvailable says whether RetryOnce would retry (false for the response
// to a retry, and when the request body could not be kept: over 64 KiB).
func (r *Response) RetryAvailable() bool {
	var ok bool
	r.use(func(c *C.fidius_http_response) { ok = bool(C.fidius_http_response_retry_available(c)) })
	return ok
}

// Headers copies the response's header fields.
func (r *Response) Headers() ([]Header, error) {
	var out []Header
	var err error
	if !r.use(func(c *C.fidius_http_response) {
		n := C.fidius_http_response_header_count(c)
		for i := C.size_t(0); i < n; i++ {
			var name *C.char
			var value *C.uint8_t
			var vlen C.size_t
			var cerr *C.fidius_error
			if err = takeError(C.fidius_http_response_header(c, i, &name, &value, &vlen, &cerr), cerr); err != nil {
				return
			}
			out = append(out, Header{Name: C.GoString(name), Value: C.GoBytes(unsafe.Pointer(value), C.int(vlen))})
		}
	}) {
		return nil, ErrClosed
	}
	return out, err
}

//export fidiusGoSocket
func fidiusGoSocket(h C.uintptr_t, creq *C.fidius_socket_request) (verdict C.uint32_t) {
	req := &SocketRequest{c: creq}
	defer func() {
		if p := recover(); p != nil {
			_ = req.SetDenyReason(fmt.Sprintf("socket policy panicked: %v", p))
			verdict = C.uint32_t(Deny)
		}
		req.invalidate()
	}()
	hooks := cgo.Handle(h).Value().(*policyHooks)
	hooks.mu.RLock()
	fn := hooks.socket
	hooks.mu.RUnlock()
	if fn == nil {
		return C.uint32_t(Deny)
	}
	return C.uint32_t(fn(req))
}

//export fidiusGoResponse
func fidiusGoResponse(h C.uintptr_t, creq *C.fidius_http_request, cresp *C.fidius_http_response) (directive C.uint32_t) {
	req, resp := &Request{c: creq}, &Response{c: cresp}
	defer func() {
		if recover() != nil {
			directive = C.uint32_t(Forward)
		}
		req.invalidate()
		resp.invalidate()
	}()
	hooks := cgo.Handle(h).Value().(*policyHooks)
	hooks.mu.RLock()
	fn := hooks.response
	hooks.mu.RUnlock()
	if fn == nil {
		return C.uint32_t(Forward)
	}
	return C.uint32_t(fn(req, resp))
}
