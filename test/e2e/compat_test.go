package e2e

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestConsulClientAgainstDev drives `warren dev` with the official Consul Go
// client, the way Prometheus, Traefik and consul-template use it.
func TestConsulClientAgainstDev(t *testing.T) {
	p := startDev(t)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	cat, health := cl.Catalog(), cl.Health()

	regs := []*consulapi.CatalogRegistration{
		{
			Node: "web-1", Address: "10.0.0.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &consulapi.AgentService{ID: "web-a", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080},
			Checks: consulapi.HealthChecks{
				{CheckID: "web-a-http", Name: "http", Status: consulapi.HealthPassing, ServiceID: "web-a"},
				{CheckID: "mem", Name: "memory", Status: consulapi.HealthPassing},
			},
		},
		{
			Node: "web-2", Address: "10.0.0.2", NodeMeta: map[string]string{"rack": "r2"},
			Service: &consulapi.AgentService{ID: "web-b", Service: "web", Tags: []string{"v2"}, Port: 8080},
			Check:   &consulapi.AgentCheck{CheckID: "web-b-http", Name: "http", Status: consulapi.HealthCritical, ServiceID: "web-b", Output: "connection refused"},
		},
		{
			Node: "db-1", Address: "10.0.1.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &consulapi.AgentService{ID: "db", Service: "db", Port: 5432},
			Check:   &consulapi.AgentCheck{CheckID: "db-alive", Name: "alive", Status: consulapi.HealthWarning, ServiceID: "db"},
		},
	}
	for _, r := range regs {
		if _, err := cat.Register(r, nil); err != nil {
			t.Fatalf("register %s: %v", r.Node, err)
		}
	}

	services, _, err := cat.Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(services["web"])
	if strings.Join(services["web"], ",") != "primary,v1,v2" || len(services["db"]) != 0 {
		t.Fatalf("catalog services = %v", services)
	}

	v1, _, err := cat.Service("web", "v1", nil)
	if err != nil || len(v1) != 1 || v1[0].ServiceID != "web-a" || v1[0].NodeMeta["rack"] != "r1" {
		t.Fatalf("catalog service web tag v1 = %+v, %v", v1, err)
	}
	both, _, err := cat.ServiceMultipleTags("web", []string{"v1", "primary"}, nil)
	if err != nil || len(both) != 1 {
		t.Fatalf("catalog service web tags v1+primary = %+v, %v", both, err)
	}

	r1, _, err := cat.Nodes(&consulapi.QueryOptions{NodeMeta: map[string]string{"rack": "r1"}})
	if err != nil || len(r1) != 2 {
		t.Fatalf("nodes with rack=r1 = %+v, %v", r1, err)
	}

	passing, _, err := health.Service("web", "", true, nil)
	if err != nil || len(passing) != 1 || passing[0].Service.ID != "web-a" {
		t.Fatalf("health web passing = %+v, %v", passing, err)
	}
	if len(passing[0].Checks) != 2 {
		t.Fatalf("web-a has %d checks, want its own and the node's", len(passing[0].Checks))
	}
	all, _, err := health.Service("web", "", false, nil)
	if err != nil || len(all) != 2 {
		t.Fatalf("health web all = %+v, %v", all, err)
	}

	critical, _, err := health.State(consulapi.HealthCritical, nil)
	if err != nil || len(critical) != 1 || critical[0].CheckID != "web-b-http" || critical[0].Output != "connection refused" {
		t.Fatalf("health state critical = %+v, %v", critical, err)
	}
	warning, _, err := health.State(consulapi.HealthWarning, nil)
	if err != nil || len(warning) != 1 || warning[0].ServiceName != "db" {
		t.Fatalf("health state warning = %+v, %v", warning, err)
	}
	anyState, _, err := health.State(consulapi.HealthAny, nil)
	ours := 0
	for _, c := range anyState {
		if c.CheckID != "serfHealth" {
			ours++
		} else if c.Status != consulapi.HealthPassing {
			t.Errorf("dev node's serfHealth is %s", c.Status)
		}
	}
	if err != nil || ours != 4 || len(anyState) != 5 {
		t.Fatalf("health state any = %d checks (%d registered here), want 4 plus the dev node's serfHealth; %v", len(anyState), ours, err)
	}
	nodeChecks, _, err := health.Node("web-1", nil)
	if err != nil || len(nodeChecks) != 2 {
		t.Fatalf("health node web-1 = %+v, %v", nodeChecks, err)
	}
	node, _, err := cat.Node("web-1", nil)
	if err != nil || node.Node.Address != "10.0.0.1" || node.Services["web-a"] == nil || node.Services["web-a"].Port != 8080 {
		t.Fatalf("catalog node web-1 = %+v, %v", node, err)
	}

	// Blocking query: an unrelated write does not wake it; a change does.
	_, meta, err := health.Service("web", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	type res struct {
		n    int
		idx  uint64
		err  error
		took time.Duration
	}
	watch := func(wait time.Duration) <-chan res {
		ch := make(chan res, 1)
		go func() {
			start := time.Now()
			e, m, err := health.Service("web", "", true, &consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: wait})
			r := res{n: len(e), err: err, took: time.Since(start)}
			if m != nil {
				r.idx = m.LastIndex
			}
			ch <- r
		}()
		return ch
	}
	w := watch(1500 * time.Millisecond)
	if _, err := cat.Register(&consulapi.CatalogRegistration{Node: "db-2", Address: "10.0.1.2",
		Service: &consulapi.AgentService{ID: "db2", Service: "db", Port: 5432}}, nil); err != nil {
		t.Fatal(err)
	}
	if r := <-w; r.err != nil || r.took < 1400*time.Millisecond || r.idx != meta.LastIndex {
		t.Fatalf("watcher after an unrelated write: %+v (index was %d)", r, meta.LastIndex)
	}
	w = watch(30 * time.Second)
	fixed := *regs[1]
	fixed.Check = &consulapi.AgentCheck{CheckID: "web-b-http", Name: "http", Status: consulapi.HealthPassing, ServiceID: "web-b"}
	if _, err := cat.Register(&fixed, nil); err != nil {
		t.Fatal(err)
	}
	if r := <-w; r.err != nil || r.n != 2 || r.idx <= meta.LastIndex || r.took > 5*time.Second {
		t.Fatalf("watcher after web-b turned passing: %+v (index was %d)", r, meta.LastIndex)
	}

	// Deregister one service, then a whole node.
	if _, err := cat.Deregister(&consulapi.CatalogDeregistration{Node: "web-2", ServiceID: "web-b"}, nil); err != nil {
		t.Fatal(err)
	}
	if all, _, _ := health.Service("web", "", false, nil); len(all) != 1 {
		t.Fatalf("after deregistering web-b: %d instances", len(all))
	}
	if _, err := cat.Deregister(&consulapi.CatalogDeregistration{Node: "web-1"}, nil); err != nil {
		t.Fatal(err)
	}
	if all, _, _ := health.Service("web", "", false, nil); len(all) != 0 {
		t.Fatalf("after deregistering node web-1: %d instances", len(all))
	}
	if checks, _, _ := health.Node("web-1", nil); len(checks) != 0 {
		t.Fatalf("node web-1's checks survived its deregistration: %+v", checks)
	}

	// Status and agent self, as tools probe them.
	leader, err := cl.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("status leader = %q, %v", leader, err)
	}
	self, err := cl.Agent().Self()
	if err != nil || self["Config"]["Datacenter"] != "dc1" || self["Config"]["PrimaryDatacenter"] != "dc1" {
		t.Fatalf("agent self = %v, %v", self, err)
	}
	// Consul's monitoring sections: a dev process is the leader, its raft
	// and serf counters are there, and xDS names the gRPC port.
	consulStats, _ := self["Stats"]["consul"].(map[string]any)
	raftStats, _ := self["Stats"]["raft"].(map[string]any)
	serfStats, _ := self["Stats"]["serf_lan"].(map[string]any)
	if consulStats["server"] != "true" || consulStats["leader"] != "true" || raftStats["state"] != "Leader" ||
		serfStats["members"] != "1" || serfStats["encrypted"] != "false" {
		t.Fatalf("agent self Stats = %v", self["Stats"])
	}
	if xds := self["xDS"]; xds["Port"] != float64(p.GRPCPort) || xds["SupportedProxies"] == nil {
		t.Fatalf("agent self xDS = %v, want port %d", xds, p.GRPCPort)
	}
	dcs, err := cat.Datacenters()
	if err != nil || len(dcs) != 1 || dcs[0] != "dc1" {
		t.Fatalf("datacenters = %v, %v", dcs, err)
	}

	// The CLI sees the same catalog.
	out, errOut, code := run(t, "catalog", "services", "-json", "-http-addr", p.HTTP)
	var fromCLI map[string][]string
	if code != 0 || json.Unmarshal([]byte(out), &fromCLI) != nil || fromCLI["db"] == nil {
		t.Fatalf("warren catalog services -json: code %d, out %q, err %q", code, out, errOut)
	}
	out, _, code = run(t, "catalog", "service", "db", "-http-addr", p.HTTP)
	if code != 0 || !strings.Contains(out, "db-1") || !strings.Contains(out, "db-2") {
		t.Fatalf("warren catalog service db: %d %q", code, out)
	}
	_, errOut, code = run(t, "catalog", "service", "nope", "-http-addr", p.HTTP)
	if code == 0 || !strings.Contains(errOut, "nope") {
		t.Fatalf("warren catalog service nope: code %d, stderr %q", code, errOut)
	}
	out, _, code = run(t, "operator", "raft", "list-peers", "-http-addr", p.HTTP)
	if code != 0 || !strings.Contains(out, "leader") {
		t.Fatalf("warren operator raft list-peers: %d %q", code, out)
	}
	p.stop(t)
}

func TestDevStopsCleanlyAndCLIErrors(t *testing.T) {
	p := startDev(t)
	p.stop(t)
	// Nothing listens now: the CLI says so on stderr and exits 1.
	out, errOut, code := run(t, "catalog", "nodes", "-http-addr", p.HTTP)
	if code != 1 || out != "" || !strings.Contains(errOut, "connection refused") {
		t.Fatalf("catalog nodes against a stopped agent: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	_, errOut, code = run(t, "no-such-command")
	if code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown command: code %d, stderr %q", code, errOut)
	}
}
