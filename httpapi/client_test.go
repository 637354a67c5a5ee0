package httpapi

import (
	"bytes"
	"io"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// newTestServer serves New over a fake backend and returns Consul's official
// client pointed at it.
func newTestServer(t *testing.T) (*fakeBackend, *consulapi.Client, *httptest.Server) {
	t.Helper()
	f := newFakeBackend()
	srv := httptest.NewServer(New(Config{Backend: f, Datacenter: "dc1"}))
	t.Cleanup(srv.Close)
	c, err := consulapi.NewClient(&consulapi.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return f, c, srv
}

// registerFixture registers web on node1 (passing, tags v1 primary), web on
// node2 (critical, tag v2, meta rack=r2) and db on node3.
func registerFixture(t *testing.T, c *consulapi.Client) {
	t.Helper()
	regs := []*consulapi.CatalogRegistration{
		{
			Node: "node1", Address: "10.0.1.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &consulapi.AgentService{ID: "web-1", Service: "web", Tags: []string{"v1", "primary"}, Port: 8080,
				Meta: map[string]string{"version": "1.2"}},
			// Both the single Check and the Checks list, as clients send them.
			Check: &consulapi.AgentCheck{CheckID: "web-http", Name: "web http", Status: consulapi.HealthPassing, ServiceID: "web-1",
				Definition: consulapi.HealthCheckDefinition{HTTP: "http://10.0.1.1:8080/health", IntervalDuration: 10 * time.Second}},
			Checks: consulapi.HealthChecks{{CheckID: "serfHealth", Name: "Serf Health", Status: consulapi.HealthPassing}},
		},
		{
			Node: "node2", Address: "10.0.1.2", NodeMeta: map[string]string{"rack": "r2"},
			Service: &consulapi.AgentService{ID: "web-2", Service: "web", Tags: []string{"v2"}, Port: 8080},
			Checks: consulapi.HealthChecks{
				{CheckID: "serfHealth", Name: "Serf Health", Status: consulapi.HealthPassing},
				{CheckID: "web-tcp", Name: "web tcp", Status: consulapi.HealthCritical, ServiceID: "web-2"},
			},
		},
		{
			Node: "node3", Address: "10.0.1.3",
			Service: &consulapi.AgentService{Service: "db", Port: 5432},
		},
	}
	for _, r := range regs {
		if _, err := c.Catalog().Register(r, nil); err != nil {
			t.Fatalf("register %s: %v", r.Node, err)
		}
	}
}

func TestOfficialClientCatalog(t *testing.T) {
	_, c, _ := newTestServer(t)
	registerFixture(t, c)
	cat := c.Catalog()

	dcs, err := cat.Datacenters()
	if err != nil || !slices.Equal(dcs, []string{"dc1"}) {
		t.Fatalf("Datacenters = %v, %v", dcs, err)
	}

	services, meta, err := cat.Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := services["web"]; !slices.Equal(got, []string{"primary", "v1", "v2"}) {
		t.Errorf("web tags = %v", got)
	}
	if got := services["db"]; got == nil || len(got) != 0 {
		t.Errorf("db tags = %#v, want []", got)
	}
	if meta.LastIndex != 3 || !meta.KnownLeader {
		t.Errorf("meta = %+v, want index 3 and a known leader", meta)
	}

	nodes, _, err := cat.Nodes(nil)
	if err != nil || len(nodes) != 3 {
		t.Fatalf("Nodes = %d, %v", len(nodes), err)
	}
	nodes, _, err = cat.Nodes(&consulapi.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
	if err != nil || len(nodes) != 1 || nodes[0].Node != "node2" || nodes[0].Address != "10.0.1.2" || nodes[0].Datacenter != "dc1" {
		t.Fatalf("Nodes(rack=r2) = %+v, %v", nodes, err)
	}
	services, _, err = cat.Services(&consulapi.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
	if err != nil || len(services) != 1 || !slices.Equal(services["web"], []string{"v2"}) {
		t.Fatalf("Services(rack=r2) = %v, %v", services, err)
	}

	rows, _, err := cat.Service("web", "", nil)
	if err != nil || len(rows) != 2 {
		t.Fatalf("Service(web) = %d rows, %v", len(rows), err)
	}
	rows, _, err = cat.Service("web", "v1", nil)
	if err != nil || len(rows) != 1 {
		t.Fatalf("Service(web, v1) = %d rows, %v", len(rows), err)
	}
	r := rows[0]
	if r.Node != "node1" || r.ServiceID != "web-1" || r.ServicePort != 8080 || r.Address != "10.0.1.1" ||
		r.ServiceMeta["version"] != "1.2" || r.NodeMeta["rack"] != "r1" || r.ServiceWeights.Passing != 1 {
		t.Errorf("Service(web, v1) row = %+v", r)
	}
	rows, _, err = cat.ServiceMultipleTags("web", []string{"v1", "v2"}, nil)
	if err != nil || len(rows) != 0 {
		t.Fatalf("Service(web, v1+v2) = %d rows, %v", len(rows), err)
	}
	rows, _, err = cat.Service("web", "", &consulapi.QueryOptions{NodeMeta: map[string]string{"rack": "r2"}})
	if err != nil || len(rows) != 1 || rows[0].Node != "node2" {
		t.Fatalf("Service(web, rack=r2) = %+v, %v", rows, err)
	}

	node, _, err := cat.Node("node1", nil)
	if err != nil || node == nil || node.Node.Node != "node1" || node.Services["web-1"] == nil ||
		!slices.Equal(node.Services["web-1"].Tags, []string{"v1", "primary"}) {
		t.Fatalf("Node(node1) = %+v, %v", node, err)
	}
	node, _, err = cat.Node("nope", nil)
	if err != nil || node != nil {
		t.Fatalf("Node(nope) = %+v, %v; want nil, nil", node, err)
	}
	list, _, err := cat.NodeServiceList("node3", nil)
	if err != nil || list.Node.Node != "node3" || len(list.Services) != 1 || list.Services[0].ID != "db" {
		t.Fatalf("NodeServiceList(node3) = %+v, %v", list, err)
	}
	list, _, err = cat.NodeServiceList("nope", nil)
	if err != nil || list.Node != nil || list.Services == nil {
		t.Fatalf("NodeServiceList(nope) = %+v, %v", list, err)
	}

	if _, err := cat.Deregister(&consulapi.CatalogDeregistration{Node: "node2", ServiceID: "web-2"}, nil); err != nil {
		t.Fatal(err)
	}
	rows, meta, err = cat.Service("web", "", nil)
	if err != nil || len(rows) != 1 || rows[0].Node != "node1" {
		t.Fatalf("Service(web) after deregister = %+v, %v", rows, err)
	}
	if meta.LastIndex != 4 {
		t.Errorf("index after deregister = %d, want 4", meta.LastIndex)
	}
	if _, err := cat.Deregister(&consulapi.CatalogDeregistration{Node: "node3"}, nil); err != nil {
		t.Fatal(err)
	}
	if nodes, _, _ := cat.Nodes(nil); len(nodes) != 2 {
		t.Errorf("Nodes after node deregister = %d, want 2", len(nodes))
	}
}

func TestOfficialClientHealth(t *testing.T) {
	_, c, _ := newTestServer(t)
	registerFixture(t, c)
	h := c.Health()

	entries, _, err := h.Service("web", "", false, nil)
	if err != nil || len(entries) != 2 {
		t.Fatalf("Health.Service(web) = %d, %v", len(entries), err)
	}
	entries, _, err = h.Service("web", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Node.Node != "node1" {
		t.Fatalf("Health.Service(web, passing) = %+v, %v", entries, err)
	}
	e := entries[0]
	if e.Service.ID != "web-1" || len(e.Checks) != 2 || e.Checks.AggregatedStatus() != consulapi.HealthPassing {
		t.Errorf("entry = %+v, checks %+v", e.Service, e.Checks)
	}
	entries, _, err = h.Service("web", "v2", false, nil)
	if err != nil || len(entries) != 1 || entries[0].Checks.AggregatedStatus() != consulapi.HealthCritical {
		t.Fatalf("Health.Service(web, v2) = %+v, %v", entries, err)
	}
	entries, _, err = h.Service("nope", "", false, nil)
	if err != nil || entries == nil || len(entries) != 0 {
		t.Fatalf("Health.Service(nope) = %#v, %v; want empty, not nil", entries, err)
	}

	critical, _, err := h.State(consulapi.HealthCritical, nil)
	if err != nil || len(critical) != 1 || critical[0].CheckID != "web-tcp" || critical[0].ServiceName != "web" {
		t.Fatalf("State(critical) = %+v, %v", critical, err)
	}
	all, _, err := h.State(consulapi.HealthAny, nil)
	if err != nil || len(all) != 4 {
		t.Fatalf("State(any) = %d, %v", len(all), err)
	}

	checks, _, err := h.Checks("web", nil)
	if err != nil || len(checks) != 2 {
		t.Fatalf("Checks(web) = %d, %v", len(checks), err)
	}
	checks, _, err = h.Node("node1", nil)
	if err != nil || len(checks) != 2 {
		t.Fatalf("Node(node1) = %d, %v", len(checks), err)
	}
	var httpCheck *consulapi.HealthCheck
	for _, c := range checks {
		if c.CheckID == "web-http" {
			httpCheck = c
		}
	}
	if httpCheck == nil || httpCheck.Definition.HTTP != "http://10.0.1.1:8080/health" ||
		httpCheck.Definition.IntervalDuration != 10*time.Second || !slices.Equal(httpCheck.ServiceTags, []string{"v1", "primary"}) {
		t.Errorf("web-http check = %+v", httpCheck)
	}
}

func TestOfficialClientOperator(t *testing.T) {
	f, c, _ := newTestServer(t)

	leader, err := c.Status().Leader()
	if err != nil || leader != "10.0.0.1:8300" {
		t.Errorf("Leader = %q, %v", leader, err)
	}
	peers, err := c.Status().Peers()
	if err != nil || len(peers) != 3 {
		t.Errorf("Peers = %v, %v", peers, err)
	}

	self, err := c.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	if self["Config"]["NodeName"] != "agent1" || self["Config"]["Datacenter"] != "dc1" || self["Config"]["Server"] != true ||
		self["Member"]["Status"] != float64(1) || self["Member"]["Port"] != float64(8301) {
		t.Errorf("Self = %v", self)
	}
	if name, err := c.Agent().NodeName(); err != nil || name != "agent1" {
		t.Errorf("NodeName = %q, %v", name, err)
	}

	raft, err := c.Operator().RaftGetConfiguration(nil)
	if err != nil || raft.Index != 7 || len(raft.Servers) != 2 || !raft.Servers[0].Leader || raft.Servers[1].Address != "10.0.0.2:8300" {
		t.Fatalf("RaftGetConfiguration = %+v, %v", raft, err)
	}
	if err := c.Operator().RaftRemovePeerByID("b", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Operator().RaftRemovePeerByAddress("10.0.0.3:8300", nil); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(f.removed, []string{"b", "10.0.0.3:8300"}) {
		t.Errorf("removed = %v", f.removed)
	}

	want := bytes.Repeat([]byte("snapshot"), 1<<16)
	if err := c.Snapshot().Restore(nil, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	rc, _, err := c.Snapshot().Save(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("snapshot round trip: %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
}
