package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/internal/metrics"
)

// Server serves xDS over gRPC: ADS (state of the world and delta) and the
// per-type discovery services, from one snapshot per node ID. A proxy's
// node ID is the one its bootstrap gives (a sidecar's service ID, or the
// ID in a gRPC application's bootstrap).
type Server struct {
	logger *slog.Logger
	cache  cache.SnapshotCache
	xds    serverv3.Server

	mu       sync.Mutex
	versions map[string]map[resource.Type]string // node ID -> type -> version last set

	auth *streamAuth // nil: every stream is served

	connected atomic.Int64
	rejected  atomic.Uint64
	pushes    atomic.Uint64

	// Push latency: when each group's version of each type was set, and
	// which types each state-of-the-world stream has already been sent
	// (its first response is the initial fetch, not a push). Under mu.
	setAt       map[string]map[string]versionAt // node ID (group) -> type URL -> version
	streamTypes map[int64]map[string]bool
	pushLatency prometheus.Histogram
	nacks       *prometheus.CounterVec
}

type versionAt struct {
	version string
	at      time.Time
}

// NewServer returns a Server with no snapshots. A proxy that connects
// before its snapshot is set waits for it.
func NewServer(logger *slog.Logger) *Server {
	s := &Server{
		logger: logger,
		// ads=false: a proxyless gRPC client asks for the few services it
		// dials, while its group's snapshot holds every service; the
		// cache's ADS mode would answer only requests naming every
		// resource of the snapshot.
		cache:       cache.NewSnapshotCache(false, groupHash{}, cacheLogger{logger}),
		versions:    map[string]map[resource.Type]string{},
		setAt:       map[string]map[string]versionAt{},
		streamTypes: map[int64]map[string]bool{},
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "xds", Name: "push_duration_seconds",
			Help:    "Time from a changed snapshot to its response being sent on a state-of-the-world stream that already had that type (pushes, not initial fetches).",
			Buckets: metrics.LatencyBuckets}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "xds", Name: "nacks_total",
			Help: "Updates a client rejected (a request with error_detail), by resource type."}, []string{"type"}),
	}
	open := func(ctx context.Context, id int64, typeURL string) error {
		s.connected.Add(1)
		s.auth.open(ctx, id)
		s.logger.Debug("xds stream opened", "stream", id, "type", typeURL)
		return nil
	}
	closed := func(id int64, node *core.Node) {
		s.connected.Add(-1)
		s.mu.Lock()
		delete(s.streamTypes, id)
		s.mu.Unlock()
		s.auth.closed(id)
		s.logger.Debug("xds stream closed", "stream", id, "node", node.GetId())
	}
	callbacks := serverv3.CallbackFuncs{
		StreamOpenFunc:        open,
		StreamClosedFunc:      closed,
		DeltaStreamOpenFunc:   open,
		DeltaStreamClosedFunc: closed,
		StreamRequestFunc: func(id int64, req *discovery.DiscoveryRequest) error {
			if err := s.auth.check(id, req.GetNode().GetId()); err != nil {
				s.logger.Warn("xds stream refused", "stream", id, "node", req.GetNode().GetId(), "error", err)
				return err
			}
			if st := req.GetErrorDetail(); st != nil {
				s.nacks.WithLabelValues(typeLabel(req.GetTypeUrl())).Inc()
				s.logger.Warn("xds update rejected by client", "stream", id, "node", req.GetNode().GetId(),
					"type", req.GetTypeUrl(), "version", req.GetVersionInfo(), "error", st.GetMessage())
			}
			return nil
		},
		StreamResponseFunc: s.onResponse,
		StreamDeltaRequestFunc: func(id int64, req *discovery.DeltaDiscoveryRequest) error {
			if err := s.auth.check(id, req.GetNode().GetId()); err != nil {
				s.logger.Warn("xds stream refused", "stream", id, "node", req.GetNode().GetId(), "error", err)
				return err
			}
			if st := req.GetErrorDetail(); st != nil {
				s.nacks.WithLabelValues(typeLabel(req.GetTypeUrl())).Inc()
				s.logger.Warn("xds delta update rejected by client", "stream", id, "node", req.GetNode().GetId(),
					"type", req.GetTypeUrl(), "error", st.GetMessage())
			}
			return nil
		},
	}
	for _, name := range typeNames { // every series from the start, at 0
		s.nacks.WithLabelValues(name)
	}
	// The server's context only scopes its internal goroutines per stream;
	// streams end with their gRPC server.
	s.xds = serverv3.NewServer(context.Background(), s.cache, callbacks)
	return s
}

// Register registers ADS (with delta) and the per-type discovery services
// (LDS, RDS, CDS, EDS, SDS) on grpcServer.
func (s *Server) Register(grpcServer *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(grpcServer, s.xds)
	listenerservice.RegisterListenerDiscoveryServiceServer(grpcServer, s.xds)
	routeservice.RegisterRouteDiscoveryServiceServer(grpcServer, s.xds)
	clusterservice.RegisterClusterDiscoveryServiceServer(grpcServer, s.xds)
	endpointservice.RegisterEndpointDiscoveryServiceServer(grpcServer, s.xds)
	secretservice.RegisterSecretDiscoveryServiceServer(grpcServer, s.xds)
}

// SetSnapshot makes res the resources served to nodeID. Each type's version
// is a hash of its resources, so a client is pushed only the types that
// changed, and an identical set changes nothing: changed is false and no
// client sees an update. Every resource is validated again here; a set
// with an invalid resource is refused as a whole (the previous snapshot
// stays), logged and counted in Rejected, and the error names the resource.
func (s *Server) SetSnapshot(ctx context.Context, nodeID string, res map[resource.Type][]types.Resource) (changed bool, err error) {
	if nodeID == "" {
		return false, fmt.Errorf("set snapshot: empty node ID")
	}
	// Copy the lists: checkResources sorts them in place.
	res = maps.Clone(res)
	for typ, list := range res {
		res[typ] = append([]types.Resource(nil), list...)
	}
	if err := checkResources(res); err != nil {
		s.rejected.Add(1)
		s.logger.Error("xds snapshot refused", "node", nodeID, "error", err)
		return false, fmt.Errorf("set snapshot for %q: %w", nodeID, err)
	}
	versions := make(map[resource.Type]string, len(res))
	snap := &cache.Snapshot{}
	for typ, list := range res {
		v, err := hashResources(list)
		if err != nil {
			return false, fmt.Errorf("set snapshot for %q: %w", nodeID, err)
		}
		versions[typ] = v
		snap.Resources[cache.GetResponseType(typ)] = cache.NewResources(v, list)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.versions[nodeID]; ok && maps.Equal(old, versions) {
		return false, nil
	}
	if err := s.cache.SetSnapshot(ctx, nodeID, snap); err != nil {
		return false, fmt.Errorf("set snapshot for %q: %w", nodeID, err)
	}
	now := time.Now()
	set := s.setAt[nodeID]
	if set == nil {
		set = map[string]versionAt{}
		s.setAt[nodeID] = set
	}
	for typ, v := range versions {
		if set[typ].version != v {
			set[typ] = versionAt{version: v, at: now}
		}
	}
	s.versions[nodeID] = versions
	s.pushes.Add(1)
	s.logger.Debug("xds snapshot set", "node", nodeID, "versions", versions)
	return true, nil
}

// Collectors are the xDS server's metrics: connected streams, snapshots
// pushed (only when something changed) and snapshots refused by
// validation.
func (s *Server) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "xds", Name: "connected_streams",
			Help: "Open xDS streams (sidecars and proxyless gRPC clients)."}, func() float64 { return float64(s.connected.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "warren", Subsystem: "xds", Name: "snapshots_pushed_total",
			Help: "Snapshots that changed and were handed to connected clients."}, func() float64 { return float64(s.pushes.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "warren", Subsystem: "xds", Name: "snapshots_rejected_total",
			Help: "Snapshots refused because a resource failed validation (never served)."}, func() float64 { return float64(s.rejected.Load()) }),
		s.pushLatency,
		s.nacks,
	}
}

// Clear drops nodeID's snapshot, for when its proxy is deregistered.
// Connected clients keep what they have; a new snapshot is pushed in full.
func (s *Server) Clear(nodeID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache.ClearSnapshot(nodeID)
	delete(s.versions, nodeID)
	delete(s.setAt, nodeID)
}

// onResponse observes push latency: a response on a stream that was
// already sent this type, carrying the version last set for its node.
func (s *Server) onResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	typ := resp.GetTypeUrl()
	s.mu.Lock()
	seen := s.streamTypes[id]
	if seen == nil {
		seen = map[string]bool{}
		s.streamTypes[id] = seen
	}
	push := seen[typ]
	seen[typ] = true
	va, ok := s.setAt[groupHash{}.ID(req.GetNode())][typ]
	s.mu.Unlock()
	if push && ok && va.version == resp.GetVersionInfo() {
		s.pushLatency.Observe(time.Since(va.at).Seconds())
	}
}

// typeLabel is a bounded label for a type URL: the builders' name for the
// types they build, "other" for anything else a client names.
func typeLabel(typeURL string) string {
	if n, ok := typeNames[typeURL]; ok {
		return n
	}
	return "other"
}

// Connected returns the number of open xDS streams.
func (s *Server) Connected() int { return int(s.connected.Load()) }

// Rejected returns how many snapshots were refused for failing validation.
func (s *Server) Rejected() uint64 { return s.rejected.Load() }

// hashResources derives a type's version from its resources (sorted by
// name by checkResources), marshalled deterministically.
func hashResources(list []types.Resource) (string, error) {
	h := sha256.New()
	var buf []byte
	for _, r := range list {
		var err error
		buf, err = deterministic.MarshalAppend(buf[:0], r)
		if err != nil {
			return "", fmt.Errorf("hash %s %q: %w", typeNames[resource.APITypePrefix+string(r.ProtoReflect().Descriptor().FullName())], resourceName(r), err)
		}
		// Length-prefix each resource so that boundaries count.
		fmt.Fprintf(h, "%d:", len(buf))
		h.Write(buf)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// cacheLogger adapts slog to go-control-plane's logger. The cache logs
// every watch at debug level, which stays at debug here.
type cacheLogger struct{ l *slog.Logger }

func (c cacheLogger) Debugf(format string, args ...any) {
	// The cache calls this on every watch; format only when it is kept.
	if c.l.Enabled(context.Background(), slog.LevelDebug) {
		c.l.Debug(fmt.Sprintf(format, args...))
	}
}
func (c cacheLogger) Infof(format string, args ...any)  { c.l.Info(fmt.Sprintf(format, args...)) }
func (c cacheLogger) Warnf(format string, args ...any)  { c.l.Warn(fmt.Sprintf(format, args...)) }
func (c cacheLogger) Errorf(format string, args ...any) { c.l.Error(fmt.Sprintf(format, args...)) }
