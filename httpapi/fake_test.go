package httpapi

import (
	"bytes"
	"context"
	"io"
	"maps"
	"slices"
	"sort"
	"sync"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// fakeBackend is an in-memory catalog, just enough to drive the handlers. It
// counts writes so tests can assert that bad input never reached it, and
// records the last query options it was given.
type fakeBackend struct {
	mu       sync.Mutex
	index    uint64
	nodes    map[string]*catalog.Node
	services map[string]map[string]*catalog.Service // node -> service ID
	checks   map[string]map[string]*catalog.Check   // node -> check ID
	writes   int
	query    catalog.QueryOptions
	snapshot []byte
	removed  []string
	// err, when set, is returned by every call.
	err error
	// block makes reads with a MinIndex wait for their context to end;
	// blocked receives the context's error when they do.
	block   bool
	blocked chan error
	// The mesh identity calls' last arguments.
	lastCAConfig       *api.CAConfiguration
	lastIntentionQuery *api.IntentionQuery
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{
		nodes:    map[string]*catalog.Node{},
		services: map[string]map[string]*catalog.Service{},
		checks:   map[string]map[string]*catalog.Check{},
		blocked:  make(chan error, 1),
	}
}

func (f *fakeBackend) Writes() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

func (f *fakeBackend) LastQuery() catalog.QueryOptions {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.query
}

// read records q and returns the meta of a read, or the injected error.
// The caller holds f.mu.
func (f *fakeBackend) read(ctx context.Context, q catalog.QueryOptions) (catalog.QueryMeta, error) {
	f.query = q
	if f.block && q.MinIndex > 0 {
		f.mu.Unlock()
		<-ctx.Done()
		f.blocked <- ctx.Err()
		f.mu.Lock()
		return catalog.QueryMeta{}, ctx.Err()
	}
	return catalog.QueryMeta{Index: f.index, KnownLeader: true}, f.err
}

func (f *fakeBackend) Register(_ context.Context, r *catalog.Registration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.err != nil {
		return f.err
	}
	f.index++
	name := r.Node.Name
	if _, ok := f.nodes[name]; !ok || !r.SkipNodeUpdate {
		n := r.Node
		n.CreateIndex, n.ModifyIndex = f.index, f.index
		f.nodes[name] = &n
	}
	if f.services[name] == nil {
		f.services[name] = map[string]*catalog.Service{}
		f.checks[name] = map[string]*catalog.Check{}
	}
	if s := r.Service; s != nil {
		c := *s
		c.CreateIndex, c.ModifyIndex = f.index, f.index
		f.services[name][s.ID] = &c
	}
	for _, ch := range r.Checks {
		c := *ch
		if s := f.services[name][c.ServiceID]; s != nil {
			c.ServiceName, c.ServiceTags = s.Name, s.Tags
		}
		c.CreateIndex, c.ModifyIndex = f.index, f.index
		f.checks[name][c.CheckID] = &c
	}
	return nil
}

func (f *fakeBackend) Deregister(_ context.Context, d *catalog.Deregistration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	if f.err != nil {
		return f.err
	}
	f.index++
	switch {
	case d.CheckID != "":
		delete(f.checks[d.Node], d.CheckID)
	case d.ServiceID != "":
		delete(f.services[d.Node], d.ServiceID)
		maps.DeleteFunc(f.checks[d.Node], func(_ string, c *catalog.Check) bool { return c.ServiceID == d.ServiceID })
	default:
		delete(f.nodes, d.Node)
		delete(f.services, d.Node)
		delete(f.checks, d.Node)
	}
	return nil
}

func hasMeta(n *catalog.Node, want map[string]string) bool {
	for k, v := range want {
		if n.Meta[k] != v {
			return false
		}
	}
	return true
}

func (f *fakeBackend) sortedNodes(meta map[string]string) []*catalog.Node {
	var out []*catalog.Node
	for _, name := range slices.Sorted(maps.Keys(f.nodes)) {
		if n := f.nodes[name]; hasMeta(n, meta) {
			out = append(out, n)
		}
	}
	return out
}

func (f *fakeBackend) Nodes(ctx context.Context, q catalog.QueryOptions, meta map[string]string) ([]*catalog.Node, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	return f.sortedNodes(meta), m, err
}

func (f *fakeBackend) Services(ctx context.Context, q catalog.QueryOptions, meta map[string]string) (map[string][]string, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	out := map[string][]string{}
	for _, n := range f.sortedNodes(meta) {
		for _, s := range f.services[n.Name] {
			out[s.Name] = append(out[s.Name], s.Tags...)
		}
	}
	for name, tags := range out {
		sort.Strings(tags)
		out[name] = slices.Compact(tags)
	}
	return out, m, err
}

func (f *fakeBackend) instances(service string, tags []string) []catalog.ServiceNode {
	var out []catalog.ServiceNode
	for _, n := range f.sortedNodes(nil) {
		for _, id := range slices.Sorted(maps.Keys(f.services[n.Name])) {
			s := f.services[n.Name][id]
			if s.Name != service || slices.ContainsFunc(tags, func(t string) bool { return !slices.Contains(s.Tags, t) }) {
				continue
			}
			out = append(out, catalog.ServiceNode{Node: n, Service: s})
		}
	}
	return out
}

func (f *fakeBackend) ServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string) ([]catalog.ServiceNode, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	return f.instances(service, tags), m, err
}

func (f *fakeBackend) NodeServices(ctx context.Context, q catalog.QueryOptions, node string) (*catalog.Node, []*catalog.Service, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	svcs := f.services[node]
	return f.nodes[node], slices.Collect(maps.Values(svcs)), m, err
}

func (f *fakeBackend) allChecks(keep func(*catalog.Check) bool) []*catalog.Check {
	var out []*catalog.Check
	for _, n := range f.sortedNodes(nil) {
		for _, id := range slices.Sorted(maps.Keys(f.checks[n.Name])) {
			if c := f.checks[n.Name][id]; keep(c) {
				out = append(out, c)
			}
		}
	}
	return out
}

func (f *fakeBackend) CheckServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string, passingOnly bool) ([]catalog.CheckServiceNode, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	var out []catalog.CheckServiceNode
	for _, sn := range f.instances(service, tags) {
		cs := f.allChecks(func(c *catalog.Check) bool {
			return c.Node == sn.Node.Name && (c.ServiceID == "" || c.ServiceID == sn.Service.ID)
		})
		if passingOnly && catalog.AggregatedStatus(cs) != catalog.HealthPassing {
			continue
		}
		out = append(out, catalog.CheckServiceNode{Node: sn.Node, Service: sn.Service, Checks: cs})
	}
	return out, m, err
}

func (f *fakeBackend) ServiceChecks(ctx context.Context, q catalog.QueryOptions, service string) ([]*catalog.Check, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	return f.allChecks(func(c *catalog.Check) bool { return c.ServiceName == service }), m, err
}

func (f *fakeBackend) NodeChecks(ctx context.Context, q catalog.QueryOptions, node string) ([]*catalog.Check, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	return f.allChecks(func(c *catalog.Check) bool { return c.Node == node }), m, err
}

func (f *fakeBackend) ChecksInState(ctx context.Context, q catalog.QueryOptions, state string) ([]*catalog.Check, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read(ctx, q)
	return f.allChecks(func(c *catalog.Check) bool { return state == catalog.HealthAny || c.Status == state }), m, err
}

func (f *fakeBackend) Leader(context.Context) (string, error) { return "10.0.0.1:8300", f.err }

func (f *fakeBackend) Peers(context.Context) ([]string, error) {
	return []string{"10.0.0.1:8300", "10.0.0.2:8300", "10.0.0.3:8300"}, f.err
}

func (f *fakeBackend) RaftConfiguration(context.Context) (*RaftConfiguration, error) {
	return &RaftConfiguration{Index: 7, Servers: []RaftServer{
		{ID: "a", Node: "server1", Address: "10.0.0.1:8300", Leader: true, Voter: true},
		{ID: "b", Node: "server2", Address: "10.0.0.2:8300", Voter: true},
	}}, f.err
}

func (f *fakeBackend) RemovePeer(_ context.Context, id, address string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	f.removed = append(f.removed, id+address)
	return f.err
}

func (f *fakeBackend) SnapshotSave(_ context.Context, w io.Writer) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	_, err := w.Write(f.snapshot)
	return err
}

func (f *fakeBackend) SnapshotRestore(_ context.Context, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.writes++
	f.snapshot = bytes.Clone(b)
	return f.err
}

func (f *fakeBackend) Self() Self {
	return Self{NodeName: "agent1", NodeID: "8d2c5f0e-3f7e-4c47-9d4a-0e3f3c2b1a00", Datacenter: "dc1",
		Server: true, Version: "0.1.0", MemberAddr: "10.0.0.1", MemberPort: 8301}
}
