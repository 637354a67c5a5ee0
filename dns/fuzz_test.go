package dns

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

var (
	fuzzOnce   sync.Once
	fuzzServer *Server
)

// FuzzHandle unpacks arbitrary bytes as miekg/dns's server does and runs
// the handler on what parses, over UDP and over TCP. It must never panic,
// must reply at most once, and every reply must pack, echo the query ID
// and fit the transport's size. The seed corpus is in
// testdata/fuzz/FuzzHandle (regenerate with go test -run TestFuzzSeeds
// -update).
func FuzzHandle(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed)
	}
	fuzzOnce.Do(func() {
		s, err := newServer(testConfig(testView()))
		if err != nil {
			f.Fatal(err)
		}
		fuzzServer = s
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		req := new(dns.Msg)
		if err := req.Unpack(data); err != nil {
			return // the server drops or FORMERRs these before the handler
		}
		for _, tcp := range []bool{false, true} {
			w := &recorder{tcp: tcp}
			fuzzServer.ServeDNS(w, req)
			if w.writes > 1 {
				t.Fatalf("%d replies", w.writes)
			}
			if w.writes == 0 {
				if !req.Response {
					t.Fatalf("no reply to a query:\n%v", req)
				}
				continue
			}
			if w.err != nil {
				t.Fatalf("reply does not pack or parse: %v\nquery:\n%v", w.err, req)
			}
			if w.msg.Id != req.Id || !w.msg.Response {
				t.Fatalf("reply id %d response %v to query id %d", w.msg.Id, w.msg.Response, req.Id)
			}
			limit := dns.MaxMsgSize
			if !tcp {
				limit = dns.MinMsgSize
				if o := req.IsEdns0(); o != nil {
					limit = max(limit, min(int(o.UDPSize()), maxUDPSize))
				}
			}
			if len(w.wire) > limit {
				t.Fatalf("reply of %d bytes over a %d limit", len(w.wire), limit)
			}
		}
	})
}

// fuzzSeeds are valid and invalid queries of every shape the handler
// distinguishes.
func fuzzSeeds() [][]byte {
	var seeds [][]byte
	add := func(m *dns.Msg) {
		b, err := m.Pack()
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, b)
	}
	names := []string{
		"web.service.warren.", "WEB.service.dc1.warren.", "v1.web.service.warren.", "_web._tcp.service.warren.",
		"_web._v1.service.consul.", "node1.node.warren.", "web.connect.warren.", "db.service.warren.",
		"big.service.warren.", "1.0.0.10.in-addr.arpa.", mustReverse("2001:db8::4"), "warren.", "example.com.",
		"nosuch.service.warren.", `we\.b.service.warren.`, "a.b.c.d.service.dc2.warren.",
	}
	types := []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeANY, dns.TypeSOA, dns.TypeAXFR}
	for i, n := range names {
		m := question(n, types[i%len(types)])
		if i%3 == 0 {
			m.SetEdns0(uint16(512+i*300), i%2 == 0)
		}
		add(m)
	}
	m := chaosQuery()
	add(m)
	m = question("web.service.warren.", dns.TypeA)
	m.Opcode = dns.OpcodeUpdate
	add(m)
	m = question("web.service.warren.", dns.TypeA)
	m.Question = append(m.Question, m.Question[0])
	add(m)
	m = question("web.service.warren.", dns.TypeA)
	m.SetEdns0(4096, true)
	m.IsEdns0().SetVersion(1)
	add(m)
	// Raw shapes the packer cannot make.
	seeds = append(seeds,
		header(1, 0, 0, 0, 0, 0),
		append(header(4, 0, 1, 0, 0, 0), 0xC0, 12, 0, 1, 0, 1),
		append(append(header(3, 0, 2, 0, 0, 0), rawQuestion()...), rawQuestion()...),
	)
	return seeds
}

// TestFuzzSeeds checks that the committed seed corpus is current, and
// writes it with -update.
func TestFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzHandle")
	for i, seed := range fuzzSeeds() {
		path := filepath.Join(dir, fmt.Sprintf("seed-%02d", i))
		want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", seed)
		if *update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != want {
			t.Errorf("%s is missing or stale (run go test -run TestFuzzSeeds -update): %v", path, err)
		}
	}
}
