package xds

import (
	"errors"
	"fmt"
	"net"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tcpproxy "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcher "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Names of the fixed resources of every sidecar.
const (
	// LocalAppCluster is the static cluster of the application a sidecar fronts.
	LocalAppCluster = "local_app"
	// LeafSecret is the SDS secret holding the sidecar's certificate and key.
	LeafSecret = "default"
	// RootsSecret is the SDS secret holding the mesh trust bundle.
	RootsSecret = "roots"
)

// Upstream is a service that a sidecar's application reaches through a
// local port.
type Upstream struct {
	Name             string // destination service
	LocalBindAddress string // default 127.0.0.1
	LocalBindPort    int
	SpiffeID         string // identity the upstream's sidecars must present
	Endpoints        []Endpoint
}

// Intention allows or denies connections from a source service. A list of
// them is in precedence order: the first one whose source matches decides.
type Intention struct {
	Source string // service name, or "*" for every service
	Allow  bool
}

// SidecarInput is everything BuildSidecar needs for one Envoy sidecar.
type SidecarInput struct {
	ProxyID string // node ID Envoy sends: the sidecar's service ID
	Service string // destination service the sidecar fronts

	PublicAddress string // inbound listener; default 0.0.0.0
	PublicPort    int

	LocalServiceAddress string // default 127.0.0.1
	LocalServicePort    int

	TrustDomain string
	Datacenter  string

	LeafCertPEM string
	LeafKeyPEM  string
	RootsPEM    []string

	Intentions   []Intention // precedence order
	DefaultAllow bool        // decision when no intention matches

	Upstreams []Upstream

	// Options are the protocol and telemetry of the sidecar (stats
	// listener, access logs, tracing); the zero value is plain TCP.
	Options ProxyOptions
}

// SpiffeID returns the SPIFFE ID of a service's workloads, as the CA
// issues it: spiffe://<td>/ns/default/dc/<dc>/svc/<service>.
func SpiffeID(trustDomain, datacenter, service string) string {
	return serviceIDPrefix(trustDomain, datacenter) + service
}

func serviceIDPrefix(trustDomain, datacenter string) string {
	return "spiffe://" + trustDomain + "/ns/default/dc/" + datacenter + "/svc/"
}

// UpstreamCluster names the cluster (and EDS resource, and SNI) of an
// upstream service, in Consul's form: <service>.default.<dc>.internal.<td>.
func UpstreamCluster(service, datacenter, trustDomain string) string {
	return service + ".default." + datacenter + ".internal." + trustDomain
}

// PublicListener names a sidecar's inbound listener.
func PublicListener(addr string, port int) string {
	return "public_listener:" + hostPort(addr, port)
}

// UpstreamListener names a sidecar's outbound listener for one upstream.
func UpstreamListener(service, addr string, port int) string {
	return service + ":" + hostPort(addr, port)
}

// BuildSidecar builds the listeners, clusters, endpoints and SDS secrets of
// one Envoy sidecar:
//
//   - a public listener that terminates mTLS (client certificate required,
//     verified against the trust bundle), applies the intentions as an RBAC
//     network filter on the client's SPIFFE ID and proxies to local_app;
//   - per upstream, an outbound listener on its local bind address and an
//     EDS cluster that originates mTLS and accepts only the upstream's
//     SPIFFE ID, with its healthy endpoints;
//   - the leaf certificate and the roots as SDS secrets, so that a rotation
//     changes only the secrets and no listener is drained;
//   - with in.Options (xds/telemetry.go): an HTTP connection manager in
//     place of the public tcp_proxy (protocol http, which can trace to an
//     OpenTelemetry collector cluster), access logs on every proxy filter,
//     and a Prometheus stats listener with its self_admin cluster.
//
// Every resource passes ValidateAll; the error names the one that did not.
func BuildSidecar(in *SidecarInput) (map[resource.Type][]types.Resource, error) {
	if err := checkSidecarInput(in); err != nil {
		return nil, fmt.Errorf("sidecar %q: %w", in.ProxyID, err)
	}
	withOpts := *in
	withOpts.Options = in.Options.withDefaults()
	in = &withOpts
	publicAddr := or(in.PublicAddress, "0.0.0.0")
	localAddr := or(in.LocalServiceAddress, "127.0.0.1")
	locality := &core.Locality{Region: in.Datacenter}

	public, err := publicListener(in, publicAddr)
	if err != nil {
		return nil, err
	}
	listeners := []types.Resource{public}
	clusters := []types.Resource{&cluster.Cluster{
		Name:                 LocalAppCluster,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
		ConnectTimeout:       duration(connectTimeout),
		LoadAssignment:       loadAssignment(LocalAppCluster, locality, []Endpoint{{Address: localAddr, Port: in.LocalServicePort}}),
	}}
	var endpoints []types.Resource
	if in.Options.PrometheusBind != "" {
		l, err := prometheusListener(&in.Options)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		clusters = append(clusters, selfAdminCluster(&in.Options))
	}
	if in.Options.Tracing != nil && in.Options.Protocol == ProtocolHTTP {
		c, err := collectorCluster(in.Options.Tracing)
		if err != nil {
			return nil, err
		}
		clusters = append(clusters, c)
	}
	for _, up := range in.Upstreams {
		name := UpstreamCluster(up.Name, in.Datacenter, in.TrustDomain)
		l, err := upstreamListener(up, name, in.Options.AccessLogs)
		if err != nil {
			return nil, err
		}
		c, err := upstreamCluster(up, name)
		if err != nil {
			return nil, err
		}
		eps, err := sortedEndpoints(fmt.Sprintf("upstream %q", up.Name), up.Endpoints)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, l)
		clusters = append(clusters, c)
		endpoints = append(endpoints, loadAssignment(name, locality, eps))
	}
	out := map[resource.Type][]types.Resource{
		resource.ListenerType: listeners,
		resource.ClusterType:  clusters,
		resource.EndpointType: endpoints,
		resource.SecretType:   sidecarSecrets(in),
	}
	if err := checkResources(out); err != nil {
		return nil, fmt.Errorf("sidecar %q: %w", in.ProxyID, err)
	}
	return out, nil
}

func checkSidecarInput(in *SidecarInput) error {
	var errs []error
	need := func(field, v string) {
		if v == "" {
			errs = append(errs, fmt.Errorf("%s is empty", field))
		}
	}
	need("ProxyID", in.ProxyID)
	need("Service", in.Service)
	need("TrustDomain", in.TrustDomain)
	need("Datacenter", in.Datacenter)
	need("LeafCertPEM", in.LeafCertPEM)
	need("LeafKeyPEM", in.LeafKeyPEM)
	if len(in.RootsPEM) == 0 {
		errs = append(errs, errors.New("RootsPEM is empty"))
	}
	errs = append(errs, checkPort("PublicPort", in.PublicPort), checkPort("LocalServicePort", in.LocalServicePort))
	for _, a := range []struct{ field, v string }{{"PublicAddress", in.PublicAddress}, {"LocalServiceAddress", in.LocalServiceAddress}} {
		if a.v != "" && net.ParseIP(a.v) == nil {
			errs = append(errs, fmt.Errorf("%s %q is not an IP address", a.field, a.v))
		}
	}
	for i, it := range in.Intentions {
		if it.Source == "" {
			errs = append(errs, fmt.Errorf("intention %d: empty source", i))
		}
	}
	names := map[string]bool{}
	binds := map[string]string{}
	for _, up := range in.Upstreams {
		if up.Name == "" {
			errs = append(errs, errors.New("upstream with an empty name"))
			continue
		}
		if names[up.Name] {
			errs = append(errs, fmt.Errorf("upstream %q listed twice", up.Name))
		}
		names[up.Name] = true
		if up.SpiffeID == "" {
			errs = append(errs, fmt.Errorf("upstream %q: SpiffeID is empty", up.Name))
		}
		if up.LocalBindAddress != "" && net.ParseIP(up.LocalBindAddress) == nil {
			errs = append(errs, fmt.Errorf("upstream %q: LocalBindAddress %q is not an IP address", up.Name, up.LocalBindAddress))
		}
		if err := checkPort(fmt.Sprintf("upstream %q: LocalBindPort", up.Name), up.LocalBindPort); err != nil {
			errs = append(errs, err)
			continue
		}
		bind := hostPort(or(up.LocalBindAddress, "127.0.0.1"), up.LocalBindPort)
		if other, ok := binds[bind]; ok {
			errs = append(errs, fmt.Errorf("upstreams %q and %q both bind %s", other, up.Name, bind))
		}
		binds[bind] = up.Name
	}
	switch in.Options.Protocol {
	case "", ProtocolTCP, ProtocolHTTP:
	default:
		errs = append(errs, fmt.Errorf("Options.Protocol %q: want tcp or http", in.Options.Protocol))
	}
	if b := in.Options.PrometheusBind; b != "" {
		if _, _, err := ipPort(b); err != nil {
			errs = append(errs, fmt.Errorf("Options.PrometheusBind: %w", err))
		} else if other, ok := binds[b]; ok {
			errs = append(errs, fmt.Errorf("Options.PrometheusBind %s is upstream %q's bind address", b, other))
		} else if _, port, _ := ipPort(b); port == in.PublicPort {
			errs = append(errs, fmt.Errorf("Options.PrometheusBind %s: port %d is the public listener's", b, port))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills the options' unset fields.
func (o ProxyOptions) withDefaults() ProxyOptions {
	o.Protocol = or(o.Protocol, ProtocolTCP)
	o.ScrapePath = or(o.ScrapePath, "/metrics")
	o.AdminHost = or(o.AdminHost, "127.0.0.1")
	if o.AdminPort == 0 {
		o.AdminPort = DefaultEnvoyAdminPort
	}
	return o
}

// publicListener is the inbound listener: mTLS, then RBAC, then tcp_proxy
// (or, with protocol http, an HTTP connection manager) to the local
// application.
func publicListener(in *SidecarInput, addr string) (*listener.Listener, error) {
	name := PublicListener(addr, in.PublicPort)
	p := &packer{what: fmt.Sprintf("listener %q", name)}
	rbacConfig := p.pack(&rbacfilter.RBAC{
		StatPrefix: "connect_authz",
		Rules:      intentionRules(in),
	})
	proxyName := wellknown.TCPProxy
	var proxy *anypb.Any
	if in.Options.Protocol == ProtocolHTTP {
		proxyName, proxy = wellknown.HTTPConnectionManager, p.publicHTTP(in.Service, &in.Options)
	} else {
		proxy = p.pack(&tcpproxy.TcpProxy{
			StatPrefix:       "public_listener",
			ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: LocalAppCluster},
			AccessLog:        p.accessLogs(in.Options.AccessLogs),
		})
	}
	tlsConfig := p.pack(&tls.DownstreamTlsContext{
		CommonTlsContext: &tls.CommonTlsContext{
			TlsParams:                      &tls.TlsParameters{TlsMinimumProtocolVersion: tls.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{sdsSecret(LeafSecret)},
			ValidationContextType: &tls.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret(RootsSecret),
			},
		},
		RequireClientCertificate: wrapperspb.Bool(true),
	})
	if p.err != nil {
		return nil, p.err
	}
	return &listener.Listener{
		Name:             name,
		Address:          socketAddress(addr, in.PublicPort),
		TrafficDirection: core.TrafficDirection_INBOUND,
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{
				{Name: wellknown.RoleBasedAccessControl, ConfigType: &listener.Filter_TypedConfig{TypedConfig: rbacConfig}},
				{Name: proxyName, ConfigType: &listener.Filter_TypedConfig{TypedConfig: proxy}},
			},
			TransportSocket: &core.TransportSocket{
				Name:       wellknown.TransportSocketTLS,
				ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tlsConfig},
			},
		}},
	}, nil
}

// intentionRules turns intentions in precedence order into one RBAC rule
// set. Envoy's RBAC has a single action, so with a default of deny it lists
// the allowing intentions (action ALLOW) and with a default of allow the
// denying ones (action DENY). The first matching intention wins, so an
// intention for a source already decided by an earlier one is dropped, and
// a "*" intention excludes every earlier source of the opposite decision:
// "deny legacy, allow *" must not let legacy in. Nothing after "*" can
// match. An empty ALLOW set denies everything; an empty DENY set allows all.
func intentionRules(in *SidecarInput) *rbac.RBAC {
	action := rbac.RBAC_ALLOW
	if in.DefaultAllow {
		action = rbac.RBAC_DENY
	}
	listed := !in.DefaultAllow // the decision the rule set lists
	policies := map[string]*rbac.Policy{}
	decided := map[string]bool{}   // sources an earlier intention matched
	var opposite []*rbac.Principal // earlier sources with the other decision
	for i, it := range in.Intentions {
		if decided[it.Source] {
			continue
		}
		decided[it.Source] = true
		src := sourcePrincipal(in.TrustDomain, in.Datacenter, it.Source)
		switch {
		case it.Allow != listed:
			opposite = append(opposite, src)
		default:
			principal := src
			if it.Source == "*" && len(opposite) > 0 {
				principal = &rbac.Principal{Identifier: &rbac.Principal_AndIds{AndIds: &rbac.Principal_Set{Ids: []*rbac.Principal{
					src,
					{Identifier: &rbac.Principal_NotId{NotId: anyOf(opposite)}},
				}}}}
			}
			policies[fmt.Sprintf("intention-%03d:%s", i, it.Source)] = &rbac.Policy{
				Permissions: []*rbac.Permission{{Rule: &rbac.Permission_Any{Any: true}}},
				Principals:  []*rbac.Principal{principal},
			}
		}
		if it.Source == "*" {
			break
		}
	}
	return &rbac.RBAC{Action: action, Policies: policies}
}

func anyOf(ps []*rbac.Principal) *rbac.Principal {
	if len(ps) == 1 {
		return ps[0]
	}
	return &rbac.Principal{Identifier: &rbac.Principal_OrIds{OrIds: &rbac.Principal_Set{Ids: ps}}}
}

// sourcePrincipal matches the URI SAN of the client certificate that the
// public listener verified: one service's SPIFFE ID, or for "*" any
// service's in this trust domain and datacenter.
func sourcePrincipal(trustDomain, datacenter, source string) *rbac.Principal {
	m := &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: SpiffeID(trustDomain, datacenter, source)}}
	if source == "*" {
		m.MatchPattern = &matcher.StringMatcher_Prefix{Prefix: serviceIDPrefix(trustDomain, datacenter)}
	}
	return &rbac.Principal{Identifier: &rbac.Principal_Authenticated_{
		Authenticated: &rbac.Principal_Authenticated{PrincipalName: m},
	}}
}

func upstreamListener(up Upstream, clusterName string, logs *AccessLogs) (*listener.Listener, error) {
	addr := or(up.LocalBindAddress, "127.0.0.1")
	name := UpstreamListener(up.Name, addr, up.LocalBindPort)
	p := &packer{what: fmt.Sprintf("listener %q", name)}
	proxy := p.pack(&tcpproxy.TcpProxy{
		StatPrefix:       "upstream." + up.Name,
		ClusterSpecifier: &tcpproxy.TcpProxy_Cluster{Cluster: clusterName},
		AccessLog:        p.accessLogs(logs),
	})
	if p.err != nil {
		return nil, p.err
	}
	return &listener.Listener{
		Name:             name,
		Address:          socketAddress(addr, up.LocalBindPort),
		TrafficDirection: core.TrafficDirection_OUTBOUND,
		FilterChains: []*listener.FilterChain{{
			Filters: []*listener.Filter{
				{Name: wellknown.TCPProxy, ConfigType: &listener.Filter_TypedConfig{TypedConfig: proxy}},
			},
		}},
	}, nil
}

// upstreamCluster originates mTLS with the sidecar's own certificate and
// accepts the server only if its certificate chains to the roots and
// carries the upstream's SPIFFE ID as a URI SAN.
func upstreamCluster(up Upstream, name string) (*cluster.Cluster, error) {
	p := &packer{what: fmt.Sprintf("cluster %q", name)}
	tlsConfig := p.pack(&tls.UpstreamTlsContext{
		Sni: name,
		CommonTlsContext: &tls.CommonTlsContext{
			TlsParams:                      &tls.TlsParameters{TlsMinimumProtocolVersion: tls.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tls.SdsSecretConfig{sdsSecret(LeafSecret)},
			ValidationContextType: &tls.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tls.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tls.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tls.SubjectAltNameMatcher{{
							SanType: tls.SubjectAltNameMatcher_URI,
							Matcher: &matcher.StringMatcher{MatchPattern: &matcher.StringMatcher_Exact{Exact: up.SpiffeID}},
						}},
					},
					ValidationContextSdsSecretConfig: sdsSecret(RootsSecret),
				},
			},
		},
	})
	if p.err != nil {
		return nil, p.err
	}
	return &cluster.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
		EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       duration(connectTimeout),
		LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		TransportSocket: &core.TransportSocket{
			Name:       wellknown.TransportSocketTLS,
			ConfigType: &core.TransportSocket_TypedConfig{TypedConfig: tlsConfig},
		},
	}, nil
}

func sdsSecret(name string) *tls.SdsSecretConfig {
	return &tls.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

func sidecarSecrets(in *SidecarInput) []types.Resource {
	inline := func(s string) *core.DataSource {
		return &core.DataSource{Specifier: &core.DataSource_InlineString{InlineString: s}}
	}
	roots := make([]string, 0, len(in.RootsPEM))
	for _, r := range in.RootsPEM {
		roots = append(roots, strings.TrimRight(r, "\n")+"\n")
	}
	return []types.Resource{
		&tls.Secret{Name: LeafSecret, Type: &tls.Secret_TlsCertificate{TlsCertificate: &tls.TlsCertificate{
			CertificateChain: inline(in.LeafCertPEM),
			PrivateKey:       inline(in.LeafKeyPEM),
		}}},
		&tls.Secret{Name: RootsSecret, Type: &tls.Secret_ValidationContext{ValidationContext: &tls.CertificateValidationContext{
			TrustedCa: inline(strings.Join(roots, "")),
		}}},
	}
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
