package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/warren-mesh/warren/catalog"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output; read every diff before committing")

// golden compares got with testdata/<name>.golden, or rewrites the file
// with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./xds/ -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output (run go test ./xds/ -update and read the diff):\n%s", path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return fmt.Sprintf("line %d:\n  golden: %s\n  output: %s", i+1, wl, gl)
		}
	}
	return "(no line differs)"
}

// resourcesJSON renders one type's resources as a JSON array with sorted
// keys and fixed indentation, in the (name-sorted) order the builders
// return them.
func resourcesJSON(t *testing.T, list []types.Resource) []byte {
	t.Helper()
	items := []json.RawMessage{}
	for _, r := range list {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, b)
	}
	raw, err := json.Marshal(items)
	if err != nil {
		t.Fatal(err)
	}
	out, err := canonicalJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Fake PEM: the builders carry certificates as opaque strings, and golden
// files must not change with every generated key.
const (
	testLeafPEM = "-----BEGIN CERTIFICATE-----\nTEST-LEAF-web\n-----END CERTIFICATE-----\n"
	testKeyPEM  = "-----BEGIN EC PRIVATE KEY-----\nTEST-KEY-web\n-----END EC PRIVATE KEY-----\n"
	testRootPEM = "-----BEGIN CERTIFICATE-----\nTEST-ROOT-1\n-----END CERTIFICATE-----\n"
	testTD      = "11111111-2222-3333-4444-555555555555.warren"
)

// representativeSidecar is web's sidecar: two upstreams with two healthy
// sidecar instances each, and intentions "deny legacy, allow api" over a
// default of deny.
func representativeSidecar() *SidecarInput {
	return &SidecarInput{
		ProxyID:          "web-sidecar-proxy",
		Service:          "web",
		PublicAddress:    "10.0.0.1",
		PublicPort:       21000,
		LocalServicePort: 8080,
		TrustDomain:      testTD,
		Datacenter:       "dc1",
		LeafCertPEM:      testLeafPEM,
		LeafKeyPEM:       testKeyPEM,
		RootsPEM:         []string{testRootPEM},
		Intentions: []Intention{
			{Source: "legacy", Allow: false},
			{Source: "api", Allow: true},
		},
		Upstreams: []Upstream{
			{
				Name: "db", LocalBindPort: 9191,
				SpiffeID: SpiffeID(testTD, "dc1", "db"),
				// Deliberately unsorted: output must not depend on input order.
				Endpoints: []Endpoint{{Address: "10.0.0.12", Port: 21000, Node: "node2"}, {Address: "10.0.0.11", Port: 21000, Node: "node1"}},
			},
			{
				Name: "cache", LocalBindAddress: "127.0.0.2", LocalBindPort: 9292,
				SpiffeID:  SpiffeID(testTD, "dc1", "cache"),
				Endpoints: []Endpoint{{Address: "10.0.0.21", Port: 21001, Node: "node1"}, {Address: "10.0.0.22", Port: 21001, Node: "node3"}},
			},
		},
	}
}

// defaultAllowSidecar has a default of allow, so its RBAC lists denials:
// "allow api, deny *" must deny everyone but api.
func defaultAllowSidecar() *SidecarInput {
	in := representativeSidecar()
	in.ProxyID = "api-sidecar-proxy"
	in.Service = "api"
	in.DefaultAllow = true
	in.Intentions = []Intention{{Source: "web", Allow: true}, {Source: "*", Allow: false}}
	in.Upstreams = nil
	return in
}

func TestGoldenSidecar(t *testing.T) {
	for name, in := range map[string]*SidecarInput{
		"sidecar":               representativeSidecar(),
		"sidecar_default_allow": defaultAllowSidecar(),
	} {
		t.Run(name, func(t *testing.T) {
			res, err := BuildSidecar(in)
			if err != nil {
				t.Fatal(err)
			}
			for _, typ := range resourceTypes {
				if typ == resource.RouteType {
					if len(res[typ]) != 0 {
						t.Errorf("sidecar has %d routes, want none (tcp only)", len(res[typ]))
					}
					continue
				}
				golden(t, name+"_"+typeNames[typ], resourcesJSON(t, res[typ]))
			}
		})
	}
}

// telemetrySidecar is web's sidecar with every telemetry option on, from
// the opaque config as a user writes it: HTTP on the public listener, a
// Prometheus stats listener, access logs to stdout in the default JSON
// format, and tracing to an OpenTelemetry collector.
func telemetrySidecar(t *testing.T) *SidecarInput {
	t.Helper()
	in := representativeSidecar()
	opts, err := ParseProxyOptions(map[string]any{
		"protocol":                   "http",
		"envoy_prometheus_bind_addr": "0.0.0.0:9102",
		"opentelemetry":              map[string]any{"collector_address": "127.0.0.1:4317"},
		"unrelated_key":              1.0,
	}, &catalog.AccessLogs{Enabled: true, Type: "stdout"})
	if err != nil {
		t.Fatal(err)
	}
	in.Options = opts
	return in
}

// TestGoldenSidecarTelemetry pins the stats listener, the access logs on
// every filter, the HTTP public listener with tracing and the self_admin
// and collector clusters; endpoints and secrets are the plain sidecar's.
func TestGoldenSidecarTelemetry(t *testing.T) {
	res, err := BuildSidecar(telemetrySidecar(t))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sidecar_telemetry_listener", resourcesJSON(t, res[resource.ListenerType]))
	golden(t, "sidecar_telemetry_cluster", resourcesJSON(t, res[resource.ClusterType]))

	// File logs in a custom JSON format on a TCP sidecar: no tracing
	// (tcp_proxy has none), so no collector cluster.
	in := representativeSidecar()
	in.Options, err = ParseProxyOptions(map[string]any{
		"envoy_prometheus_bind_addr": "127.0.0.1:9102",
		"envoy_admin_bind_addr":      "127.0.0.1:19005",
		"opentelemetry":              []any{map[string]any{"collector_address": "otel.example:4317", "service_name": "web-svc"}},
	}, &catalog.AccessLogs{Enabled: true, Type: "file", Path: "/var/log/envoy/web.log", JSONFormat: `{"code":"%RESPONSE_CODE%","up":"%UPSTREAM_HOST%"}`})
	if err != nil {
		t.Fatal(err)
	}
	res, err = BuildSidecar(in)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "sidecar_telemetry_tcp_listener", resourcesJSON(t, res[resource.ListenerType]))
	for _, c := range res[resource.ClusterType] {
		if resourceName(c) == OTelCollectorCluster {
			t.Errorf("a TCP sidecar has the collector cluster")
		}
	}
}

func TestGoldenGRPC(t *testing.T) {
	res, err := BuildGRPC(&GRPCInput{Datacenter: "dc1", Services: map[string][]Endpoint{
		"greeter": {{Address: "10.0.0.3", Port: 50051, Node: "node3"}, {Address: "10.0.0.1", Port: 50051, Node: "node1"}, {Address: "10.0.0.2", Port: 50051, Node: "node2"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res[resource.SecretType]) != 0 {
		t.Errorf("grpc resources include secrets")
	}
	for _, typ := range resourceTypes[:4] {
		golden(t, "grpc_"+typeNames[typ], resourcesJSON(t, res[typ]))
	}
}

func TestGoldenBootstraps(t *testing.T) {
	envoy, err := EnvoyBootstrap("127.0.0.1:8502", "web-sidecar-proxy", "web", 0, "")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "envoy_bootstrap", envoy)
	grpcb, err := GRPCBootstrap("127.0.0.1:8502", "greeter-client")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "grpc_bootstrap", grpcb)
}
