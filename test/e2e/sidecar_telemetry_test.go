package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	streamal "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/internal/testutil"
)

// TestSidecarTelemetryXDS configures mesh telemetry the way an operator
// does: proxy_defaults in the agent's config file (stats listener, access
// logs) and the sidecar's own proxy config through Consul's API client
// (protocol http, an OpenTelemetry collector). A real ADS client speaking
// for the sidecar receives the stats listener routed to self_admin, access
// logs on the public and outbound filters, tracing on the public HTTP
// connection manager and the collector's cluster. A bad value in a
// sidecar's proxy config is refused with a 400 naming the key.
func TestSidecarTelemetryXDS(t *testing.T) {
	xdsPort := testutil.FreePort(t)
	statsPort := testutil.FreePort(t)
	cfg := filepath.Join(t.TempDir(), "proxy.hcl")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`proxy_defaults {
  config {
    envoy_prometheus_bind_addr = "127.0.0.1:%d"
  }
  access_logs {
    enabled = true
  }
}
`, statsPort)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, "-grpc-port", strconv.Itoa(xdsPort), "-config-file", cfg)
	t.Cleanup(func() { p.stop(t) })
	cl := consulClient(t, p)
	ag := cl.Agent()
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 8080,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{
			Proxy: &consulapi.AgentServiceConnectProxyConfig{
				Config: map[string]any{
					"protocol":      "http",
					"opentelemetry": map[string]any{"collector_address": "127.0.0.1:4317", "service_name": "web-frontend"},
				},
				Upstreams: []consulapi.Upstream{{DestinationName: "api", LocalBindPort: 9191}},
			},
		}}}); err != nil {
		t.Fatal(err)
	}
	sc, _, err := ag.Service("web-sidecar-proxy", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Proxy == nil || sc.Proxy.Config["protocol"] != "http" {
		t.Fatalf("sidecar's proxy config not kept: %+v", sc.Proxy)
	}

	web := dialADS(t, fmt.Sprintf("127.0.0.1:%d", xdsPort), "web-sidecar-proxy")
	public := fmt.Sprintf("public_listener:0.0.0.0:%d", sc.Port)
	web.await(10*time.Second, "web's sidecar telemetry", func() error {
		ls := adsResources(web, resource.ListenerType, func() *listener.Listener { return new(listener.Listener) })
		stats, ok := ls["envoy_prometheus_metrics_listener"]
		if !ok {
			return fmt.Errorf("no stats listener among %v", keys(ls))
		}
		if sa := stats.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || int(sa.GetPortValue()) != statsPort {
			return fmt.Errorf("stats listener on %v", sa)
		}
		m, err := connectionManager(stats)
		if err != nil {
			return err
		}
		r := m.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0]
		if r.GetMatch().GetPath() != "/metrics" || r.GetRoute().GetCluster() != "self_admin" || r.GetRoute().GetPrefixRewrite() != "/stats/prometheus" {
			return fmt.Errorf("stats route %v", r)
		}

		pub, ok := ls[public]
		if !ok {
			return fmt.Errorf("no %s among %v", public, keys(ls))
		}
		pm, err := connectionManager(pub)
		if err != nil {
			return fmt.Errorf("public listener: %w", err)
		}
		var otel tracev3.OpenTelemetryConfig
		if err := pm.GetTracing().GetProvider().GetTypedConfig().UnmarshalTo(&otel); err != nil {
			return fmt.Errorf("public listener tracing: %w", err)
		}
		if otel.GetGrpcService().GetEnvoyGrpc().GetClusterName() != "opentelemetry_collector" || otel.GetServiceName() != "web-frontend" {
			return fmt.Errorf("tracing %v", &otel)
		}
		if err := stdoutLog(pm.GetAccessLog()); err != nil {
			return fmt.Errorf("public listener: %w", err)
		}

		up, ok := ls["api:127.0.0.1:9191"]
		if !ok {
			return fmt.Errorf("no outbound listener among %v", keys(ls))
		}
		var tp tcpproxy.TcpProxy
		if err := up.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&tp); err != nil {
			return err
		}
		if err := stdoutLog(tp.GetAccessLog()); err != nil {
			return fmt.Errorf("outbound listener: %w", err)
		}

		cs := adsResources(web, resource.ClusterType, func() *cluster.Cluster { return new(cluster.Cluster) })
		admin, ok := cs["self_admin"]
		if !ok {
			return fmt.Errorf("no self_admin cluster among %v", keys(cs))
		}
		if sa := admin.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress(); sa.GetPortValue() != 19000 {
			return fmt.Errorf("self_admin at %v", sa)
		}
		if _, ok := cs["opentelemetry_collector"]; !ok {
			return fmt.Errorf("no collector cluster among %v", keys(cs))
		}
		return nil
	})

	err = ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "bad", Port: 8081,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{
			Proxy: &consulapi.AgentServiceConnectProxyConfig{Config: map[string]any{"envoy_prometheus_bind_addr": "everywhere"}},
		}}})
	if err == nil || !strings.Contains(err.Error(), "400") || !strings.Contains(err.Error(), "envoy_prometheus_bind_addr") {
		t.Fatalf("bad proxy config: err %v, want a 400 naming envoy_prometheus_bind_addr", err)
	}
}

// connectionManager decodes a listener's HTTP connection manager.
func connectionManager(l *listener.Listener) (*hcm.HttpConnectionManager, error) {
	for _, f := range l.GetFilterChains()[0].GetFilters() {
		if f.GetName() == wellknown.HTTPConnectionManager {
			var m hcm.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&m); err != nil {
				return nil, err
			}
			return &m, nil
		}
	}
	return nil, fmt.Errorf("%s has no HTTP connection manager", l.GetName())
}

// stdoutLog checks for one access log, to stdout, in JSON.
func stdoutLog(logs []*accesslog.AccessLog) error {
	if len(logs) != 1 {
		return fmt.Errorf("%d access logs, want 1", len(logs))
	}
	var l streamal.StdoutAccessLog
	if err := logs[0].GetTypedConfig().UnmarshalTo(&l); err != nil {
		return fmt.Errorf("access log: %w", err)
	}
	if l.GetLogFormat().GetJsonFormat().GetFields()["response_code"] == nil {
		return fmt.Errorf("access log format %v, want the default JSON", l.GetLogFormat())
	}
	return nil
}
