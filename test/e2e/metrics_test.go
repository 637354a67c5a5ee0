package e2e

import (
	"fmt"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads /v1/agent/metrics?format=prometheus and parses it with the
// Prometheus text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/v1/agent/metrics?format=prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	return families
}

// value returns the sum of a family's samples whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return 0
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestMetricsMoveWithActions(t *testing.T) {
	p, port := startDevDNS(t)
	dnsPort := strconv.Itoa(port)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	// The leader registers the dev node itself (serfHealth and the server
	// service) shortly after it is elected: count from there.
	var before map[string]*dto.MetricFamily
	waitFor(t, 10*time.Second, func() error {
		before = scrape(t, p.HTTP)
		if value(before, "warren_catalog_service_instances", nil) != 1 || value(before, "warren_catalog_checks", map[string]string{"status": "passing"}) != 1 {
			return fmt.Errorf("dev node not registered yet")
		}
		return nil
	})
	for i := range 3 {
		reg := &consulapi.CatalogRegistration{Node: fmt.Sprintf("m%d", i), Address: fmt.Sprintf("10.3.0.%d", i+1),
			Service: &consulapi.AgentService{ID: "svc", Service: "metered", Port: 80},
			Check:   &consulapi.AgentCheck{CheckID: "c", Name: "c", Status: consulapi.HealthPassing, ServiceID: "svc"}}
		if _, err := cl.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("dig"); err == nil {
		for range 5 {
			out, err := exec.Command("dig", "+short", "+tries=1", "+time=2", "@127.0.0.1", "-p", dnsPort, "metered.service.warren").Output()
			if err != nil || len(strings.Fields(string(out))) != 3 {
				t.Fatalf("dig: %q %v", out, err)
			}
		}
	}
	after := scrape(t, p.HTTP)

	// The dev node itself is an instance too (its "warren" server service).
	if got := value(after, "warren_catalog_service_instances", nil) - value(before, "warren_catalog_service_instances", nil); got != 3 {
		t.Errorf("catalog instances rose by %v, want 3 (before %v, after %v)", got, value(before, "warren_catalog_service_instances", nil), value(after, "warren_catalog_service_instances", nil))
	}
	if got := value(after, "warren_catalog_checks", map[string]string{"status": "passing"}) - value(before, "warren_catalog_checks", map[string]string{"status": "passing"}); got != 3 {
		t.Errorf("passing checks rose by %v, want 3", got)
	}
	if _, err := exec.LookPath("dig"); err == nil {
		if got := value(after, "warren_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NOERROR"}) - value(before, "warren_dns_queries_total", map[string]string{"qtype": "A", "rcode": "NOERROR"}); got != 5 {
			t.Errorf("DNS A queries rose by %v, want 5", got)
		}
	}
	if got := value(after, "warren_http_requests_total", map[string]string{"route": "PUT /v1/catalog/register", "code": "200"}) - value(before, "warren_http_requests_total", map[string]string{"route": "PUT /v1/catalog/register", "code": "200"}); got != 3 {
		t.Errorf("HTTP register requests rose by %v, want 3", got)
	}
	if value(after, "warren_raft_leader", nil) != 1 {
		t.Error("warren_raft_leader is not 1 on the dev server")
	}
	if value(after, "warren_blocking_spurious_wakeups_total", nil) != 0 {
		t.Error("spurious wake-ups")
	}
	// The DNS latency histogram is sampled: each timed query counts 16.
	if n := value(after, "warren_dns_query_duration_seconds", nil); int(n)%16 != 0 {
		t.Errorf("DNS latency sample count %v is not a multiple of 16", n)
	}
	// The failure detector's counters are bridged from memberlist: present,
	// and a lone healthy node has nothing to report.
	for _, name := range []string{"warren_gossip_suspicions_total", "warren_gossip_degraded_probes_total", "warren_gossip_health_score"} {
		if after[name] == nil {
			t.Errorf("%s not exported", name)
		} else if v := value(after, name, nil); v != 0 {
			t.Errorf("%s = %v on a single healthy node", name, v)
		}
	}
	// No label grows with instances: no label value names a node, a
	// service instance or a check we registered.
	for name, f := range after {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), "m") && len(l.GetValue()) == 2 || l.GetValue() == "svc" || l.GetValue() == "metered" {
					t.Errorf("%s has a label %s=%q naming a registered object", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// Consul's JSON shape is served too.
	resp, err := http.Get("http://" + p.HTTP + "/v1/agent/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JSON metrics: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	mi, err := cl.Agent().Metrics()
	if err != nil || len(mi.Gauges) == 0 || len(mi.Counters) == 0 {
		t.Fatalf("consul client Agent().Metrics() = %d gauges, %v", len(mi.Gauges), err)
	}
	p.stop(t)
}

func TestHealthEndpoints(t *testing.T) {
	p := startDev(t)
	for path, want := range map[string]int{"/v1/agent/health/live": 200, "/v1/agent/health/ready": 200} {
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, err := http.Get("http://" + p.HTTP + path)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == want {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never answered %d", path, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.stop(t)
}
