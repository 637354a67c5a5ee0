// Package view is the agent's local view of the catalog: a watch stream
// from a server keeps it current (a snapshot, then changes), and DNS and
// other local readers answer from it without asking a server. It imports
// catalog, rpc and internal/*; package agent wires it.
package view

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/rpc"
)

// Servers lists the RPC addresses of the servers to watch, best first.
type Servers func() []string

// Config configures a View.
type Config struct {
	Pool    *rpc.Pool
	Servers Servers
	Logger  *slog.Logger
	// RetryInterval is the pause before reconnecting after a failure; 0 =
	// 500ms.
	RetryInterval time.Duration
}

// View is an in-memory copy of every service's instances and every node.
// Readers get slices that are never modified after they are handed out;
// nothing they call blocks on the network.
type View struct {
	cfg Config
	log *slog.Logger

	// data is guarded by dmu; writers replace a service's list rather than
	// modify it, so readers may keep what they got.
	dmu        sync.RWMutex
	generation atomic.Uint64
	index      atomic.Uint64
	services   map[string]*service // by lowercased name
	nodes      map[string]*catalog.Node

	mu          sync.Mutex
	lastEvent   time.Time
	lostAt      time.Time
	connected   bool
	connectedTo string
	changed     chan struct{}
}

// service holds one service's instances by node and ID, and the sorted
// list readers get.
type service struct {
	byKey map[instanceKey]catalog.CheckServiceNode
	list  []catalog.CheckServiceNode
}

type instanceKey struct{ node, id string }

func (s *service) rebuild() {
	list := make([]catalog.CheckServiceNode, 0, len(s.byKey))
	for _, csn := range s.byKey {
		list = append(list, csn)
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Node.Name != list[j].Node.Name {
			return list[i].Node.Name < list[j].Node.Name
		}
		return list[i].Service.ID < list[j].Service.ID
	})
	s.list = list
}

// New returns an empty view; Run fills it.
func New(cfg Config) *View {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 500 * time.Millisecond
	}
	return &View{cfg: cfg, log: cfg.Logger, changed: make(chan struct{}),
		services: map[string]*service{}, nodes: map[string]*catalog.Node{}}
}

// Run follows a server's watch stream until ctx ends, moving to another
// server when the stream breaks; the view keeps its content meanwhile.
func (v *View) Run(ctx context.Context) error {
	next := 0
	for {
		servers := v.cfg.Servers()
		if len(servers) > 0 {
			addr := servers[next%len(servers)]
			next++
			err := v.follow(ctx, addr)
			if ctx.Err() != nil {
				return nil
			}
			v.setConnected(false, "")
			v.log.Debug("catalog watch stream ended; reconnecting", "server", addr, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(v.cfg.RetryInterval):
		}
	}
}

func (v *View) follow(ctx context.Context, addr string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := v.cfg.Pool.Watch(ctx, addr)
	if err != nil {
		return err
	}
	for {
		ev, err := stream.Recv()
		if err != nil {
			return err
		}
		var body rpc.WatchBody
		if err := json.Unmarshal(ev.Body, &body); err != nil {
			return fmt.Errorf("decode watch event: %w", err)
		}
		v.apply(ev.Index, ev.Snapshot, &body)
		v.setConnected(true, addr)
	}
}

// apply brings the view up to an event.
func (v *View) apply(index uint64, snapshot bool, body *rpc.WatchBody) {
	v.dmu.Lock()
	if snapshot {
		v.services = make(map[string]*service, len(body.Services))
		v.nodes = make(map[string]*catalog.Node, len(body.Nodes))
		for name, csns := range body.Services {
			svc := &service{byKey: make(map[instanceKey]catalog.CheckServiceNode, len(csns))}
			for _, csn := range csns {
				svc.byKey[instanceKey{csn.Node.Name, csn.Service.ID}] = csn
			}
			v.services[strings.ToLower(name)] = svc
		}
	}
	touched := map[string]bool{}
	for _, k := range body.Removed {
		name := strings.ToLower(k.Service)
		if svc := v.services[name]; svc != nil {
			delete(svc.byKey, instanceKey{k.Node, k.ID})
			touched[name] = true
		}
	}
	for _, csn := range body.Upserts {
		name := strings.ToLower(csn.Service.Name)
		svc := v.services[name]
		if svc == nil {
			svc = &service{byKey: map[instanceKey]catalog.CheckServiceNode{}}
			v.services[name] = svc
		}
		svc.byKey[instanceKey{csn.Node.Name, csn.Service.ID}] = csn
		touched[name] = true
	}
	if snapshot {
		for name := range v.services {
			touched[name] = true
		}
	}
	for name := range touched {
		svc := v.services[name]
		if len(svc.byKey) == 0 {
			delete(v.services, name)
			continue
		}
		svc.rebuild()
	}
	for name, n := range body.Nodes {
		name = strings.ToLower(name)
		if n == nil {
			delete(v.nodes, name)
		} else {
			v.nodes[name] = n
		}
	}
	v.index.Store(index)
	v.generation.Add(1)
	v.dmu.Unlock()

	v.mu.Lock()
	v.lastEvent = time.Now()
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
}

func (v *View) setConnected(ok bool, addr string) {
	v.mu.Lock()
	if v.connected && !ok {
		v.lostAt = time.Now()
	}
	v.connected, v.connectedTo = ok, addr
	v.mu.Unlock()
}

// Generation changes whenever the view's content changes.
func (v *View) Generation() uint64 { return v.generation.Load() }

// Index is the Raft index the view is current to.
func (v *View) Index() uint64 { return v.index.Load() }

// ServiceInstances returns every instance of a service with its checks,
// sorted by node and ID; the name matches case-insensitively. The result is
// shared: callers must not modify it.
func (v *View) ServiceInstances(name string) []catalog.CheckServiceNode {
	v.dmu.RLock()
	defer v.dmu.RUnlock()
	if svc := v.services[strings.ToLower(name)]; svc != nil {
		return svc.list
	}
	return nil
}

// Node returns a node by name, matched case-insensitively.
func (v *View) Node(name string) (*catalog.Node, bool) {
	v.dmu.RLock()
	defer v.dmu.RUnlock()
	n, ok := v.nodes[strings.ToLower(name)]
	return n, ok
}

// Nodes returns every node, sorted by name.
func (v *View) Nodes() []*catalog.Node {
	v.dmu.RLock()
	out := make([]*catalog.Node, 0, len(v.nodes))
	for _, n := range v.nodes {
		out = append(out, n)
	}
	v.dmu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ServiceNames returns every service name, lowercased and sorted.
func (v *View) ServiceNames() []string {
	v.dmu.RLock()
	out := make([]string, 0, len(v.services))
	for name := range v.services {
		out = append(out, name)
	}
	v.dmu.RUnlock()
	sort.Strings(out)
	return out
}

// Staleness is 0 while the stream to a server is up (the view is then as
// fresh as that server); otherwise how long it has been down.
func (v *View) Staleness() (since time.Duration, connected bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.connected || v.lostAt.IsZero() {
		return 0, v.connected
	}
	return time.Since(v.lostAt), false
}

// Changed returns a channel closed at the next change.
func (v *View) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}
