package state

import (
	"fmt"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

// Table names.
const (
	tableNodes      = "nodes"
	tableServices   = "services"
	tableChecks     = "checks"
	tableTombstones = "tombstones"
	tableIndex      = "index"
	tableMeta       = "meta"
)

// Key of the index table row that holds the highest index of any write.
const indexAll = "_all"

// metaRow is a row of the cluster metadata table.
type metaRow struct {
	Key   string
	Value string
	catalog.RaftIndex
}

// tombstone is the highest index at which a row left a scope (was deleted,
// or changed so that it no longer belongs to the scope).
type tombstone struct {
	Key   string
	Index uint64
}

// indexRow is the last index at which a table (or, for indexAll, anything)
// changed.
type indexRow struct {
	Key   string
	Value uint64
}

// keyIndexer is an index over one or more string fields of an object.
//
// It yields the fields joined and terminated by NUL. A watch on an exact
// lookup of "web" can still fire when the first "web2" row splits the radix
// edge holding "web\x00": such a wake-up is internal only, because a
// blocking query answers only when its result's index moved. (An earlier
// version indexed a twin key per row to avoid it; that doubled the index
// memory for a rare, invisible wake-up.)
type keyIndexer struct {
	fields func(obj any) ([]string, bool)
	nargs  int
}

func joinKey(parts []string, term byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p) + 1
	}
	b := make([]byte, 0, n)
	for i, p := range parts {
		b = append(b, p...)
		if i < len(parts)-1 {
			b = append(b, 0)
		}
	}
	return append(b, term)
}

func (k *keyIndexer) FromArgs(args ...any) ([]byte, error) {
	if len(args) != k.nargs {
		return nil, fmt.Errorf("index takes %d arguments, got %d", k.nargs, len(args))
	}
	parts := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("argument %d must be a string, got %T", i, a)
		}
		parts[i] = s
	}
	return joinKey(parts, 0), nil
}

// singleKeyIndexer is the SingleIndexer face of keyIndexer (id indexes).
// It is also a PrefixIndexer: "id_prefix" with the leading fields (a node
// name) selects every row under them, which spares a separate by-node
// index on services and checks.
type singleKeyIndexer struct{ *keyIndexer }

func (k singleKeyIndexer) PrefixFromArgs(args ...any) ([]byte, error) {
	if len(args) == 0 || len(args) > k.nargs {
		return nil, fmt.Errorf("prefix takes 1 to %d arguments, got %d", k.nargs, len(args))
	}
	parts := make([]string, len(args))
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("argument %d must be a string, got %T", i, a)
		}
		parts[i] = s
	}
	return joinKey(parts, 0), nil
}

func (k singleKeyIndexer) FromObject(obj any) (bool, []byte, error) {
	parts, ok := k.fields(obj)
	if !ok {
		return false, nil, nil
	}
	for _, p := range parts {
		if p == "" {
			return false, nil, fmt.Errorf("empty key field in %T", obj)
		}
	}
	return true, joinKey(parts, 0), nil
}

// multiKeyIndexer is the MultiIndexer face of keyIndexer (lookup indexes).
type multiKeyIndexer struct{ *keyIndexer }

func (k multiKeyIndexer) FromObject(obj any) (bool, [][]byte, error) {
	parts, ok := k.fields(obj)
	if !ok {
		return false, nil, nil
	}
	return true, [][]byte{joinKey(parts, 0)}, nil
}

func idIndex(nargs int, f func(obj any) ([]string, bool)) *memdb.IndexSchema {
	return &memdb.IndexSchema{
		Name:    "id",
		Unique:  true,
		Indexer: singleKeyIndexer{&keyIndexer{fields: f, nargs: nargs}},
	}
}

func lookupIndex(name string, nargs int, f func(obj any) ([]string, bool)) *memdb.IndexSchema {
	return &memdb.IndexSchema{
		Name:         name,
		AllowMissing: true,
		Indexer:      multiKeyIndexer{&keyIndexer{fields: f, nargs: nargs}},
	}
}

func schema() *memdb.DBSchema {
	return &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{
		tableNodes: {
			Name: tableNodes,
			Indexes: map[string]*memdb.IndexSchema{
				"id": idIndex(1, func(o any) ([]string, bool) { return []string{o.(*catalog.Node).Name}, true }),
				"uuid": {
					Name:         "uuid",
					AllowMissing: true,
					Indexer:      &memdb.StringFieldIndex{Field: "ID", Lowercase: true},
				},
			},
		},
		tableServices: {
			Name: tableServices,
			Indexes: map[string]*memdb.IndexSchema{
				"id": idIndex(2, func(o any) ([]string, bool) {
					s := o.(*catalog.Service)
					return []string{s.Node, s.ID}, true
				}),
				"service": lookupIndex("service", 1, func(o any) ([]string, bool) { return []string{o.(*catalog.Service).Name}, true }),
			},
		},
		tableChecks: {
			Name: tableChecks,
			Indexes: map[string]*memdb.IndexSchema{
				// id: (node, check ID), the only index: "id_prefix"
				// with the node selects its checks, which the readers
				// group by service ID (nodeChecks). A second index by
				// (node, service ID) cost a quarter of the catalog's
				// memory and of each registration's index writes.
				"id": idIndex(2, func(o any) ([]string, bool) {
					c := o.(*catalog.Check)
					return []string{c.Node, c.CheckID}, true
				}),
			},
		},
		tableTombstones: {
			Name: tableTombstones,
			Indexes: map[string]*memdb.IndexSchema{
				"id":    {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				"scope": lookupIndex("scope", 1, func(o any) ([]string, bool) { return []string{o.(*tombstone).Key}, true }),
			},
		},
		tableIndex: {
			Name: tableIndex,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
		tableMeta: {
			Name: tableMeta,
			Indexes: map[string]*memdb.IndexSchema{
				"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
			},
		},
	}}
}

// Scope keys. A read's index is the highest ModifyIndex of the rows in its
// scope and the tombstones of the scope keys it covers.
func scopeNode(n string) string          { return "node/" + n }
func scopeService(name string) string    { return "service/" + name }
func scopeNodeChecks(n string) string    { return "checks/node/" + n }
func scopeNodeLevel(n string) string     { return "checks/nodelevel/" + n }
func scopeServiceChecks(s string) string { return "checks/service/" + s }
func scopeCheckState(st string) string   { return "checks/state/" + st }

const (
	scopeNodes     = "nodes"
	scopeServices  = "services"
	scopeAllChecks = "checks"
)

func nodeScopes(n *catalog.Node) []string { return []string{scopeNodes, scopeNode(n.Name)} }

func serviceScopes(s *catalog.Service) []string {
	return []string{scopeServices, scopeService(s.Name), scopeNode(s.Node)}
}

func checkScopes(c *catalog.Check) []string {
	sc := []string{scopeAllChecks, scopeNodeChecks(c.Node), scopeCheckState(c.Status)}
	if c.ServiceID == "" {
		sc = append(sc, scopeNodeLevel(c.Node))
	}
	if c.ServiceName != "" {
		sc = append(sc, scopeServiceChecks(c.ServiceName))
	}
	return sc
}
