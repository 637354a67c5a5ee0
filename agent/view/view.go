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
// Readers get immutable snapshots; nothing they call blocks on the network.
type View struct {
	cfg  Config
	log  *slog.Logger
	data atomic.Pointer[data]

	mu          sync.Mutex
	lastEvent   time.Time
	lostAt      time.Time
	connected   bool
	connectedTo string
	changed     chan struct{}
}

// data is one immutable version of the view.
type data struct {
	generation uint64
	index      uint64
	services   map[string][]catalog.CheckServiceNode
	nodes      map[string]*catalog.Node
}

// New returns an empty view; Run fills it.
func New(cfg Config) *View {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 500 * time.Millisecond
	}
	v := &View{cfg: cfg, log: cfg.Logger, changed: make(chan struct{})}
	v.data.Store(&data{services: map[string][]catalog.CheckServiceNode{}, nodes: map[string]*catalog.Node{}})
	return v
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

// apply builds the next immutable version from the current one.
func (v *View) apply(index uint64, snapshot bool, body *rpc.WatchBody) {
	cur := v.data.Load()
	next := &data{generation: cur.generation + 1, index: index}
	if snapshot {
		next.services = make(map[string][]catalog.CheckServiceNode, len(body.Services))
		next.nodes = make(map[string]*catalog.Node, len(body.Nodes))
	} else {
		next.services = make(map[string][]catalog.CheckServiceNode, len(cur.services)+len(body.Services))
		for k, val := range cur.services {
			next.services[k] = val
		}
		next.nodes = make(map[string]*catalog.Node, len(cur.nodes)+len(body.Nodes))
		for k, val := range cur.nodes {
			next.nodes[k] = val
		}
	}
	// Keys are lowercased: DNS names are case-insensitive.
	for name, csns := range body.Services {
		name = strings.ToLower(name)
		if len(csns) == 0 {
			delete(next.services, name)
		} else {
			next.services[name] = csns
		}
	}
	for name, n := range body.Nodes {
		name = strings.ToLower(name)
		if n == nil {
			delete(next.nodes, name)
		} else {
			next.nodes[name] = n
		}
	}
	v.data.Store(next)
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
func (v *View) Generation() uint64 { return v.data.Load().generation }

// Index is the Raft index the view is current to.
func (v *View) Index() uint64 { return v.data.Load().index }

// ServiceInstances returns every instance of a service with its checks;
// the name matches case-insensitively. The result is shared: callers must
// not modify it.
func (v *View) ServiceInstances(service string) []catalog.CheckServiceNode {
	return v.data.Load().services[strings.ToLower(service)]
}

// Node returns a node by name, matched case-insensitively.
func (v *View) Node(name string) (*catalog.Node, bool) {
	n, ok := v.data.Load().nodes[strings.ToLower(name)]
	return n, ok
}

// Nodes returns every node, sorted by name.
func (v *View) Nodes() []*catalog.Node {
	d := v.data.Load()
	out := make([]*catalog.Node, 0, len(d.nodes))
	for _, n := range d.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// ServiceNames returns every service name, lowercased and sorted.
func (v *View) ServiceNames() []string {
	d := v.data.Load()
	out := make([]string, 0, len(d.services))
	for name := range d.services {
		out = append(out, name)
	}
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
