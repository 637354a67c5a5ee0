package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/api"
)

// TestLoad_ServiceForms reads services written every way Consul allows,
// across files, and checks their order, defaults and sources.
func TestLoad_ServiceForms(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "10-a.hcl"), `data_dir = "/d"

service {
  name = "web"
  check = {
    http     = "http://localhost:8080/health"
    interval = "10s"
  }
}

services {
  name = "api"
  port = 9000
  check {
    tcp      = "localhost:9000"
    interval = "5s"
  }
  check {
    id  = "api-ttl"
    ttl = "30s"
  }
}
`)
	b := writeFile(t, filepath.Join(dir, "20-b.json"), `{
  "service": [
    {"name": "cache", "id": "cache-1", "checks": [{"ttl": "1m"}]},
    {"name": "cache", "id": "cache-2"}
  ],
  "services": [
    {"name": "db", "port": 5432, "check": {"args": ["/bin/check-db"], "interval": "1m"}}
  ]
}`)
	c := writeFile(t, filepath.Join(dir, "30-c.hcl"), `services = [
  { name = "queue", tags = ["a"] },
]
`)
	got, err := load(ModeAgent, parseFlags(t, "-config-dir", dir, "-enable-local-script-checks"), testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := []ServiceDefinition{
		{Source: a + ":3", Registration: api.AgentServiceRegistration{
			ID: "web", Name: "web",
			Check: &api.AgentServiceCheck{CheckID: "service:web", HTTP: "http://localhost:8080/health", Interval: "10s"},
		}},
		{Source: a + ":11", Registration: api.AgentServiceRegistration{
			ID: "api", Name: "api", Port: 9000,
			Check:  &api.AgentServiceCheck{CheckID: "service:api:1", TCP: "localhost:9000", Interval: "5s"},
			Checks: []*api.AgentServiceCheck{{CheckID: "api-ttl", TTL: "30s"}},
		}},
		{Source: b + ":3", Registration: api.AgentServiceRegistration{
			ID: "cache-1", Name: "cache",
			Checks: []*api.AgentServiceCheck{{CheckID: "service:cache-1", TTL: "1m"}},
		}},
		{Source: b + ":4", Registration: api.AgentServiceRegistration{ID: "cache-2", Name: "cache"}},
		{Source: b + ":7", Registration: api.AgentServiceRegistration{
			ID: "db", Name: "db", Port: 5432,
			Check: &api.AgentServiceCheck{CheckID: "service:db", Args: []string{"/bin/check-db"}, Interval: "1m"},
		}},
		{Source: c + ":2", Registration: api.AgentServiceRegistration{ID: "queue", Name: "queue", Tags: []string{"a"}}},
	}
	if !reflect.DeepEqual(got.Services, want) {
		t.Errorf("services mismatch\n got: %s\nwant: %s", dump(got.Services), dump(want))
	}
	if !got.EnableLocalScriptChecks {
		t.Error("-enable-local-script-checks without a value did not set it")
	}
}

func dump(defs []ServiceDefinition) string {
	var sb strings.Builder
	for _, d := range defs {
		r := d.Registration
		sb.WriteString("\n  " + d.Source + " " + r.ID + "/" + r.Name)
		if r.Check != nil {
			sb.WriteString(" check=" + r.Check.CheckID)
		}
		for _, c := range r.Checks {
			sb.WriteString(" checks+=" + c.CheckID)
		}
	}
	return sb.String()
}

func TestLoad_NewFlags(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "a.hcl"), `
data_dir   = "/d"
node_meta  = { rack = "r1", tier = "gold" }
domain     = "from-file"
recursors  = ["192.0.2.1"]
enable_local_script_checks = true
`)
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	f := parseFlags(t, "-config-file", file,
		"-encrypt", key, "-domain", "Mesh", "-alt-domain", "consul.",
		"-recursor", "198.51.100.1", "-recursor", "[2001:db8::1]:5353",
		"-enable-local-script-checks=false", "-node-meta", "rack:r2", "-node-meta", "zone:z:1")
	got, err := load(ModeAgent, f, testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"encrypt", got.Encrypt, key},
		{"domain", got.DNS.Domain, "mesh."},
		{"alt_domain", got.DNS.AltDomain, "consul."},
		{"recursors (flags replace the file's)", got.DNS.Recursors, []string{"198.51.100.1:53", "[2001:db8::1]:5353"}},
		{"enable_local_script_checks", got.EnableLocalScriptChecks, false},
		{"node_meta (merged key by key)", got.NodeMeta, map[string]string{"rack": "r2", "tier": "gold", "zone": "z:1"}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoad_AgentDNSMerge(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.hcl"), `
data_dir = "/d"
node_meta { rack = "r1" }
dns_config {
  service_ttl = { "*" = "5s", web = "30s" }
}
`)
	writeFile(t, filepath.Join(dir, "b.json"), `{"node_meta": {"tier": "gold"}, "dns_config": {"service_ttl": {"web": "1m"}, "only_passing": true}}`)
	got, err := load(ModeAgent, parseFlags(t, "-config-dir", dir), testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if want := map[string]string{"rack": "r1", "tier": "gold"}; !reflect.DeepEqual(got.NodeMeta, want) {
		t.Errorf("NodeMeta = %v, want %v", got.NodeMeta, want)
	}
	if want := map[string]time.Duration{"*": 5 * time.Second, "web": time.Minute}; !reflect.DeepEqual(got.DNS.ServiceTTL, want) {
		t.Errorf("ServiceTTL = %v, want %v", got.DNS.ServiceTTL, want)
	}
	if !got.DNS.OnlyPassing || got.DNS.UDPAnswerLimit != 3 || got.DNS.RecursorTimeout != 2*time.Second {
		t.Errorf("DNS = %+v", got.DNS)
	}
}

// TestLeaveOnTerminateDefault: false for servers, true for agents, unless
// set; LoadDir learns the role from the files.
func TestLeaveOnTerminateDefault(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "s.hcl"), "server = true\ndata_dir = \"/d\"\nbind_addr = \"127.0.0.1\"\n")
	got, err := loadDir(dir, testHost())
	if err != nil {
		t.Fatal(err)
	}
	if got.LeaveOnTerminate {
		t.Error("a server defaults to leave_on_terminate = true, want false")
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "a.hcl"), "data_dir = \"/d\"\n")
	if got, err = loadDir(dir, testHost()); err != nil || !got.LeaveOnTerminate {
		t.Errorf("agent: leave_on_terminate = %v, %v; want true", got != nil && got.LeaveOnTerminate, err)
	}
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "a.hcl"), "data_dir = \"/d\"\nleave_on_terminate = false\n")
	if got, err = loadDir(dir, testHost()); err != nil || got.LeaveOnTerminate {
		t.Errorf("agent set false: leave_on_terminate = %v, %v; want false", got != nil && got.LeaveOnTerminate, err)
	}
}

func TestLoad_ServiceErrors(t *testing.T) {
	// Each case is one file; "FILE" stands for its path. Script checks are
	// enabled by flag unless the file sets enable_local_script_checks.
	tests := []struct {
		name    string
		file    string
		content string
		want    []string
	}{
		{"missing name", "a.hcl", "service {\n  port = 80\n}\n",
			[]string{"FILE:1: service[0].name: missing"}},
		{"name not a DNS label", "a.hcl", "service {\n  name = \"web_1\"\n}\n",
			[]string{"FILE:2: service[web_1].name: \"web_1\" is not a valid DNS label"}},
		{"port out of range", "a.hcl", "service {\n  name = \"web\"\n  port = 70000\n}\n",
			[]string{"FILE:3: service[web].port: 70000 is out of range 0..65535"}},
		{"port wrong type", "a.json", "{\"service\": {\n\"name\": \"web\",\n\"port\": \"80\"\n}}",
			[]string{"FILE:3: service[web].port: want a whole number, got string"}},
		{"bad address", "a.hcl", "service {\n  name = \"web\"\n  address = \"not an address\"\n}\n",
			[]string{"FILE:3: service[web].address: \"not an address\" is neither"}},
		{"empty tag", "a.hcl", "service {\n  name = \"web\"\n  tags = [\n    \"a\",\n    \"\",\n  ]\n}\n",
			[]string{"FILE:5: service[web].tags[1]: a tag must be 1-512 characters"}},
		{"bad meta key", "a.hcl", "service {\n  name = \"web\"\n  meta = {\n    \"a.b\" = \"x\"\n  }\n}\n",
			[]string{"FILE:4: service[web].meta[a.b]: key \"a.b\" must be"}},
		{"id with a slash", "a.hcl", "service {\n  name = \"web\"\n  id = \"web/1\"\n}\n",
			[]string{"FILE:3: service[web].id: \"web/1\" may not contain '/'"}},
		{"weights", "a.hcl", "service {\n  name = \"web\"\n  weights = {\n    passing = 0\n    warning = -1\n  }\n}\n",
			[]string{"FILE:4: service[web].weights.passing: must be at least 1", "FILE:5: service[web].weights.warning: must be 0 or more"}},
		{"unknown weights field", "a.hcl", "service {\n  name = \"web\"\n  weights = {\n    critical = 1\n  }\n}\n",
			[]string{"FILE:4: service[web].weights.critical: unknown field"}},
		{"unknown service field", "a.hcl", "service {\n  name = \"web\"\n  mesh_gateway {\n  }\n  token = \"x\"\n}\n",
			[]string{"FILE:3: service[web].mesh_gateway: unknown field", "FILE:5: service[web].token: unknown field"}},
		{"field set twice (json)", "a.json", "{\"service\": {\n\"name\": \"web\",\n\"port\": 1,\n\"port\": 2\n}}",
			[]string{"FILE:4: "}},
		{"labelled service block", "a.hcl", "service \"web\" {\n  name = \"web\"\n}\n",
			[]string{"FILE:1: ", "Extraneous label for service"}},
		{"service not an object", "a.json", "{\n\"services\": [\"web\"]\n}",
			[]string{"FILE:2: services[0]: want an object"}},
		{"no check kind", "a.hcl", "service {\n  name = \"web\"\n  check {\n    interval = \"10s\"\n  }\n}\n",
			[]string{"FILE:3: service[web].check[0]: no check kind"}},
		{"two check kinds", "a.hcl", "service {\n  name = \"web\"\n  check {\n    http = \"http://x/\"\n    tcp = \"x:1\"\n    interval = \"10s\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].tcp: a check has exactly one kind, but this one also sets http"}},
		{"interval missing", "a.hcl", "service {\n  name = \"web\"\n\n  check {\n    http = \"http://localhost/\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].interval: missing (required for http checks)"}},
		{"interval missing in checks list", "a.hcl", "service {\n  name = \"web\"\n  checks = [\n    { ttl = \"5s\" },\n    { tcp = \"localhost:80\" },\n  ]\n}\n",
			[]string{"FILE:5: service[web].checks[1].interval: missing (required for tcp checks)"}},
		{"bad interval", "a.hcl", "service {\n  name = \"web\"\n  check {\n    tcp = \"localhost:80\"\n    interval = \"often\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].interval: invalid duration \"often\""}},
		{"zero timeout", "a.json", "{\"service\": {\"name\": \"web\", \"check\": {\n\"tcp\": \"localhost:80\",\n\"interval\": \"5s\",\n\"timeout\": \"0s\"\n}}}",
			[]string{"FILE:4: service[web].check[0].timeout: must be positive"}},
		{"negative ttl", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"-5s\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].ttl: must be positive"}},
		{"bad deregister_critical_service_after", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    deregister_critical_service_after = \"5\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].deregister_critical_service_after: invalid duration \"5\""}},
		{"bad http url", "a.hcl", "service {\n  name = \"web\"\n  check {\n    http = \"localhost:80/health\"\n    interval = \"5s\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].http: \"localhost:80/health\" is not an http:// or https:// URL"}},
		{"bad tcp address", "a.hcl", "service {\n  name = \"web\"\n  check {\n    tcp = \"localhost\"\n    interval = \"5s\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].tcp: \"localhost\" is not host:port"}},
		{"bad grpc address", "a.hcl", "service {\n  name = \"web\"\n  check {\n    grpc = \"localhost/svc\"\n    interval = \"5s\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].grpc: \"localhost\" is not host:port"}},
		{"bad status", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    status = \"ok\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].status: \"ok\" is not one of passing, warning, critical"}},
		{"negative failures_before_critical", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    failures_before_critical = -1\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].failures_before_critical: must be 0 or more"}},
		{"unknown check field", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    shell = \"/bin/sh\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].shell: unknown field"}},
		{"unknown check field (json)", "a.json", "{\"service\": {\"name\": \"web\", \"checks\": [\n{\"ttl\": \"5s\"},\n{\"ttl\": \"5s\",\n\"script\": \"x\"}\n]}}",
			[]string{"FILE:4: service[web].checks[1].script: unknown field"}},
		{"id and check_id", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    id = \"a\"\n    check_id = \"b\"\n  }\n}\n",
			[]string{"FILE:6: service[web].check[0].check_id: set more than once (also at FILE:5"}},
		{"wrong type in a check", "a.hcl", "service {\n  name = \"web\"\n  check {\n    ttl = \"5s\"\n    tls_skip_verify = \"yes\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].tls_skip_verify: want a bool"}},
		{"args not a list", "a.hcl", "service {\n  name = \"web\"\n  check {\n    args = \"/bin/true\"\n    interval = \"5s\"\n  }\n}\n",
			[]string{"FILE:4: service[web].check[0].args: want a list of strings"}},
		{"header not a map", "a.hcl", "service {\n  name = \"web\"\n  check {\n    http = \"http://x/\"\n    interval = \"5s\"\n    header = [\"a\"]\n  }\n}\n",
			[]string{"FILE:6: service[web].check[0].header: want an object"}},
		{"script checks disabled", "a.hcl", "enable_local_script_checks = false\nservice {\n  name = \"web\"\n  check {\n    args = [\"/bin/true\"]\n    interval = \"5s\"\n  }\n}\n",
			[]string{"FILE:5: service[web].check[0].args: script checks are disabled"}},
		{"duplicate service IDs", "a.hcl", "service {\n  name = \"web\"\n}\nservice {\n  name = \"api\"\n  id = \"web\"\n}\n",
			[]string{"FILE:6: service[api].id: duplicate service ID \"web\": also defined at FILE:1"}},
		{"duplicate check IDs", "a.hcl", "service {\n  name = \"web\"\n  check {\n    id = \"c\"\n    ttl = \"5s\"\n  }\n}\nservice {\n  name = \"api\"\n  check {\n    ttl = \"5s\"\n    check_id = \"c\"\n  }\n}\n",
			[]string{"FILE:12: service[api].check[0].id: duplicate check ID \"c\": also used at FILE:4"}},
		{"duplicate default check ID", "a.hcl", "service {\n  name = \"web\"\n  check {\n    id = \"service:api\"\n    ttl = \"5s\"\n  }\n}\nservice {\n  name = \"api\"\n  check {\n    ttl = \"5s\"\n  }\n}\n",
			[]string{"FILE:10: service[api].check[0].id: duplicate check ID \"service:api\": also used at FILE:4"}},
		{"services written as a setting in HCL", "a.hcl", "services = \"web\"\n",
			[]string{"FILE:1: services: want an object or a list of objects"}},
		{"empty identity", "a.hcl", "service {\n  name = \"web\"\n  identity {\n  }\n}\n",
			[]string{"FILE:3: service[web].identity: set uid, path or both"}},
		{"bad identity", "a.hcl", "service {\n  name = \"web\"\n  identity {\n    uid = -1\n    path = \"bin/web\"\n    gid = 1\n  }\n}\n",
			[]string{"FILE:4: service[web].identity.uid: -1 is not a uid", "FILE:5: service[web].identity.path: \"bin/web\" is not a clean absolute path", "FILE:6: service[web].identity.gid: unknown field (want uid or path)"}},
		{"identity uid wrong type (json)", "a.json", "{\"service\": {\n\"name\": \"web\",\n\"identity\": {\"uid\": \"1001\"}\n}}",
			[]string{"FILE:3: service[web].identity.uid: want a whole number, got string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), tt.file), tt.content)
			args := []string{"-data-dir", "/d", "-config-file", path}
			if !strings.Contains(tt.content, "enable_local_script_checks") {
				args = append(args, "-enable-local-script-checks")
			}
			_, err := load(ModeAgent, parseFlags(t, args...), testHost())
			if err == nil {
				t.Fatal("load succeeded, want an error")
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", path)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

// TestLoad_DuplicateServiceAcrossFiles: Consul refuses a service ID
// defined twice; the error names both places.
func TestLoad_DuplicateServiceAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a.hcl"), "data_dir = \"/d\"\nservice {\n  name = \"web\"\n}\n")
	b := writeFile(t, filepath.Join(dir, "b.json"), "{\n  \"service\": {\"name\": \"web\", \"port\": 80}\n}")
	_, err := load(ModeAgent, parseFlags(t, "-config-dir", dir), testHost())
	if err == nil {
		t.Fatal("load succeeded, want an error")
	}
	want := b + ":2: service[web].id: duplicate service ID \"web\": also defined at " + a + ":2"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\ndoes not contain %q", err, want)
	}
}

// TestLoadDir_AllServiceErrors: every error of every file, services and
// new keys included.
func TestLoadDir_AllServiceErrors(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a.hcl"), `data_dir = "/d"
encrypt = "short"
service {
  name = "web"
  check {
    http = "http://localhost/"
  }
}
`)
	b := writeFile(t, filepath.Join(dir, "b.json"), `{
  "domain": "bad_domain",
  "services": [
    {"name": "web"},
    {"name": "db", "check": {"args": ["/bin/true"], "interval": "5s"}}
  ],
  "dns_config": {"udp_answer_limit": 0}
}`)
	_, err := LoadDir(dir)
	if err == nil {
		t.Fatal("LoadDir succeeded, want errors")
	}
	for _, w := range []string{
		a + ":2: encrypt: not valid base64",
		a + ":5: service[web].check[0].interval: missing (required for http checks)",
		b + ":2: domain:",
		b + ":4: service[web].id: duplicate service ID \"web\": also defined at " + a + ":3",
		b + ":5: service[db].check[0].args: script checks are disabled",
		b + ":7: dns_config.udp_answer_limit: must be at least 1",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	if strings.Contains(err.Error(), "short") {
		t.Errorf("error %q quotes the encrypt key", err)
	}
}

// TestLoad_SidecarService reads Consul's connect { sidecar_service {} } in
// HCL (blocks) and JSON (objects and lists), and reports unknown keys.
func TestLoad_SidecarService(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.hcl"), `data_dir = "/d"
service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      port = 21500
      proxy {
        upstreams {
          destination_name = "api"
          local_bind_port  = 9191
        }
      }
    }
  }
}
`)
	writeFile(t, filepath.Join(dir, "b.json"), `{"service": {"name": "api", "port": 9090,
  "connect": {"sidecar_service": {"proxy": {"upstreams": [{"destination_name": "db", "local_bind_port": 6432}]}}}}}`)
	got, err := load(ModeAgent, parseFlags(t, "-config-dir", dir), testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	want := map[string]*api.AgentServiceConnect{
		"web": {SidecarService: &api.AgentServiceRegistration{Port: 21500, Proxy: &api.AgentServiceConnectProxyConfig{
			Upstreams: []api.Upstream{{DestinationName: "api", LocalBindPort: 9191}}}}},
		"api": {SidecarService: &api.AgentServiceRegistration{Proxy: &api.AgentServiceConnectProxyConfig{
			Upstreams: []api.Upstream{{DestinationName: "db", LocalBindPort: 6432}}}}},
	}
	if len(got.Services) != 2 {
		t.Fatalf("services: %+v", got.Services)
	}
	for _, s := range got.Services {
		if !reflect.DeepEqual(s.Registration.Connect, want[s.Registration.Name]) {
			t.Errorf("%s: connect %+v, want %+v", s.Registration.Name, s.Registration.Connect.SidecarService, want[s.Registration.Name].SidecarService)
		}
	}

	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "a.hcl"), `data_dir = "/d"
service {
  name = "web"
  connect {
    sidecar_service {
      proxy {
        upstreams {
          destination_name = "api"
          local_port = 1
        }
      }
    }
    gateway = true
  }
}
`)
	_, err = load(ModeAgent, parseFlags(t, "-config-dir", bad), testHost())
	if err == nil {
		t.Fatal("bad connect block accepted")
	}
	for _, w := range []string{"service[web].connect.sidecar_service.proxy.upstreams[0].local_port: unknown field",
		"service[web].connect.sidecar_service.proxy.upstreams[0].local_bind_port: missing",
		"service[web].connect.gateway: unknown field"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}

// TestLoad_SidecarProxyTelemetry reads a sidecar's opaque proxy config
// (nested blocks included) and access logs, in HCL and JSON, and a
// proxy_defaults stanza merged across files key by key.
func TestLoad_SidecarProxyTelemetry(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.hcl"), `data_dir = "/d"
proxy_defaults {
  config {
    envoy_prometheus_bind_addr = "0.0.0.0:9102"
    protocol = "tcp"
  }
}
service {
  name = "web"
  port = 8080
  connect {
    sidecar_service {
      proxy {
        config {
          protocol = "http"
          opentelemetry {
            collector_address = "127.0.0.1:4317"
          }
          weights = [1, 2]
        }
        access_logs {
          enabled = true
          type    = "stderr"
        }
      }
    }
  }
}
`)
	writeFile(t, filepath.Join(dir, "b.json"), `{"proxy_defaults": {"config": {"protocol": "http"}, "access_logs": {"enabled": true}},
  "service": {"name": "api", "port": 9090,
  "connect": {"sidecar_service": {"proxy": {"config": {"envoy_prometheus_bind_addr": "127.0.0.1:9103"}}}}}}`)
	got, err := load(ModeAgent, parseFlags(t, "-config-dir", dir), testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	wantDefaults := ProxyDefaults{
		Config:     map[string]any{"envoy_prometheus_bind_addr": "0.0.0.0:9102", "protocol": "http"},
		AccessLogs: &api.AccessLogsConfig{Enabled: true},
	}
	if !reflect.DeepEqual(got.ProxyDefaults, wantDefaults) {
		t.Errorf("proxy_defaults %+v, want %+v", got.ProxyDefaults, wantDefaults)
	}
	want := map[string]*api.AgentServiceConnectProxyConfig{
		"web": {
			Config: map[string]any{"protocol": "http", "opentelemetry": map[string]any{"collector_address": "127.0.0.1:4317"},
				"weights": []any{1.0, 2.0}},
			AccessLogs: &api.AccessLogsConfig{Enabled: true, Type: "stderr"},
		},
		"api": {Config: map[string]any{"envoy_prometheus_bind_addr": "127.0.0.1:9103"}},
	}
	for _, s := range got.Services {
		p := s.Registration.Connect.SidecarService.Proxy
		if !reflect.DeepEqual(p, want[s.Registration.Name]) {
			t.Errorf("%s: proxy %+v, want %+v", s.Registration.Name, p, want[s.Registration.Name])
		}
	}

	bad := t.TempDir()
	writeFile(t, filepath.Join(bad, "a.hcl"), `data_dir = "/d"
proxy_defaults {
  access_logs {
    enabled = "yes please"
    format = "json"
  }
  mesh_gateway = {}
}
`)
	_, err = load(ModeAgent, parseFlags(t, "-config-dir", bad), testHost())
	if err == nil {
		t.Fatal("bad proxy_defaults accepted")
	}
	for _, w := range []string{"a.hcl:4: proxy_defaults.access_logs.enabled", "a.hcl:5: proxy_defaults.access_logs.format: unknown field",
		"a.hcl:7: proxy_defaults.mesh_gateway: unknown key"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
}
