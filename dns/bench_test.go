package dns

import (
	"net"
	"testing"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// packWriter packs replies like miekg/dns's own writer and discards them.
type packWriter struct{ tcp bool }

var (
	udpAddr = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
	tcpAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
)

func (w *packWriter) LocalAddr() net.Addr { return udpAddr }
func (w *packWriter) RemoteAddr() net.Addr {
	if w.tcp {
		return tcpAddr
	}
	return udpAddr
}
func (w *packWriter) WriteMsg(m *dns.Msg) error {
	_, err := m.Pack()
	return err
}
func (w *packWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *packWriter) Close() error                { return nil }
func (w *packWriter) TsigStatus() error           { return nil }
func (w *packWriter) TsigTimersOnly(bool)         {}
func (w *packWriter) Hijack()                     {}

// BenchmarkServiceA is the handler answering NAME.service A for a service
// with 10 instances (cached, shuffled, packed).
func BenchmarkServiceA(b *testing.B) {
	s := newTestServer(b, testConfig(testView()))
	s.randN = randIntN
	req := question("ten.service.warren.", dns.TypeA)
	w := &packWriter{}
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, req)
	}
}

func BenchmarkServiceAParallel(b *testing.B) {
	s := newTestServer(b, testConfig(testView()))
	s.randN = randIntN
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := question("ten.service.warren.", dns.TypeA)
		w := &packWriter{}
		for pb.Next() {
			s.ServeDNS(w, req)
		}
	})
}

func BenchmarkServiceSRV(b *testing.B) {
	s := newTestServer(b, testConfig(testView()))
	s.randN = randIntN
	req := question("ten.service.warren.", dns.TypeSRV)
	req.SetEdns0(1232, false)
	w := &packWriter{}
	b.ReportAllocs()
	for b.Loop() {
		s.ServeDNS(w, req)
	}
}

// BenchmarkBareConstant is the baseline of the performance target: a bare
// miekg/dns handler answering the same 10 A records from a constant.
func BenchmarkBareConstant(b *testing.B) {
	var answer []dns.RR
	for i := range 10 {
		answer = append(answer, &dns.A{
			Hdr: dns.RR_Header{Name: "ten.service.warren.", Rrtype: dns.TypeA, Class: dns.ClassINET},
			A:   net.IPv4(10, 3, 0, byte(i+1)),
		})
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = answer
		w.WriteMsg(m)
	})
	req := question("ten.service.warren.", dns.TypeA)
	w := &packWriter{}
	b.ReportAllocs()
	for b.Loop() {
		h.ServeDNS(w, req)
	}
}

func BenchmarkBareConstantParallel(b *testing.B) {
	var answer []dns.RR
	for i := range 10 {
		answer = append(answer, &dns.A{
			Hdr: dns.RR_Header{Name: "ten.service.warren.", Rrtype: dns.TypeA, Class: dns.ClassINET},
			A:   net.IPv4(10, 3, 0, byte(i+1)),
		})
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = answer
		w.WriteMsg(m)
	})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := question("ten.service.warren.", dns.TypeA)
		w := &packWriter{}
		for pb.Next() {
			h.ServeDNS(w, req)
		}
	})
}

// BenchmarkServiceAMetrics is BenchmarkServiceA with metrics recorded: the
// difference is the per-query cost of instrumentation.
func BenchmarkServiceAMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			cfg := testConfig(testView())
			if on {
				cfg.Metrics = prometheus.NewRegistry()
			}
			s := newTestServer(b, cfg)
			s.randN = randIntN
			req := question("ten.service.warren.", dns.TypeA)
			w := &packWriter{}
			b.ReportAllocs()
			for b.Loop() {
				s.ServeDNS(w, req)
			}
		})
	}
}
