package state

import (
	"sync"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

// changeLogSize bounds the change feed; a reader that falls further behind
// takes a fresh snapshot.
const changeLogSize = 4096

// changeLogKeys bounds the instance and node names the feed holds, all
// entries together: a burst of large batches (64 registrations each) would
// otherwise keep 4,096 × 64 names, some 12 MB, on every server.
const changeLogKeys = 16384

// Change names what one committed write transaction touched: the service
// instances whose row or checks changed, and the nodes whose row or
// node-level checks changed (which changes every instance on them).
type Change struct {
	Index     uint64
	Instances []InstanceKey
	Nodes     []string
}

func (c Change) size() int { return len(c.Instances) + len(c.Nodes) }

// InstanceKey names a service instance: the service it was (or is) an
// instance of, its node and its ID.
type InstanceKey struct {
	Service string
	Node    string
	ID      string
}

// changeLog is a bounded feed of Changes in commit order.
type changeLog struct {
	mu      sync.Mutex
	entries []Change
	keys    int // names in entries (changeLogKeys)
	// floor is the index below which the feed is incomplete (entries
	// dropped).
	floor uint64
	// epoch counts restores: a cursor from another epoch is void.
	epoch  uint64
	notify chan struct{}
}

func newChangeLog() *changeLog { return &changeLog{notify: make(chan struct{})} }

func (l *changeLog) publish(c Change) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, c)
	l.keys += c.size()
	// Drop the oldest while over either bound (always keeping the newest).
	// Re-slicing from the front is O(1); append moves the live entries to
	// a new array when the old one is used up.
	for len(l.entries) > 1 && (len(l.entries) > changeLogSize || l.keys > changeLogKeys) {
		l.floor = l.entries[0].Index
		l.keys -= l.entries[0].size()
		l.entries[0] = Change{}
		l.entries = l.entries[1:]
	}
	close(l.notify)
	l.notify = make(chan struct{})
}

// reset voids every cursor (after a restore).
func (l *changeLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries, l.keys = nil, 0
	l.epoch++
	close(l.notify)
	l.notify = make(chan struct{})
}

// Cursor is a position in the change feed.
type Cursor struct {
	Epoch uint64
	Index uint64
}

// ChangeCursor returns the feed's current position. Take it before reading
// a snapshot: changes after it are then never missed (some may be seen
// twice, which readers of whole services tolerate).
func (s *Store) ChangeCursor() Cursor {
	l := s.changes
	l.mu.Lock()
	defer l.mu.Unlock()
	idx := l.floor
	if n := len(l.entries); n > 0 {
		idx = l.entries[n-1].Index
	}
	return Cursor{Epoch: l.epoch, Index: max(idx, s.LastIndex())}
}

// ChangesSince returns the changes committed after the cursor, a channel
// closed at the next commit, and ok=false when the feed no longer reaches
// back to the cursor (the caller must take a fresh snapshot).
func (s *Store) ChangesSince(c Cursor) (changes []Change, next <-chan struct{}, ok bool) {
	l := s.changes
	l.mu.Lock()
	defer l.mu.Unlock()
	index := c.Index
	if c.Epoch != l.epoch || index < l.floor {
		return nil, l.notify, false
	}
	for i := len(l.entries) - 1; i >= 0 && l.entries[i].Index > index; i-- {
		changes = append(changes, l.entries[i])
	}
	// Oldest first.
	for i, j := 0, len(changes)-1; i < j; i, j = i+1, j-1 {
		changes[i], changes[j] = changes[j], changes[i]
	}
	return changes, l.notify, true
}

// collectChange names what a transaction's tracked changes touched.
func collectChange(idx uint64, cs memdb.Changes) (Change, bool) {
	instances := map[InstanceKey]bool{}
	nodes := map[string]bool{}
	for _, c := range cs {
		for _, obj := range []any{c.Before, c.After} {
			switch o := obj.(type) {
			case *catalog.Service:
				instances[InstanceKey{Service: o.Name, Node: o.Node, ID: o.ID}] = true
			case *catalog.Check:
				if o.ServiceID == "" {
					nodes[o.Node] = true
				} else {
					instances[InstanceKey{Service: o.ServiceName, Node: o.Node, ID: o.ServiceID}] = true
				}
			case *catalog.Node:
				nodes[o.Name] = true
			}
		}
	}
	if len(instances) == 0 && len(nodes) == 0 {
		return Change{}, false
	}
	ch := Change{Index: idx}
	for k := range instances {
		ch.Instances = append(ch.Instances, k)
	}
	for n := range nodes {
		ch.Nodes = append(ch.Nodes, n)
	}
	return ch, true
}

// Instance returns one service instance with its node and every check that
// applies to it (its own and its node's node-level checks).
func (s *Store) Instance(node, id string) (catalog.CheckServiceNode, bool) {
	tx := s.gen().db.Txn(false)
	defer tx.Abort()
	raw, err := tx.First(tableServices, "id", node, id)
	if err != nil || raw == nil {
		return catalog.CheckServiceNode{}, false
	}
	return instance(tx, raw.(*catalog.Service))
}

// NodeInstances returns every service instance on node, as Instance does.
func (s *Store) NodeInstances(node string) []catalog.CheckServiceNode {
	tx := s.gen().db.Txn(false)
	defer tx.Abort()
	it, err := tx.Get(tableServices, "id_prefix", node)
	if err != nil {
		return nil
	}
	var out []catalog.CheckServiceNode
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if csn, ok := instance(tx, raw.(*catalog.Service)); ok {
			out = append(out, csn)
		}
	}
	return out
}

func instance(tx *memdb.Txn, svc *catalog.Service) (catalog.CheckServiceNode, bool) {
	nraw, err := tx.First(tableNodes, "id", svc.Node)
	if err != nil || nraw == nil {
		return catalog.CheckServiceNode{}, false
	}
	checks, err := nodeChecksWhere(tx, svc.Node, func(c *catalog.Check) bool { return c.ServiceID == "" || c.ServiceID == svc.ID })
	if err != nil {
		return catalog.CheckServiceNode{}, false
	}
	csn := catalog.CheckServiceNode{Node: nraw.(*catalog.Node), Service: svc, Checks: checks}
	return csn, true
}
