package dns

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/warren-mesh/warren/catalog"
)

type protoCase struct {
	name  string
	cfg   func(*Config)
	msg   *dns.Msg // the query; built from q and qtype when nil
	q     string
	qtype uint16
	tcp   bool
	edns  uint16 // EDNS0 buffer size; 0 for none

	noReply bool
	rcode   int
	aa      bool
	tc      bool
	answer  []string // exact, sorted; unless nAnswer
	nAnswer int      // when > 0: the answer count instead of exact records
	ns      []string
	extra   []string // without OPT
}

func TestProtocol(t *testing.T) {
	v := testView()
	soa := func(zone string) string {
		return fmt.Sprintf("%s 2 IN SOA ns.%s hostmaster.%s %d 3600 600 86400 2", zone, zone, zone, uint32(v.Generation()))
	}
	soaW := []string{soa("warren.")}
	withMsg := func(f func(m *dns.Msg)) *dns.Msg {
		m := question("web.service.warren.", dns.TypeA)
		f(m)
		return m
	}
	webSRVExtra := []string{
		"node1.node.dc1.warren. 30 IN A 10.0.0.1",
		"node2.node.dc1.warren. 30 IN A 10.0.0.2",
		"node4.node.dc1.warren. 30 IN AAAA 2001:db8::4",
	}
	cases := []protoCase{
		// NAME.service: healthy instances only, owner is the name asked.
		{name: "service A", q: "web.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"web.service.warren. 30 IN A 10.0.0.1", "web.service.warren. 30 IN A 10.0.0.2"}},
		{name: "service A mixed case", q: "WEB.Service.Warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"web.service.warren. 30 IN A 10.0.0.1", "web.service.warren. 30 IN A 10.0.0.2"}},
		{name: "service A with dc", q: "web.service.dc1.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"web.service.dc1.warren. 30 IN A 10.0.0.1", "web.service.dc1.warren. 30 IN A 10.0.0.2"}},
		{name: "service A other dc", q: "web.service.dc2.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},
		{name: "service AAAA", q: "web.service.warren.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"web.service.warren. 30 IN AAAA 2001:db8::4"}},
		{name: "service ANY", q: "web.service.warren.", qtype: dns.TypeANY, aa: true,
			answer: []string{"web.service.warren. 30 IN A 10.0.0.1", "web.service.warren. 30 IN A 10.0.0.2", "web.service.warren. 30 IN AAAA 2001:db8::4"}},
		{name: "only passing drops warning", cfg: func(c *Config) { c.OnlyPassing = true }, q: "web.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"web.service.warren. 30 IN A 10.0.0.1"}},
		{name: "tag filter", q: "v1.web.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"v1.web.service.warren. 30 IN A 10.0.0.1"}},
		{name: "tag filter case-insensitive", q: "PRIMARY.web.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"primary.web.service.warren. 30 IN A 10.0.0.1"}},
		{name: "tag without IPv4", q: "v2.web.service.warren.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"v2.web.service.warren. 30 IN AAAA 2001:db8::4"}},
		{name: "unknown tag", q: "v9.web.service.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},
		{name: "all critical", q: "down.service.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},
		{name: "unknown service", q: "nosuch.service.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},
		{name: "known service, type without records", q: "web.service.warren.", qtype: dns.TypeMX, aa: true,
			ns: soaW},

		// SRV: node name as target, its address in the additional section.
		{name: "service SRV", q: "web.service.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"web.service.warren. 30 IN SRV 1 1 8080 node2.node.dc1.warren.",
				"web.service.warren. 30 IN SRV 1 1 8080 node4.node.dc1.warren.",
				"web.service.warren. 30 IN SRV 1 10 8080 node1.node.dc1.warren.",
			},
			extra: webSRVExtra},
		{name: "RFC 2782 _tcp", q: "_web._tcp.service.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{
				"_web._tcp.service.warren. 30 IN SRV 1 1 8080 node2.node.dc1.warren.",
				"_web._tcp.service.warren. 30 IN SRV 1 1 8080 node4.node.dc1.warren.",
				"_web._tcp.service.warren. 30 IN SRV 1 10 8080 node1.node.dc1.warren.",
			},
			extra: webSRVExtra},
		{name: "RFC 2782 tag", q: "_web._v1.service.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"_web._v1.service.warren. 30 IN SRV 1 10 8080 node1.node.dc1.warren."},
			extra:  []string{"node1.node.dc1.warren. 30 IN A 10.0.0.1"}},
		{name: "SRV shares additional records", q: "multi.service.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"multi.service.warren. 5 IN SRV 1 1 7001 node5.node.dc1.warren.", "multi.service.warren. 5 IN SRV 1 1 7002 node5.node.dc1.warren."},
			extra:  []string{"node5.node.dc1.warren. 5 IN A 10.0.0.5"}},
		{name: "alt domain", q: "v1.web.service.consul.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"v1.web.service.consul. 30 IN SRV 1 10 8080 node1.node.dc1.consul."},
			extra:  []string{"node1.node.dc1.consul. 30 IN A 10.0.0.1"}},
		{name: "alt domain negative", q: "nosuch.service.consul.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: []string{soa("consul.")}},

		// Service address given as a host name: CNAME (SRV targets the host).
		{name: "hostname service A", q: "db.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"db.service.warren. 20 IN CNAME db.example.com."}},
		{name: "hostname service SRV", q: "db.service.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"db.service.warren. 20 IN SRV 1 1 5432 db.example.com."}},
		{name: "service address", q: "api.service.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"api.service.warren. 5 IN A 10.1.0.9"}},

		// Connect: only connect-proxy instances of NAME-sidecar-proxy.
		{name: "connect A", q: "web.connect.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"web.connect.warren. 30 IN A 10.0.0.1"}},
		{name: "connect SRV", q: "web.connect.warren.", qtype: dns.TypeSRV, aa: true,
			answer: []string{"web.connect.warren. 30 IN SRV 1 1 21000 node1.node.dc1.warren."},
			extra:  []string{"node1.node.dc1.warren. 30 IN A 10.0.0.1"}},
		{name: "connect unknown", q: "db.connect.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},

		// Nodes.
		{name: "node A", q: "node1.node.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"node1.node.warren. 10 IN A 10.0.0.1"}},
		{name: "node TXT", q: "node1.node.warren.", qtype: dns.TypeTXT, aa: true,
			answer: []string{`node1.node.warren. 10 IN TXT "env=prod"`, `node1.node.warren. 10 IN TXT "rack=r1"`}},
		{name: "node ANY with dc", q: "node1.node.dc1.warren.", qtype: dns.TypeANY, aa: true,
			answer: []string{"node1.node.dc1.warren. 10 IN A 10.0.0.1", `node1.node.dc1.warren. 10 IN TXT "env=prod"`, `node1.node.dc1.warren. 10 IN TXT "rack=r1"`}},
		{name: "node AAAA", q: "node4.node.warren.", qtype: dns.TypeAAAA, aa: true,
			answer: []string{"node4.node.warren. 10 IN AAAA 2001:db8::4"}},
		{name: "node without type", q: "node4.node.warren.", qtype: dns.TypeA, aa: true, ns: soaW},
		{name: "node TXT without meta", q: "node2.node.warren.", qtype: dns.TypeTXT, aa: true, ns: soaW},
		{name: "hostname node", q: "hostnode.node.warren.", qtype: dns.TypeA, aa: true,
			answer: []string{"hostnode.node.warren. 10 IN CNAME host.example.com."}},
		{name: "unknown node", q: "nosuch.node.warren.", qtype: dns.TypeA, aa: true,
			rcode: dns.RcodeNameError, ns: soaW},

		// Zone apex and names that cannot exist.
		{name: "apex SOA", q: "warren.", qtype: dns.TypeSOA, aa: true,
			answer: []string{strings.Replace(soa("warren."), "warren. 2 IN", "warren. 0 IN", 1)}},
		{name: "apex A", q: "warren.", qtype: dns.TypeA, aa: true, ns: soaW},
		{name: "empty non-terminal service", q: "service.warren.", qtype: dns.TypeA, aa: true, ns: soaW},
		{name: "empty non-terminal node dc", q: "node.dc1.warren.", qtype: dns.TypeA, aa: true, ns: soaW},
		{name: "empty non-terminal dc", q: "dc1.warren.", qtype: dns.TypeA, aa: true, ns: soaW},
		{name: "empty non-terminal _tcp", q: "_tcp.service.warren.", qtype: dns.TypeSRV, aa: true, ns: soaW},
		{name: "other dc is not a non-terminal", q: "dc2.warren.", qtype: dns.TypeA, aa: true, rcode: dns.RcodeNameError, ns: soaW},
		{name: "unknown kind", q: "foo.warren.", qtype: dns.TypeA, aa: true, rcode: dns.RcodeNameError, ns: soaW},
		{name: "too many labels", q: "a.b.web.service.warren.", qtype: dns.TypeA, aa: true, rcode: dns.RcodeNameError, ns: soaW},
		{name: "escaped label", q: `we\.b.service.warren.`, qtype: dns.TypeA, aa: true, rcode: dns.RcodeNameError, ns: soaW},

		// Reverse lookups.
		{name: "PTR node", q: "1.0.0.10.in-addr.arpa.", qtype: dns.TypePTR, aa: true,
			answer: []string{"1.0.0.10.in-addr.arpa. 10 IN PTR node1.node.dc1.warren."}},
		{name: "PTR service address", q: "9.0.1.10.in-addr.arpa.", qtype: dns.TypePTR, aa: true,
			answer: []string{"9.0.1.10.in-addr.arpa. 5 IN PTR api.service.warren."}},
		{name: "PTR IPv6 node", q: mustReverse("2001:db8::4"), qtype: dns.TypePTR, aa: true,
			answer: []string{mustReverse("2001:db8::4") + " 10 IN PTR node4.node.dc1.warren."}},
		{name: "PTR unknown address without recursors", q: "9.9.9.9.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused},
		{name: "PTR partial name", q: "10.in-addr.arpa.", qtype: dns.TypePTR, rcode: dns.RcodeRefused},

		// Outside the zones, without recursors.
		{name: "outside zone refused", q: "example.com.", qtype: dns.TypeA, rcode: dns.RcodeRefused},
		{name: "zone suffix is not the zone", q: "xwarren.", qtype: dns.TypeA, rcode: dns.RcodeRefused},

		// Size: truncation with TC, TCP gets all, EDNS0 4096 gets all.
		{name: "UDP 512 truncates with TC", q: "big.service.warren.", qtype: dns.TypeA, aa: true, tc: true, nAnswer: 29},
		{name: "UDP EDNS0 4096 fits", q: "big.service.warren.", qtype: dns.TypeA, edns: 4096, aa: true, nAnswer: 40},
		{name: "UDP EDNS0 below 512 counts as 512", q: "big.service.warren.", qtype: dns.TypeA, edns: 100, aa: true, tc: true, nAnswer: 29},
		{name: "TCP fits", q: "big.service.warren.", qtype: dns.TypeA, tcp: true, aa: true, nAnswer: 40},
		{name: "UDP SRV truncates with TC", q: "big.service.warren.", qtype: dns.TypeSRV, aa: true, tc: true, nAnswer: 8},
		{name: "udp_answer_limit caps UDP without TC", cfg: func(c *Config) { c.UDPAnswerLimit = 3 }, q: "ten.service.warren.", qtype: dns.TypeA, aa: true, nAnswer: 3},
		{name: "udp_answer_limit not on TCP", cfg: func(c *Config) { c.UDPAnswerLimit = 3 }, q: "ten.service.warren.", qtype: dns.TypeA, tcp: true, aa: true, nAnswer: 10},

		// Bad input.
		{name: "CHAOS class", msg: chaosQuery(), rcode: dns.RcodeRefused},
		{name: "unknown opcode", msg: withMsg(func(m *dns.Msg) { m.Opcode = 7 }), rcode: dns.RcodeNotImplemented},
		{name: "update opcode", msg: withMsg(func(m *dns.Msg) { m.Opcode = dns.OpcodeUpdate }), rcode: dns.RcodeNotImplemented},
		{name: "no question", msg: withMsg(func(m *dns.Msg) { m.Question = nil }), rcode: dns.RcodeFormatError},
		{name: "two questions", msg: withMsg(func(m *dns.Msg) { m.Question = append(m.Question, m.Question[0]) }), rcode: dns.RcodeFormatError},
		{name: "answer in query", msg: withMsg(func(m *dns.Msg) {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeA, Class: dns.ClassINET}}}
		}), rcode: dns.RcodeFormatError},
		{name: "two OPT records", msg: withMsg(func(m *dns.Msg) { m.SetEdns0(1232, false); m.Extra = append(m.Extra, m.Extra[0]) }), rcode: dns.RcodeFormatError},
		{name: "EDNS version 1", msg: withMsg(func(m *dns.Msg) { m.SetEdns0(1232, false); m.IsEdns0().SetVersion(1) }), rcode: dns.RcodeBadVers},
		{name: "AXFR refused", q: "warren.", qtype: dns.TypeAXFR, rcode: dns.RcodeRefused},
		{name: "OPT as question type", q: "warren.", qtype: dns.TypeOPT, rcode: dns.RcodeFormatError},
		{name: "response is ignored", msg: withMsg(func(m *dns.Msg) { m.Response = true }), noReply: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(v)
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			s := newTestServer(t, cfg)
			checkCase(t, s, tc)
		})
	}
}

func checkCase(t *testing.T, s *Server, tc protoCase) {
	t.Helper()
	req := tc.msg
	if req == nil {
		req = question(tc.q, tc.qtype)
	}
	if tc.edns != 0 {
		req.SetEdns0(tc.edns, false)
	}
	w := &recorder{tcp: tc.tcp}
	s.ServeDNS(w, req)
	if tc.noReply {
		if w.writes != 0 {
			t.Fatalf("got a reply, want none:\n%v", w.msg)
		}
		return
	}
	if w.writes != 1 || w.err != nil {
		t.Fatalf("writes = %d, err = %v", w.writes, w.err)
	}
	got := w.msg
	if got.Id != req.Id || !got.Response {
		t.Errorf("id %d response %v, want id %d response", got.Id, got.Response, req.Id)
	}
	if got.Rcode != tc.rcode {
		t.Errorf("rcode = %s, want %s\n%v", dns.RcodeToString[got.Rcode], dns.RcodeToString[tc.rcode], got)
	}
	if got.Authoritative != tc.aa {
		t.Errorf("aa = %v, want %v", got.Authoritative, tc.aa)
	}
	if got.Truncated != tc.tc {
		t.Errorf("tc = %v, want %v", got.Truncated, tc.tc)
	}
	if len(req.Question) == 1 && (len(got.Question) != 1 || got.Question[0] != req.Question[0]) {
		t.Errorf("question = %v, want %v", got.Question, req.Question)
	}
	limit := dns.MaxMsgSize
	if !tc.tcp {
		limit = max(int(tc.edns), dns.MinMsgSize)
	}
	if len(w.wire) > limit {
		t.Errorf("reply is %d bytes, limit %d", len(w.wire), limit)
	}
	if got.Rcode != dns.RcodeFormatError && (req.IsEdns0() != nil) != (got.IsEdns0() != nil) {
		t.Errorf("request EDNS0 %v, reply EDNS0 %v", req.IsEdns0() != nil, got.IsEdns0() != nil)
	}
	if tc.nAnswer > 0 {
		if len(got.Answer) != tc.nAnswer {
			t.Errorf("answers = %d, want %d", len(got.Answer), tc.nAnswer)
		}
		if nx := len(rrStrings(got.Extra)); len(got.Extra) > 0 && got.Question[0].Qtype == dns.TypeSRV && nx != len(got.Answer) {
			t.Errorf("SRV answers = %d but additional = %d", len(got.Answer), nx)
		}
	} else if diff := diffRRs(rrStrings(got.Answer), tc.answer); diff != "" {
		t.Errorf("answer section:\n%s", diff)
	}
	if diff := diffRRs(rrStrings(got.Ns), tc.ns); diff != "" {
		t.Errorf("authority section:\n%s", diff)
	}
	if tc.nAnswer == 0 {
		if diff := diffRRs(rrStrings(got.Extra), tc.extra); diff != "" {
			t.Errorf("additional section:\n%s", diff)
		}
	}
}

func diffRRs(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	return fmt.Sprintf("got:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
}

func mustReverse(ip string) string {
	r, err := dns.ReverseAddr(ip)
	if err != nil {
		panic(err)
	}
	return r
}

func chaosQuery() *dns.Msg {
	m := question("version.bind.", dns.TypeTXT)
	m.Question[0].Qclass = dns.ClassCHAOS
	return m
}

// TestShuffle checks that answers come in varying orders and that SRV
// records keep their additional records.
func TestShuffle(t *testing.T) {
	s := newTestServer(t, testConfig(testView()))
	s.randN = randIntN
	orders := map[string]bool{}
	for range 50 {
		w := &recorder{}
		s.ServeDNS(w, question("ten.service.warren.", dns.TypeA))
		var order []string
		for _, rr := range w.msg.Answer {
			order = append(order, rr.(*dns.A).A.String())
		}
		orders[strings.Join(order, ",")] = true
	}
	if len(orders) < 10 {
		t.Errorf("50 queries gave %d orders of 10 records; want shuffling", len(orders))
	}
}

// TestCacheGeneration checks that answers come from the cache until the
// view's generation moves, and change when it does.
func TestCacheGeneration(t *testing.T) {
	v := testView()
	s := newTestServer(t, testConfig(v))
	ask := func() []string {
		w := &recorder{}
		s.ServeDNS(w, question("web.service.warren.", dns.TypeA))
		return rrStrings(w.msg.Answer)
	}
	first := ask()
	calls := v.calls.Load()
	for range 10 {
		ask()
	}
	if n := v.calls.Load() - calls; n != 0 {
		t.Errorf("cached queries called the view %d times", n)
	}
	v.addNode("node9", "10.0.0.9", nil)
	v.addService("node9", catalog.Service{Name: "web", Port: 8080}, catalog.HealthPassing)
	second := ask()
	if len(second) != len(first)+1 || !slices.Contains(second, "web.service.warren. 30 IN A 10.0.0.9") {
		t.Errorf("after a change: %v (before: %v)", second, first)
	}
}

// TestConcurrent runs queries from many goroutines while the view changes;
// run it with -race.
func TestConcurrent(t *testing.T) {
	v := testView()
	s := newTestServer(t, testConfig(v))
	s.randN = randIntN
	var wg sync.WaitGroup
	names := []string{"web.service.warren.", "big.service.warren.", "1.0.0.10.in-addr.arpa.", "node1.node.warren.", "nosuch.service.warren."}
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				req := question(names[(g+i)%len(names)], []uint16{dns.TypeA, dns.TypeSRV, dns.TypePTR, dns.TypeTXT}[i%4])
				if i%3 == 0 {
					req.SetEdns0(1232, true)
				}
				w := &recorder{tcp: i%5 == 0}
				s.ServeDNS(w, req)
				if w.err != nil || w.writes != 1 {
					t.Errorf("query %d: writes %d err %v", i, w.writes, w.err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			v.addNode(fmt.Sprintf("churn%d", i), fmt.Sprintf("10.9.0.%d", i), nil)
		}
	})
	wg.Wait()
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]Config{
		"no view":        {},
		"bad domain":     {View: newFakeView(), Domain: "bad..domain"},
		"same alt":       {View: newFakeView(), Domain: "warren", AltDomain: "WARREN."},
		"negative limit": {View: newFakeView(), UDPAnswerLimit: -1},
		"negative ttl":   {View: newFakeView(), ServiceTTL: map[string]time.Duration{"*": -1}},
	} {
		if _, err := newServer(cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
