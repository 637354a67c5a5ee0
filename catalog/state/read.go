package state

import (
	"cmp"
	"slices"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

// reader is one read: a point-in-time txn, the caller's watch set and the
// running index of the result.
type reader struct {
	tx  *memdb.Txn
	ws  memdb.WatchSet
	idx uint64
	err error
}

func (s *Store) read(ws memdb.WatchSet) *reader {
	g := s.gen()
	if ws != nil {
		ws.Add(g.abandon)
	}
	return &reader{tx: g.db.Txn(false), ws: ws}
}

func (r *reader) watch(ch <-chan struct{}) {
	if r.ws != nil && ch != nil {
		r.ws.Add(ch)
	}
}

// watchLimited adds ch, or fallback once the watch set is large.
func (r *reader) watchLimited(ch, fallback <-chan struct{}) {
	if r.ws != nil {
		r.ws.AddWithLimit(watchLimit, ch, fallback)
	}
}

func (r *reader) see(idx uint64) {
	if idx > r.idx {
		r.idx = idx
	}
}

// tomb folds in the tombstone of a scope key and, if there is one, watches
// it. A missing tombstone is not watched: the lookup of an absent key would
// return the channel of some ancestor in the radix tree, which fires on
// unrelated deletions. Nothing is lost, since every deletion from a scope
// also removes an entry from the index lookup that the read watches.
func (r *reader) tomb(key string) {
	if r.err != nil {
		return
	}
	it, err := r.tx.Get(tableTombstones, "scope", key)
	if err != nil {
		r.err = err
		return
	}
	if raw := it.Next(); raw != nil {
		r.watch(it.WatchCh())
		r.see(raw.(*tombstone).Index)
	}
}

// get iterates an index lookup, watching exactly what it touched.
func get[T any](r *reader, table, index string, args ...any) []T {
	if r.err != nil {
		return nil
	}
	it, err := r.tx.Get(table, index, args...)
	if err != nil {
		r.err = err
		return nil
	}
	r.watch(it.WatchCh())
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out
}

func (r *reader) done() (uint64, error) {
	r.tx.Abort()
	if r.err != nil {
		return 0, r.err
	}
	if r.idx == 0 {
		return 1, nil
	}
	return r.idx, nil
}

// tableCh is the channel that fires on any change to a table's rows.
func (r *reader) tableCh(table string) <-chan struct{} {
	it, err := r.tx.Get(table, "id")
	if err != nil {
		r.err = err
		return nil
	}
	return it.WatchCh()
}

// node returns the node row and watches it alone (falling back to the
// whole nodes table once the watch set is large).
func (r *reader) node(name string, fallback <-chan struct{}) *catalog.Node {
	if r.err != nil {
		return nil
	}
	it, err := r.tx.Get(tableNodes, "id", name)
	if err != nil {
		r.err = err
		return nil
	}
	if fallback == nil {
		r.watch(it.WatchCh())
	} else {
		r.watchLimited(it.WatchCh(), fallback)
	}
	raw := it.Next()
	if raw == nil {
		return nil
	}
	n := raw.(*catalog.Node)
	r.see(n.ModifyIndex)
	return n
}

func metaMatches(n *catalog.Node, want map[string]string) bool {
	if n == nil {
		return len(want) == 0
	}
	for k, v := range want {
		if got, ok := n.Meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func hasTags(s *catalog.Service, tags []string) bool {
	for _, t := range tags {
		if !slices.Contains(s.Tags, t) {
			return false
		}
	}
	return true
}

func cmpChecks(a, b *catalog.Check) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.CheckID, b.CheckID))
}

func cmpServices(a, b *catalog.Service) int {
	return cmp.Or(cmp.Compare(a.Node, b.Node), cmp.Compare(a.ID, b.ID))
}

// Nodes returns every node whose Meta holds all pairs of nodeMeta, sorted by
// name. The index covers all nodes (the filter is applied after).
func (s *Store) Nodes(ws memdb.WatchSet, nodeMeta map[string]string) (uint64, []*catalog.Node, error) {
	r := s.read(ws)
	all := get[*catalog.Node](r, tableNodes, "id")
	r.tomb(scopeNodes)
	out := make([]*catalog.Node, 0, len(all))
	for _, n := range all {
		r.see(n.ModifyIndex)
		if metaMatches(n, nodeMeta) {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b *catalog.Node) int { return cmp.Compare(a.Name, b.Name) })
	idx, err := r.done()
	return idx, out, err
}

// Services returns every service name with the sorted, unique union of its
// instances' tags, counting only instances on nodes whose Meta holds all
// pairs of nodeMeta. The index covers all services and, when nodeMeta is
// given, all nodes.
func (s *Store) Services(ws memdb.WatchSet, nodeMeta map[string]string) (uint64, map[string][]string, error) {
	r := s.read(ws)
	all := get[*catalog.Service](r, tableServices, "id")
	r.tomb(scopeServices)
	var nodes map[string]*catalog.Node
	if len(nodeMeta) > 0 {
		ns := get[*catalog.Node](r, tableNodes, "id")
		r.tomb(scopeNodes)
		nodes = make(map[string]*catalog.Node, len(ns))
		for _, n := range ns {
			r.see(n.ModifyIndex)
			nodes[n.Name] = n
		}
	}
	tagSets := make(map[string]map[string]struct{})
	for _, svc := range all {
		r.see(svc.ModifyIndex)
		if nodes != nil && !metaMatches(nodes[svc.Node], nodeMeta) {
			continue
		}
		set := tagSets[svc.Name]
		if set == nil {
			set = make(map[string]struct{}, len(svc.Tags))
			tagSets[svc.Name] = set
		}
		for _, t := range svc.Tags {
			set[t] = struct{}{}
		}
	}
	out := make(map[string][]string, len(tagSets))
	for name, set := range tagSets {
		tags := make([]string, 0, len(set))
		for t := range set {
			tags = append(tags, t)
		}
		slices.Sort(tags)
		out[name] = tags
	}
	idx, err := r.done()
	return idx, out, err
}

// serviceNodes reads the instances of a service and their nodes; the index
// and watches cover all instances, tags filter afterwards. hosts lists every
// node that runs an instance, in index order.
func (r *reader) serviceNodes(service string, tags []string) (out []catalog.ServiceNode, hosts []string) {
	instances := get[*catalog.Service](r, tableServices, "service", service)
	r.tomb(scopeService(service))
	nodesCh := r.tableCh(tableNodes)
	nodes := make(map[string]*catalog.Node)
	out = make([]catalog.ServiceNode, 0, len(instances))
	for _, svc := range instances {
		r.see(svc.ModifyIndex)
		n, ok := nodes[svc.Node]
		if !ok {
			n = r.node(svc.Node, nodesCh)
			nodes[svc.Node] = n
			hosts = append(hosts, svc.Node)
		}
		if n == nil || !hasTags(svc, tags) {
			continue
		}
		out = append(out, catalog.ServiceNode{Node: n, Service: svc})
	}
	slices.SortFunc(out, func(a, b catalog.ServiceNode) int { return cmpServices(a.Service, b.Service) })
	return out, hosts
}

// ServiceNodes returns the instances of a service that carry all of tags,
// each with its node, sorted by node name then service ID.
func (s *Store) ServiceNodes(ws memdb.WatchSet, service string, tags []string) (uint64, []catalog.ServiceNode, error) {
	r := s.read(ws)
	out, _ := r.serviceNodes(service, tags)
	idx, err := r.done()
	return idx, out, err
}

// NodeServices returns a node and its service instances sorted by ID; the
// node is nil if unknown.
func (s *Store) NodeServices(ws memdb.WatchSet, node string) (uint64, *catalog.Node, []*catalog.Service, error) {
	r := s.read(ws)
	n := r.node(node, nil)
	services := get[*catalog.Service](r, tableServices, "id_prefix", node)
	r.tomb(scopeNode(node))
	for _, svc := range services {
		r.see(svc.ModifyIndex)
	}
	slices.SortFunc(services, cmpServices)
	if n == nil {
		services = nil
	}
	idx, err := r.done()
	return idx, n, services, err
}

// CheckServiceNodes returns the instances of a service that carry all of
// tags, each with its node and the checks that apply to it: its own checks
// and its node's node-level checks, sorted by CheckID. The index and
// watches also cover the node-level checks of every node hosting the service.
func (s *Store) CheckServiceNodes(ws memdb.WatchSet, service string, tags []string) (uint64, []catalog.CheckServiceNode, error) {
	r := s.read(ws)
	sns, hosts := r.serviceNodes(service, tags)
	r.tomb(scopeServiceChecks(service))
	checksCh := r.tableCh(tableChecks)
	// The checks of every hosting node, including nodes whose instances
	// the tag filter dropped (their node-level checks: the index must not
	// depend on tags).
	want := instancesByNode(sns)
	type key struct{ node, id string }
	own := make(map[key][]*catalog.Check, len(sns))
	nodeLevel := make(map[string][]*catalog.Check, len(hosts))
	for _, n := range hosts {
		r.nodeChecks(n, checksCh, func(c *catalog.Check) {
			switch {
			case c.ServiceID == "":
				nodeLevel[n] = append(nodeLevel[n], c)
			case slices.Contains(want[n], c.ServiceID):
				own[key{n, c.ServiceID}] = append(own[key{n, c.ServiceID}], c)
			default:
				return // another service's: not part of this answer or its index
			}
			r.see(c.ModifyIndex)
		})
		r.tomb(scopeNodeLevel(n))
	}
	out := make([]catalog.CheckServiceNode, 0, len(sns))
	for _, sn := range sns {
		nl := nodeLevel[sn.Node.Name]
		sc := own[key{sn.Node.Name, sn.Service.ID}]
		checks := make([]*catalog.Check, 0, len(nl)+len(sc))
		checks = append(checks, nl...)
		checks = append(checks, sc...)
		slices.SortFunc(checks, cmpChecks)
		out = append(out, catalog.CheckServiceNode{Node: sn.Node, Service: sn.Service, Checks: checks})
	}
	idx, err := r.done()
	return idx, out, err
}

func (r *reader) checks(table, index string, tombKey string, args ...any) []*catalog.Check {
	out := get[*catalog.Check](r, table, index, args...)
	r.tomb(tombKey)
	for _, c := range out {
		r.see(c.ModifyIndex)
	}
	slices.SortFunc(out, cmpChecks)
	return out
}

// ServiceChecks returns the checks of every instance of a service, sorted by
// node then CheckID.
func (s *Store) ServiceChecks(ws memdb.WatchSet, service string) (uint64, []*catalog.Check, error) {
	r := s.read(ws)
	sns, hosts := r.serviceNodes(service, nil)
	r.tomb(scopeServiceChecks(service))
	checksCh := r.tableCh(tableChecks)
	want := instancesByNode(sns)
	var out []*catalog.Check
	for _, n := range hosts {
		r.nodeChecks(n, checksCh, func(c *catalog.Check) {
			if c.ServiceID != "" && slices.Contains(want[n], c.ServiceID) {
				r.see(c.ModifyIndex)
				out = append(out, c)
			}
		})
	}
	slices.SortFunc(out, cmpChecks)
	idx, err := r.done()
	return idx, out, err
}

// instancesByNode maps each node of sns to the IDs of its instances there.
func instancesByNode(sns []catalog.ServiceNode) map[string][]string {
	out := make(map[string][]string)
	for _, sn := range sns {
		out[sn.Node.Name] = append(out[sn.Node.Name], sn.Service.ID)
	}
	return out
}

// nodeChecks calls f with each check of node, in CheckID order, watching
// them (or the whole checks table once the watch set is large). It folds in
// no index: f sees the checks its answer uses, so that a change to another
// service's check on the node does not move the answer's index.
func (r *reader) nodeChecks(node string, fallback <-chan struct{}, f func(*catalog.Check)) {
	if r.err != nil {
		return
	}
	it, err := r.tx.Get(tableChecks, "id_prefix", node)
	if err != nil {
		r.err = err
		return
	}
	r.watchLimited(it.WatchCh(), fallback)
	for raw := it.Next(); raw != nil; raw = it.Next() {
		f(raw.(*catalog.Check))
	}
}

// NodeChecks returns every check of a node (node-level and service checks),
// sorted by CheckID.
func (s *Store) NodeChecks(ws memdb.WatchSet, node string) (uint64, []*catalog.Check, error) {
	r := s.read(ws)
	out := r.checks(tableChecks, "id_prefix", scopeNodeChecks(node), node)
	idx, err := r.done()
	return idx, out, err
}

// ChecksInState returns the checks in state (passing, warning, critical, or
// any for all), sorted by node then CheckID.
func (s *Store) ChecksInState(ws memdb.WatchSet, state string) (uint64, []*catalog.Check, error) {
	switch state {
	case catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical, catalog.HealthAny:
	default:
		return 0, nil, invalid("State", "%q is not one of passing, warning, critical, any", state)
	}
	r := s.read(ws)
	var out []*catalog.Check
	if state == catalog.HealthAny {
		out = r.checks(tableChecks, "id", scopeAllChecks)
	} else {
		// No index by status: it would cost memory on every check for a
		// query operators run rarely. Scan, and watch the whole table.
		all := r.checks(tableChecks, "id", scopeCheckState(state))
		for _, c := range all {
			if c.Status == state {
				out = append(out, c)
			}
		}
	}
	idx, err := r.done()
	return idx, out, err
}
