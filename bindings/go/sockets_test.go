package fidius

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// tcp/udp through the policy's socket function, and the response hook, with
// the `net` fixture (fidius 0.5.9 guest crates) against loopback servers.

func tcpEchoServer(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "echo: %s\n", strings.TrimSuffix(line, "\n"))
			c.Close()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func loadNet(t *testing.T, h *Host, grants ...string) *Plugin {
	t.Helper()
	return load(t, h, "net", &LoadOptions{Grants: grants, Timeout: 30 * time.Second})
}

type sockSeen struct {
	use           SocketUse
	host, address string
	hasHost       bool
	port          uint16
	plugin        string
}

func socketPolicy(t *testing.T, seen *[]sockSeen, mu *sync.Mutex, allow func(sockSeen) bool) *EgressPolicy {
	t.Helper()
	policy, err := NewEgressPolicy(func(*Request) Verdict { return Deny })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { policy.Close() })
	if err := policy.SetAllowPrivateRanges(true); err != nil { // the servers are on 127.0.0.1
		t.Fatal(err)
	}
	err = policy.SetSocketFunc(func(req *SocketRequest) Verdict {
		host, hasHost := req.Host()
		address, _ := req.Address()
		s := sockSeen{req.Use(), host, address, hasHost, req.Port(), req.Plugin()}
		mu.Lock()
		*seen = append(*seen, s)
		mu.Unlock()
		if allow(s) {
			return Allow
		}
		req.SetDenyReason("go says no")
		return Deny
	})
	if err != nil {
		t.Fatal(err)
	}
	return policy
}

func TestSocketEnums(t *testing.T) {
	if SocketTCPConnect != 1 || SocketUDPBind != 2 || SocketUDPSend != 3 || SocketDNSLookup != 4 || Forward != 0 || RetryOnce != 1 {
		t.Fatal("enum values")
	}
}

func TestSocketsTCPByNameAndDNS(t *testing.T) {
	port := tcpEchoServer(t)
	var mu sync.Mutex
	var seen []sockSeen
	policy := socketPolicy(t, &seen, &mu, func(s sockSeen) bool {
		return (s.use == SocketDNSLookup || s.use == SocketTCPConnect) && s.host == "localhost"
	})
	h := newHost(t, HostConfig{Egress: policy})
	n := loadNet(t, h, "tcp", "http")
	var out string
	if err := n.Invoke("tcp_echo", &out, "localhost", port, "hi"); err != nil || out != "echo: hi" {
		t.Fatalf("tcp_echo localhost: %q %v", out, err)
	}
	mu.Lock()
	var lookup, connect bool
	for _, s := range seen {
		lookup = lookup || (s.use == SocketDNSLookup && s.host == "localhost" && s.address == "" && s.port == 0 && s.plugin == "net")
		connect = connect || (s.use == SocketTCPConnect && s.host == "localhost" && (s.address == "127.0.0.1" || s.address == "::1") && int(s.port) == port)
	}
	mu.Unlock()
	if !lookup || !connect {
		t.Fatalf("seen %+v", seen)
	}
	// A bare address has no name (a fresh instance per call): denied, with the reason.
	err := n.Invoke("tcp_echo", &out, "127.0.0.1", port, "x")
	var pe *PluginError
	if !errors.As(err, &pe) || pe.Code != "IO" || !strings.Contains(pe.HostMessage, "socket denied for plugin net") || !strings.Contains(pe.HostMessage, "go says no") {
		t.Fatalf("bare address: %v", err)
	}
	// DNS denial: a resolver failure, and no connect is asked.
	mu.Lock()
	seen = nil
	mu.Unlock()
	var addrs []string
	if err := n.Invoke("resolve", &addrs, "ip6-localhost"); !errors.As(err, &pe) || pe.Code != "IO" {
		t.Fatalf("resolve denied: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 1 || seen[0].use != SocketDNSLookup {
		t.Fatalf("seen %+v", seen)
	}
}

func TestSocketsUDP(t *testing.T) {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	port := conn.LocalAddr().(*net.UDPAddr).Port
	var got []string
	var gotMu sync.Mutex
	go func() {
		buf := make([]byte, 2048)
		for {
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			gotMu.Lock()
			got = append(got, string(buf[:n]))
			gotMu.Unlock()
			conn.WriteTo(append([]byte("echo: "), buf[:n]...), peer)
		}
	}()
	var mu sync.Mutex
	var seen []sockSeen
	policy := socketPolicy(t, &seen, &mu, func(s sockSeen) bool {
		return s.use == SocketUDPBind || (s.use == SocketUDPSend && s.address == "127.0.0.1" && int(s.port) == port)
	})
	h := newHost(t, HostConfig{Egress: policy})
	n := loadNet(t, h, "udp", "http")
	var out string
	if err := n.Invoke("udp_echo", &out, "127.0.0.1", port, "ping"); err != nil || out != "echo: ping" {
		t.Fatalf("udp_echo: %q %v", out, err)
	}
	gotMu.Lock()
	defer gotMu.Unlock()
	if len(got) != 1 || got[0] != "ping" {
		t.Fatalf("server got %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	var bind bool
	for _, s := range seen {
		bind = bind || s.use == SocketUDPBind
	}
	if !bind {
		t.Fatalf("no UDP bind asked: %+v", seen)
	}
}

func TestSocketsNeedTheSecondKey(t *testing.T) {
	policy, err := NewEgressPolicy(func(*Request) Verdict { return Allow })
	if err != nil {
		t.Fatal(err)
	}
	defer policy.Close()
	h := newHost(t, HostConfig{Egress: policy})
	_, err = h.Load("net", &LoadOptions{Grants: []string{"tcp", "http"}})
	if !errors.Is(err, StatusCapability) || !strings.Contains(err.Error(), "fidius_egress_policy_set_socket_callback") {
		t.Fatalf("load without a socket function: %v", err)
	}
}

func TestSocketPanicDenies(t *testing.T) {
	port := tcpEchoServer(t)
	policy, _ := NewEgressPolicy(func(*Request) Verdict { return Deny })
	defer policy.Close()
	policy.SetAllowPrivateRanges(true)
	policy.SetSocketFunc(func(*SocketRequest) Verdict { panic("boom") })
	h := newHost(t, HostConfig{Egress: policy})
	n := loadNet(t, h, "tcp", "http")
	var out string
	var pe *PluginError
	if err := n.Invoke("tcp_echo", &out, "127.0.0.1", port, "x"); !errors.As(err, &pe) || !strings.Contains(pe.HostMessage, "socket policy panicked: boom") {
		t.Fatalf("panicking socket function: %v", err)
	}
}

func TestResponseHookRetriesOnce(t *testing.T) {
	type seenReq struct{ auth, body string }
	var mu sync.Mutex
	var arrived []seenReq
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		arrived = append(arrived, seenReq{r.Header.Get("Authorization"), string(body)})
		mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer 2" {
			w.WriteHeader(401)
			w.Write([]byte("expired"))
			return
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	asks := 0
	policy, err := NewEgressPolicy(func(req *Request) Verdict {
		mu.Lock()
		asks++
		n := asks
		mu.Unlock()
		req.SetHeader("authorization", fmt.Sprintf("Bearer %d", n))
		return Allow
	})
	if err != nil {
		t.Fatal(err)
	}
	defer policy.Close()
	policy.SetAllowPrivateRanges(true)
	type seenResp struct {
		status  uint16
		retry   bool
		editErr bool
	}
	var responses []seenResp
	err = policy.SetResponseFunc(func(req *Request, resp *Response) ResponseDirective {
		editErr := errors.Is(req.SetHeader("x-late", "1"), StatusInvalidArgument)
		mu.Lock()
		responses = append(responses, seenResp{resp.Status(), resp.RetryAvailable(), editErr})
		mu.Unlock()
		if resp.Status() == 401 {
			return RetryOnce
		}
		return Forward
	})
	if err != nil {
		t.Fatal(err)
	}
	h := newHost(t, HostConfig{Egress: policy})
	n := loadNet(t, h, "http")
	var out string
	if err := n.Invoke("post", &out, srv.URL+"/api", "payload"); err != nil || out != "200 ok" {
		t.Fatalf("post: %q %v", out, err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []seenReq{{"Bearer 1", "payload"}, {"Bearer 2", "payload"}}
	if fmt.Sprint(arrived) != fmt.Sprint(want) {
		t.Fatalf("server saw %+v", arrived)
	}
	if fmt.Sprint(responses) != fmt.Sprint([]seenResp{{401, true, true}, {200, false, true}}) {
		t.Fatalf("responses %+v", responses)
	}
}
