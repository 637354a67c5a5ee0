package state

import (
	"fmt"
	"slices"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

// WriteTxn is a write transaction. Only the Raft FSM writes, and it applies a
// batch of commands in one WriteTxn. Each command validates everything it
// needs before its first mutation, so a command that fails leaves nothing
// behind even inside a batch that is committed. A WriteTxn must be used by
// one goroutine and ended with Commit or Abort; reads run concurrently and
// see its changes only after Commit.
type WriteTxn struct {
	tx    *memdb.Txn
	store *Store
	// bumped is, per table (and indexAll), the last index a command of
	// this transaction changed it at; Commit writes the index table once
	// rather than each command doing it.
	bumped map[string]uint64
}

// WriteTxn opens a write transaction. It blocks while another is open.
func (s *Store) WriteTxn() *WriteTxn {
	tx := s.gen().db.Txn(true)
	tx.TrackChanges()
	return &WriteTxn{tx: tx, store: s, bumped: make(map[string]uint64, 8)}
}

// Commit makes the transaction's writes visible, fires the watches of what
// they changed and publishes the change to the feed.
func (t *WriteTxn) Commit() {
	for table, idx := range t.bumped {
		if err := t.tx.Insert(tableIndex, &indexRow{Key: table, Value: idx}); err != nil {
			panic("state: write the index table: " + err.Error()) // a non-empty key always inserts
		}
	}
	changes := t.tx.Changes()
	idx := tableIndexValue(t.tx, indexAll)
	t.tx.Commit()
	if c, ok := collectChange(idx, changes); ok {
		t.store.changes.publish(c)
	}
}

// Abort discards the transaction. It is a no-op after Commit.
func (t *WriteTxn) Abort() { t.tx.Abort() }

// op is the bookkeeping of one command inside a WriteTxn.
type op struct {
	tx      *memdb.Txn
	idx     uint64
	changed []string // tables written, each once (backed by tables)
	tables  [6]string
	bumped  map[string]uint64
}

func (t *WriteTxn) op(idx uint64) *op {
	o := &op{tx: t.tx, idx: idx, bumped: t.bumped}
	o.changed = o.tables[:0]
	return o
}

// wrote records that the op changed table.
func (o *op) wrote(table string) {
	if !slices.Contains(o.changed, table) {
		o.changed = append(o.changed, table)
	}
}

func (o *op) insert(table string, obj any) error {
	if err := o.tx.Insert(table, obj); err != nil {
		return fmt.Errorf("state: insert into %s: %w", table, err)
	}
	o.wrote(table)
	return nil
}

func (o *op) delete(table string, obj any) error {
	if err := o.tx.Delete(table, obj); err != nil {
		return fmt.Errorf("state: delete from %s: %w", table, err)
	}
	o.wrote(table)
	return nil
}

// tomb records that a row left the scope key at this op's index.
func (o *op) tomb(key string) error {
	raw, err := o.tx.First(tableTombstones, "id", key)
	if err != nil {
		return err
	}
	if raw != nil && raw.(*tombstone).Index >= o.idx {
		return nil
	}
	return o.insert(tableTombstones, &tombstone{Key: key, Index: o.idx})
}

// tombLeft tombstones the scopes that old was in and now (nil for a
// deletion) is not.
func (o *op) tombLeft(old, now []string) error {
	for _, k := range old {
		if !slices.Contains(now, k) {
			if err := o.tomb(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// finish records the op's index for every table it changed, for Commit
// to write to the index table.
func (o *op) finish() error {
	if len(o.changed) == 0 {
		return nil
	}
	for _, table := range o.changed {
		o.bumped[table] = max(o.bumped[table], o.idx)
	}
	o.bumped[indexAll] = max(o.bumped[indexAll], o.idx)
	return nil
}

func getNode(tx *memdb.Txn, name string) (*catalog.Node, error) {
	raw, err := tx.First(tableNodes, "id", name)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*catalog.Node), nil
}

func getService(tx *memdb.Txn, node, id string) (*catalog.Service, error) {
	raw, err := tx.First(tableServices, "id", node, id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*catalog.Service), nil
}

func getCheck(tx *memdb.Txn, node, id string) (*catalog.Check, error) {
	raw, err := tx.First(tableChecks, "id", node, id)
	if err != nil || raw == nil {
		return nil, err
	}
	return raw.(*catalog.Check), nil
}

// serviceChecks returns the checks of service instance serviceID on node
// ("" for the node-level checks), from the node's checks.
func serviceChecks(tx *memdb.Txn, node, serviceID string) ([]*catalog.Check, error) {
	return nodeChecksWhere(tx, node, func(c *catalog.Check) bool { return c.ServiceID == serviceID })
}

// nodeChecksWhere returns the checks of node that keep accepts, in CheckID
// order.
func nodeChecksWhere(tx *memdb.Txn, node string, keep func(*catalog.Check) bool) ([]*catalog.Check, error) {
	it, err := tx.Get(tableChecks, "id_prefix", node)
	if err != nil {
		return nil, err
	}
	var out []*catalog.Check
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if c := raw.(*catalog.Check); keep(c) {
			out = append(out, c)
		}
	}
	return out, nil
}

func collect[T any](tx *memdb.Txn, table, index string, args ...any) ([]T, error) {
	it, err := tx.Get(table, index, args...)
	if err != nil {
		return nil, err
	}
	var out []T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(T))
	}
	return out, nil
}

func invalid(field, format string, args ...any) error {
	return &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Register applies a registration at index idx: the node (unless
// SkipNodeUpdate and the node exists), the service instance and the checks.
// The caller normalizes and validates r first; Register still rejects, with
// an error wrapping catalog.ErrInvalid and before writing anything, what
// would corrupt the store: missing keys, a node ID owned by another node, and
// a check naming a service that is neither in r nor on the node. Rows equal
// to what is stored (ignoring RaftIndex) are not rewritten. r is not
// modified; the store keeps copies.
func (t *WriteTxn) Register(idx uint64, r *catalog.Registration) error {
	if r == nil {
		return invalid("Registration", "missing")
	}
	o := t.op(idx)
	name := r.Node.Name

	// Validate everything before the first mutation: memdb has no
	// savepoints and the txn may hold other commands of the batch.
	if name == "" {
		return invalid("Node", "missing")
	}
	existingNode, err := getNode(o.tx, name)
	if err != nil {
		return err
	}
	writeNode := !(r.SkipNodeUpdate && existingNode != nil)
	node := &r.Node
	if r.KeepAgentNodeFields && existingNode != nil {
		merged := r.Node
		merged.ID, merged.TaggedAddresses, merged.Meta = existingNode.ID, existingNode.TaggedAddresses, existingNode.Meta
		node = &merged
	}
	if writeNode && node.ID != "" {
		raw, err := o.tx.First(tableNodes, "uuid", node.ID)
		if err != nil {
			return err
		}
		if other, ok := raw.(*catalog.Node); ok && other.Name != name {
			return invalid("ID", "node ID %q is already used by node %q", node.ID, other.Name)
		}
	}
	// Rows share one copy of the strings they repeat: the node's name
	// (and address) with the stored node, a check's service ID with its
	// service, names, tags and statuses through the store's interner.
	nodeName, nodeAddr := name, r.Node.Address
	if existingNode != nil {
		nodeName = existingNode.Name
		if existingNode.Address == nodeAddr {
			nodeAddr = existingNode.Address
		}
	}
	strs := &t.store.strs
	var svc *catalog.Service
	if r.Service != nil {
		if r.Service.ID == "" || r.Service.Name == "" {
			return invalid("Service", "service ID and name are required")
		}
		if r.Service.Node != "" && r.Service.Node != name {
			return invalid("Service.Node", "%q does not match the registered node %q", r.Service.Node, name)
		}
		svc = copyService(r.Service)
		svc.Node = nodeName
		svc.Name = strs.intern(svc.Name)
		strs.internAll(svc.Tags)
		if svc.Address == nodeAddr {
			svc.Address = nodeAddr
		}
	}
	checks := make([]*catalog.Check, 0, len(r.Checks))
	for i, c := range r.Checks {
		field := fmt.Sprintf("Checks[%d]", i)
		if c == nil {
			return invalid(field, "null")
		}
		if c.CheckID == "" {
			return invalid(field+".CheckID", "missing")
		}
		if c.Node != "" && c.Node != name {
			return invalid(field+".Node", "%q does not match the registered node %q", c.Node, name)
		}
		nc := copyCheck(c)
		nc.Node = nodeName
		nc.Name, nc.Status, nc.Type = strs.intern(nc.Name), strs.intern(nc.Status), strs.intern(nc.Type)
		nc.ServiceName, nc.ServiceTags = "", nil
		if nc.ServiceID != "" {
			owner := svc
			if owner == nil || owner.ID != nc.ServiceID {
				if owner, err = getService(o.tx, name, nc.ServiceID); err != nil {
					return err
				}
			}
			if owner == nil {
				return invalid(field+".ServiceID", "service %q is not registered on node %q", nc.ServiceID, name)
			}
			nc.ServiceID, nc.ServiceName, nc.ServiceTags = owner.ID, owner.Name, owner.Tags
		}
		checks = append(checks, nc)
	}

	// Mutations.
	if writeNode {
		n := copyNode(node)
		if existingNode == nil || !nodeSame(existingNode, n) {
			n.RaftIndex = stamp(nodeRI(existingNode), idx)
			if err := o.insert(tableNodes, n); err != nil {
				return err
			}
		}
	}
	if svc != nil {
		if err := o.ensureService(svc); err != nil {
			return err
		}
	}
	for _, c := range checks {
		if err := o.ensureCheck(c); err != nil {
			return err
		}
	}
	return o.finish()
}

// stamp returns the RaftIndex of a row written at idx that replaces a row
// with RaftIndex old (nil if new): CreateIndex is kept.
func stamp(old *catalog.RaftIndex, idx uint64) catalog.RaftIndex {
	if old == nil {
		return catalog.RaftIndex{CreateIndex: idx, ModifyIndex: idx}
	}
	return catalog.RaftIndex{CreateIndex: old.CreateIndex, ModifyIndex: idx}
}

func nodeRI(n *catalog.Node) *catalog.RaftIndex {
	if n == nil {
		return nil
	}
	return &n.RaftIndex
}

func serviceRI(s *catalog.Service) *catalog.RaftIndex {
	if s == nil {
		return nil
	}
	return &s.RaftIndex
}

func checkRI(c *catalog.Check) *catalog.RaftIndex {
	if c == nil {
		return nil
	}
	return &c.RaftIndex
}

func (o *op) ensureService(svc *catalog.Service) error {
	old, err := getService(o.tx, svc.Node, svc.ID)
	if err != nil {
		return err
	}
	if old != nil && serviceSame(old, svc) {
		return nil
	}
	svc.RaftIndex = stamp(serviceRI(old), o.idx)
	if err := o.insert(tableServices, svc); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	if err := o.tombLeft(serviceScopes(old), serviceScopes(svc)); err != nil {
		return err
	}
	// Carry the new name and tags to the service's checks.
	checks, err := serviceChecks(o.tx, svc.Node, svc.ID)
	if err != nil {
		return err
	}
	for _, c := range checks {
		if c.ServiceName == svc.Name && slices.Equal(c.ServiceTags, svc.Tags) {
			continue
		}
		nc := *c
		nc.ServiceName, nc.ServiceTags = svc.Name, svc.Tags
		if err := o.writeCheck(c, &nc); err != nil {
			return err
		}
	}
	return nil
}

func (o *op) ensureCheck(c *catalog.Check) error {
	old, err := getCheck(o.tx, c.Node, c.CheckID)
	if err != nil {
		return err
	}
	if old != nil && checkEqual(old, c) {
		return nil
	}
	return o.writeCheck(old, c)
}

// writeCheck stores c (a fresh copy) replacing old (nil if none).
func (o *op) writeCheck(old, c *catalog.Check) error {
	c.RaftIndex = stamp(checkRI(old), o.idx)
	if err := o.insert(tableChecks, c); err != nil {
		return err
	}
	if old == nil {
		return nil
	}
	return o.tombLeft(checkScopes(old), checkScopes(c))
}

func (o *op) deleteCheck(c *catalog.Check) error {
	if err := o.delete(tableChecks, c); err != nil {
		return err
	}
	return o.tombLeft(checkScopes(c), nil)
}

func (o *op) deleteService(s *catalog.Service) error {
	checks, err := serviceChecks(o.tx, s.Node, s.ID)
	if err != nil {
		return err
	}
	for _, c := range checks {
		if err := o.deleteCheck(c); err != nil {
			return err
		}
	}
	if err := o.delete(tableServices, s); err != nil {
		return err
	}
	return o.tombLeft(serviceScopes(s), nil)
}

// Deregister removes, at index idx, a whole node with its services and
// checks (ServiceID and CheckID empty), one service instance with its checks
// (ServiceID set) or one check (CheckID set). Removing something that does
// not exist is a no-op and moves no index.
func (t *WriteTxn) Deregister(idx uint64, d *catalog.Deregistration) error {
	if d == nil || d.Node == "" {
		return invalid("Node", "missing")
	}
	if d.ServiceID != "" && d.CheckID != "" {
		return invalid("CheckID", "give ServiceID or CheckID, not both")
	}
	o := t.op(idx)
	switch {
	case d.CheckID != "":
		c, err := getCheck(o.tx, d.Node, d.CheckID)
		if err != nil || c == nil {
			return err
		}
		if err := o.deleteCheck(c); err != nil {
			return err
		}
	case d.ServiceID != "":
		s, err := getService(o.tx, d.Node, d.ServiceID)
		if err != nil || s == nil {
			return err
		}
		if err := o.deleteService(s); err != nil {
			return err
		}
	default:
		n, err := getNode(o.tx, d.Node)
		if err != nil || n == nil {
			return err
		}
		// All the node's checks, then its services, then the node.
		checks, err := collect[*catalog.Check](o.tx, tableChecks, "id_prefix", d.Node)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if err := o.deleteCheck(c); err != nil {
				return err
			}
		}
		services, err := collect[*catalog.Service](o.tx, tableServices, "id_prefix", d.Node)
		if err != nil {
			return err
		}
		for _, s := range services {
			if err := o.deleteService(s); err != nil {
				return err
			}
		}
		if err := o.delete(tableNodes, n); err != nil {
			return err
		}
		if err := o.tombLeft(nodeScopes(n), nil); err != nil {
			return err
		}
	}
	return o.finish()
}

// SetMeta stores a cluster metadata pair (e.g. the cluster ID) at index idx.
// Setting the stored value again is a no-op.
func (t *WriteTxn) SetMeta(idx uint64, key, value string) error {
	if key == "" {
		return invalid("Key", "missing")
	}
	o := t.op(idx)
	raw, err := o.tx.First(tableMeta, "id", key)
	if err != nil {
		return err
	}
	row := &metaRow{Key: key, Value: value, RaftIndex: catalog.RaftIndex{CreateIndex: idx, ModifyIndex: idx}}
	if old, ok := raw.(*metaRow); ok {
		if old.Value == value {
			return nil
		}
		row.CreateIndex = old.CreateIndex
	}
	if err := o.insert(tableMeta, row); err != nil {
		return err
	}
	return o.finish()
}

// Copies and comparisons. Stored rows are never mutated, so a row is
// replaced by a fresh copy. Comparisons ignore RaftIndex and treat nil and
// empty maps and slices as equal.

func copyNode(n *catalog.Node) *catalog.Node          { return n.Clone() }
func copyService(s *catalog.Service) *catalog.Service { return s.Clone() }

func copyCheck(ch *catalog.Check) *catalog.Check {
	c := *ch
	c.ServiceTags = slices.Clone(ch.ServiceTags)
	return &c
}

func checkEqual(a, b *catalog.Check) bool {
	return a.Node == b.Node && a.CheckID == b.CheckID && a.Name == b.Name && a.Status == b.Status &&
		a.Notes == b.Notes && a.Output == b.Output && a.ServiceID == b.ServiceID &&
		a.ServiceName == b.ServiceName && slices.Equal(a.ServiceTags, b.ServiceTags) &&
		a.Type == b.Type && a.Definition == b.Definition
}

func nodeSame(a, b *catalog.Node) bool       { return a.SameAs(b) }
func serviceSame(a, b *catalog.Service) bool { return a.SameAs(b) }
