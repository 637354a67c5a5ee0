package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"

	consulapi "github.com/hashicorp/consul/api"
)

// TestOfficialClientAgentHealthService drives the local health endpoints
// with the official client and with raw requests: the aggregate and its
// status code follow the checks (TTL updates, service and node
// maintenance), by ID and by name, in JSON and as text.
func TestOfficialClientAgentHealthService(t *testing.T) {
	_, c, srv := newAgentTestServer(t)
	ag := c.Agent()
	for _, id := range []string{"api-1", "api-2"} {
		if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{ID: id, Name: "api", Port: 9000,
			Check: &consulapi.AgentServiceCheck{CheckID: id + "-ttl", TTL: "30s", Status: "passing"}}); err != nil {
			t.Fatal(err)
		}
	}
	// byID checks the client's status (from the code) and the aggregate
	// in the body, which for maintenance is "maintenance" with 503.
	byID := func(id, want string) *consulapi.AgentServiceChecksInfo {
		t.Helper()
		status, info, err := ag.AgentHealthServiceByID(id)
		wantStatus := want
		if want == consulapi.HealthMaint {
			wantStatus = consulapi.HealthCritical
		}
		if err != nil || status != wantStatus {
			t.Fatalf("health of %s: %q, %v; want %q", id, status, err, wantStatus)
		}
		if info != nil && (info.Service.ID != id || info.AggregatedStatus != want) {
			t.Fatalf("health of %s: %+v", id, info)
		}
		return info
	}
	byName := func(want string, n int) {
		t.Helper()
		status, infos, err := ag.AgentHealthServiceByName("api")
		if err != nil || status != want || len(infos) != n {
			t.Fatalf("health of api: %q, %d instances, %v; want %q, %d", status, len(infos), err, want, n)
		}
	}
	raw := func(path, accept string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}

	info := byID("api-1", consulapi.HealthPassing)
	if len(info.Checks) != 1 || info.Checks[0].CheckID != "api-1-ttl" || info.Service.Port != 9000 {
		t.Fatalf("api-1's checks and service: %+v %+v", info.Checks, info.Service)
	}
	byName(consulapi.HealthPassing, 2)
	if code, body := raw("/v1/agent/health/service/id/api-1?format=text", ""); code != 200 || body != "passing" {
		t.Fatalf("text: %d %q", code, body)
	}

	if err := ag.WarnTTL("api-2-ttl", "slow"); err != nil {
		t.Fatal(err)
	}
	byID("api-2", consulapi.HealthWarning)
	byName(consulapi.HealthWarning, 2) // the worst instance's
	if code, body := raw("/v1/agent/health/service/name/api", "text/plain"); code != 429 || body != "warning" {
		t.Fatalf("text by name: %d %q", code, body)
	}
	if err := ag.FailTTL("api-1-ttl", "down"); err != nil {
		t.Fatal(err)
	}
	byID("api-1", consulapi.HealthCritical)
	byName(consulapi.HealthCritical, 2)
	if code, _ := raw("/v1/agent/health/service/id/api-1", ""); code != 503 {
		t.Fatalf("critical answered %d, want 503", code)
	}
	if err := ag.PassTTL("api-1-ttl", ""); err != nil {
		t.Fatal(err)
	}
	if err := ag.PassTTL("api-2-ttl", ""); err != nil {
		t.Fatal(err)
	}

	// Maintenance of the service, then of the node, wins over passing.
	if err := ag.EnableServiceMaintenance("api-1", "deploy"); err != nil {
		t.Fatal(err)
	}
	byID("api-1", consulapi.HealthMaint)
	byID("api-2", consulapi.HealthPassing)
	if code, body := raw("/v1/agent/health/service/id/api-1?format=text", ""); code != 503 || body != "maintenance" {
		t.Fatalf("maintenance as text: %d %q", code, body)
	}
	if err := ag.DisableServiceMaintenance("api-1"); err != nil {
		t.Fatal(err)
	}
	if err := ag.EnableNodeMaintenance("reboot"); err != nil {
		t.Fatal(err)
	}
	info = byID("api-2", consulapi.HealthMaint)
	if len(info.Checks) != 2 {
		t.Fatalf("the node's maintenance check is one of the instance's: %+v", info.Checks)
	}
	if err := ag.DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	byName(consulapi.HealthPassing, 2)

	// Unknown instances: 404, which the client reads as critical.
	byID("nope", consulapi.HealthCritical)
	if code, body := raw("/v1/agent/health/service/id/nope?format=text", ""); code != 404 || body != "ServiceId nope not found" {
		t.Fatalf("unknown ID: %d %q", code, body)
	}
	if code, body := raw("/v1/agent/health/service/name/nope", ""); code != 404 || body != "[]" {
		t.Fatalf("unknown name: %d %q", code, body)
	}
	if code, body := raw("/v1/agent/health/service/id/api-1?format=xml", ""); code != 400 || !strings.Contains(body, "format") {
		t.Fatalf("bad format: %d %q", code, body)
	}
}

func TestOfficialClientAgentVersion(t *testing.T) {
	_, c, _ := newAgentTestServer(t)
	v, err := c.Agent().Version()
	if err != nil || v["HumanVersion"] != "0.1.0" {
		t.Fatalf("version: %v, %v", v, err)
	}
}
