package xds

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"

	"github.com/warren-mesh/warren/catalog"
)

// GRPCNodePrefix starts the node ID of every proxyless gRPC client; they
// all share one snapshot (every service's healthy endpoints), kept under
// GRPCGroup.
const (
	GRPCNodePrefix = "grpc-client"
	GRPCGroup      = "grpc-client"
)

// groupHash keys the snapshot cache: proxyless gRPC clients share one
// group, each sidecar has its own.
type groupHash struct{}

func (groupHash) ID(node *core.Node) string {
	if node == nil {
		return ""
	}
	if strings.HasPrefix(node.GetId(), GRPCNodePrefix) {
		return GRPCGroup
	}
	return node.GetId()
}

var _ cache.NodeHash = groupHash{}

// Source is what the proxyless gRPC feed reads: the agent's local view of
// the catalog (or a server's own store). Changed returns a channel closed
// at the next change.
type Source interface {
	ServiceNames() []string
	ServiceInstances(name string) []catalog.CheckServiceNode
	Changed() <-chan struct{}
}

// GRPCFeed keeps the proxyless gRPC snapshot equal to the healthy
// instances of every service in a Source.
type GRPCFeed struct {
	Source     Source
	Server     *Server
	Datacenter string
	Logger     *slog.Logger
}

// feedDebounce coalesces bursts of catalog changes into one snapshot.
const feedDebounce = 5 * time.Millisecond

// Run rebuilds the snapshot on every change of the source until ctx ends.
func (f *GRPCFeed) Run(ctx context.Context) error {
	for {
		changed := f.Source.Changed()
		if err := f.update(ctx); err != nil {
			f.Logger.Error("proxyless gRPC snapshot not updated", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(feedDebounce):
		}
	}
}

func (f *GRPCFeed) update(ctx context.Context) error {
	in := &GRPCInput{Services: map[string][]Endpoint{}, Datacenter: f.Datacenter}
	for _, name := range f.Source.ServiceNames() {
		var eps []Endpoint
		for _, csn := range f.Source.ServiceInstances(name) {
			if catalog.AggregatedStatus(csn.Checks) == catalog.HealthCritical || csn.Service.Port == 0 {
				continue
			}
			addr := csn.Service.Address
			if addr == "" {
				addr = csn.Node.Address
			}
			if net.ParseIP(addr) == nil {
				continue // gRPC endpoints must be IPs
			}
			eps = append(eps, Endpoint{Address: addr, Port: csn.Service.Port, Node: csn.Node.Name})
		}
		if len(eps) > 0 {
			// Views key services by lowercased name, as DNS matches them.
			in.Services[strings.ToLower(name)] = eps
		}
	}
	res, err := BuildGRPC(in)
	if err != nil {
		return err
	}
	_, err = f.Server.SetSnapshot(ctx, GRPCGroup, res)
	return err
}
