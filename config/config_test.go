package config

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/api"
)

// testHost is a machine with a fixed name and addresses.
func testHost() host {
	return host{
		hostname: func() (string, error) { return "Web_01.Example.COM", nil },
		interfaceAddr: func() ([]net.Addr, error) {
			return []net.Addr{
				&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
				&net.IPNet{IP: net.ParseIP("203.0.113.7"), Mask: net.CIDRMask(24, 32)},
				&net.IPNet{IP: net.ParseIP("10.1.2.3"), Mask: net.CIDRMask(8, 32)},
			}, nil
		},
	}
}

func parseFlags(t *testing.T, args ...string) *Flags {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	f := RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse flags %q: %v", args, err)
	}
	return f
}

func writeFile(t *testing.T, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoad_FullConfig(t *testing.T) {
	want := Config{
		Mode:            ModeServer,
		NodeName:        "node-1",
		Datacenter:      "east-1",
		DataDir:         "/var/lib/warren",
		LogLevel:        "warn",
		LogJSON:         true,
		BindAddr:        "10.0.0.5",
		AdvertiseAddr:   "192.0.2.10",
		ClientAddr:      "127.0.0.2",
		Ports:           Ports{HTTP: 18500, DNS: -1, Server: 18300, SerfLAN: 18301, GRPC: 18502, HTTPS: 18501},
		Server:          true,
		BootstrapExpect: 3,
		// An entry without a port gets the serf LAN port.
		RetryJoin:     []string{"10.0.0.6:18301", "server-2.example.com:9300", "[2001:db8::1]:8300"},
		RetryInterval: 15 * time.Second,

		Encrypt:                 "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		ReconnectTimeout:        24 * time.Hour,
		EnableLocalScriptChecks: true,
		NodeMeta:                map[string]string{"rack": "r1", "tier": "gold"},
		LeaveOnTerminate:        true,
		DNS: DNSConfig{
			Domain:          "warren.example.",
			AltDomain:       "consul.",
			Recursors:       []string{"192.0.2.53:53", "[2001:db8::53]:5353"},
			RecursorTimeout: 3 * time.Second,
			NodeTTL:         10 * time.Second,
			ServiceTTL:      map[string]time.Duration{"*": 5 * time.Second, "web": 30 * time.Second},
			OnlyPassing:     true,
			UDPAnswerLimit:  5,
		},
		MetricsAddr: "127.0.0.1:19100",
		EnableDebug: true,

		WorkloadSocket: "/run/warren-test/workload.sock",

		ProxyDefaults: ProxyDefaults{
			Config: map[string]any{
				"protocol":                   "http",
				"envoy_prometheus_bind_addr": "0.0.0.0:9102",
				"opentelemetry":              map[string]any{"collector_address": "127.0.0.1:4317", "service_name": "edge"},
			},
			AccessLogs: &api.AccessLogsConfig{Enabled: true, DisableListenerLogs: true, Type: "file",
				Path: "/var/log/envoy/access.log", JSONFormat: `{"code": "%RESPONSE_CODE%"}`},
		},
		ACL: ACLConfig{Enabled: true, DefaultPolicy: "allow", EnableTokenForDNS: true, Tokens: ACLTokens{
			InitialManagement: "00000000-1111-2222-3333-444444444444",
			Agent:             "aaaaaaaa-1111-2222-3333-444444444444",
			Default:           "dddddddd-1111-2222-3333-444444444444",
		}},

		TLS: TLSConfig{
			CAFile: "testdata/tls/warren-agent-ca.pem", CAPath: "testdata/tls",
			CertFile: "testdata/tls/east-1-server-warren-0.pem", KeyFile: "testdata/tls/east-1-server-warren-0-key.pem",
			VerifyIncoming: true, VerifyOutgoing: true, VerifyServerHostname: true, HTTPSVerifyIncoming: new(bool),
			AutoEncryptAllowTLS: true,
		},
		Connect: ConnectConfig{CSRMaxPerSecond: 12.5},

		CheckOutputMaxSize: 2048,
		Limits: Limits{HTTPMaxConnsPerClient: 100, HTTPMaxBlockingQueriesPerClient: 50, HTTPMaxBodyBytes: 524288,
			HTTPReadHeaderTimeout: 5 * time.Second, RPCRate: 250.5, RPCMaxBurst: 500},
		Audit: AuditConfig{Enabled: true, Path: "/var/log/warren/audit.json"},
	}
	yes := true
	web := api.AgentServiceRegistration{
		ID:                "web-1",
		Name:              "web",
		Tags:              []string{"v1", "primary"},
		Port:              8080,
		Address:           "10.0.0.5",
		EnableTagOverride: true,
		Meta:              map[string]string{"version": "1.2"},
		Weights:           &api.Weights{Passing: 10, Warning: 2},
		Check: &api.AgentServiceCheck{
			CheckID:                        "web-http",
			Name:                           "web HTTP",
			HTTP:                           "https://10.0.0.5:8080/health",
			Header:                         map[string][]string{"X-Probe": {"warren"}},
			Method:                         "POST",
			Body:                           "{}",
			DisableRedirects:               &yes,
			TLSServerName:                  "web.internal",
			TLSSkipVerify:                  true,
			Interval:                       "10s",
			Timeout:                        "2s",
			Status:                         "passing",
			Notes:                          "the health endpoint",
			SuccessBeforePassing:           2,
			FailuresBeforeCritical:         3,
			DeregisterCriticalServiceAfter: "90m",
		},
		Checks: []*api.AgentServiceCheck{
			{CheckID: "web-tcp", TCP: "10.0.0.5:8080", Interval: "5s"},
			{CheckID: "service:web-1:3", Args: []string{"/usr/local/bin/check-web", "-v"}, Interval: "30s"},
			{CheckID: "service:web-1:4", GRPC: "10.0.0.5:8081/web.Health", GRPCUseTLS: true, Interval: "15s"},
			{CheckID: "service:web-1:5", UDP: "10.0.0.5:8125", Interval: "20s"},
		},
	}
	dbUID := 1001
	db := api.AgentServiceRegistration{
		ID:       "db",
		Name:     "db",
		Port:     5432,
		Check:    &api.AgentServiceCheck{CheckID: "service:db", TTL: "30s"},
		Identity: &api.AgentServiceIdentity{UID: &dbUID, Path: "/usr/local/bin/db"},
	}
	// Where each file defines web and db.
	sources := map[string][2]int{
		"testdata/full-config.hcl":  {47, 84},
		"testdata/full-config.json": {35, 70},
	}
	for _, file := range []string{"testdata/full-config.hcl", "testdata/full-config.json"} {
		t.Run(filepath.Ext(file), func(t *testing.T) {
			got, err := load(ModeServer, parseFlags(t, "-config-file", file), testHost())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			want := want
			want.Files = []string{file}
			lines := sources[file]
			want.Services = []ServiceDefinition{
				{Registration: web, Source: fmt.Sprintf("%s:%d", file, lines[0])},
				{Registration: db, Source: fmt.Sprintf("%s:%d", file, lines[1])},
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("config mismatch\n got: %+v\nwant: %+v", *got, want)
				for i := range min(len(got.Services), len(want.Services)) {
					if g, w := got.Services[i], want.Services[i]; !reflect.DeepEqual(g, w) {
						gj, _ := json.Marshal(g)
						wj, _ := json.Marshal(w)
						t.Errorf("service %d\n got: %s\nwant: %s", i, gj, wj)
					}
				}
			}
		})
	}
}

// TestFullConfigSetsEveryKey keeps the fixtures complete: every key the
// package knows must be set in both.
func TestFullConfigSetsEveryKey(t *testing.T) {
	for _, file := range []string{"testdata/full-config.hcl", "testdata/full-config.json"} {
		b := newBuilder(ModeServer, testHost())
		b.readFile(file)
		if len(b.errs) > 0 {
			t.Fatalf("%s: %v", file, errors.Join(b.errs...))
		}
		for _, f := range fields {
			if f.key == "enroll" {
				continue // agent-only; the fixtures are a server's (TestEnrollKey)
			}
			if b.src[f.key] == "" {
				t.Errorf("%s does not set %s", file, f.key)
			}
		}
		for _, k := range proxyDefaultsKeys() {
			if b.src[k] == "" {
				t.Errorf("%s does not set %s", file, k)
			}
		}
		// Service definitions: every field of a service and of a check,
		// with check_id (an alias of id) spelled somewhere too.
		svcSet := map[string]bool{}
		checkSet := map[string]bool{}
		for _, d := range b.services {
			for k := range d.pos {
				svcSet[k] = true
			}
			for _, c := range d.checks {
				for k := range c.pos {
					checkSet[k] = true
				}
			}
		}
		for k := range serviceFields {
			if !svcSet[k] {
				t.Errorf("%s: no service sets %s", file, k)
			}
		}
		for _, k := range []string{"weights", "identity", "identity.uid", "identity.path"} {
			if !svcSet[k] {
				t.Errorf("%s: no service sets %s", file, k)
			}
		}
		for k := range checkFields {
			if k != "check_id" && !checkSet[k] {
				t.Errorf("%s: no check sets %s", file, k)
			}
		}
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"check_id", "checks", "check"} {
			if !strings.Contains(string(raw), k) {
				t.Errorf("%s does not use %s", file, k)
			}
		}
	}
}

func TestLoad_Defaults(t *testing.T) {
	defaultDNS := DNSConfig{Domain: "warren.", RecursorTimeout: 2 * time.Second, UDPAnswerLimit: 3}
	defLimits, defOutput := defaultLimits()
	tests := []struct {
		mode Mode
		args []string
		want Config
	}{
		{ModeDev, nil, Config{
			Mode: ModeDev, NodeName: "web-01-example-com", Datacenter: "dc1", LogLevel: "info",
			BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", ClientAddr: "127.0.0.1",
			Ports:  Ports{HTTP: 8500, DNS: 8600, Server: 8300, SerfLAN: 8301, GRPC: 8502, HTTPS: -1},
			Server: true, BootstrapExpect: 1, RetryInterval: time.Second,
			ReconnectTimeout: 72 * time.Hour, DNS: defaultDNS,
			ACL:     ACLConfig{DefaultPolicy: "deny"},
			Connect: defaultConnect(),
			Limits:  defLimits, CheckOutputMaxSize: defOutput,
		}},
		// Without TLS a server binds RPC to loopback only (the default
		// 0.0.0.0 is refused: TestLoadDir_Valid).
		{ModeServer, []string{"-data-dir", "/d", "-bind", "127.0.0.1"}, Config{
			Mode: ModeServer, NodeName: "web-01-example-com", Datacenter: "dc1", DataDir: "/d", LogLevel: "info",
			BindAddr: "127.0.0.1", AdvertiseAddr: "127.0.0.1", ClientAddr: "127.0.0.1",
			Ports:  Ports{HTTP: 8500, DNS: 8600, Server: 8300, SerfLAN: 8301, GRPC: 8502, HTTPS: -1},
			Server: true, RetryInterval: 30 * time.Second,
			ReconnectTimeout: 72 * time.Hour, DNS: defaultDNS,
			WorkloadSocket: DefaultWorkloadSocket, Connect: defaultConnect(),
			ACL:    ACLConfig{Enabled: true, DefaultPolicy: "deny"},
			Limits: defLimits, CheckOutputMaxSize: defOutput,
		}},
		{ModeAgent, []string{"-data-dir", "/d", "-bind", "10.9.9.9"}, Config{
			Mode: ModeAgent, NodeName: "web-01-example-com", Datacenter: "dc1", DataDir: "/d", LogLevel: "info",
			BindAddr: "10.9.9.9", AdvertiseAddr: "10.9.9.9", ClientAddr: "127.0.0.1",
			Ports:            Ports{HTTP: 8500, DNS: 8600, Server: 8300, SerfLAN: 8301, GRPC: 8502, HTTPS: -1},
			RetryInterval:    30 * time.Second,
			ReconnectTimeout: 72 * time.Hour, DNS: defaultDNS, LeaveOnTerminate: true,
			WorkloadSocket: DefaultWorkloadSocket, Connect: defaultConnect(),
			ACL:    ACLConfig{Enabled: true, DefaultPolicy: "deny"},
			Limits: defLimits, CheckOutputMaxSize: defOutput,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			got, err := load(tt.mode, parseFlags(t, tt.args...), testHost())
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("config mismatch\n got: %+v\nwant: %+v", *got, tt.want)
			}
		})
	}
}

func TestDefaultNodeName(t *testing.T) {
	tests := map[string]string{
		"web01":                        "web01",
		"Web_01.Example.COM":           "web-01-example-com",
		"--x--":                        "x",
		"":                             "warren",
		"___":                          "warren",
		strings.Repeat("a", 62) + ".b": strings.Repeat("a", 62),
	}
	for in, want := range tests {
		h := host{hostname: func() (string, error) { return in, nil }}
		if got := defaultNodeName(h); got != want {
			t.Errorf("defaultNodeName(%q) = %q, want %q", in, got, want)
		}
	}
	h := host{hostname: func() (string, error) { return "", errors.New("no name") }}
	if got := defaultNodeName(h); got != "warren" {
		t.Errorf("defaultNodeName(error) = %q, want warren", got)
	}
}

// TestLoad_Precedence: default < dir file < later dir file < later
// -config-file < flag, key by key.
func TestLoad_Precedence(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "10-base.hcl"), `
node_name  = "from-dir"
datacenter = "dir"
log_level  = "debug"
retry_join = ["a", "b"]
ports {
  http = 9500
}
`)
	writeFile(t, filepath.Join(dir, "20-override.json"), `{"datacenter": "dir-later", "ports": {"dns": 9600}}`)
	writeFile(t, filepath.Join(dir, "README.txt"), "not config {{{")
	later := writeFile(t, filepath.Join(t.TempDir(), "later.hcl"), `
node_name  = "from-file"
datacenter = "file"
retry_join = ["c"]
`)
	f := parseFlags(t, "-config-dir", dir, "-config-file", later, "-node", "from-flag", "-data-dir", "/d")

	got, err := load(ModeAgent, f, testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"node_name (flag)", got.NodeName, "from-flag"},
		{"datacenter (later file)", got.Datacenter, "file"},
		{"log_level (dir file)", got.LogLevel, "debug"},
		{"retry_join (later file replaces; serf LAN port)", got.RetryJoin, []string{"c:8301"}},
		{"ports (two dir files, key by key)", got.Ports, Ports{HTTP: 9500, DNS: 9600, Server: 8300, SerfLAN: 8301, GRPC: 8502, HTTPS: -1}},
		{"client_addr (default)", got.ClientAddr, "127.0.0.1"},
		{"files", got.Files, []string{filepath.Join(dir, "10-base.hcl"), filepath.Join(dir, "20-override.json"), later}},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestLoad_FlagsOverrideFiles(t *testing.T) {
	file := writeFile(t, filepath.Join(t.TempDir(), "a.hcl"), `
retry_join     = ["x", "y"]
retry_interval = "5s"
ports {
  grpc = 9000
}
`)
	f := parseFlags(t, "-config-file", file, "-data-dir", "/d",
		"-retry-join", "10.0.0.1", "-retry-join", "10.0.0.2:1234", "-retry-interval", "2m", "-grpc-port", "-1", "-log-level", "trace")
	got, err := load(ModeAgent, f, testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if want := []string{"10.0.0.1:8301", "10.0.0.2:1234"}; !reflect.DeepEqual(got.RetryJoin, want) {
		t.Errorf("RetryJoin = %v, want %v", got.RetryJoin, want)
	}
	if got.RetryInterval != 2*time.Minute || got.Ports.GRPC != -1 || got.LogLevel != "debug" {
		t.Errorf("got interval %v, grpc %d, log level %q", got.RetryInterval, got.Ports.GRPC, got.LogLevel)
	}
}

func TestLoad_Errors(t *testing.T) {
	tests := []struct {
		name    string
		mode    Mode
		file    string // file name written into a temp dir; "" for none
		content string
		args    []string
		// want are substrings of the error; "FILE" stands for the file's path.
		want []string
	}{
		{"unknown key", ModeAgent, "a.hcl", "data_dir = \"/d\"\nbogus = 1\n", nil,
			[]string{"FILE:2: bogus: unknown key"}},
		{"unknown key in ports (json)", ModeAgent, "a.json", "{\n\"data_dir\": \"/d\",\n\"ports\": {\n\"htp\": 1\n}\n}", nil,
			[]string{"FILE:4: ports.htp: unknown key"}},
		{"unknown block", ModeAgent, "a.hcl", "data_dir = \"/d\"\n\nlimitz {\n}\n", nil,
			[]string{"FILE:3: limitz: unknown block"}},
		{"unknown audit sink", ModeAgent, "a.hcl", "data_dir = \"/d\"\naudit {\n  sink \"syslog\" {\n  }\n}\n", nil,
			[]string{`FILE:3: audit.sink: unknown kind "syslog": want one of file`}},
		{"audit without sink", ModeAgent, "a.hcl", "data_dir = \"/d\"\naudit {\n  enabled = true\n}\n", nil,
			[]string{"FILE:3: audit.enabled: true, but no sink"}},
		{"relative audit path", ModeAgent, "a.json", "{\"data_dir\": \"/d\",\n\"audit\": {\"sink\": {\"file\": {\n\"path\": \"audit.json\"}}}}", nil,
			[]string{`FILE:3: audit.sink.file.path: "audit.json" is not an absolute path`}},
		{"bad limits", ModeAgent, "a.hcl", "data_dir = \"/d\"\ncheck_output_max_size = 10000\nlimits {\n  http_max_conns_per_client = -1\n  rpc_rate = -2\n  http_read_header_timeout = \"0s\"\n}\n", nil,
			[]string{"FILE:2: check_output_max_size: must be between 64 and 4096", "FILE:4: limits.http_max_conns_per_client: must be at least 0", "FILE:5: limits.rpc_rate: must be 0 (no limit) or more", "FILE:6: limits.http_read_header_timeout: must be positive"}},
		{"wrong type", ModeServer, "a.hcl", "data_dir = \"/d\"\nbootstrap_expect = \"three\"\n", nil,
			[]string{"FILE:2: bootstrap_expect: want a whole number, got string"}},
		{"wrong type (json)", ModeServer, "a.json", "{\n  \"data_dir\": \"/d\",\n  \"server\": \"yes\"\n}", nil,
			[]string{"FILE:3: server: want a bool"}},
		{"invalid node name", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_name = \"bad_name!\"\n", nil,
			[]string{"FILE:2: node_name:", "not a valid DNS label"}},
		{"invalid datacenter", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndatacenter = \"-dc\"\n", nil,
			[]string{"FILE:2: datacenter:", "not a valid DNS label"}},
		{"bad IP", ModeAgent, "a.hcl", "data_dir = \"/d\"\n\nbind_addr = \"10.0.0.300\"\n", nil,
			[]string{"FILE:3: bind_addr:", "not an IP address"}},
		{"unspecified advertise", ModeAgent, "a.hcl", "data_dir = \"/d\"\nadvertise_addr = \"0.0.0.0\"\n", nil,
			[]string{"FILE:2: advertise_addr:", "unspecified"}},
		{"port out of range", ModeAgent, "a.hcl", "data_dir = \"/d\"\nports {\n  http = 70000\n}\n", nil,
			[]string{"FILE:3: ports.http: port 70000 out of range"}},
		{"disabled http port", ModeAgent, "a.hcl", "data_dir = \"/d\"\nports {\n  http = -1\n}\n", nil,
			[]string{"FILE:3: ports.http: -1 disables the only HTTP API"}},
		{"duplicate ports", ModeAgent, "a.hcl", "data_dir = \"/d\"\nports {\n  http = 9000\n  grpc = 9000\n}\n", nil,
			[]string{"FILE:4: ports.grpc: port 9000 is also used by ports.http at FILE:3"}},
		{"duplicate port with a default", ModeAgent, "a.hcl", "data_dir = \"/d\"\nports {\n  grpc = 8500\n}\n", nil,
			[]string{"FILE:3: ports.grpc: port 8500 is also used by ports.http"}},
		{"bad metrics_addr", ModeAgent, "a.hcl", "data_dir = \"/d\"\nmetrics_addr = \"localhost\"\n", nil,
			[]string{"FILE:2: metrics_addr:", "not ip:port"}},
		{"bad -metrics-addr", ModeAgent, "", "", []string{"-data-dir", "/d", "-metrics-addr", "127.0.0.1:0"},
			[]string{"flag -metrics-addr: metrics_addr:", "not ip:port"}},
		{"relative workload_socket", ModeAgent, "a.hcl", "data_dir = \"/d\"\nworkload_socket = \"run/w.sock\"\n", nil,
			[]string{"FILE:2: workload_socket:", "not a clean absolute path"}},
		{"long -workload-socket", ModeAgent, "", "", []string{"-data-dir", "/d", "-workload-socket", "/" + strings.Repeat("s", 120)},
			[]string{"flag -workload-socket: workload_socket:", "longer than 107 bytes"}},
		{"bootstrap_expect in agent mode", ModeAgent, "a.hcl", "data_dir = \"/d\"\nbootstrap_expect = 3\n", nil,
			[]string{"FILE:2: bootstrap_expect: only a server"}},
		{"negative bootstrap_expect", ModeServer, "a.hcl", "data_dir = \"/d\"\nbootstrap_expect = -1\n", nil,
			[]string{"FILE:2: bootstrap_expect: must be 0 or more"}},
		{"server in agent mode", ModeAgent, "a.hcl", "data_dir = \"/d\"\nserver = true\n", nil,
			[]string{"FILE:2: server: true, but the mode is agent"}},
		{"bad retry_join entry", ModeAgent, "a.hcl", "data_dir = \"/d\"\nretry_join = [\n  \"ok.example\",\n  \"bad host!\",\n]\n", nil,
			[]string{"FILE:4: retry_join[1]:", "bad host!"}},
		{"bad retry_join port", ModeAgent, "a.hcl", "data_dir = \"/d\"\nretry_join = [\"10.0.0.1:99999\"]\n", nil,
			[]string{"FILE:2: retry_join[0]:", "99999"}},
		{"retry_join not a list", ModeAgent, "a.hcl", "data_dir = \"/d\"\nretry_join = \"10.0.0.1\"\n", nil,
			[]string{"FILE:2: retry_join: want a list of strings"}},
		{"bad duration", ModeAgent, "a.hcl", "data_dir = \"/d\"\nretry_interval = \"soon\"\n", nil,
			[]string{"FILE:2: retry_interval: invalid duration \"soon\""}},
		{"non-positive duration", ModeAgent, "a.hcl", "data_dir = \"/d\"\nretry_interval = \"0s\"\n", nil,
			[]string{"FILE:2: retry_interval: must be positive"}},
		{"unknown log level", ModeAgent, "a.hcl", "data_dir = \"/d\"\nlog_level = \"loud\"\n", nil,
			[]string{"FILE:2: log_level: unknown level \"loud\""}},
		{"missing data_dir for server", ModeServer, "a.hcl", "node_name = \"n1\"\n", nil,
			[]string{"data_dir: required in server mode"}},
		{"non-existent config dir", ModeAgent, "", "", []string{"-config-dir", "/nonexistent/warren.d"},
			[]string{"config dir /nonexistent/warren.d:", "no such file or directory"}},
		{"syntax error", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_name = \n", nil,
			[]string{"FILE:2: "}},
		{"syntax error (json)", ModeAgent, "a.json", "{\n  \"data_dir\": \"/d\",\n  \"node_name\" \"x\"\n}", nil,
			[]string{"FILE:3: "}},
		{"variable in a value", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_name = hostname\n", nil,
			[]string{"FILE:2: node_name: Variables not allowed"}},
		{"unknown extension", ModeAgent, "a.yaml", "x: 1\n", nil,
			[]string{"config file FILE: unknown format"}},
		{"bad flag value", ModeAgent, "", "", []string{"-data-dir", "/d", "-bind", "nope"},
			[]string{"flag -bind: bind_addr: \"nope\" is not an IP address"}},
		{"bad flag number", ModeAgent, "", "", []string{"-data-dir", "/d", "-http-port", "http"},
			[]string{"flag -http-port: ports.http: want a whole number"}},
		// Agent keys.
		{"encrypt not base64", ModeAgent, "a.hcl", "data_dir = \"/d\"\nencrypt = \"not*base64\"\n", nil,
			[]string{"FILE:2: encrypt: not valid base64"}},
		{"encrypt of 16 bytes", ModeAgent, "a.hcl", "data_dir = \"/d\"\nencrypt = \"AAECAwQFBgcICQoLDA0ODw==\"\n", nil,
			[]string{"FILE:2: encrypt: decodes to 16 bytes, want 32"}},
		{"encrypt flag", ModeAgent, "", "", []string{"-data-dir", "/d", "-encrypt", "c2VjcmV0"},
			[]string{"flag -encrypt: encrypt: decodes to 6 bytes"}},
		{"encrypt wrong type", ModeAgent, "a.json", "{\n\"data_dir\": \"/d\",\n\"encrypt\": 32\n}", nil,
			[]string{"FILE:3: encrypt: want a string"}},
		{"reconnect_timeout too short", ModeAgent, "a.hcl", "data_dir = \"/d\"\nreconnect_timeout = \"1h\"\n", nil,
			[]string{"FILE:2: reconnect_timeout: must be at least 8h0m0s, got 1h0m0s"}},
		{"enable_local_script_checks not a bool", ModeAgent, "a.hcl", "data_dir = \"/d\"\nenable_local_script_checks = \"yes\"\n", nil,
			[]string{"FILE:2: enable_local_script_checks: want a bool"}},
		{"leave_on_terminate not a bool", ModeAgent, "a.json", "{\n\"data_dir\": \"/d\",\n\"leave_on_terminate\": 1\n}", nil,
			[]string{"FILE:3: leave_on_terminate: want a bool"}},
		{"node_meta bad key", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_meta = {\n  ok = \"1\"\n  \"bad key\" = \"2\"\n}\n", nil,
			[]string{"FILE:4: node_meta[bad key]: key \"bad key\" must be 1-128 letters"}},
		{"node_meta reserved prefix (block)", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_meta {\n  consul-version = \"1\"\n}\n", nil,
			[]string{"FILE:3: node_meta[consul-version]: key \"consul-version\" uses a reserved prefix"}},
		{"node_meta long value (json)", ModeAgent, "a.json", "{\n\"data_dir\": \"/d\",\n\"node_meta\": {\n\"k\": \"" + strings.Repeat("v", 513) + "\"\n}\n}", nil,
			[]string{"FILE:4: node_meta[k]: value longer than 512 characters"}},
		{"node_meta not a map", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_meta = [\"a\"]\n", nil,
			[]string{"FILE:2: node_meta: want an object"}},
		{"node_meta value not a string", ModeAgent, "a.hcl", "data_dir = \"/d\"\nnode_meta = {\n  a = true\n}\n", nil,
			[]string{"FILE:3: node_meta[a]: want a string, got bool"}},
		{"node-meta flag without colon", ModeAgent, "", "", []string{"-data-dir", "/d", "-node-meta", "rack"},
			[]string{"flag -node-meta: node_meta: \"rack\": want key:value"}},
		{"node-meta flag bad key", ModeAgent, "", "", []string{"-data-dir", "/d", "-node-meta", "a b:c"},
			[]string{"flag -node-meta: node_meta[a b]: key \"a b\" must be"}},
		{"bool flag bad value", ModeAgent, "", "", []string{"-data-dir", "/d", "-enable-local-script-checks=maybe"},
			[]string{"flag -enable-local-script-checks: enable_local_script_checks: want true or false"}},
		// DNS keys.
		{"bad domain", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndomain = \"war_ren.\"\n", nil,
			[]string{"FILE:2: domain: \"war_ren.\": \"war_ren\" is not a valid DNS label"}},
		{"empty domain", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndomain = \".\"\n", nil,
			[]string{"FILE:2: domain: \".\" is not a domain"}},
		{"domain with an empty label", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndomain = \"a..b\"\n", nil,
			[]string{"FILE:2: domain: \"a..b\": \"\" is not a valid DNS label"}},
		{"bad alt_domain", ModeAgent, "a.hcl", "data_dir = \"/d\"\nalt_domain = \"-x\"\n", nil,
			[]string{"FILE:2: alt_domain: \"-x\": \"-x\" is not a valid DNS label"}},
		{"alt_domain same as domain", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndomain = \"consul\"\nalt_domain = \"Consul.\"\n", nil,
			[]string{"FILE:3: alt_domain: \"consul.\" is the same as domain"}},
		{"alt_domain same as the default domain", ModeAgent, "a.hcl", "data_dir = \"/d\"\nalt_domain = \"warren\"\n", nil,
			[]string{"FILE:2: alt_domain: \"warren.\" is the same as domain"}},
		{"bad recursor", ModeAgent, "a.hcl", "data_dir = \"/d\"\nrecursors = [\n  \"8.8.8.8\",\n  \"dns.example\",\n]\n", nil,
			[]string{"FILE:4: recursors[1]: \"dns.example\" is not an IP address or ip:port"}},
		{"recursor port 0", ModeAgent, "a.hcl", "data_dir = \"/d\"\nrecursors = [\"8.8.8.8:0\"]\n", nil,
			[]string{"FILE:2: recursors[0]:"}},
		{"bad recursor flag", ModeAgent, "", "", []string{"-data-dir", "/d", "-recursor", "1.1.1.1", "-recursor", "nope"},
			[]string{"flag -recursor: recursors[1]: \"nope\""}},
		{"bad domain flag", ModeAgent, "", "", []string{"-data-dir", "/d", "-domain", "a b"},
			[]string{"flag -domain: domain: \"a b\""}},
		{"udp_answer_limit 0", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n  udp_answer_limit = 0\n}\n", nil,
			[]string{"FILE:3: dns_config.udp_answer_limit: must be at least 1, got 0"}},
		{"recursor_timeout 0", ModeAgent, "a.json", "{\n\"data_dir\": \"/d\",\n\"dns_config\": {\n\"recursor_timeout\": \"0s\"\n}\n}", nil,
			[]string{"FILE:4: dns_config.recursor_timeout: must be positive"}},
		{"negative node_ttl", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n  node_ttl = \"-1s\"\n}\n", nil,
			[]string{"FILE:3: dns_config.node_ttl: must be 0 or more"}},
		{"bad service_ttl value", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n  service_ttl = {\n    \"*\" = \"5s\"\n    web = \"soon\"\n  }\n}\n", nil,
			[]string{"FILE:5: dns_config.service_ttl[web]: invalid duration \"soon\""}},
		{"bad service_ttl name", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n  service_ttl = {\n    \"we b\" = \"5s\"\n  }\n}\n", nil,
			[]string{"FILE:4: dns_config.service_ttl[we b]: want a service name"}},
		{"unknown dns_config key", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n  allow_stale = true\n}\n", nil,
			[]string{"FILE:3: dns_config.allow_stale: unknown key"}},
		{"dns_config twice", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config {\n}\ndns_config {\n}\n", nil,
			[]string{"FILE:4: dns_config: defined more than once in this file"}},
		{"dns_config as a setting", ModeAgent, "a.hcl", "data_dir = \"/d\"\ndns_config = {}\n", nil,
			[]string{"FILE:2: dns_config: is a block, not a setting"}},
		{"negative csr_max_per_second", ModeServer, "a.hcl", "data_dir = \"/d\"\nconnect {\n  ca_config {\n    csr_max_per_second = -1\n  }\n}\n", nil,
			[]string{"FILE:4: connect.ca_config.csr_max_per_second: must be 0 (no limit) or more, got -1"}},
		{"csr_max_per_second string", ModeServer, "a.json", "{\n\"data_dir\": \"/d\",\n\"connect\": {\"ca_config\": {\n\"csr_max_per_second\": \"fast\"\n}}\n}", nil,
			[]string{"FILE:4: connect.ca_config.csr_max_per_second: want a number, got string"}},
		{"unknown ca_config key", ModeServer, "a.hcl", "data_dir = \"/d\"\nconnect {\n  ca_config {\n    private_key = \"x\"\n  }\n}\n", nil,
			[]string{"FILE:4: connect.ca_config.private_key: unknown key"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			var path string
			if tt.file != "" {
				path = writeFile(t, filepath.Join(t.TempDir(), tt.file), tt.content)
				args = append([]string{"-config-file", path}, args...)
			}
			_, err := load(tt.mode, parseFlags(t, args...), testHost())
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

func TestLoadDir_AllErrors(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, filepath.Join(dir, "a.hcl"), "data_dir = \"/d\"\nbogus = 1\nbind_addr = \"x\"\n")
	b := writeFile(t, filepath.Join(dir, "b.json"), "{\n  \"server\": true,\n  \"bootstrap_expect\": -2\n}")
	c := writeFile(t, filepath.Join(dir, "c.hcl"), "node_name = \n")

	_, err := LoadDir(dir)
	if err == nil {
		t.Fatal("LoadDir succeeded, want errors")
	}
	for _, w := range []string{
		a + ":2: bogus: unknown key",
		a + ":3: bind_addr:",
		b + ":3: bootstrap_expect: must be 0 or more",
		c + ":1: ",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestLoadDir_Valid(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "server.hcl"), "server = true\nbootstrap_expect = 3\ndata_dir = \"/d\"\nbind_addr = \"127.0.0.1\"\n")
	got, err := loadDir(dir, testHost())
	if err != nil {
		t.Fatalf("LoadDir: %v", err)
	}
	// Without TLS a server may not bind RPC off loopback: the error names
	// the key and where it came from (here, the default).
	writeFile(t, filepath.Join(dir, "server.hcl"), "server = true\nbootstrap_expect = 3\ndata_dir = \"/d\"\n")
	if _, err := loadDir(dir, testHost()); err == nil || !strings.Contains(err.Error(), "bind_addr: server RPC on 0.0.0.0 without TLS") {
		t.Errorf("server bound to 0.0.0.0 without TLS: %v", err)
	}
	writeFile(t, filepath.Join(dir, "server.hcl"), "server = true\nbootstrap_expect = 3\ndata_dir = \"/d\"\nbind_addr = \"127.0.0.1\"\nclient_addr = \"10.0.0.1\"\n")
	if _, err := loadDir(dir, testHost()); err == nil || !strings.Contains(err.Error(), "server.hcl:5: client_addr: plaintext HTTP on 10.0.0.1") {
		t.Errorf("plaintext HTTP off loopback: %v", err)
	}
	if got.Mode != ModeServer || got.BootstrapExpect != 3 {
		t.Errorf("got mode %v, bootstrap_expect %d; want server, 3", got.Mode, got.BootstrapExpect)
	}
}

func TestLoad_NilFlags(t *testing.T) {
	got, err := load(ModeDev, nil, testHost())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if got.DataDir != "" || !got.Server {
		t.Errorf("dev defaults: data dir %q, server %v", got.DataDir, got.Server)
	}
}

// TestEnrollKey: enroll is an agent's key, from a file or -enroll, and an
// error elsewhere, naming where it was set.
func TestEnrollKey(t *testing.T) {
	got, err := load(ModeAgent, parseFlags(t, "-data-dir", "/d", "-hcl", "enroll = \"wrenroll1.abc\""), testHost())
	if err != nil || got.Enroll != "wrenroll1.abc" {
		t.Fatalf("agent enroll: %v, %q", err, got.Enroll)
	}
	_, err = load(ModeServer, parseFlags(t, "-data-dir", "/d", "-enroll", "wrenroll1.abc"), testHost())
	if err == nil || !strings.Contains(err.Error(), "flag -enroll") || !strings.Contains(err.Error(), "only an agent enrolls") {
		t.Fatalf("server with -enroll: %v", err)
	}
}
