package agent

import (
	"testing"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/xds"
)

// TestProxyDefaultsMerge: a sidecar's own config keys override the
// defaults key by key, its access_logs replace the defaults' whole, and
// the defaults are not modified.
func TestProxyDefaultsMerge(t *testing.T) {
	d := ProxyDefaults{
		Config:     map[string]any{"envoy_prometheus_bind_addr": "0.0.0.0:9102", "protocol": "http"},
		AccessLogs: &catalog.AccessLogs{Enabled: true, Type: "file", Path: "/var/log/envoy.log"},
	}
	o, err := d.options(&catalog.ProxyConfig{
		Config:     map[string]any{"protocol": "tcp"},
		AccessLogs: &catalog.AccessLogs{Enabled: true, Type: "stderr"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.PrometheusBind != "0.0.0.0:9102" || o.Protocol != xds.ProtocolTCP || o.AccessLogs == nil || o.AccessLogs.Type != "stderr" {
		t.Errorf("merged options %+v (logs %+v)", o, o.AccessLogs)
	}
	if d.Config["protocol"] != "http" {
		t.Errorf("defaults modified: %v", d.Config)
	}
	o, err = d.options(&catalog.ProxyConfig{})
	if err != nil || o.Protocol != xds.ProtocolHTTP || o.AccessLogs.Path != "/var/log/envoy.log" {
		t.Errorf("defaults alone: %+v, %v", o, err)
	}
	if _, err := New(Config{ProxyDefaults: ProxyDefaults{Config: map[string]any{"protocol": "udp"}}}); err == nil {
		t.Error("agent started with protocol udp in proxy_defaults")
	}
}
