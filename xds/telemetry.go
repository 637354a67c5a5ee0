package xds

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	accesslog "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	fileal "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	streamal "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	routerfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/warren-mesh/warren/catalog"
)

// Mesh telemetry of a sidecar: a Prometheus stats listener, access logs and
// OpenTelemetry tracing, configured from the proxy's opaque config (Consul's
// Proxy.Config, merged over the agent's proxy_defaults) and Consul's
// Proxy.AccessLogs. The importing of the access logger, router and HCM
// packages above also registers their types, so the Any fields that carry
// them resolve when a resource is marshalled or read back.

// Names of the telemetry resources, Consul's where Consul has one.
const (
	// PrometheusListener serves Envoy's /stats/prometheus on
	// envoy_prometheus_bind_addr.
	PrometheusListener = "envoy_prometheus_metrics_listener"
	// SelfAdminCluster is Envoy's own admin interface.
	SelfAdminCluster = "self_admin"
	// OTelCollectorCluster is the OpenTelemetry collector spans go to.
	OTelCollectorCluster = "opentelemetry_collector"
)

// Keys of the opaque proxy config that the builders read. Other keys are
// kept and ignored, as Consul does.
const (
	keyProtocol       = "protocol"
	keyPrometheusBind = "envoy_prometheus_bind_addr"
	keyScrapePath     = "envoy_prometheus_scrape_path"
	keyAdminBind      = "envoy_admin_bind_addr" // Warren's: where self_admin points
	keyOpenTelemetry  = "opentelemetry"
)

// ProtocolTCP and ProtocolHTTP are the values of the protocol key.
const (
	ProtocolTCP  = "tcp"
	ProtocolHTTP = "http"
)

// defaultAccessLogJSON is Consul's default access log format (the same
// fields Istio logs), one JSON object per connection or request.
var defaultAccessLogJSON = map[string]string{
	"start_time":                        "%START_TIME%",
	"route_name":                        "%ROUTE_NAME%",
	"method":                            "%REQ(:METHOD)%",
	"path":                              "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
	"protocol":                          "%PROTOCOL%",
	"response_code":                     "%RESPONSE_CODE%",
	"response_flags":                    "%RESPONSE_FLAGS%",
	"response_code_details":             "%RESPONSE_CODE_DETAILS%",
	"connection_termination_details":    "%CONNECTION_TERMINATION_DETAILS%",
	"bytes_received":                    "%BYTES_RECEIVED%",
	"bytes_sent":                        "%BYTES_SENT%",
	"duration":                          "%DURATION%",
	"upstream_service_time":             "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
	"x_forwarded_for":                   "%REQ(X-FORWARDED-FOR)%",
	"user_agent":                        "%REQ(USER-AGENT)%",
	"request_id":                        "%REQ(X-REQUEST-ID)%",
	"authority":                         "%REQ(:AUTHORITY)%",
	"upstream_host":                     "%UPSTREAM_HOST%",
	"upstream_cluster":                  "%UPSTREAM_CLUSTER%",
	"upstream_local_address":            "%UPSTREAM_LOCAL_ADDRESS%",
	"downstream_local_address":          "%DOWNSTREAM_LOCAL_ADDRESS%",
	"downstream_remote_address":         "%DOWNSTREAM_REMOTE_ADDRESS%",
	"requested_server_name":             "%REQUESTED_SERVER_NAME%",
	"upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
}

// ProxyOptions are the parts of a sidecar's proxy configuration that shape
// its resources beyond the mesh itself. The zero value is a TCP sidecar
// with no telemetry.
type ProxyOptions struct {
	// Protocol of the public listener: "tcp" (tcp_proxy, the default) or
	// "http" (an HTTP connection manager, which can trace).
	Protocol string
	// PrometheusBind is ip:port of the stats listener, "" for none.
	PrometheusBind string
	// ScrapePath is the path the stats listener serves; default /metrics.
	ScrapePath string
	// AdminHost and AdminPort are Envoy's admin address, which the
	// bootstrap sets (127.0.0.1:19000 unless -admin-bind said otherwise).
	AdminHost string
	AdminPort int
	// AccessLogs is nil when access logs are off.
	AccessLogs *AccessLogs
	// Tracing is nil when tracing is off.
	Tracing *Tracing
}

// AccessLogs says where a sidecar logs and in what format. At most one of
// JSONFormat and TextFormat is set; neither means Consul's default JSON.
type AccessLogs struct {
	Type       string // stdout, stderr or file
	Path       string // for file
	JSONFormat string // a JSON object of Envoy command operators
	TextFormat string
}

// Tracing sends spans of HTTP requests to an OpenTelemetry collector over
// OTLP/gRPC.
type Tracing struct {
	CollectorHost string // an IP, or a DNS name resolved by Envoy
	CollectorPort int
	ServiceName   string // default: the destination service
}

// ParseProxyOptions reads a sidecar's options from its opaque proxy config
// (already merged over the agent's defaults) and its access log config.
// Unknown keys are ignored; a key it reads with a bad value is an error
// naming the key.
func ParseProxyOptions(config map[string]any, logs *catalog.AccessLogs) (ProxyOptions, error) {
	o := ProxyOptions{Protocol: ProtocolTCP, ScrapePath: "/metrics", AdminHost: "127.0.0.1", AdminPort: DefaultEnvoyAdminPort}
	var errs []error
	str := func(key string) (string, bool) {
		v, ok := config[key]
		if !ok || v == nil {
			return "", false
		}
		s, isStr := v.(string)
		if !isStr {
			errs = append(errs, fmt.Errorf("%s: want a string, got %T", key, v))
			return "", false
		}
		return s, true
	}
	if p, ok := str(keyProtocol); ok {
		switch p = strings.ToLower(p); p {
		case ProtocolTCP, ProtocolHTTP:
			o.Protocol = p
		default:
			errs = append(errs, fmt.Errorf("%s: %q is not supported (want tcp or http)", keyProtocol, p))
		}
	}
	if a, ok := str(keyPrometheusBind); ok && a != "" {
		if _, _, err := ipPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", keyPrometheusBind, err))
		} else {
			o.PrometheusBind = a
		}
	}
	if p, ok := str(keyScrapePath); ok && p != "" {
		if !strings.HasPrefix(p, "/") {
			errs = append(errs, fmt.Errorf("%s: %q does not start with /", keyScrapePath, p))
		} else {
			o.ScrapePath = p
		}
	}
	if a, ok := str(keyAdminBind); ok && a != "" {
		host, port, err := ipPort(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", keyAdminBind, err))
		} else {
			o.AdminHost, o.AdminPort = host, port
		}
	}
	if v, ok := config[keyOpenTelemetry]; ok && v != nil {
		t, err := parseTracing(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", keyOpenTelemetry, err))
		}
		o.Tracing = t
	}
	if logs != nil && logs.Enabled {
		l, err := parseAccessLogs(logs)
		if err != nil {
			errs = append(errs, fmt.Errorf("access_logs: %w", err))
		}
		o.AccessLogs = l
	}
	if err := errors.Join(errs...); err != nil {
		return ProxyOptions{}, err
	}
	return o, nil
}

func parseTracing(v any) (*Tracing, error) {
	if l, ok := v.([]any); ok && len(l) == 1 { // an HCL block may decode as a list of one
		v = l[0]
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("want an object { collector_address, service_name }, got %T", v)
	}
	t := &Tracing{}
	for k, e := range m {
		s, isStr := e.(string)
		if !isStr {
			return nil, fmt.Errorf("%s: want a string, got %T", k, e)
		}
		switch k {
		case "collector_address":
			host, portStr, err := net.SplitHostPort(s)
			port, perr := strconv.Atoi(portStr)
			if err != nil || host == "" || perr != nil || port < 1 || port > 65535 {
				return nil, fmt.Errorf("collector_address: %q is not host:port", s)
			}
			t.CollectorHost, t.CollectorPort = host, port
		case "service_name":
			t.ServiceName = s
		default:
			return nil, fmt.Errorf("%s: unknown key (want collector_address or service_name)", k)
		}
	}
	if t.CollectorHost == "" {
		return nil, errors.New("collector_address: missing")
	}
	return t, nil
}

func parseAccessLogs(c *catalog.AccessLogs) (*AccessLogs, error) {
	l := &AccessLogs{Type: strings.ToLower(c.Type), Path: c.Path, JSONFormat: c.JSONFormat, TextFormat: c.TextFormat}
	switch l.Type {
	case "":
		l.Type = "stdout"
		if l.Path != "" {
			l.Type = "file"
		}
	case "stdout", "stderr", "file":
	default:
		return nil, fmt.Errorf("type %q: want stdout, stderr or file", c.Type)
	}
	switch {
	case l.Type == "file" && l.Path == "":
		return nil, errors.New("type file needs a path")
	case l.Type != "file" && l.Path != "":
		return nil, fmt.Errorf("path is only for type file, not %s", l.Type)
	case l.JSONFormat != "" && l.TextFormat != "":
		return nil, errors.New("json_format and text_format are exclusive")
	}
	if l.JSONFormat != "" {
		if _, err := jsonFormat(l.JSONFormat); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func jsonFormat(s string) (*structpb.Struct, error) {
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("json_format: not a JSON object: %w", err)
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, fmt.Errorf("json_format: %w", err)
	}
	return st, nil
}

// ipPort splits "ip:port" and checks both.
func ipPort(a string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not ip:port", a)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 || net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("%q is not ip:port", a)
	}
	return host, port, nil
}

// accessLogs returns the access log configuration of a filter, nil when
// logs are off. The format is validated by parseAccessLogs, so errors here
// come from packing.
func (p *packer) accessLogs(l *AccessLogs) []*accesslog.AccessLog {
	if l == nil || p.err != nil {
		return nil
	}
	format := &core.SubstitutionFormatString{}
	switch {
	case l.TextFormat != "":
		format.Format = &core.SubstitutionFormatString_TextFormatSource{TextFormatSource: &core.DataSource{
			Specifier: &core.DataSource_InlineString{InlineString: l.TextFormat},
		}}
	case l.JSONFormat != "":
		st, err := jsonFormat(l.JSONFormat)
		if err != nil {
			p.err = fmt.Errorf("%s: access logs: %w", p.what, err)
			return nil
		}
		format.Format = &core.SubstitutionFormatString_JsonFormat{JsonFormat: st}
	default:
		fields := make(map[string]*structpb.Value, len(defaultAccessLogJSON))
		for k, v := range defaultAccessLogJSON {
			fields[k] = structpb.NewStringValue(v)
		}
		format.Format = &core.SubstitutionFormatString_JsonFormat{JsonFormat: &structpb.Struct{Fields: fields}}
	}
	var name string
	var cfg *anypb.Any
	switch l.Type {
	case "stderr":
		name, cfg = "envoy.access_loggers.stderr", p.pack(&streamal.StderrAccessLog{AccessLogFormat: &streamal.StderrAccessLog_LogFormat{LogFormat: format}})
	case "file":
		name, cfg = wellknown.FileAccessLog, p.pack(&fileal.FileAccessLog{Path: l.Path, AccessLogFormat: &fileal.FileAccessLog_LogFormat{LogFormat: format}})
	default:
		name, cfg = "envoy.access_loggers.stdout", p.pack(&streamal.StdoutAccessLog{AccessLogFormat: &streamal.StdoutAccessLog_LogFormat{LogFormat: format}})
	}
	if p.err != nil {
		return nil
	}
	return []*accesslog.AccessLog{{Name: name, ConfigType: &accesslog.AccessLog_TypedConfig{TypedConfig: cfg}}}
}

// httpFilter is the router, the last (and only) HTTP filter of every
// connection manager built here.
func (p *packer) router() []*hcm.HttpFilter {
	r := p.pack(&routerfilter.Router{})
	return []*hcm.HttpFilter{{Name: wellknown.Router, ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: r}}}
}

// publicHTTP is the connection manager of a public listener with protocol
// http: every request to local_app, access logged and traced as
// configured. Authorization stays with the RBAC network filter before it.
func (p *packer) publicHTTP(service string, opts *ProxyOptions) *anypb.Any {
	m := &hcm.HttpConnectionManager{
		StatPrefix: "public_listener",
		CodecType:  hcm.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
			Name: "public_listener",
			VirtualHosts: []*route.VirtualHost{{
				Name:    "public_listener",
				Domains: []string{"*"},
				Routes: []*route.Route{{
					Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
					Action: &route.Route_Route{Route: &route.RouteAction{ClusterSpecifier: &route.RouteAction_Cluster{Cluster: LocalAppCluster}}},
				}},
			}},
		}},
		HttpFilters: p.router(),
		AccessLog:   p.accessLogs(opts.AccessLogs),
		Tracing:     p.tracing(service, opts.Tracing),
	}
	return p.pack(m)
}

// tracing configures the envoy.tracers.opentelemetry provider, nil when
// tracing is off.
func (p *packer) tracing(service string, t *Tracing) *hcm.HttpConnectionManager_Tracing {
	if t == nil || p.err != nil {
		return nil
	}
	cfg := p.pack(&tracev3.OpenTelemetryConfig{
		GrpcService: &core.GrpcService{TargetSpecifier: &core.GrpcService_EnvoyGrpc_{
			EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: OTelCollectorCluster},
		}},
		ServiceName: or(t.ServiceName, service),
	})
	if p.err != nil {
		return nil
	}
	return &hcm.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{
		Name:       "envoy.tracers.opentelemetry",
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: cfg},
	}}
}

// prometheusListener serves Envoy's Prometheus stats on opts.PrometheusBind,
// as Consul's envoy_prometheus_bind_addr does: the scrape path is routed to
// self_admin with a prefix rewrite to /stats/prometheus, anything else is a
// 404, so no other admin endpoint is exposed.
func prometheusListener(opts *ProxyOptions) (*listener.Listener, error) {
	host, port, err := ipPort(opts.PrometheusBind)
	if err != nil {
		return nil, fmt.Errorf("listener %q: %w", PrometheusListener, err)
	}
	p := &packer{what: fmt.Sprintf("listener %q", PrometheusListener)}
	m := p.pack(&hcm.HttpConnectionManager{
		StatPrefix: "envoy_prometheus_metrics",
		CodecType:  hcm.HttpConnectionManager_HTTP1,
		RouteSpecifier: &hcm.HttpConnectionManager_RouteConfig{RouteConfig: &route.RouteConfiguration{
			Name: "self_admin_route",
			VirtualHosts: []*route.VirtualHost{{
				Name:    SelfAdminCluster,
				Domains: []string{"*"},
				Routes: []*route.Route{
					{
						Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Path{Path: opts.ScrapePath}},
						Action: &route.Route_Route{Route: &route.RouteAction{
							ClusterSpecifier: &route.RouteAction_Cluster{Cluster: SelfAdminCluster},
							PrefixRewrite:    "/stats/prometheus",
						}},
					},
					{
						Match:  &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: "/"}},
						Action: &route.Route_DirectResponse{DirectResponse: &route.DirectResponseAction{Status: 404}},
					},
				},
			}},
		}},
		HttpFilters: p.router(),
	})
	if p.err != nil {
		return nil, p.err
	}
	return &listener.Listener{
		Name:             PrometheusListener,
		Address:          socketAddress(host, port),
		TrafficDirection: core.TrafficDirection_INBOUND,
		FilterChains: []*listener.FilterChain{{Filters: []*listener.Filter{
			{Name: wellknown.HTTPConnectionManager, ConfigType: &listener.Filter_TypedConfig{TypedConfig: m}},
		}}},
	}, nil
}

// selfAdminCluster is Envoy's admin interface, for the stats listener.
func selfAdminCluster(opts *ProxyOptions) *cluster.Cluster {
	return &cluster.Cluster{
		Name:                 SelfAdminCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       duration(connectTimeout),
		LoadAssignment:       loadAssignment(SelfAdminCluster, nil, []Endpoint{{Address: opts.AdminHost, Port: opts.AdminPort}}),
	}
}

// collectorCluster is the OpenTelemetry collector, spoken to in OTLP over
// gRPC (HTTP/2). A name rather than an IP is resolved by Envoy.
func collectorCluster(t *Tracing) (*cluster.Cluster, error) {
	p := &packer{what: fmt.Sprintf("cluster %q", OTelCollectorCluster)}
	h2 := p.http2()
	if p.err != nil {
		return nil, p.err
	}
	kind := cluster.Cluster_STATIC
	if net.ParseIP(t.CollectorHost) == nil {
		kind = cluster.Cluster_STRICT_DNS
	}
	return &cluster.Cluster{
		Name:                 OTelCollectorCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: kind},
		ConnectTimeout:       duration(connectTimeout),
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			httpProtocolOptionsKey: h2,
		},
		LoadAssignment: loadAssignment(OTelCollectorCluster, nil, []Endpoint{{Address: t.CollectorHost, Port: t.CollectorPort}}),
	}, nil
}
