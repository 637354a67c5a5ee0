package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"
)

// TestFilterExpressions drives ?filter the way the official client sends it
// (QueryOptions.Filter, ServicesWithFilter, ChecksWithFilter) against
// `warren dev`, on every route that takes one, and checks bad expressions
// get a 400 that names the problem.
func TestFilterExpressions(t *testing.T) {
	p := startDev(t)
	cl := consulClient(t, p)
	cat, health, ag := cl.Catalog(), cl.Health(), cl.Agent()

	regs := []*consulapi.CatalogRegistration{
		{
			Node: "web-1", Address: "10.0.0.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &consulapi.AgentService{ID: "web-a", Service: "web", Tags: []string{"v1"}, Port: 8080, Meta: map[string]string{"env": "prod"}},
			Check:   &consulapi.AgentCheck{CheckID: "web-a-http", Name: "http", Status: consulapi.HealthPassing, ServiceID: "web-a"},
		},
		{
			Node: "web-2", Address: "10.0.0.2", NodeMeta: map[string]string{"rack": "r2"},
			Service: &consulapi.AgentService{ID: "web-b", Service: "web", Tags: []string{"v2"}, Port: 8081, Meta: map[string]string{"env": "staging"}},
			Check:   &consulapi.AgentCheck{CheckID: "web-b-http", Name: "http", Status: consulapi.HealthCritical, ServiceID: "web-b"},
		},
		{
			Node: "db-1", Address: "10.0.1.1", NodeMeta: map[string]string{"rack": "r1"},
			Service: &consulapi.AgentService{ID: "db", Service: "db", Tags: []string{"v1"}, Port: 5432},
		},
	}
	for _, r := range regs {
		if _, err := cat.Register(r, nil); err != nil {
			t.Fatalf("register %s: %v", r.Node, err)
		}
	}
	q := func(expr string) *consulapi.QueryOptions { return &consulapi.QueryOptions{Filter: expr} }

	// /v1/catalog/service/{name}: ServiceNode selectors.
	sn, _, err := cat.Service("web", "", q(`ServiceMeta.env == prod`))
	if err != nil || len(sn) != 1 || sn[0].ServiceID != "web-a" {
		t.Fatalf("catalog service web, env prod: %+v, %v", sn, err)
	}
	sn, _, err = cat.Service("web", "", q(`NodeMeta.rack == r2 and ServicePort == 8081`))
	if err != nil || len(sn) != 1 || sn[0].ServiceID != "web-b" {
		t.Fatalf("catalog service web, rack r2: %+v, %v", sn, err)
	}

	// /v1/health/service/{name}: Node, Service and Checks.
	se, _, err := health.Service("web", "", false, q(`"v2" in Service.Tags`))
	if err != nil || len(se) != 1 || se[0].Service.ID != "web-b" {
		t.Fatalf("health service web, tag v2: %+v, %v", se, err)
	}
	se, _, err = health.Service("web", "", false, q(`Node.Address matches "^10\\.0\\.0\\."`))
	if err != nil || len(se) != 2 {
		t.Fatalf("health service web, address regexp: %d entries, %v", len(se), err)
	}

	// /v1/catalog/services: services with a matching instance, with that
	// instance's tags only.
	services, _, err := cat.Services(q(`ServiceMeta.env == prod or ServiceName == db`))
	if err != nil || len(services) != 2 || !slices.Equal(services["web"], []string{"v1"}) || !slices.Equal(services["db"], []string{"v1"}) {
		t.Fatalf("catalog services filtered: %v, %v", services, err)
	}

	// /v1/catalog/nodes, /v1/catalog/node/{node}, /v1/catalog/node-services/{node}.
	nodes, _, err := cat.Nodes(q(`Meta.rack == r1`))
	if err != nil || len(nodes) != 2 || nodes[0].Node != "db-1" || nodes[1].Node != "web-1" {
		t.Fatalf("nodes in rack r1: %+v, %v", nodes, err)
	}
	node, _, err := cat.Node("web-1", q(`Port == 9999`))
	if err != nil || node == nil || len(node.Services) != 0 || node.Node.Node != "web-1" {
		t.Fatalf("catalog node web-1 filtered to nothing: %+v, %v", node, err)
	}
	list, _, err := cat.NodeServiceList("web-1", q(`Service == web`))
	if err != nil || len(list.Services) != 1 {
		t.Fatalf("node-services web-1: %+v, %v", list, err)
	}

	// Check lists: /v1/health/state, /v1/health/checks, /v1/health/node.
	hc, _, err := health.State(consulapi.HealthAny, q(`ServiceName == web and Status != passing`))
	if err != nil || len(hc) != 1 || hc[0].CheckID != "web-b-http" {
		t.Fatalf("checks of web not passing: %+v, %v", hc, err)
	}
	hc, _, err = health.Checks("web", q(`Node == "web-1"`))
	if err != nil || len(hc) != 1 || hc[0].CheckID != "web-a-http" {
		t.Fatalf("web's checks on web-1: %+v, %v", hc, err)
	}
	hc, _, err = health.Node("web-2", q(`Status == passing`))
	if err != nil || len(hc) != 0 {
		t.Fatalf("passing checks of web-2: %+v, %v", hc, err)
	}

	// The agent's own services and checks.
	for _, id := range []string{"api-1", "api-2"} {
		if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{ID: id, Name: "api", Port: 9000,
			Meta: map[string]string{"id": id}, Check: &consulapi.AgentServiceCheck{CheckID: id + "-ttl", TTL: "1m"}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ag.PassTTL("api-1-ttl", ""); err != nil {
		t.Fatal(err)
	}
	local, err := ag.ServicesWithFilter(`Meta.id == "api-2"`)
	if err != nil || len(local) != 1 || local["api-2"] == nil {
		t.Fatalf("agent services, api-2: %v, %v", local, err)
	}
	checks, err := ag.ChecksWithFilter(`ServiceName == api and Status == critical`)
	if err != nil || len(checks) != 1 || checks["api-2-ttl"] == nil {
		t.Fatalf("agent checks of api, critical: %v, %v", checks, err)
	}

	// Intentions.
	for _, ixn := range []*consulapi.Intention{
		{SourceName: "web", DestinationName: "db", Action: consulapi.IntentionActionAllow},
		{SourceName: "batch", DestinationName: "db", Action: consulapi.IntentionActionDeny},
	} {
		if _, err := cl.Connect().IntentionUpsert(ixn, nil); err != nil {
			t.Fatal(err)
		}
	}
	ixns, _, err := cl.Connect().Intentions(q(`DestinationName == db and Action == deny`))
	if err != nil || len(ixns) != 1 || ixns[0].SourceName != "batch" {
		t.Fatalf("intentions to db that deny: %+v, %v", ixns, err)
	}

	// The CLI passes -filter through.
	out, errOut, code := run(t, "catalog", "service", "web", "-filter", `ServiceMeta.env == staging`, "-json", "-http-addr", p.HTTP)
	var fromCLI []consulapi.CatalogService
	if code != 0 || json.Unmarshal([]byte(out), &fromCLI) != nil || len(fromCLI) != 1 || fromCLI[0].ServiceID != "web-b" {
		t.Fatalf("warren catalog service web -filter: code %d, out %q, err %q", code, out, errOut)
	}
	out, _, code = run(t, "catalog", "nodes", "-filter", `Meta.rack == r2`, "-http-addr", p.HTTP)
	if code != 0 || !strings.Contains(out, "web-2") || strings.Contains(out, "web-1") {
		t.Fatalf("warren catalog nodes -filter: code %d, out %q", code, out)
	}
	if _, errOut, code := run(t, "catalog", "services", "-filter", `ServiceName ==`, "-http-addr", p.HTTP); code == 0 || !strings.Contains(errOut, "filter") {
		t.Fatalf("warren catalog services with a bad filter: code %d, stderr %q", code, errOut)
	}

	// Bad expressions: 400, with what was wrong.
	for _, tc := range []struct{ path, expr, want string }{
		{"/v1/catalog/service/web", `ServiceName ==`, "filter"},
		{"/v1/health/service/web", `Servce.ID == web-a`, "Servce"},
		{"/v1/agent/services", `Service = api`, "filter"},
		{"/v1/catalog/datacenters", `x == y`, "takes no filter"},
	} {
		resp, err := http.Get("http://" + p.HTTP + tc.path + "?filter=" + url.QueryEscape(tc.expr))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), tc.want) {
			t.Errorf("%s?filter=%s: %d %q, want 400 naming %q", tc.path, tc.expr, resp.StatusCode, body, tc.want)
		}
	}
}
