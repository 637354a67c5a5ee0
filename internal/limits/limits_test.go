package limits

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":        "127.0.0.1",
		"[::ffff:10.0.0.1]:80":  "10.0.0.1",
		"[fe80::1%eth0]:80":     "fe80::1",
		"[2001:db8::1]:443":     "2001:db8::1",
		"not an address":        "not an address",
		"@":                     "@",
		"[2001:db8::1]":         "[2001:db8::1]",
		"10.0.0.2":              "10.0.0.2",
		"example.com:80":        "example.com",
		"[2001:db8::0001]:8500": "2001:db8::1",
	} {
		if got := ClientIP(in); got != want {
			t.Errorf("ClientIP(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPerKey(t *testing.T) {
	p := NewPerKey(2)
	r1, ok1 := p.Acquire("a")
	_, ok2 := p.Acquire("a")
	_, ok3 := p.Acquire("a")
	if !ok1 || !ok2 || ok3 {
		t.Fatalf("acquire: %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := p.Acquire("b"); !ok {
		t.Fatal("another key is refused")
	}
	r1()
	r1() // a second release gives back nothing more
	if _, ok := p.Acquire("a"); !ok {
		t.Fatal("a released slot is not reusable")
	}
	if _, ok := p.Acquire("a"); ok {
		t.Fatal("a double release freed two slots")
	}
	if _, ok := NewPerKey(0).Acquire("a"); !ok {
		t.Fatal("no cap refuses")
	}
}

func TestKeyedRate(t *testing.T) {
	k := NewKeyedRate(1, 3, 4)
	now := time.Unix(1000, 0)
	k.now = func() time.Time { return now }
	for i := range 3 {
		if !k.Allow("a") {
			t.Fatalf("call %d of the burst refused", i)
		}
	}
	if k.Allow("a") {
		t.Fatal("call past the burst allowed")
	}
	if !k.Allow("b") {
		t.Fatal("another key is refused")
	}
	now = now.Add(time.Second)
	if !k.Allow("a") {
		t.Fatal("no token after a second at 1/s")
	}
	// The map stays bounded: idle (refilled) buckets go first.
	now = now.Add(time.Hour)
	for i := range 100 {
		k.Allow(string(rune('c' + i)))
		if k.Len() > 4 {
			t.Fatalf("%d buckets, bound 4", k.Len())
		}
	}
	if !NewKeyedRate(0, 0, 0).Allow("x") {
		t.Fatal("no limit refuses")
	}
}

// Over the cap, a connection gets a 429 naming the limit; the clients
// under it and other IPs are served, and a closed connection frees its
// slot.
func TestConnLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rej := NewRejections(nil)
	ln := LimitConnsPerIP(raw, 2, rej).(*ConnLimitListener)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	defer srv.Close()
	addr := raw.Addr().String()

	dial := func(local string) net.Conn {
		t.Helper()
		d := net.Dialer{Timeout: 2 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	get := func(c net.Conn) string {
		t.Helper()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return "write: " + err.Error()
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return "read: " + err.Error()
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		return resp.Status + " " + string(b)
	}
	a, b := dial("127.0.0.1"), dial("127.0.0.1")
	defer a.Close()
	if got := get(a); !strings.HasPrefix(got, "200") {
		t.Fatalf("first connection: %s", got)
	}
	c := dial("127.0.0.1")
	if got := get(c); !strings.HasPrefix(got, "429") || !strings.Contains(got, HTTPConnsPerClient) {
		t.Fatalf("third connection: %q, want 429 naming %s", got, HTTPConnsPerClient)
	}
	c.Close()
	other := dial("127.0.0.2")
	if got := get(other); !strings.HasPrefix(got, "200") {
		t.Fatalf("another IP: %s", got)
	}
	other.Close()
	if n := rej.Count(HTTPConnsPerClient); n != 1 {
		t.Fatalf("rejections %v, want 1", n)
	}
	b.Close()
	deadline := time.Now().Add(5 * time.Second)
	for ln.Open("127.0.0.1") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("open %d after a close, want 1", ln.Open("127.0.0.1"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := dial("127.0.0.1")
	defer d.Close()
	if got := get(d); !strings.HasPrefix(got, "200") {
		t.Fatalf("after a close: %s", got)
	}
}
