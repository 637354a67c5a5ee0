package xds

import (
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/warren-mesh/warren/catalog"
)

func TestParseProxyOptionsRejectsBadValues(t *testing.T) {
	for name, tc := range map[string]struct {
		config map[string]any
		logs   *catalog.AccessLogs
		want   string
	}{
		"protocol grpc":      {map[string]any{"protocol": "grpc"}, nil, `protocol: "grpc" is not supported`},
		"protocol number":    {map[string]any{"protocol": 2.0}, nil, "protocol: want a string"},
		"stats bind no port": {map[string]any{"envoy_prometheus_bind_addr": "0.0.0.0"}, nil, "envoy_prometheus_bind_addr: \"0.0.0.0\" is not ip:port"},
		"stats bind name":    {map[string]any{"envoy_prometheus_bind_addr": "localhost:9102"}, nil, "is not ip:port"},
		"scrape path":        {map[string]any{"envoy_prometheus_scrape_path": "metrics"}, nil, "does not start with /"},
		"otel not object":    {map[string]any{"opentelemetry": "127.0.0.1:4317"}, nil, "opentelemetry: want an object"},
		"otel no address":    {map[string]any{"opentelemetry": map[string]any{"service_name": "x"}}, nil, "collector_address: missing"},
		"otel bad key":       {map[string]any{"opentelemetry": map[string]any{"collector_address": "a:1", "sampling": "1"}}, nil, "sampling: unknown key"},
		"logs file no path":  {nil, &catalog.AccessLogs{Enabled: true, Type: "file"}, "type file needs a path"},
		"logs bad type":      {nil, &catalog.AccessLogs{Enabled: true, Type: "syslog"}, `type "syslog"`},
		"logs both formats":  {nil, &catalog.AccessLogs{Enabled: true, JSONFormat: "{}", TextFormat: "x"}, "exclusive"},
		"logs bad json":      {nil, &catalog.AccessLogs{Enabled: true, JSONFormat: "[1]"}, "json_format: not a JSON object"},
		"logs path stdout":   {nil, &catalog.AccessLogs{Enabled: true, Type: "stdout", Path: "/x"}, "path is only for type file"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseProxyOptions(tc.config, tc.logs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
	// Disabled logs are not checked, and unknown keys are kept quiet.
	o, err := ParseProxyOptions(map[string]any{"local_connect_timeout_ms": 1000.0}, &catalog.AccessLogs{Type: "syslog"})
	if err != nil || o.AccessLogs != nil || o.Protocol != ProtocolTCP {
		t.Fatalf("options %+v, err %v", o, err)
	}
}

// TestTelemetryResourcesValidate runs ValidateAll on every resource of a
// sidecar with every option on, and checks the stats listener cannot take
// an upstream's port.
func TestTelemetryResourcesValidate(t *testing.T) {
	res, err := BuildSidecar(telemetrySidecar(t))
	if err != nil {
		t.Fatal(err)
	}
	for typ, list := range res {
		for _, r := range list {
			if err := r.(validator).ValidateAll(); err != nil {
				t.Errorf("%s %q: %v", typeNames[typ], resourceName(r), err)
			}
		}
	}
	if n := len(res[resource.ClusterType]); n != 5 { // local_app, 2 upstreams, self_admin, collector
		t.Errorf("%d clusters, want 5", n)
	}
	in := telemetrySidecar(t)
	in.Options.PrometheusBind = "127.0.0.1:9191"
	if _, err := BuildSidecar(in); err == nil || !strings.Contains(err.Error(), `upstream "db"'s bind address`) {
		t.Fatalf("stats listener on an upstream's port: err %v", err)
	}
}
