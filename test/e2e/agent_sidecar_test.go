package e2e

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3" // the bootstrap's ADS cluster options
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	consulapi "github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestPlainAgentSidecarFeed runs three servers and one plain agent (ACLs
// on, the management token): a sidecar registered on the agent is served
// by that agent's xDS server, from its catalog view, over the stream that
// `warren connect envoy -bootstrap` describes (address, node ID and
// x-consul-token metadata). An upstream instance on another node turning
// critical leaves the sidecar's EDS, and coming back enters it again; each
// time the test measures when the change reached the agent's view (its
// DNS, which answers from the view, polled every millisecond) and when it
// reached the EDS, and requires the median view-to-EDS delay to be within
// the 100 ms target and every one within a second.
func TestPlainAgentSidecarFeed(t *testing.T) {
	c := startCluster(t, 3, 1)
	a1 := c.agents[0]
	agentCl, leaderCl := a1.client(t), c.servers[0].client(t)

	// The upstream, api, and its sidecar on node "elsewhere", written to
	// the servers' catalog directly.
	const apiAddr, apiSidecarPort = "127.0.0.2", 21500
	registerAPI := func(status string) {
		t.Helper()
		for _, reg := range []*consulapi.CatalogRegistration{
			{Node: "elsewhere", Address: apiAddr,
				Service: &consulapi.AgentService{ID: "api-1", Service: "api", Port: 9090, Address: apiAddr},
				Check:   &consulapi.AgentCheck{CheckID: "api-1-alive", Name: "alive", Status: status, ServiceID: "api-1"}},
			{Node: "elsewhere", Address: apiAddr,
				Service: &consulapi.AgentService{ID: "api-1-sidecar-proxy", Service: "api-sidecar-proxy", Kind: consulapi.ServiceKindConnectProxy,
					Port: apiSidecarPort, Address: apiAddr,
					Proxy: &consulapi.AgentServiceConnectProxyConfig{DestinationServiceName: "api", DestinationServiceID: "api-1", LocalServicePort: 9090}}},
		} {
			if _, err := leaderCl.Catalog().Register(reg, nil); err != nil {
				t.Fatalf("register %s: %v", reg.Service.ID, err)
			}
		}
	}
	registerAPI(consulapi.HealthPassing)

	// web, with a sidecar whose upstream is api, on the plain agent.
	if err := agentCl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 8080,
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{
			Proxy: &consulapi.AgentServiceConnectProxyConfig{Upstreams: []consulapi.Upstream{{DestinationName: "api", LocalBindPort: 9191}}},
		}}}); err != nil {
		t.Fatal(err)
	}

	// The Envoy bootstrap names the agent's xDS address, the sidecar's
	// node ID and the token.
	xdsAddr := fmt.Sprintf("127.0.0.1:%d", a1.grpcPort)
	out, errOut, code := run(t, "connect", "envoy", "-sidecar-for", "web", "-bootstrap", "-http-addr", a1.HTTP(),
		"-token", clusterMgmtToken, "-xds-addr", xdsAddr)
	if code != 0 {
		t.Fatalf("connect envoy -bootstrap: %d %s", code, errOut)
	}
	var b bootstrap.Bootstrap
	if err := protojson.Unmarshal([]byte(out), &b); err != nil {
		t.Fatalf("bootstrap: %v\n%s", err, out)
	}
	sa := b.GetStaticResources().GetClusters()[0].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	adsAddr := fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())
	md := b.GetDynamicResources().GetAdsConfig().GetGrpcServices()[0].GetInitialMetadata()
	if adsAddr != xdsAddr || len(md) != 1 || md[0].GetKey() != "x-consul-token" || md[0].GetValue() != clusterMgmtToken {
		t.Fatalf("bootstrap: ADS at %s, metadata %v; want %s and the token", adsAddr, md, xdsAddr)
	}

	// Without the token the agent refuses the stream.
	refused := dialADSWith(t, adsAddr, b.GetNode().GetId(), "")
	if err := refused.closed(10 * time.Second); err != nil {
		t.Fatalf("an xDS stream without a token: %v", err)
	}

	web := dialADSWith(t, adsAddr, b.GetNode().GetId(), md[0].GetValue())
	roots, _, err := agentCl.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	apiCluster := fmt.Sprintf("api.default.dc1.internal.%s", roots.TrustDomain)
	apiEndpoint := fmt.Sprintf("%s:%d", apiAddr, apiSidecarPort)
	eds := func() []string {
		es := adsResources(web, resource.EndpointType, func() *endpoint.ClusterLoadAssignment { return new(endpoint.ClusterLoadAssignment) })
		return endpointsOf(es[apiCluster])
	}
	edsIs := func(want ...string) func() error {
		return func() error {
			if got := eds(); !slices.Equal(got, want) {
				return fmt.Errorf("EDS of %s: %v, want %v", apiCluster, got, want)
			}
			return nil
		}
	}
	took := web.await(30*time.Second, "api's sidecar in web's EDS", edsIs(apiEndpoint))
	t.Logf("web's sidecar has api's endpoint %v after connecting", took)

	// Flip api's health; each time, the change's arrival in the agent's
	// view (its DNS) and in web's EDS.
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", a1.dnsPort)
	var removals []time.Duration
	for i := range 5 {
		for _, status := range []string{consulapi.HealthCritical, consulapi.HealthPassing} {
			want := []string{apiEndpoint}
			if status == consulapi.HealthCritical {
				want = nil
			}
			var toView time.Duration
			var viewErr error
			var wg sync.WaitGroup
			start := time.Now()
			wg.Add(1)
			go func() {
				defer wg.Done()
				toView, viewErr = awaitDNS(start, dnsAddr, "api.service.warren.", len(want) > 0, 10*time.Second)
			}()
			registerAPI(status)
			web.await(10*time.Second, "api "+status+" in web's EDS", edsIs(want...))
			toEDS := time.Since(start)
			wg.Wait()
			if viewErr != nil {
				t.Fatalf("api %s in the agent's view: %v", status, viewErr)
			}
			t.Logf("flip %d, api %s: write to view %v, write to EDS %v, view to EDS %v", i, status,
				toView.Round(100*time.Microsecond), toEDS.Round(100*time.Microsecond), (toEDS - toView).Round(100*time.Microsecond))
			if status == consulapi.HealthCritical {
				removals = append(removals, max(toEDS-toView, 0))
			}
			if toEDS-toView > time.Second {
				t.Errorf("api %s reached web's EDS %v after the agent's view, want <= 1s", status, toEDS-toView)
			}
		}
	}
	slices.Sort(removals)
	med := removals[len(removals)/2]
	t.Logf("critical upstream out of web's EDS after reaching the agent's view: median %v, max %v (%d flips)",
		med.Round(100*time.Microsecond), removals[len(removals)-1].Round(100*time.Microsecond), len(removals))
	if med > 100*time.Millisecond {
		t.Errorf("median view-to-EDS delay %v, target 100ms", med)
	}
}

// awaitDNS queries name (A) at addr every millisecond until it has
// answers (want true) or none (want false), and returns how long after
// start that was.
func awaitDNS(start time.Time, addr, name string, want bool, timeout time.Duration) (time.Duration, error) {
	cl := &dns.Client{Net: "udp", Timeout: time.Second}
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	var last error
	for time.Since(start) < timeout {
		r, _, err := cl.Exchange(q, addr)
		switch {
		case err != nil:
			last = err
		case (len(r.Answer) > 0) == want:
			return time.Since(start), nil
		default:
			last = fmt.Errorf("%s: %d answers (rcode %s)", name, len(r.Answer), dns.RcodeToString[r.Rcode])
		}
		time.Sleep(time.Millisecond)
	}
	return 0, fmt.Errorf("not within %s: %v", timeout, last)
}

// dialADSWith is dialADS with the token in x-consul-token metadata, as
// Envoy sends it from the bootstrap's initial_metadata.
func dialADSWith(t *testing.T, addr, node, token string) *adsClient {
	t.Helper()
	return dialADSContext(t, addr, node, func(ctx context.Context) context.Context {
		if token == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "x-consul-token", token)
	})
}

// closed waits for the stream to end, and returns nil if it did.
func (c *adsClient) closed(timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-c.notify:
			if !ok {
				return nil
			}
		case <-deadline:
			return fmt.Errorf("the ADS stream of %s is still open after %s (%d responses)", c.node, timeout, c.responses())
		}
	}
}
