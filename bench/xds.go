package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/xds"
)

// Sidecars benchmark parameters and targets (issue 6, "Agent to proxies"):
// one `warren dev` with sidecarCount sidecars whose only upstream is
// "shared", as many raw ADS clients in this process (node ID = sidecar ID,
// EDS of the shared cluster, every response ACKed); another shared
// instance with its sidecar is registered and each client's time to an
// EDS response holding it is measured from the registration's HTTP ack.
const (
	sidecarCount     = 50
	sidecarEDSTarget = 100 * time.Millisecond
	sidecarRSSTarget = 60 * 1024 // KiB
	sidecarDC        = "dc1"
	sidecarWait      = 60 * time.Second
	sidecarSettle    = 3 * time.Second
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// edsClient is one raw ADS stream subscribed to one EDS resource.
type edsClient struct {
	id      string
	mu      sync.Mutex
	updates []edsUpdate
	err     error
}

type edsUpdate struct {
	at        time.Time
	endpoints int
}

func (c *edsClient) last() (edsUpdate, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.updates) == 0 {
		return edsUpdate{endpoints: -1}, 0
	}
	return c.updates[len(c.updates)-1], len(c.updates)
}

// run follows the stream, ACKing each response, until ctx ends.
func (c *edsClient) run(ctx context.Context, ads discovery.AggregatedDiscoveryServiceClient, cluster string) {
	stream, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		c.fail(err)
		return
	}
	node := &core.Node{Id: c.id, Cluster: c.id}
	req := &discovery.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: []string{cluster}}
	if err := stream.Send(req); err != nil {
		c.fail(err)
		return
	}
	for {
		r, err := stream.Recv()
		if err != nil {
			if ctx.Err() == nil {
				c.fail(err)
			}
			return
		}
		at := time.Now()
		eps := 0
		for _, a := range r.GetResources() {
			var cla endpoint.ClusterLoadAssignment
			if err := a.UnmarshalTo(&cla); err != nil {
				c.fail(err)
				return
			}
			for _, l := range cla.GetEndpoints() {
				eps += len(l.GetLbEndpoints())
			}
		}
		c.mu.Lock()
		c.updates = append(c.updates, edsUpdate{at: at, endpoints: eps})
		c.mu.Unlock()
		if err := stream.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.EndpointType, ResourceNames: []string{cluster},
			VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *edsClient) fail(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}

func runSidecars(ctx context.Context, o *options, rep *report) error {
	base, err := dataBase()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(base, "warren-bench-xds-")
	if err != nil {
		return err
	}
	c, grpcAddr, err := startXDSDev(ctx, o.warren, dir, o.keep)
	if err != nil {
		return err
	}
	defer c.stop()
	dev := c.procs[0]
	hc := newClient(2)
	defer hc.CloseIdleConnections()

	registerSvc := func(r *api.AgentServiceRegistration) error {
		return hc.put(ctx, dev.baseURL()+"/v1/agent/service/register", mustJSON(r))
	}
	shared := func(k int) *api.AgentServiceRegistration {
		return &api.AgentServiceRegistration{ID: fmt.Sprintf("shared-%d", k), Name: "shared", Port: 9000 + k, Address: loopback,
			Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{}}}
	}
	if err := registerSvc(shared(1)); err != nil {
		return fmt.Errorf("register shared-1: %w", err)
	}
	var ids []string
	for i := range sidecarCount {
		id := fmt.Sprintf("app-%02d", i)
		r := &api.AgentServiceRegistration{ID: id, Name: id, Port: 8000 + i, Address: loopback,
			Connect: &api.AgentServiceConnect{SidecarService: &api.AgentServiceRegistration{
				Proxy: &api.AgentServiceConnectProxyConfig{Upstreams: []api.Upstream{{DestinationName: "shared", LocalBindPort: 15000 + i}}}}}}
		if err := registerSvc(r); err != nil {
			return fmt.Errorf("register %s: %w", id, err)
		}
		ids = append(ids, id+"-sidecar-proxy")
	}
	var roots api.CARootList
	if _, err := hc.getJSON(ctx, dev.baseURL()+"/v1/connect/ca/roots", &roots); err != nil {
		return fmt.Errorf("CA roots: %w", err)
	}
	cluster := xds.UpstreamCluster("shared", sidecarDC, roots.TrustDomain)
	log.Printf("sidecars: %d sidecars + shared-1 registered on dev (xDS %s); EDS resource %s", sidecarCount, grpcAddr, cluster)

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	clients := make([]*edsClient, len(ids))
	var conns []*grpc.ClientConn
	defer func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	}()
	for i, id := range ids {
		cc, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		conns = append(conns, cc)
		clients[i] = &edsClient{id: id}
		go clients[i].run(cctx, discovery.NewAggregatedDiscoveryServiceClient(cc), cluster)
	}
	// Every client has shared-1's sidecar.
	if err := waitEDS(ctx, clients, 1, sidecarWait); err != nil {
		return err
	}
	log.Printf("sidecars: all %d clients have shared with 1 endpoint; settling %s", len(clients), sidecarSettle)
	if err := sleepCtx(ctx, sidecarSettle); err != nil {
		return err
	}
	if err := c.checkAlive(); err != nil {
		return err
	}
	rss, _ := procStatusKB(dev.pid(), "VmRSS")
	hwm, _ := procStatusKB(dev.pid(), "VmHWM")
	var before []int
	for _, cl := range clients {
		_, n := cl.last()
		before = append(before, n)
	}

	// The change: shared-2 and its sidecar.
	sent := time.Now()
	if err := registerSvc(shared(2)); err != nil {
		return fmt.Errorf("register shared-2: %w", err)
	}
	ack := time.Now()
	if err := waitEDS(ctx, clients, 2, sidecarWait); err != nil {
		return err
	}
	var lat []time.Duration
	early := 0
	for i, cl := range clients {
		cl.mu.Lock()
		for _, u := range cl.updates[before[i]:] {
			if u.endpoints == 2 {
				if u.at.Before(ack) {
					early++
				}
				lat = append(lat, u.at.Sub(ack))
				break
			}
		}
		cl.mu.Unlock()
	}
	slices.Sort(lat)
	maxD := lat[len(lat)-1]
	rssAfter, _ := procStatusKB(dev.pid(), "VmRSS")
	rep.check("sidecars_eds_max", ms(maxD), fmt.Sprintf("every one of %d sidecars <= %s", sidecarCount, sidecarEDSTarget), maxD <= sidecarEDSTarget && len(lat) == sidecarCount)
	rep.info("sidecars_eds_p50", ms(percentile(lat, 50)))
	rep.info("sidecars_eds_from_put_sent_max", ms(maxD+ack.Sub(sent)))
	rep.info("sidecars_http_ack", ms(ack.Sub(sent)))
	if early > 0 {
		rep.info("sidecars_eds_before_ack", fmt.Sprintf("%d clients had the update before the HTTP ack (negative latency)", early))
	}
	rep.check("sidecars_agent_rss", fmt.Sprintf("%.1f MiB", float64(rss)/1024), fmt.Sprintf("< %d MiB", sidecarRSSTarget/1024), rss > 0 && rss < sidecarRSSTarget)
	rep.info("sidecars_agent_rss_detail", fmt.Sprintf("with %d ADS streams connected, %s after the last initial EDS; peak %.1f MiB; %.1f MiB after the change",
		sidecarCount, sidecarSettle, float64(hwm)/1024, float64(rssAfter)/1024))
	rep.note("sidecars: one `warren dev` (server+agent in one process, so the sidecar feed reads the server's local view, not agent/view), %d services each with a sidecar whose one upstream is \"shared\"; %d raw SotW ADS clients in the bench (node ID = sidecar ID), EDS for %s, every response ACKed; change = PUT /v1/agent/service/register of shared-2 with a sidecar; latency from that PUT's HTTP ack to each client's EDS response with 2 endpoints", sidecarCount, sidecarCount, cluster)
	return nil
}

// waitEDS waits until each client's latest EDS response holds want
// endpoints.
func waitEDS(ctx context.Context, clients []*edsClient, want int, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		n := 0
		for _, c := range clients {
			c.mu.Lock()
			if c.err != nil {
				err := c.err
				c.mu.Unlock()
				return fmt.Errorf("xDS client %s: %w", c.id, err)
			}
			c.mu.Unlock()
			if u, _ := c.last(); u.endpoints == want {
				n++
			}
		}
		if n == len(clients) {
			return nil
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return fmt.Errorf("%d of %d xDS clients have %d shared endpoints after %s", n, len(clients), want, d)
		}
	}
}

// startXDSDev starts `warren dev` with xDS on a free loopback port.
func startXDSDev(ctx context.Context, bin, dir string, keep bool) (c *cluster, grpcAddr string, err error) {
	c = &cluster{dir: dir, keep: keep}
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	ports, err := freePorts(4)
	if err != nil {
		return c, "", err
	}
	p := &proc{
		name:     "dev",
		dataDir:  filepath.Join(dir, "dev"),
		logPath:  filepath.Join(dir, "dev.log"),
		rpcAddr:  net.JoinHostPort(loopback, strconv.Itoa(ports[0])),
		httpAddr: net.JoinHostPort(loopback, strconv.Itoa(ports[1])),
	}
	grpcAddr = net.JoinHostPort(loopback, strconv.Itoa(ports[3]))
	args := []string{"dev", "-node", "xdsbench-dev", "-datacenter", sidecarDC,
		"-bind", loopback, "-client", loopback,
		"-server-port", strconv.Itoa(ports[0]), "-http-port", strconv.Itoa(ports[1]),
		"-serf-lan-port", strconv.Itoa(ports[2]), "-dns-port", "-1",
		"-grpc-port", strconv.Itoa(ports[3]), "-log-level", "warn"}
	if err := c.launch(bin, p, args); err != nil {
		return c, "", err
	}
	c.procs = []*proc{p}
	c.leader = p
	log.Printf("sidecars: warren dev started (http %s, xDS %s), log %s", p.httpAddr, grpcAddr, p.logPath)
	if err := waitDevLeader(ctx, c, p); err != nil {
		return c, "", err
	}
	return c, grpcAddr, nil
}
