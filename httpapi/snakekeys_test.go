package httpapi

import (
	"reflect"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/api"
)

// TestAgentRegistrationSnakeCaseKeys: a registration with the snake_case
// keys of Consul's config files reaches the agent with every field set, as
// Consul's agent takes it; the keys of user-keyed maps (meta, headers,
// tagged addresses) are kept as sent; a CamelCase key beats its snake twin.
func TestAgentRegistrationSnakeCaseKeys(t *testing.T) {
	a, _, srv := newAgentTestServer(t)
	body := `{"name": "web", "id": "web-1", "port": 80, "enable_tag_override": true,
		"meta": {"build_id": "42"},
		"tagged_addresses": {"lan_ipv4": {"address": "10.0.0.1", "port": 80}},
		"check": {"check_id": "web-ttl", "ttl": "30s", "deregister_critical_service_after": "90m"},
		"checks": [{"http": "http://127.0.0.1:1/", "interval": "10s", "tls_skip_verify": true,
			"header": {"X_Probe_Id": ["1"]}, "success_before_passing": 2, "failures_before_critical": 3}]}`
	if resp, out := do(t, "PUT", srv.URL+"/v1/agent/service/register", body); resp.StatusCode != 200 {
		t.Fatalf("register: %d %s", resp.StatusCode, out)
	}
	got := a.serviceReg[len(a.serviceReg)-1]
	want := &api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Port: 80, EnableTagOverride: true,
		Meta:            map[string]string{"build_id": "42"},
		TaggedAddresses: map[string]api.ServiceAddress{"lan_ipv4": {Address: "10.0.0.1", Port: 80}},
		Check:           &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "30s", DeregisterCriticalServiceAfter: "90m"},
		Checks: []*api.AgentServiceCheck{{HTTP: "http://127.0.0.1:1/", Interval: "10s", TLSSkipVerify: true,
			Header: map[string][]string{"X_Probe_Id": {"1"}}, SuccessBeforePassing: 2, FailuresBeforeCritical: 3}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the agent got\n%+v\nwant\n%+v\ncheck %+v / %+v", got, want, got.Check, want.Check)
	}

	// Both spellings: the CamelCase one wins.
	if resp, out := do(t, "PUT", srv.URL+"/v1/agent/service/register",
		`{"Name": "db", "Port": 5432, "EnableTagOverride": false, "enable_tag_override": true}`); resp.StatusCode != 200 {
		t.Fatalf("register db: %d %s", resp.StatusCode, out)
	}
	if got := a.serviceReg[len(a.serviceReg)-1]; got.Name != "db" || got.EnableTagOverride {
		t.Fatalf("db: %+v", got)
	}

	// A check registration.
	if resp, out := do(t, "PUT", srv.URL+"/v1/agent/check/register",
		`{"name": "mem", "service_id": "web-1", "ttl": "10s", "deregister_critical_service_after": "5m"}`); resp.StatusCode != 200 {
		t.Fatalf("register check: %d %s", resp.StatusCode, out)
	}
	if got := a.checkReg[len(a.checkReg)-1]; got.ServiceID != "web-1" || got.DeregisterCriticalServiceAfter != "5m" || got.TTL != "10s" {
		t.Fatalf("check: %+v", got)
	}

	// Type errors still name the field.
	if resp, out := do(t, "PUT", srv.URL+"/v1/agent/service/register", `{"name": "x", "port": "eighty"}`); resp.StatusCode != 400 ||
		!strings.Contains(out, "Port") {
		t.Fatalf("bad port: %d %s", resp.StatusCode, out)
	}
}
