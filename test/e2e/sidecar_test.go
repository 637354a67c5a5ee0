package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	consulapi "github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/warren-mesh/warren/internal/testutil"
)

func consulClient(t *testing.T, p *proc) *consulapi.Client {
	t.Helper()
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// sidecarStatus is the aggregated health of a service instance as
// /v1/health/service reports it, "" when it is not there.
func healthOf(t *testing.T, cl *consulapi.Client, service, id string) (string, *consulapi.ServiceEntry) {
	t.Helper()
	entries, _, err := cl.Health().Service(service, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Service.ID == id {
			return e.Checks.AggregatedStatus(), e
		}
	}
	return "", nil
}

// TestSidecarRegistration registers a service with Consul's
// Connect.SidecarService through the official client: the sidecar is
// registered as a connect-proxy with Consul's defaults, the catalog and
// health answers carry its Kind and Proxy, its alias check follows the
// service's health, and deregistering the service removes it.
func TestSidecarRegistration(t *testing.T) {
	p := startDev(t)
	cl := consulClient(t, p)
	ag := cl.Agent()
	reg := &consulapi.AgentServiceRegistration{
		Name: "web", Port: 8080, Tags: []string{"v1"},
		Check: &consulapi.AgentServiceCheck{CheckID: "web-ttl", TTL: "1h", Status: consulapi.HealthPassing},
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{
			Proxy: &consulapi.AgentServiceConnectProxyConfig{Upstreams: []consulapi.Upstream{{DestinationName: "api", LocalBindPort: 9191}}},
		}},
	}
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	// A second service gets the next port of the range.
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "api", Port: 9090,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{}}}); err != nil {
		t.Fatal(err)
	}

	var entry *consulapi.ServiceEntry
	waitFor(t, 5*time.Second, func() error {
		status, e := healthOf(t, cl, "web-sidecar-proxy", "web-sidecar-proxy")
		if e == nil || status != consulapi.HealthPassing {
			return fmt.Errorf("web-sidecar-proxy: %q", status)
		}
		entry = e
		return nil
	})
	s := entry.Service
	if s.Kind != consulapi.ServiceKindConnectProxy || s.Port != 21000 || s.Proxy == nil {
		t.Fatalf("sidecar: kind %q port %d proxy %+v", s.Kind, s.Port, s.Proxy)
	}
	pc := s.Proxy
	if pc.DestinationServiceName != "web" || pc.DestinationServiceID != "web" || pc.LocalServiceAddress != "127.0.0.1" || pc.LocalServicePort != 8080 {
		t.Fatalf("sidecar proxy config: %+v", pc)
	}
	if len(pc.Upstreams) != 1 || pc.Upstreams[0].DestinationName != "api" || pc.Upstreams[0].LocalBindPort != 9191 {
		t.Fatalf("sidecar upstreams: %+v", pc.Upstreams)
	}
	if len(s.Tags) != 1 || s.Tags[0] != "v1" {
		t.Fatalf("sidecar tags %v, want the service's", s.Tags)
	}
	var cs []*consulapi.CatalogService
	waitFor(t, 5*time.Second, func() error {
		var err error
		if cs, _, err = cl.Catalog().Service("api-sidecar-proxy", "", nil); err != nil || len(cs) != 1 {
			return fmt.Errorf("catalog api-sidecar-proxy: %v %v", cs, err)
		}
		return nil
	})
	if cs[0].ServicePort != 21001 || cs[0].ServiceProxy == nil ||
		cs[0].ServiceProxy.DestinationServiceName != "api" || cs[0].ServiceProxy.LocalServicePort != 9090 {
		t.Fatalf("catalog api-sidecar-proxy: port %d proxy %+v", cs[0].ServicePort, cs[0].ServiceProxy)
	}
	local, _, err := ag.Service("web-sidecar-proxy", nil)
	if err != nil || local.Proxy == nil || local.Proxy.DestinationServiceID != "web" {
		t.Fatalf("agent service web-sidecar-proxy: %+v %v", local, err)
	}

	// The alias check follows the service's health.
	if err := ag.UpdateTTL("web-ttl", "down", consulapi.HealthCritical); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() error {
		if status, _ := healthOf(t, cl, "web-sidecar-proxy", "web-sidecar-proxy"); status != consulapi.HealthCritical {
			return fmt.Errorf("sidecar %q after the service turned critical", status)
		}
		return nil
	})
	if err := ag.UpdateTTL("web-ttl", "up", consulapi.HealthPassing); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() error {
		if status, _ := healthOf(t, cl, "web-sidecar-proxy", "web-sidecar-proxy"); status != consulapi.HealthPassing {
			return fmt.Errorf("sidecar %q after the service passed again", status)
		}
		return nil
	})

	// Re-registering keeps the port; deregistering removes the sidecar.
	if err := ag.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	if local, _, err := ag.Service("web-sidecar-proxy", nil); err != nil || local.Port != 21000 {
		t.Fatalf("re-registered sidecar: %+v %v", local, err)
	}
	if err := ag.ServiceDeregister("web"); err != nil {
		t.Fatal(err)
	}
	svcs, err := ag.Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svcs["web-sidecar-proxy"]; ok {
		t.Fatalf("web-sidecar-proxy still registered after web left: %v", svcs)
	}
	waitFor(t, 2*time.Second, func() error {
		if _, e := healthOf(t, cl, "web-sidecar-proxy", "web-sidecar-proxy"); e != nil {
			return fmt.Errorf("web-sidecar-proxy still in the catalog")
		}
		return nil
	})

	// A connect-proxy registered directly needs its destination.
	err = ag.ServiceRegister(&consulapi.AgentServiceRegistration{Kind: consulapi.ServiceKindConnectProxy, Name: "bad-proxy", Port: 21500})
	if err == nil {
		t.Fatal("a connect-proxy without Proxy.DestinationServiceName was accepted")
	}
	p.stop(t)
}

// adsClient is a raw ADS (state of the world) client: one stream, one
// wildcard subscription per type, every response ACKed and kept.
type adsClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   string

	mu     sync.Mutex
	latest map[string]*discovery.DiscoveryResponse
	count  map[string]int
	notify chan string // type URL of each response
}

var sidecarTypes = []string{resource.ListenerType, resource.ClusterType, resource.EndpointType, resource.SecretType}

func dialADS(t *testing.T, addr, node string) *adsClient {
	t.Helper()
	return dialADSContext(t, addr, node, nil)
}

// dialADSContext is dialADS whose stream context wrap returns (to add
// metadata); nil wrap adds nothing.
func dialADSContext(t *testing.T, addr, node string, wrap func(context.Context) context.Context) *adsClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); conn.Close() })
	if wrap != nil {
		ctx = wrap(ctx)
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &adsClient{t: t, stream: stream, node: node, latest: map[string]*discovery.DiscoveryResponse{},
		count: map[string]int{}, notify: make(chan string, 256)}
	for _, typ := range sidecarTypes {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: typ}); err != nil {
			t.Fatal(err)
		}
	}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(c.notify)
				return
			}
			c.mu.Lock()
			c.latest[resp.GetTypeUrl()] = resp
			c.count[resp.GetTypeUrl()]++
			c.mu.Unlock()
			// ACK, as Envoy does.
			_ = stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resp.GetTypeUrl(),
				VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()})
			c.notify <- resp.GetTypeUrl()
		}
	}()
	return c
}

// resources returns the latest resources of a type, decoded into new(T).
func adsResources[T proto.Message](c *adsClient, typ string, mk func() T) map[string]T {
	c.mu.Lock()
	resp := c.latest[typ]
	c.mu.Unlock()
	out := map[string]T{}
	if resp == nil {
		return out
	}
	for _, a := range resp.GetResources() {
		m := mk()
		if err := a.UnmarshalTo(m); err != nil {
			c.t.Fatalf("decode %s: %v", typ, err)
		}
		var name string
		switch v := any(m).(type) {
		case *listener.Listener:
			name = v.GetName()
		case *cluster.Cluster:
			name = v.GetName()
		case *endpoint.ClusterLoadAssignment:
			name = v.GetClusterName()
		case *tlsv3.Secret:
			name = v.GetName()
		}
		out[name] = m
	}
	return out
}

func (c *adsClient) versions() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for typ, r := range c.latest {
		out[typ] = r.GetVersionInfo()
	}
	return out
}

func (c *adsClient) responses() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.count {
		n += v
	}
	return n
}

// await waits until cond holds on the client's latest resources.
func (c *adsClient) await(timeout time.Duration, what string, cond func() error) time.Duration {
	c.t.Helper()
	start := time.Now()
	deadline := time.After(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		select {
		case _, ok := <-c.notify:
			if !ok {
				c.t.Fatalf("%s: the ADS stream of %s ended", what, c.node)
			}
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			c.t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
	}
}

// rbacOf returns the RBAC filter of a sidecar's public listener.
func rbacOf(l *listener.Listener) (*rbacfilter.RBAC, error) {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() == wellknown.RoleBasedAccessControl {
				var r rbacfilter.RBAC
				if err := f.GetTypedConfig().UnmarshalTo(&r); err != nil {
					return nil, err
				}
				return &r, nil
			}
		}
	}
	return nil, fmt.Errorf("listener %s has no RBAC filter", l.GetName())
}

func endpointsOf(cla *endpoint.ClusterLoadAssignment) []string {
	var out []string
	for _, loc := range cla.GetEndpoints() {
		for _, lb := range loc.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	return out
}

// TestSidecarXDS registers web (with a sidecar whose upstream is api) and
// api (with a sidecar) in a running warren dev and reads what the agent
// serves to web's and api's sidecars over a raw ADS stream: web's public
// listener with RBAC, its outbound listener on the upstream's local bind
// port, an EDS cluster for api with the api sidecar's endpoint, and SDS
// secrets whose certificate carries web's SPIFFE ID; a deny intention
// web->api reaches api's RBAC within a second; api turning critical leaves
// web's EDS within a second; an unrelated change pushes nothing.
func TestSidecarXDS(t *testing.T) {
	xdsPort := testutil.FreePort(t)
	p := startDev(t, "-grpc-port", strconv.Itoa(xdsPort))
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", xdsPort)
	cl := consulClient(t, p)
	ag := cl.Agent()
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "api", Port: 9090,
		Check:   &consulapi.AgentServiceCheck{CheckID: "api-ttl", TTL: "1h", Status: consulapi.HealthPassing},
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{}}}); err != nil {
		t.Fatal(err)
	}
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 8080,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{
			Proxy: &consulapi.AgentServiceConnectProxyConfig{Upstreams: []consulapi.Upstream{{DestinationName: "api", LocalBindPort: 9191}}},
		}}}); err != nil {
		t.Fatal(err)
	}
	apiSidecar, _, err := ag.Service("api-sidecar-proxy", nil)
	if err != nil {
		t.Fatal(err)
	}
	webSidecar, _, err := ag.Service("web-sidecar-proxy", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The CA is made at the first leadership; under load that may be a
	// moment after the services are registered.
	var td string
	waitFor(t, 10*time.Second, func() error {
		roots, _, err := cl.Agent().ConnectCARoots(nil)
		if err == nil && roots.TrustDomain == "" {
			err = errors.New("no CA roots yet")
		}
		if err == nil {
			td = roots.TrustDomain
		}
		return err
	})
	dc := "dc1"
	webID := fmt.Sprintf("spiffe://%s/ns/default/dc/%s/svc/web", td, dc)
	apiCluster := fmt.Sprintf("api.default.%s.internal.%s", dc, td)
	apiEndpoint := net.JoinHostPort("127.0.0.1", strconv.Itoa(apiSidecar.Port))

	web := dialADS(t, xdsAddr, "web-sidecar-proxy")
	public := fmt.Sprintf("public_listener:0.0.0.0:%d", webSidecar.Port)
	took := web.await(10*time.Second, "web's sidecar configuration", func() error {
		ls := adsResources(web, resource.ListenerType, func() *listener.Listener { return new(listener.Listener) })
		pl, ok := ls[public]
		if !ok {
			return fmt.Errorf("no %s among %v", public, keys(ls))
		}
		if _, err := rbacOf(pl); err != nil {
			return err
		}
		up, ok := ls["api:127.0.0.1:9191"]
		if !ok {
			return fmt.Errorf("no outbound listener api:127.0.0.1:9191 among %v", keys(ls))
		}
		if sa := up.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 9191 {
			return fmt.Errorf("outbound listener on %v", sa)
		}
		cs := adsResources(web, resource.ClusterType, func() *cluster.Cluster { return new(cluster.Cluster) })
		c, ok := cs[apiCluster]
		if !ok || c.GetType() != cluster.Cluster_EDS {
			return fmt.Errorf("no EDS cluster %s among %v", apiCluster, keys(cs))
		}
		es := adsResources(web, resource.EndpointType, func() *endpoint.ClusterLoadAssignment { return new(endpoint.ClusterLoadAssignment) })
		if got := endpointsOf(es[apiCluster]); len(got) != 1 || got[0] != apiEndpoint {
			return fmt.Errorf("EDS of %s: %v, want [%s]", apiCluster, got, apiEndpoint)
		}
		ss := adsResources(web, resource.SecretType, func() *tlsv3.Secret { return new(tlsv3.Secret) })
		leaf, ok := ss["default"]
		if !ok || ss["roots"] == nil {
			return fmt.Errorf("secrets %v, want default and roots", keys(ss))
		}
		certs := pemCerts(t, leaf.GetTlsCertificate().GetCertificateChain().GetInlineString())
		if len(certs) == 0 || len(certs[0].URIs) != 1 || certs[0].URIs[0].String() != webID {
			return fmt.Errorf("leaf certificate URIs %v, want %s", certs[0].URIs, webID)
		}
		return nil
	})
	t.Logf("web's sidecar fully configured %v after connecting", took)

	// A deny intention web->api reaches api's sidecar RBAC within a second.
	apiProxy := dialADS(t, xdsAddr, "api-sidecar-proxy")
	apiPublic := fmt.Sprintf("public_listener:0.0.0.0:%d", apiSidecar.Port)
	denies := func() (bool, error) {
		ls := adsResources(apiProxy, resource.ListenerType, func() *listener.Listener { return new(listener.Listener) })
		pl, ok := ls[apiPublic]
		if !ok {
			return false, fmt.Errorf("no %s", apiPublic)
		}
		r, err := rbacOf(pl)
		if err != nil {
			return false, err
		}
		for _, pol := range r.GetRules().GetPolicies() {
			for _, pr := range pol.GetPrincipals() {
				if pr.GetAuthenticated().GetPrincipalName().GetExact() == webID {
					return r.GetRules().GetAction() == rbacv3.RBAC_DENY, nil
				}
			}
		}
		return false, nil
	}
	apiProxy.await(10*time.Second, "api's sidecar configuration", func() error {
		d, err := denies()
		if err == nil && d {
			return fmt.Errorf("web denied before any intention")
		}
		return err
	})
	webVersions := web.versions()
	start := time.Now()
	if _, err := cl.Connect().IntentionUpsert(&consulapi.Intention{SourceName: "web", DestinationName: "api", Action: consulapi.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	apiProxy.await(time.Second, "deny web->api in api's RBAC", func() error {
		if d, err := denies(); err != nil || !d {
			return fmt.Errorf("web not denied (%v)", err)
		}
		return nil
	})
	t.Logf("intention in api's RBAC %v after the write", time.Since(start))

	// api turns critical: its sidecar leaves web's EDS within a second.
	start = time.Now()
	if err := ag.UpdateTTL("api-ttl", "down", consulapi.HealthCritical); err != nil {
		t.Fatal(err)
	}
	web.await(time.Second, "critical api out of web's EDS", func() error {
		es := adsResources(web, resource.EndpointType, func() *endpoint.ClusterLoadAssignment { return new(endpoint.ClusterLoadAssignment) })
		if got := endpointsOf(es[apiCluster]); len(got) != 0 {
			return fmt.Errorf("EDS of %s: %v", apiCluster, got)
		}
		return nil
	})
	t.Logf("critical api out of web's EDS %v after the check update", time.Since(start))
	if v := web.versions(); v[resource.ListenerType] != webVersions[resource.ListenerType] || v[resource.SecretType] != webVersions[resource.SecretType] {
		t.Errorf("web's listeners or secrets changed with api's health or an intention on api: %v -> %v", webVersions, v)
	}

	// Let the alias check and anti-entropy settle, then change something
	// no sidecar depends on: nothing is pushed.
	time.Sleep(500 * time.Millisecond)
	before, n := web.versions(), web.responses()
	nAPI := apiProxy.responses()
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "unrelated", Port: 7070}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Catalog().Register(&consulapi.CatalogRegistration{Node: "elsewhere", Address: "10.0.0.9",
		Service: &consulapi.AgentService{Service: "db", Port: 5432}}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if after := web.versions(); web.responses() != n || !maps.Equal(before, after) {
		t.Errorf("an unrelated change pushed to web's sidecar: %d responses -> %d, versions %v -> %v", n, web.responses(), before, after)
	}
	if apiProxy.responses() != nAPI {
		t.Errorf("an unrelated change pushed to api's sidecar: %d responses -> %d", nAPI, apiProxy.responses())
	}

	// Deregistering web removes its sidecar, and its snapshot.
	if err := ag.ServiceDeregister("web"); err != nil {
		t.Fatal(err)
	}
	p.stop(t)
}

func keys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

// TestConnectEnvoyBootstrap runs `warren connect envoy`: -bootstrap writes
// the bootstrap of the sidecar of the named service (node ID the
// sidecar's, cluster the service), and without it a missing or
// unsupported Envoy is reported plainly.
func TestConnectEnvoyBootstrap(t *testing.T) {
	p := startDev(t)
	cl := consulClient(t, p)
	if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 8080,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{}}}); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := run(t, "connect", "envoy", "-sidecar-for", "web", "-bootstrap", "-http-addr", p.HTTP,
		"-xds-addr", "127.0.0.1:18502", "-admin-bind", "127.0.0.1:19123")
	if code != 0 {
		t.Fatalf("connect envoy -bootstrap: %d %s", code, errOut)
	}
	var b struct {
		Node struct {
			ID      string `json:"id"`
			Cluster string `json:"cluster"`
		} `json:"node"`
		Admin struct {
			Address struct {
				SocketAddress struct {
					Address   string `json:"address"`
					PortValue int    `json:"port_value"`
				} `json:"socket_address"`
			} `json:"address"`
		} `json:"admin"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("bootstrap is not JSON: %v\n%s", err, out)
	}
	if b.Node.ID != "web-sidecar-proxy" || b.Node.Cluster != "web" || b.Admin.Address.SocketAddress.PortValue != 19123 {
		t.Fatalf("bootstrap node %+v admin %+v", b.Node, b.Admin)
	}
	if !strings.Contains(out, "18502") {
		t.Fatalf("bootstrap does not point at the xDS address:\n%s", out)
	}
	// The sidecar's own ID works too.
	if _, errOut, code := run(t, "connect", "envoy", "-sidecar-for", "web-sidecar-proxy", "-bootstrap", "-http-addr", p.HTTP); code != 0 {
		t.Fatalf("connect envoy -sidecar-for web-sidecar-proxy: %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "connect", "envoy", "-sidecar-for", "nope", "-bootstrap", "-http-addr", p.HTTP); code == 0 || !strings.Contains(errOut, `no service "nope"`) {
		t.Fatalf("unknown service: %d %s", code, errOut)
	}

	// No Envoy: a clear message naming the supported versions.
	_, errOut, code = run(t, "connect", "envoy", "-sidecar-for", "web", "-http-addr", p.HTTP, "-envoy-binary", filepath.Join(t.TempDir(), "envoy"))
	if code == 0 || !strings.Contains(errOut, "Envoy not found") || !strings.Contains(errOut, "1.28 to 1.36") {
		t.Fatalf("missing envoy: %d %s", code, errOut)
	}
	// An old Envoy: refused with the supported versions.
	fake := filepath.Join(t.TempDir(), "envoy")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'envoy  version: 0123abcd/1.20.7/Clean/RELEASE/BoringSSL'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = run(t, "connect", "envoy", "-sidecar-for", "web", "-http-addr", p.HTTP, "-envoy-binary", fake)
	if code == 0 || !strings.Contains(errOut, "Envoy 1.20 at") || !strings.Contains(errOut, "supports Envoy 1.28 to 1.36") {
		t.Fatalf("old envoy: %d %s", code, errOut)
	}
	p.stop(t)
}
