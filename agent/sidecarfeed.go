package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/xds"
)

// SidecarFeed keeps the xDS snapshot of every local sidecar (a local
// connect-proxy service) current, keyed by the sidecar's service ID, the
// node ID its Envoy bootstrap gives. A snapshot is built from:
//
//   - the sidecar's local registration (public port, local application,
//     upstreams);
//   - the leaf certificate of its destination service, from the agent's
//     leaf cache (renewed in the background);
//   - the trust bundle and trust domain, followed with a blocking query
//     on the servers' CA roots;
//   - the intentions whose destination matches the destination service,
//     in precedence order, and the servers' default intention policy,
//     followed with a blocking list query on the servers' intentions;
//   - per upstream, the instances of "<upstream>-sidecar-proxy" in the
//     catalog view that are connect-proxies for that upstream, not
//     critical, and whose destination instance on the same node is not
//     critical either (so an application turning critical leaves its
//     callers' EDS without waiting for its sidecar's alias check).
//
// Every change of the view, of local registrations, of a leaf, of the
// roots or of the intentions rebuilds every snapshot after a short
// debounce; xds.Server.SetSnapshot hashes each resource type, so a proxy
// is pushed only what changed, and nothing when nothing relevant did.
type SidecarFeed struct {
	a   *Agent
	src xds.Source
	srv *xds.Server
	log *slog.Logger

	mu           sync.Mutex
	td           string
	roots        []string
	intentions   []*connect.Intention
	defaultAllow bool
	haveIxns     bool
	wake         chan struct{}

	known map[string]bool // sidecar IDs with a snapshot set
}

// sidecarDebounce coalesces bursts of changes into one rebuild.
const sidecarDebounce = 5 * time.Millisecond

// SidecarFeed returns the feed of the local sidecars' snapshots, reading
// the catalog from src and serving through srv.
func (a *Agent) SidecarFeed(src xds.Source, srv *xds.Server, log *slog.Logger) *SidecarFeed {
	if log == nil {
		log = a.log
	}
	return &SidecarFeed{a: a, src: src, srv: srv, log: log, wake: make(chan struct{}, 1), known: map[string]bool{}}
}

// Run follows the roots and the intentions and rebuilds the snapshots
// until ctx ends.
func (f *SidecarFeed) Run(ctx context.Context) error {
	return task.Run(ctx, f.followRoots, f.followIntentions, f.loop)
}

func (f *SidecarFeed) nudge() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *SidecarFeed) followRoots(ctx context.Context) error {
	var idx uint64
	backoff := leafBackoffMin
	for ctx.Err() == nil {
		var r rpc.CARootsReply
		q := catalog.QueryOptions{MinIndex: idx, MaxWait: 5 * time.Minute}
		if err := f.a.router.call(ctx, rpc.MethodCARoots, &rpc.ReadRequest{Options: q}, &r); err != nil {
			f.log.Debug("CA roots watch failed; retrying", "in", backoff, "err", err)
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, leafBackoffMax)
			continue
		}
		backoff = leafBackoffMin
		idx = r.Meta.Index
		if idx == 0 {
			idx = 1
		}
		var pems []string
		for _, root := range r.Roots {
			if root.RootCert != "" {
				pems = append(pems, root.RootCert)
			}
		}
		f.mu.Lock()
		changed := f.td != r.TrustDomain || !slices.Equal(f.roots, pems)
		f.td, f.roots = r.TrustDomain, pems
		f.mu.Unlock()
		if changed {
			f.nudge()
		}
	}
	return nil
}

func (f *SidecarFeed) followIntentions(ctx context.Context) error {
	var idx uint64
	backoff := leafBackoffMin
	for ctx.Err() == nil {
		var r rpc.IntentionReply
		q := &rpc.IntentionQuery{Query: rpc.IntentionQueryList, Options: catalog.QueryOptions{MinIndex: idx, MaxWait: 5 * time.Minute}}
		if err := f.a.router.call(ctx, rpc.MethodIntentionQuery, q, &r); err != nil {
			f.log.Debug("intentions watch failed; retrying", "in", backoff, "err", err)
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, leafBackoffMax)
			continue
		}
		backoff = leafBackoffMin
		idx = r.Meta.Index
		if idx == 0 {
			idx = 1
		}
		ixns := make([]*connect.Intention, 0, len(r.Intentions))
		for _, x := range r.Intentions {
			if x != nil {
				ixns = append(ixns, (*connect.Intention)(x))
			}
		}
		f.mu.Lock()
		f.intentions, f.defaultAllow, f.haveIxns = ixns, r.DefaultAllow, true
		f.mu.Unlock()
		f.nudge()
	}
	return nil
}

func (f *SidecarFeed) loop(ctx context.Context) error {
	for {
		viewCh, localCh, leafCh := f.src.Changed(), f.a.local.Changed(), f.a.leaves.Changed()
		f.update(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-viewCh:
		case <-localCh:
		case <-leafCh:
		case <-f.wake:
		}
		if !sleepCtx(ctx, sidecarDebounce) {
			return nil
		}
	}
}

// update sets the snapshot of every local sidecar whose inputs are all
// known, and clears those of sidecars that left.
func (f *SidecarFeed) update(ctx context.Context) {
	f.mu.Lock()
	td, roots, ixns, defaultAllow, haveIxns := f.td, f.roots, f.intentions, f.defaultAllow, f.haveIxns
	f.mu.Unlock()
	present := map[string]bool{}
	for _, s := range f.a.local.Services() {
		if s.Kind != catalog.KindConnectProxy || s.Proxy == nil {
			continue
		}
		present[s.ID] = true
		// Asking for the leaf starts its renewal, whatever else is missing.
		leaf := f.a.leaves.Current(s.Proxy.DestinationServiceName)
		if leaf == nil || td == "" || len(roots) == 0 || !haveIxns {
			continue
		}
		in, err := f.input(s, td, roots, ixns, defaultAllow)
		if err != nil {
			f.log.Error("sidecar snapshot not built", "sidecar", s.ID, "err", err)
			continue
		}
		in.LeafCertPEM, in.LeafKeyPEM = leaf.CertPEM, leaf.PrivateKeyPEM
		res, err := xds.BuildSidecar(in)
		if err != nil {
			f.log.Error("sidecar snapshot not built", "sidecar", s.ID, "err", err)
			continue
		}
		changed, err := f.srv.SetSnapshot(ctx, s.ID, res)
		if err != nil {
			f.log.Error("sidecar snapshot not set", "sidecar", s.ID, "err", err)
			continue
		}
		f.known[s.ID] = true
		if changed {
			f.log.Debug("sidecar snapshot updated", "sidecar", s.ID)
		}
	}
	for id := range f.known {
		if !present[id] {
			f.srv.Clear(id)
			delete(f.known, id)
		}
	}
}

// input is a sidecar's xDS input, certificates aside.
func (f *SidecarFeed) input(s *catalog.Service, td string, roots []string, ixns []*connect.Intention, defaultAllow bool) (*xds.SidecarInput, error) {
	dc := f.a.cfg.Datacenter
	p := s.Proxy
	opts, err := f.a.cfg.ProxyDefaults.options(p)
	if err != nil {
		return nil, fmt.Errorf("proxy config: %w", err)
	}
	in := &xds.SidecarInput{
		ProxyID:             s.ID,
		Service:             p.DestinationServiceName,
		PublicPort:          s.Port,
		LocalServiceAddress: p.LocalServiceAddress,
		LocalServicePort:    p.LocalServicePort,
		TrustDomain:         td,
		Datacenter:          dc,
		RootsPEM:            roots,
		DefaultAllow:        defaultAllow,
		Options:             opts,
	}
	if net.ParseIP(s.Address) != nil {
		in.PublicAddress = s.Address
	}
	if net.ParseIP(in.LocalServiceAddress) == nil {
		in.LocalServiceAddress = "127.0.0.1"
	}
	for _, x := range connect.Filter(ixns, connect.MatchDestination, p.DestinationServiceName) {
		if x.SourceNS != connect.DefaultNamespace && x.SourceNS != connect.WildcardSpecifier {
			continue // no workload of another namespace exists
		}
		in.Intentions = append(in.Intentions, xds.Intention{Source: x.SourceName, Allow: x.Action == connect.IntentionActionAllow})
	}
	for _, u := range p.Upstreams {
		in.Upstreams = append(in.Upstreams, xds.Upstream{
			Name:             u.DestinationName,
			LocalBindAddress: u.LocalBindAddress,
			LocalBindPort:    u.LocalBindPort,
			SpiffeID:         xds.SpiffeID(td, dc, u.DestinationName),
			Endpoints:        f.upstreamEndpoints(u.DestinationName),
		})
	}
	return in, nil
}

// upstreamEndpoints are the healthy sidecars of a service's healthy
// instances.
func (f *SidecarFeed) upstreamEndpoints(service string) []xds.Endpoint {
	healthy := map[[2]string]bool{} // node, service ID
	for _, csn := range f.src.ServiceInstances(service) {
		if catalog.AggregatedStatus(csn.Checks) != catalog.HealthCritical {
			healthy[[2]string{csn.Node.Name, csn.Service.ID}] = true
		}
	}
	var eps []xds.Endpoint
	for _, csn := range f.src.ServiceInstances(service + sidecarSuffix) {
		s := csn.Service
		if !s.IsProxyFor(service) || s.Port == 0 {
			continue
		}
		if catalog.AggregatedStatus(csn.Checks) == catalog.HealthCritical || !healthy[[2]string{csn.Node.Name, s.Proxy.DestinationServiceID}] {
			continue
		}
		addr := s.Address
		if addr == "" {
			addr = csn.Node.Address
		}
		if net.ParseIP(addr) == nil {
			continue // Envoy's STATIC/EDS endpoints must be IPs
		}
		eps = append(eps, xds.Endpoint{Address: addr, Port: s.Port, Node: csn.Node.Name})
	}
	return eps
}
