package dns

import (
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// recorder is an in-memory dns.ResponseWriter. Like the real one it packs
// the reply; it keeps the wire bytes and the message as a client would
// unpack them.
type recorder struct {
	tcp    bool
	wire   []byte
	msg    *dns.Msg
	err    error
	writes int
}

func (r *recorder) LocalAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8600}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8600}
}

func (r *recorder) RemoteAddr() net.Addr {
	if r.tcp {
		return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	}
	return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}

func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.writes++
	wire, err := m.Pack()
	if err != nil {
		r.err = err
		return err
	}
	return r.write(wire)
}

func (r *recorder) write(wire []byte) error {
	r.wire = wire
	r.msg = new(dns.Msg)
	if err := r.msg.Unpack(wire); err != nil {
		r.err = err
		return err
	}
	return nil
}

func (r *recorder) Write(b []byte) (int, error) {
	r.writes++
	return len(b), r.write(slices.Clone(b))
}
func (r *recorder) Close() error        { return nil }
func (r *recorder) TsigStatus() error   { return nil }
func (r *recorder) TsigTimersOnly(bool) {}
func (r *recorder) Hijack()             {}

// testConfig is the configuration most tests use.
func testConfig(v View) Config {
	return Config{
		Domain:     "warren",
		AltDomain:  "consul.",
		Datacenter: "dc1",
		NodeName:   "node1",
		NodeTTL:    10 * time.Second,
		ServiceTTL: map[string]time.Duration{"*": 5 * time.Second, "web": 30 * time.Second, "d*": 20 * time.Second},
		SOAMinTTL:  2 * time.Second,
		View:       v,
	}
}

// newTestServer makes a server without listeners, with a deterministic
// shuffle.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := newServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	s.randN = r.IntN
	return s
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 4242
	return m
}

// rrStrings renders records with whitespace collapsed, sorted, leaving out
// OPT records.
func rrStrings(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeOPT {
			continue
		}
		out = append(out, strings.Join(strings.Fields(rr.String()), " "))
	}
	slices.Sort(out)
	return out
}
