// Package view is the agent's local view of the catalog: a watch stream
// from a server keeps it current (a snapshot, then changes), and DNS and
// other local readers answer from it without asking a server. It imports
// catalog, rpc and internal/*; package agent wires it.
package view

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
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
	// services holds each service's instances sorted by node and ID, the
	// list readers get. No per-instance map: with rows shared (rows.go)
	// the list is most of a view's memory per instance, and a change
	// rebuilds the list of one service only.
	services map[string][]catalog.CheckServiceNode // by lowercased name
	nodes    map[string]*catalog.Node

	mu          sync.Mutex
	lastEvent   time.Time
	lostAt      time.Time
	connected   bool
	connectedTo string
	changed     chan struct{}
}

type instanceKey struct{ node, id string }

func keyOf(csn catalog.CheckServiceNode) instanceKey {
	return instanceKey{csn.Node.Name, csn.Service.ID}
}

func sortInstances(list []catalog.CheckServiceNode) {
	sort.Slice(list, func(i, j int) bool {
		if list[i].Node.Name != list[j].Node.Name {
			return list[i].Node.Name < list[j].Node.Name
		}
		return list[i].Service.ID < list[j].Service.ID
	})
}

// change is what one event does to one service.
type change struct {
	removed map[instanceKey]bool
	upserts map[instanceKey]catalog.CheckServiceNode
}

// applied returns a service's new list, or nil if none is left.
func (c *change) applied(old []catalog.CheckServiceNode) []catalog.CheckServiceNode {
	list := make([]catalog.CheckServiceNode, 0, len(old)+len(c.upserts))
	for _, csn := range old {
		k := keyOf(csn)
		if _, up := c.upserts[k]; !up && !c.removed[k] {
			list = append(list, csn)
		}
	}
	for _, csn := range c.upserts {
		list = append(list, csn)
	}
	if len(list) == 0 {
		return nil
	}
	sortInstances(list)
	return slices.Clip(list)
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
		services: map[string][]catalog.CheckServiceNode{}, nodes: map[string]*catalog.Node{}}
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
		body, err := decodeEvent(ev.Body)
		if err != nil {
			return fmt.Errorf("decode watch event %d from %s: %w", ev.Index, addr, err)
		}
		v.apply(ev.Index, ev.Snapshot, body)
		v.setConnected(true, addr)
	}
}

// apply brings the view up to an event.
func (v *View) apply(index uint64, snapshot bool, ev *event) {
	v.dmu.Lock()
	if snapshot {
		v.services = make(map[string][]catalog.CheckServiceNode, len(ev.services))
		v.nodes = make(map[string]*catalog.Node, len(ev.nodes))
		for name, list := range ev.services {
			if len(list) == 0 {
				continue
			}
			sortInstances(list)
			v.services[intern(strings.ToLower(name))] = list
		}
	}
	changes := map[string]*change{}
	changeOf := func(name string) *change {
		c := changes[name]
		if c == nil {
			c = &change{removed: map[instanceKey]bool{}, upserts: map[instanceKey]catalog.CheckServiceNode{}}
			changes[name] = c
		}
		return c
	}
	for _, k := range ev.removed {
		c := changeOf(intern(strings.ToLower(k.Service)))
		key := instanceKey{k.Node, k.ID}
		c.removed[key] = true
		delete(c.upserts, key)
	}
	for _, csn := range ev.upserts {
		c := changeOf(intern(strings.ToLower(csn.Service.Name)))
		key := keyOf(csn)
		c.upserts[key] = csn
		delete(c.removed, key)
	}
	for name, c := range changes {
		if list := c.applied(v.services[name]); list != nil {
			v.services[name] = list
		} else {
			delete(v.services, name)
		}
	}
	for name, n := range ev.nodes {
		name = intern(strings.ToLower(name))
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
	return v.services[strings.ToLower(name)]
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
