package dns

import (
	"testing"

	"github.com/miekg/dns"

	"github.com/warren-mesh/warren/catalog"
)

// onlyWeb may read service web and node n1.
type onlyWeb struct{}

func (onlyWeb) ServiceRead(s string) bool { return s == "web" }
func (onlyWeb) NodeRead(n string) bool    { return n == "n1" }

// TestFilteredViewAnswersOnlyWhatTheTokenReads queries DNS through a
// filtered view: a service or node the filter hides is NXDOMAIN, and an
// instance on a hidden node is left out.
func TestFilteredViewAnswersOnlyWhatTheTokenReads(t *testing.T) {
	v := newFakeView()
	v.addNode("n1", "10.0.0.1", nil)
	v.addNode("n2", "10.0.0.2", nil)
	v.addService("n1", catalog.Service{Name: "web", Port: 80}, catalog.HealthPassing)
	v.addService("n2", catalog.Service{Name: "web", Port: 80}, catalog.HealthPassing)
	v.addService("n1", catalog.Service{Name: "db", Port: 5432}, catalog.HealthPassing)
	s := newTestServer(t, testConfig(FilteredView(v, func() Filter { return onlyWeb{} })))

	ask := func(name string, qtype uint16) *dns.Msg {
		w := &recorder{}
		s.ServeDNS(w, question(name, qtype))
		if w.msg == nil {
			t.Fatalf("%s: no reply", name)
		}
		return w.msg
	}
	if m := ask("web.service.warren.", dns.TypeA); m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 ||
		m.Answer[0].(*dns.A).A.String() != "10.0.0.1" {
		t.Errorf("web: rcode %d, answers %v; want only 10.0.0.1", m.Rcode, m.Answer)
	}
	for _, q := range []string{"db.service.warren.", "n2.node.warren."} {
		if m := ask(q, dns.TypeA); m.Rcode != dns.RcodeNameError || len(m.Answer) != 0 {
			t.Errorf("%s: rcode %d, answers %v; want NXDOMAIN", q, m.Rcode, m.Answer)
		}
	}
	if m := ask("n1.node.warren.", dns.TypeA); len(m.Answer) != 1 {
		t.Errorf("n1: %v", m.Answer)
	}
}
