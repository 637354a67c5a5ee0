package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// newAgentTestServer serves New over a fake backend and a fake agent and
// returns Consul's official client pointed at it.
func newAgentTestServer(t *testing.T) (*fakeAgent, *consulapi.Client, *httptest.Server) {
	t.Helper()
	a := newFakeAgent()
	srv := httptest.NewServer(New(Config{Backend: newFakeBackend(), Agent: a, Datacenter: "dc1"}))
	t.Cleanup(srv.Close)
	c, err := consulapi.NewClient(&consulapi.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return a, c, srv
}

// webRegistration is a service with a TTL check (the single Check) and an
// HTTP check (in Checks), as the official client sends it, and what the
// Agent must receive for it.
func webRegistration() (*consulapi.AgentServiceRegistration, *api.AgentServiceRegistration) {
	sent := &consulapi.AgentServiceRegistration{
		ID: "web-1", Name: "web", Tags: []string{"v1", "primary"}, Port: 8080, Address: "10.0.0.1",
		TaggedAddresses: map[string]consulapi.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 8080}},
		Meta:            map[string]string{"version": "1.2"},
		Weights:         &consulapi.AgentWeights{Passing: 10, Warning: 1},
		Check: &consulapi.AgentServiceCheck{CheckID: "web-ttl", Name: "web ttl", TTL: "10s", Notes: "pushed by the app",
			DeregisterCriticalServiceAfter: "1m"},
		Checks: consulapi.AgentServiceChecks{{
			Name: "web http", HTTP: "http://10.0.0.1:8080/health", Method: "GET", Header: map[string][]string{"X-Probe": {"1"}},
			Interval: "10s", Timeout: "2s", TLSSkipVerify: true, SuccessBeforePassing: 2, FailuresBeforeCritical: 3,
		}},
	}
	want := &api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Tags: []string{"v1", "primary"}, Port: 8080, Address: "10.0.0.1",
		TaggedAddresses: map[string]api.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 8080}},
		Meta:            map[string]string{"version": "1.2"},
		Weights:         &api.Weights{Passing: 10, Warning: 1},
		Check: &api.AgentServiceCheck{CheckID: "web-ttl", Name: "web ttl", TTL: "10s", Notes: "pushed by the app",
			DeregisterCriticalServiceAfter: "1m"},
		Checks: []*api.AgentServiceCheck{{
			Name: "web http", HTTP: "http://10.0.0.1:8080/health", Method: "GET", Header: map[string][]string{"X-Probe": {"1"}},
			Interval: "10s", Timeout: "2s", TLSSkipVerify: true, SuccessBeforePassing: 2, FailuresBeforeCritical: 3,
		}},
	}
	return sent, want
}

// lastCall is the fake's most recent call.
func lastCall(a *fakeAgent) string {
	calls := a.Calls()
	if len(calls) == 0 {
		return ""
	}
	return calls[len(calls)-1]
}

func TestOfficialClientAgentServices(t *testing.T) {
	a, c, _ := newAgentTestServer(t)
	ag := c.Agent()

	sent, want := webRegistration()
	if err := ag.ServiceRegister(sent); err != nil {
		t.Fatal(err)
	}
	if len(a.serviceReg) != 1 || !reflect.DeepEqual(a.serviceReg[0], want) {
		got, _ := json.Marshal(a.serviceReg)
		t.Fatalf("agent received %s\nwant %+v", got, want)
	}
	// replace-existing-checks is accepted.
	if err := ag.ServiceRegisterOpts(sent, consulapi.ServiceRegisterOpts{ReplaceExistingChecks: true}); err != nil {
		t.Fatal(err)
	}
	if len(a.serviceReg) != 2 || !reflect.DeepEqual(a.serviceReg[1], want) {
		t.Fatalf("second registration: %d received", len(a.serviceReg))
	}

	services, err := ag.Services()
	if err != nil {
		t.Fatal(err)
	}
	s := services["web-1"]
	if len(services) != 1 || s == nil {
		t.Fatalf("Services = %v", services)
	}
	if s.ID != "web-1" || s.Service != "web" || !slices.Equal(s.Tags, []string{"v1", "primary"}) || s.Port != 8080 ||
		s.Address != "10.0.0.1" || s.Meta["version"] != "1.2" || s.Weights != (consulapi.AgentWeights{Passing: 10, Warning: 1}) ||
		s.Datacenter != "dc1" || s.TaggedAddresses["lan"] != (consulapi.ServiceAddress{Address: "10.0.0.1", Port: 8080}) {
		t.Errorf("Services[web-1] = %+v", s)
	}

	one, meta, err := ag.Service("web-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if one.ID != "web-1" || one.Service != "web" || one.Port != 8080 || one.Datacenter != "dc1" ||
		one.ContentHash == "" || meta.LastContentHash != one.ContentHash {
		t.Errorf("Service(web-1) = %+v, meta %+v", one, meta)
	}
	_, _, err = ag.Service("nope", nil)
	var se consulapi.StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("Service(nope) = %v, want a 404", err)
	}

	checks, err := ag.Checks()
	if err != nil {
		t.Fatal(err)
	}
	ttl, http := checks["web-ttl"], checks["service:web-1:2"]
	if len(checks) != 2 || ttl == nil || http == nil {
		t.Fatalf("Checks = %v", checks)
	}
	if ttl.Status != consulapi.HealthCritical || ttl.ServiceID != "web-1" || ttl.ServiceName != "web" || ttl.Type != "ttl" ||
		ttl.Definition.DeregisterCriticalServiceAfterDuration != time.Minute {
		t.Errorf("web-ttl = %+v", ttl)
	}
	if http.Name != "web http" || http.Definition.HTTP != "http://10.0.0.1:8080/health" ||
		http.Definition.IntervalDuration != 10*time.Second || http.Definition.TimeoutDuration != 2*time.Second {
		t.Errorf("http check = %+v", http)
	}

	// TTL updates: the new endpoint (status names or the old short ones)
	// and the old pass/warn/fail ones, whose note becomes the output.
	ttlCases := []struct {
		do   func() error
		call string
	}{
		{func() error { return ag.UpdateTTL("web-ttl", "all good", consulapi.HealthPassing) }, `UpdateTTL web-ttl passing "all good"`},
		{func() error { return ag.UpdateTTL("web-ttl", "slow", "warn") }, `UpdateTTL web-ttl warning "slow"`},
		{func() error { return ag.UpdateTTL("web-ttl", "", consulapi.HealthCritical) }, `UpdateTTL web-ttl critical ""`},
		{func() error { return ag.PassTTL("web-ttl", "ok now") }, `UpdateTTL web-ttl passing "ok now"`},
		{func() error { return ag.WarnTTL("web-ttl", "hmm") }, `UpdateTTL web-ttl warning "hmm"`},
		{func() error { return ag.FailTTL("web-ttl", "down") }, `UpdateTTL web-ttl critical "down"`},
	}
	for _, tc := range ttlCases {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.call, err)
		}
		if got := lastCall(a); got != tc.call {
			t.Errorf("agent got %s, want %s", got, tc.call)
		}
	}
	checks, _ = ag.Checks()
	if c := checks["web-ttl"]; c.Status != consulapi.HealthCritical || c.Output != "down" {
		t.Errorf("web-ttl after FailTTL = %s %q", c.Status, c.Output)
	}
	// An Agent error maps through statusOf.
	err = ag.PassTTL("service:web-1:2", "")
	if !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Body, "CheckID") {
		t.Errorf("PassTTL on an HTTP check = %v, want 400 naming CheckID", err)
	}
	err = ag.UpdateTTL("nope", "", "pass")
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("UpdateTTL(nope) = %v, want 404", err)
	}

	if err := ag.EnableServiceMaintenance("web-1", "deploying"); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != `ServiceMaintenance web-1 true "deploying"` {
		t.Errorf("agent got %s", got)
	}
	if checks, _ := ag.Checks(); checks["_service_maintenance:web-1"] == nil {
		t.Errorf("no maintenance check after EnableServiceMaintenance: %v", checks)
	}
	if err := ag.DisableServiceMaintenance("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != `ServiceMaintenance web-1 false ""` {
		t.Errorf("agent got %s", got)
	}

	if err := ag.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != "DeregisterService web-1" {
		t.Errorf("agent got %s", got)
	}
	if services, err := ag.Services(); err != nil || len(services) != 0 {
		t.Errorf("Services after deregister = %v, %v", services, err)
	}
	if checks, err := ag.Checks(); err != nil || len(checks) != 0 {
		t.Errorf("Checks after deregister = %v, %v", checks, err)
	}
	err = ag.ServiceDeregister("web-1")
	if !errors.As(err, &se) || se.Code != 404 {
		t.Errorf("second ServiceDeregister = %v, want 404", err)
	}
}

func TestOfficialClientAgentChecksAndNode(t *testing.T) {
	a, c, _ := newAgentTestServer(t)
	ag := c.Agent()

	reg := &consulapi.AgentCheckRegistration{ID: "mem", Name: "Memory", Notes: "free memory",
		AgentServiceCheck: consulapi.AgentServiceCheck{TTL: "30s", Status: consulapi.HealthPassing}}
	if err := ag.CheckRegister(reg); err != nil {
		t.Fatal(err)
	}
	want := &api.AgentCheckRegistration{ID: "mem",
		AgentServiceCheck: api.AgentServiceCheck{Name: "Memory", Notes: "free memory", TTL: "30s", Status: "passing"}}
	if len(a.checkReg) != 1 || !reflect.DeepEqual(a.checkReg[0], want) {
		got, _ := json.Marshal(a.checkReg)
		t.Fatalf("agent received %s, want %+v", got, want)
	}
	checks, err := ag.Checks()
	if err != nil || checks["mem"] == nil || checks["mem"].Status != "passing" || checks["mem"].Notes != "free memory" {
		t.Fatalf("Checks = %v, %v", checks, err)
	}
	if err := ag.CheckDeregister("mem"); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != "DeregisterCheck mem" {
		t.Errorf("agent got %s", got)
	}
	if checks, _ := ag.Checks(); len(checks) != 0 {
		t.Errorf("Checks after deregister = %v", checks)
	}

	if err := ag.EnableNodeMaintenance("kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != `NodeMaintenance true "kernel upgrade"` {
		t.Errorf("agent got %s", got)
	}
	if checks, _ := ag.Checks(); checks["_node_maintenance"] == nil || checks["_node_maintenance"].Notes != "kernel upgrade" {
		t.Errorf("Checks in maintenance = %v", checks)
	}
	if err := ag.DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	if got := lastCall(a); got != `NodeMaintenance false ""` {
		t.Errorf("agent got %s", got)
	}

	members, err := ag.Members(false)
	if err != nil || len(members) != 2 || members[0].Name != "agent1" || members[1].Addr != "10.0.0.2" ||
		members[1].Port != 8301 || members[1].Status != 1 || members[1].Tags["role"] != "node" {
		t.Fatalf("Members = %+v, %v", members, err)
	}
	if wan, err := ag.Members(true); err != nil || wan == nil || len(wan) != 0 {
		t.Errorf("Members(wan) = %#v, %v; want empty", wan, err)
	}

	before := len(a.Calls())
	if err := ag.Join("10.0.0.3:8301", false); err != nil {
		t.Fatal(err)
	}
	if err := ag.Join("10.0.0.4:8302", true); err == nil {
		t.Error("Join(wan) succeeded; Warren has no WAN pool")
	}
	if err := ag.ForceLeave("agent9"); err != nil {
		t.Fatal(err)
	}
	if err := ag.ForceLeavePrune("agent8"); err != nil {
		t.Fatal(err)
	}
	if err := ag.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := ag.Leave(); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{"Join 10.0.0.3:8301", "ForceLeave agent9 false", "ForceLeave agent8 true", "Reload", "Leave"}
	if got := a.Calls()[before:]; !slices.Equal(got, wantCalls) {
		t.Errorf("agent calls = %q, want %q", got, wantCalls)
	}

	// Reload refused by the agent: the old config stays and the client
	// sees the error.
	a.mu.Lock()
	a.err = &catalog.FieldError{Field: "services[0].name", Reason: "missing"}
	a.mu.Unlock()
	var se consulapi.StatusError
	if err := ag.Reload(); !errors.As(err, &se) || se.Code != 400 || !strings.Contains(se.Body, "services[0].name: missing") {
		t.Errorf("failed Reload = %v, want 400 naming the field", err)
	}
	a.mu.Lock()
	a.err = errors.New("disk on fire")
	a.mu.Unlock()
	if err := ag.Leave(); !errors.As(err, &se) || se.Code != 500 {
		t.Errorf("failed Leave = %v, want 500", err)
	}
}

func TestOfficialClientAgentSelf(t *testing.T) {
	_, c, srv := newAgentTestServer(t)
	self, err := c.Agent().Self()
	if err != nil {
		t.Fatal(err)
	}
	cfg, member, sync := self["Config"], self["Member"], self["Sync"]
	if cfg["NodeName"] != "agent1" || cfg["Datacenter"] != "dc1" || cfg["Server"] != false || cfg["Version"] != "0.2.0" ||
		cfg["NodeID"] != "8d2c5f0e-3f7e-4c47-9d4a-0e3f3c2b1a00" {
		t.Errorf("Config = %v", cfg)
	}
	if member["Name"] != "agent1" || member["Addr"] != "10.0.0.1" || member["Port"] != float64(8301) || member["Status"] != float64(1) {
		t.Errorf("Member = %v", member)
	}
	if self["Meta"]["rack"] != "r1" {
		t.Errorf("Meta = %v", self["Meta"])
	}
	if sync["LastSync"] != "2026-01-02T03:04:05Z" || sync["LastSyncError"] != "rpc error: no cluster leader" {
		t.Errorf("Sync = %v", sync)
	}
	if agent, _ := self["Stats"]["agent"].(map[string]any); agent["services"] != "0" || agent["checks"] != "0" {
		t.Errorf("Stats = %v", self["Stats"])
	}
	if name, err := c.Agent().NodeName(); err != nil || name != "agent1" {
		t.Errorf("NodeName = %q, %v", name, err)
	}

	// The shape, raw: every section an object, Sync's keys always there.
	resp, body := do(t, "GET", srv.URL+"/v1/agent/self", "")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &raw); err != nil || resp.StatusCode != 200 {
		t.Fatalf("self: %d %q %v", resp.StatusCode, body, err)
	}
	for _, section := range []string{"Config", "Member", "Meta", "Stats", "Sync"} {
		if !strings.HasPrefix(string(raw[section]), "{") {
			t.Errorf("section %s = %s, want an object", section, raw[section])
		}
	}
}

// The raw JSON of /v1/agent/services has Consul's shape: Tags and Meta are
// never null, Weights and Datacenter are there.
func TestAgentServicesShape(t *testing.T) {
	_, c, srv := newAgentTestServer(t)
	if err := c.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	resp, body := do(t, "GET", srv.URL+"/v1/agent/services", "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	var got map[string]map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	db := got["db"]
	for key, want := range map[string]string{
		"ID": `"db"`, "Service": `"db"`, "Tags": `[]`, "Meta": `{}`, "Port": `5432`, "Address": `""`,
		"Weights": `{"Passing":1,"Warning":1}`, "EnableTagOverride": `false`, "Datacenter": `"dc1"`,
	} {
		if string(db[key]) != want {
			t.Errorf("%s = %s, want %s", key, db[key], want)
		}
	}
	if resp, body := do(t, "GET", srv.URL+"/v1/agent/checks", ""); resp.StatusCode != 200 || body != "{}\n" {
		t.Errorf("checks with none: %d %q, want {}", resp.StatusCode, body)
	}
}

// ?hash blocks until the service's content hash changes, or ?wait ends.
func TestAgentServiceHashBlocking(t *testing.T) {
	_, c, _ := newAgentTestServer(t)
	ag := c.Agent()
	reg := &consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Tags: []string{"v1"}}
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	_, meta, err := ag.Service("web-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	hash := meta.LastContentHash

	start := time.Now()
	_, meta, err = ag.Service("web-1", &consulapi.QueryOptions{WaitHash: hash, WaitTime: 400 * time.Millisecond})
	if err != nil || meta.LastContentHash != hash {
		t.Fatalf("unchanged: hash %q, %v", meta.LastContentHash, err)
	}
	if d := time.Since(start); d < 400*time.Millisecond {
		t.Errorf("returned after %v, before the wait ended", d)
	}

	done := make(chan *consulapi.AgentService, 1)
	go func() {
		s, _, err := ag.Service("web-1", &consulapi.QueryOptions{WaitHash: hash, WaitTime: 10 * time.Second})
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	time.Sleep(100 * time.Millisecond)
	reg.Tags = []string{"v2"}
	start = time.Now()
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-done:
		if s == nil || !slices.Equal(s.Tags, []string{"v2"}) || s.ContentHash == hash {
			t.Errorf("after change: %+v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hash-blocked read did not return after the service changed")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("change seen after %v", d)
	}
}

// Without a local agent the agent routes say so; /v1/agent/self still
// answers from the backend.
func TestNoLocalAgent(t *testing.T) {
	_, c, srv := newTestServer(t)
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/agent/services"},
		{"GET", "/v1/agent/service/web"},
		{"GET", "/v1/agent/checks"},
		{"GET", "/v1/agent/members"},
		{"PUT", "/v1/agent/service/register"},
		{"PUT", "/v1/agent/service/deregister/web"},
		{"PUT", "/v1/agent/service/maintenance/web?enable=true"},
		{"PUT", "/v1/agent/check/register"},
		{"PUT", "/v1/agent/check/deregister/c"},
		{"PUT", "/v1/agent/check/pass/c"},
		{"PUT", "/v1/agent/check/warn/c"},
		{"PUT", "/v1/agent/check/fail/c"},
		{"PUT", "/v1/agent/check/update/c"},
		{"PUT", "/v1/agent/maintenance?enable=true"},
		{"PUT", "/v1/agent/reload"},
		{"PUT", "/v1/agent/join/10.0.0.2"},
		{"PUT", "/v1/agent/leave"},
		{"PUT", "/v1/agent/force-leave/n"},
	} {
		resp, body := do(t, r.method, srv.URL+r.path, `{"Name":"web"}`)
		if resp.StatusCode != 404 || body != "this process runs no local agent\n" {
			t.Errorf("%s %s: %d %q", r.method, r.path, resp.StatusCode, body)
		}
	}
	if _, err := c.Agent().Services(); err == nil || !strings.Contains(err.Error(), "no local agent") {
		t.Errorf("Services without an agent = %v", err)
	}
	if name, err := c.Agent().NodeName(); err != nil || name != "agent1" {
		t.Errorf("NodeName without an agent = %q, %v", name, err)
	}
}

func TestAgentBadInput(t *testing.T) {
	a, _, srv := newAgentTestServer(t)
	// A service and a TTL check to aim the valid-looking requests at.
	if err := a.RegisterService(t.Context(), &api.AgentServiceRegistration{ID: "web-1", Name: "web",
		Check: &api.AgentServiceCheck{CheckID: "web-ttl", TTL: "10s"}}); err != nil {
		t.Fatal(err)
	}
	const reg = "/v1/agent/service/register"
	const chk = "/v1/agent/check/register"
	tests := []struct {
		name, method, path, body string
		code                     int
		want                     string
	}{
		{"register too large", "PUT", reg, `{"Name":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "too large"},
		{"register empty body", "PUT", reg, ``, 400, "body: missing"},
		{"register malformed", "PUT", reg, `{"Name":`, 400, "body: malformed JSON"},
		{"register syntax error", "PUT", reg, `{"Name" "web"}`, 400, "body: malformed JSON"},
		{"register not an object", "PUT", reg, `["web"]`, 400, "body"},
		{"register trailing data", "PUT", reg, `{"Name":"web"} {}`, 400, "body"},
		{"register null", "PUT", reg, `null`, 400, "Name: missing"},
		{"register missing name", "PUT", reg, `{"ID":"web-1","Port":80}`, 400, "Name: missing"},
		{"register name not a label", "PUT", reg, `{"Name":"web.api"}`, 400, "Name:"},
		{"register port is a string", "PUT", reg, `{"Name":"web","Port":"80"}`, 400, "Port"},
		{"register port out of range", "PUT", reg, `{"Name":"web","Port":70000}`, 400, "Port"},
		{"register tags not a list", "PUT", reg, `{"Name":"web","Tags":"a"}`, 400, "Tags"},
		{"register meta reserved", "PUT", reg, `{"Name":"web","Meta":{"consul-x":"1"}}`, 400, "Meta"},
		{"register bad weights", "PUT", reg, `{"Name":"web","Weights":{"Passing":-1}}`, 400, "Weights"},
		{"register weights a number", "PUT", reg, `{"Name":"web","Weights":3}`, 400, "Weights"},
		{"register id with slash", "PUT", reg, `{"Name":"web","ID":"a/b"}`, 400, "ID"},
		{"register bad TTL", "PUT", reg, `{"Name":"web","Check":{"TTL":"often"}}`, 400, "Check.TTL"},
		{"register negative interval", "PUT", reg, `{"Name":"web","Checks":[{"HTTP":"http://x"},{"HTTP":"http://x","Interval":"-5s"}]}`, 400, "Checks[1].Interval"},
		{"register timeout a number", "PUT", reg, `{"Name":"web","Checks":[{"TCP":"x:1","Timeout":5}]}`, 400, "Checks.Timeout"},
		{"register bad check status", "PUT", reg, `{"Name":"web","Check":{"TTL":"1s","Status":"fine"}}`, 400, "Check.Status"},
		{"register null check", "PUT", reg, `{"Name":"web","Checks":[null]}`, 400, "Checks[0]"},
		{"register bad replace flag", "PUT", reg + "?replace-existing-checks=maybe", `{"Name":"web"}`, 400, "replace-existing-checks"},
		{"register other dc", "PUT", reg + "?dc=dc2", `{"Name":"web"}`, 500, "No path to datacenter"},
		{"register with POST", "POST", reg, `{"Name":"web"}`, 405, ""},
		{"register with GET", "GET", "/v1/agent/reload", ``, 405, ""},

		{"check too large", "PUT", chk, `{"Name":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "too large"},
		{"check malformed", "PUT", chk, `{"Name":"c",`, 400, "body"},
		{"check missing name", "PUT", chk, `{"ID":"c","TTL":"10s"}`, 400, "Name: missing"},
		{"check id a number", "PUT", chk, `{"ID":7,"Name":"c"}`, 400, "ID"},
		{"check bad TTL", "PUT", chk, `{"Name":"c","TTL":"10 seconds"}`, 400, "TTL"},
		{"check bad deregister after", "PUT", chk, `{"Name":"c","TTL":"1s","DeregisterCriticalServiceAfter":"soon"}`, 400, "DeregisterCriticalServiceAfter"},
		{"check bad status", "PUT", chk, `{"Name":"c","TTL":"1s","Status":"ok"}`, 400, "Status"},
		{"check header not a map", "PUT", chk, `{"Name":"c","HTTP":"http://x","Header":["a"]}`, 400, "Header: expected an object"},

		{"update bad status", "PUT", "/v1/agent/check/update/web-ttl", `{"Status":"ok","Output":"x"}`, 400, "Status"},
		{"update missing status", "PUT", "/v1/agent/check/update/web-ttl", `{"Output":"x"}`, 400, "Status: missing"},
		{"update status a number", "PUT", "/v1/agent/check/update/web-ttl", `{"Status":1}`, 400, "Status"},
		{"update malformed", "PUT", "/v1/agent/check/update/web-ttl", `{"Status":"passing"`, 400, "body"},
		{"update too large", "PUT", "/v1/agent/check/update/web-ttl", `{"Status":"passing","Output":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "too large"},
		{"update no id", "PUT", "/v1/agent/check/update/", `{"Status":"passing"}`, 400, "check ID"},
		{"pass no id", "PUT", "/v1/agent/check/pass/", ``, 400, "check ID"},
		{"deregister no id", "PUT", "/v1/agent/service/deregister/", ``, 400, "service ID"},
		{"service no id", "GET", "/v1/agent/service/", ``, 400, "service ID"},

		{"maintenance no enable", "PUT", "/v1/agent/maintenance?reason=x", ``, 400, "enable: missing"},
		{"maintenance bad enable", "PUT", "/v1/agent/maintenance?enable=yes", ``, 400, "enable"},
		{"service maintenance bad enable", "PUT", "/v1/agent/service/maintenance/web-1?enable=on", ``, 400, "enable"},
		{"service maintenance no enable", "PUT", "/v1/agent/service/maintenance/web-1", ``, 400, "enable"},

		{"members bad wan", "GET", "/v1/agent/members?wan=maybe", ``, 400, "wan"},
		{"services bad filter", "GET", "/v1/agent/services?filter=Service%20%3D%3D", ``, 400, "filter"},
		{"services unknown selector", "GET", "/v1/agent/services?filter=Servce%3D%3Dweb", ``, 400, "Servce"},
		{"members filter", "GET", "/v1/agent/members?filter=Name%3D%3Da", ``, 400, "takes no filter"},
		{"join wan", "PUT", "/v1/agent/join/10.0.0.2?wan=1", ``, 400, "wan"},
		{"force-leave bad prune", "PUT", "/v1/agent/force-leave/n?prune=maybe", ``, 400, "prune"},
		{"force-leave wan", "PUT", "/v1/agent/force-leave/n?wan=1", ``, 400, "wan"},
		{"leave other dc", "PUT", "/v1/agent/leave?dc=dc2", ``, 500, "No path to datacenter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(a.Calls())
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.code, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not name %q", body, tt.want)
			}
			if strings.Count(strings.TrimSuffix(body, "\n"), "\n") != 0 {
				t.Errorf("body is not one line: %q", body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			if calls := a.Calls()[before:]; len(calls) != 0 {
				t.Errorf("agent received %q", calls)
			}
		})
	}
}

// A check registration's fields are named as the body has them, not
// through the Go type they are embedded from.
func TestAgentCheckFieldNames(t *testing.T) {
	_, _, srv := newAgentTestServer(t)
	resp, body := do(t, "PUT", srv.URL+"/v1/agent/check/register", `{"Name":"c","HTTP":"http://x","Interval":10}`)
	if resp.StatusCode != 400 || body != "Interval: expected a string, got JSON number\n" {
		t.Errorf("%d %q", resp.StatusCode, body)
	}
}

// Every error the Agent returns maps through statusOf, on reads and writes.
func TestAgentErrors(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code int
	}{
		{fmt.Errorf("sync: %w", catalog.ErrNoLeader), 503},
		{fmt.Errorf("check: %w", catalog.ErrNotFound), 404},
		{&catalog.FieldError{Field: "Check.HTTP", Reason: "bad URL"}, 400},
		{fmt.Errorf("persist: %w", errors.New("disk full")), 500},
	} {
		a, _, srv := newAgentTestServer(t)
		a.err = tt.err
		for _, r := range []struct{ method, path, body string }{
			{"PUT", "/v1/agent/service/register", `{"Name":"web"}`},
			{"PUT", "/v1/agent/check/register", `{"Name":"c","TTL":"1s"}`},
			{"PUT", "/v1/agent/check/update/c", `{"Status":"passing"}`},
			{"PUT", "/v1/agent/maintenance?enable=true", ``},
			{"PUT", "/v1/agent/join/10.0.0.2", ``},
		} {
			resp, body := do(t, r.method, srv.URL+r.path, r.body)
			if resp.StatusCode != tt.code {
				t.Errorf("%v: %s %s = %d %q, want %d", tt.err, r.method, r.path, resp.StatusCode, body, tt.code)
			}
		}
	}
}
