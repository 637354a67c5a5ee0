package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// startServer runs a real server on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitServing(t, s.Addr())
	return s
}

// waitServing waits until the server answers over UDP and TCP.
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: 200 * time.Millisecond}
		for {
			_, _, err := c.Exchange(question("warren.", dns.TypeSOA), addr)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s not serving: %v", network, addr, err)
			}
		}
	}
}

func exchange(t *testing.T, network, addr string, m *dns.Msg) *dns.Msg {
	t.Helper()
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s exchange %s: %v", network, m.Question[0].Name, err)
	}
	return r
}

func TestNetworkTruncation(t *testing.T) {
	s := startServer(t, testConfig(testView()))
	addr := s.Addr()

	udp := exchange(t, "udp", addr, question("big.service.warren.", dns.TypeA))
	if !udp.Truncated || len(udp.Answer) == 0 || len(udp.Answer) >= 40 {
		t.Errorf("UDP without EDNS0: tc=%v answers=%d, want tc and a partial answer", udp.Truncated, len(udp.Answer))
	}
	tcp := exchange(t, "tcp", addr, question("big.service.warren.", dns.TypeA))
	if tcp.Truncated || len(tcp.Answer) != 40 {
		t.Errorf("TCP: tc=%v answers=%d, want all 40", tcp.Truncated, len(tcp.Answer))
	}
	req := question("big.service.warren.", dns.TypeA)
	req.SetEdns0(4096, false)
	edns := exchange(t, "udp", addr, req)
	if edns.Truncated || len(edns.Answer) != 40 || edns.IsEdns0() == nil {
		t.Errorf("UDP EDNS0 4096: tc=%v answers=%d opt=%v, want all 40 with OPT", edns.Truncated, len(edns.Answer), edns.IsEdns0() != nil)
	}
	srv := exchange(t, "tcp", addr, question("big.service.warren.", dns.TypeSRV))
	if srv.Truncated || len(srv.Answer) != 40 || len(srv.Extra) != 40 {
		t.Errorf("TCP SRV: tc=%v answers=%d extra=%d, want 40 and 40", srv.Truncated, len(srv.Answer), len(srv.Extra))
	}
}

func TestNetworkBindsBothOnOnePort(t *testing.T) {
	s, err := New(Config{Addr: "127.0.0.1:0", View: newFakeView()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.udp.Close()
	defer s.tcp.Close()
	if s.udp.LocalAddr().String() != s.tcp.Addr().String() {
		t.Errorf("udp %s, tcp %s", s.udp.LocalAddr(), s.tcp.Addr())
	}
	// A second server on the same address fails in New, not in Run.
	if _, err := New(Config{Addr: s.Addr(), View: newFakeView()}); err == nil {
		t.Error("binding a used address did not fail")
	}
}

func TestRecursors(t *testing.T) {
	// An upstream that knows example.com and refuses everything else.
	upstream := &dns.Server{Addr: "127.0.0.1:0", Net: "udp", Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if r.Question[0].Name == "example.com." {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	upstream.NotifyStartedFunc = func() { close(started) }
	go upstream.ListenAndServe()
	<-started
	t.Cleanup(func() { upstream.Shutdown() })
	upAddr := upstream.PacketConn.LocalAddr().String()

	// A dead recursor first: the next one is tried after the timeout.
	dead, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()

	cfg := testConfig(testView())
	cfg.Recursors = []string{dead.LocalAddr().String(), upAddr}
	cfg.RecursorTimeout = 200 * time.Millisecond
	s := startServer(t, cfg)

	r := exchange(t, "udp", s.Addr(), question("example.com.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.1" || !r.RecursionAvailable {
		t.Errorf("forwarded answer:\n%v", r)
	}
	r = exchange(t, "udp", s.Addr(), question("nosuch.example.", dns.TypeA))
	if r.Rcode != dns.RcodeNameError {
		t.Errorf("forwarded NXDOMAIN: rcode %s", dns.RcodeToString[r.Rcode])
	}
	// Unknown reverse names go to the recursors too; names in our zone never.
	r = exchange(t, "udp", s.Addr(), question("nosuch.service.warren.", dns.TypeA))
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || !r.Authoritative {
		t.Errorf("in-zone name answered by us: %v", r)
	}

	// Only dead recursors: SERVFAIL, bounded by the timeout.
	cfg.Recursors = []string{dead.LocalAddr().String()}
	s2 := startServer(t, cfg)
	start := time.Now()
	r = exchange(t, "udp", s2.Addr(), question("example.com.", dns.TypeA))
	if r.Rcode != dns.RcodeServerFailure || time.Since(start) > 2*time.Second {
		t.Errorf("dead recursor: rcode %s after %v", dns.RcodeToString[r.Rcode], time.Since(start))
	}
}

func TestNoRecursorsRefused(t *testing.T) {
	s := startServer(t, testConfig(testView()))
	for _, network := range []string{"udp", "tcp"} {
		r := exchange(t, network, s.Addr(), question("example.com.", dns.TypeA))
		if r.Rcode != dns.RcodeRefused || r.RecursionAvailable {
			t.Errorf("%s: rcode %s ra %v, want REFUSED without RA", network, dns.RcodeToString[r.Rcode], r.RecursionAvailable)
		}
	}
}

// header builds a raw 12-byte DNS header.
func header(id uint16, bits uint16, qd, an, ns, ar uint16) []byte {
	b := make([]byte, 12)
	for i, v := range []uint16{id, bits, qd, an, ns, ar} {
		binary.BigEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// rawQuestion is web.service.warren. IN A in wire form.
func rawQuestion() []byte {
	b := []byte{3, 'w', 'e', 'b', 7, 's', 'e', 'r', 'v', 'i', 'c', 'e', 6, 'w', 'a', 'r', 'r', 'e', 'n', 0}
	return append(b, 0, 1, 0, 1)
}

func TestMalformedPackets(t *testing.T) {
	s := startServer(t, testConfig(testView()))
	conn, err := net.Dial("udp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	chaos := append(header(6, 0, 1, 0, 0, 0), rawQuestion()...)
	chaos[len(chaos)-1] = byte(dns.ClassCHAOS)
	pointerLoop := append(header(4, 0, 1, 0, 0, 0), 0xC0, 12, 0, 1, 0, 1) // name points at itself
	twoPointers := append(header(8, 0, 1, 0, 0, 0), 3, 'a', 'b', 'c', 0xC0, 16, 0xC0, 12, 0, 1, 0, 1)
	longName := header(9, 0, 1, 0, 0, 0)
	for range 5 { // 5 labels of 63 bytes: 320 bytes, over the 255 limit
		longName = append(longName, 63)
		for range 63 {
			longName = append(longName, 'a')
		}
	}
	longName = append(longName, 0, 0, 1, 0, 1)

	cases := []struct {
		name  string
		pkt   []byte
		id    uint16
		rcode int // -1: no reply expected
	}{
		{"truncated header", []byte{0, 1, 0, 0, 0}, 0, -1},
		{"qdcount 0", header(2, 0, 0, 0, 0, 0), 2, dns.RcodeFormatError},
		{"qdcount 2", append(append(header(3, 0, 2, 0, 0, 0), rawQuestion()...), rawQuestion()...), 3, dns.RcodeFormatError},
		{"qdcount 1 but no question", header(10, 0, 1, 0, 0, 0), 10, dns.RcodeFormatError},
		{"pointer loop", pointerLoop, 4, dns.RcodeFormatError},
		{"pointer cycle", twoPointers, 8, dns.RcodeFormatError},
		{"oversized name", longName, 9, dns.RcodeFormatError},
		{"unknown opcode", append(header(5, 7<<11, 1, 0, 0, 0), rawQuestion()...), 5, dns.RcodeNotImplemented},
		{"CHAOS class", chaos, 6, dns.RcodeRefused},
		{"response bit", append(header(7, 1<<15, 1, 0, 0, 0), rawQuestion()...), 7, -1},
		{"garbage", []byte("this is not a dns packet at all, not even close"), 0, -2},
	}
	buf := make([]byte, 4096)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := conn.Write(tc.pkt); err != nil {
				t.Fatal(err)
			}
			if tc.rcode >= 0 {
				conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, err := conn.Read(buf)
				if err != nil {
					t.Fatalf("no reply: %v", err)
				}
				m := new(dns.Msg)
				if err := m.Unpack(buf[:n]); err != nil {
					t.Fatalf("reply does not parse: %v", err)
				}
				if m.Id != tc.id || !m.Response || m.Rcode != tc.rcode {
					t.Errorf("reply id %d qr %v rcode %s, want id %d rcode %s", m.Id, m.Response, dns.RcodeToString[m.Rcode], tc.id, dns.RcodeToString[tc.rcode])
				}
			} else if tc.rcode == -1 {
				// No reply: the next valid query gets the next reply.
				conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := conn.Read(buf); err == nil {
					t.Errorf("unexpected reply of %d bytes", n)
				} else if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
					t.Fatal(err)
				}
			} else {
				// Whatever happens to garbage, drain any reply.
				conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				conn.Read(buf)
			}
			// The server keeps serving.
			r := exchange(t, "udp", s.Addr(), question("web.service.warren.", dns.TypeA))
			if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 2 {
				t.Fatalf("after %s: %v", tc.name, r)
			}
		})
	}
}

func TestMalformedTCP(t *testing.T) {
	s := startServer(t, testConfig(testView()))
	// A length prefix promising more than is sent, then close: the server
	// must not hang or crash.
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte{0x01, 0x00, 0, 1, 2})
	conn.Close()
	// A pointer loop over TCP gets FORMERR.
	conn, err = net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	pkt := append(header(4, 0, 1, 0, 0, 0), 0xC0, 12, 0, 1, 0, 1)
	conn.Write(append([]byte{0, byte(len(pkt))}, pkt...))
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1024)
	n, err := conn.Read(buf)
	if err != nil || n < 14 {
		t.Fatalf("no reply: %d bytes, %v", n, err)
	}
	m := new(dns.Msg)
	if err := m.Unpack(buf[2:n]); err != nil || m.Rcode != dns.RcodeFormatError {
		t.Fatalf("reply %v, %v", m, err)
	}
	r := exchange(t, "tcp", s.Addr(), question("web.service.warren.", dns.TypeA))
	if r.Rcode != dns.RcodeSuccess {
		t.Fatalf("after bad TCP input: %v", r)
	}
}

// TestRunStopsAtOnce cancels the context before the servers can start:
// Run must still return, with both listeners closed.
func TestRunStopsAtOnce(t *testing.T) {
	for range 20 {
		s, err := New(Config{Addr: "127.0.0.1:0", View: newFakeView()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
		if err := s.Run(context.Background()); err == nil {
			t.Fatal("second Run did not fail")
		}
	}
}
