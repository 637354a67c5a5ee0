package view

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"unique"
	"weak"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// Rows are immutable once decoded (readers must not modify what the view
// hands out), so the view decodes a node, or an instance's service with its
// checks, only when no live row with the same JSON encoding exists in the
// process, and shares the one it finds otherwise. Within one agent this
// makes the node row that every instance of a node carries one object
// instead of one per instance, and a snapshot received again after a
// reconnect costs no new rows; in a process holding many views (the views
// benchmark) the views share their rows. The tables hold weak pointers,
// swept as they grow: a row no view holds any more is collected.
var (
	nodeRows     = newRowTable[catalog.Node, struct{}]()
	instanceRows = newRowTable[catalog.Service, []*catalog.Check]()
)

// rowKey is the first 128 bits of the SHA-256 of a row's JSON encoding:
// equal keys mean equal content, so a shared row is the row that was sent.
type rowKey [16]byte

// rowTable maps encoded rows to live decoded ones: a weak pointer to the
// row, and extra data (an instance's checks) kept while the row lives.
type rowTable[T, X any] struct {
	mu     sync.Mutex
	rows   map[rowKey]rowEntry[T, X]
	swept  int // len(rows) after the last sweep
	misses int
}

type rowEntry[T, X any] struct {
	row   weak.Pointer[T]
	extra X
}

func newRowTable[T, X any]() *rowTable[T, X] {
	return &rowTable[T, X]{rows: map[rowKey]rowEntry[T, X]{}}
}

// get returns the live row with key, or the one decode makes.
func (t *rowTable[T, X]) get(key rowKey, decode func() (*T, X, error)) (*T, X, error) {
	t.mu.Lock()
	e := t.rows[key]
	t.mu.Unlock()
	if p := e.row.Value(); p != nil {
		return p, e.extra, nil
	}
	p, x, err := decode()
	if err != nil {
		return nil, x, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if e := t.rows[key]; e.row.Value() != nil {
		return e.row.Value(), e.extra, nil // another view decoded it meanwhile
	}
	t.rows[key] = rowEntry[T, X]{weak.Make(p), x}
	t.misses++
	// Sweep collected rows once the table may have grown by half: the
	// amortized cost is constant per decoded row.
	if t.misses > max(t.swept/2, 1024) {
		for k, e := range t.rows {
			if e.row.Value() == nil {
				delete(t.rows, k)
			}
		}
		t.swept, t.misses = len(t.rows), 0
	}
	return p, x, nil
}

// size is the number of entries, live or not yet swept.
func (t *rowTable[T, X]) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.rows)
}

// wireBody is rpc.WatchBody with every row left encoded, for the row
// tables.
type wireBody struct {
	Services map[string][]wireInstance
	Nodes    map[string]json.RawMessage
	Upserts  []wireInstance
	Removed  []rpc.InstanceKey
}

type wireInstance struct {
	Node    json.RawMessage
	Service json.RawMessage
	Checks  []json.RawMessage
}

// event is a decoded watch event whose rows come from the row tables.
type event struct {
	services map[string][]catalog.CheckServiceNode
	nodes    map[string]*catalog.Node // nil value: the node is gone
	upserts  []catalog.CheckServiceNode
	removed  []rpc.InstanceKey
}

func decodeEvent(data []byte) (*event, error) {
	var w wireBody
	if err := json.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	ev := &event{removed: w.Removed}
	var err error
	if w.Services != nil {
		ev.services = make(map[string][]catalog.CheckServiceNode, len(w.Services))
		for name, list := range w.Services {
			if ev.services[name], err = decodeInstances(list); err != nil {
				return nil, fmt.Errorf("service %q: %w", name, err)
			}
		}
	}
	if ev.upserts, err = decodeInstances(w.Upserts); err != nil {
		return nil, fmt.Errorf("upserts: %w", err)
	}
	ev.nodes = make(map[string]*catalog.Node, len(w.Nodes))
	for name, raw := range w.Nodes {
		if isNull(raw) {
			ev.nodes[name] = nil
			continue
		}
		if ev.nodes[name], err = decodeNode(raw); err != nil {
			return nil, fmt.Errorf("node %q: %w", name, err)
		}
	}
	return ev, nil
}

func decodeInstances(list []wireInstance) ([]catalog.CheckServiceNode, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := make([]catalog.CheckServiceNode, len(list))
	for i, w := range list {
		if isNull(w.Node) || isNull(w.Service) || slices.ContainsFunc(w.Checks, isNull) {
			return nil, fmt.Errorf("instance %d: null node, service or check", i)
		}
		csn := &out[i]
		var err error
		if csn.Node, err = decodeNode(w.Node); err != nil {
			return nil, fmt.Errorf("instance %d node: %w", i, err)
		}
		if csn.Service, csn.Checks, err = decodeInstance(w, csn.Node.Name); err != nil {
			return nil, fmt.Errorf("instance %d: %w", i, err)
		}
	}
	return out, nil
}

func decodeNode(raw []byte) (*catalog.Node, error) {
	sum := sha256.Sum256(raw)
	n, _, err := nodeRows.get(rowKey(sum[:16]), func() (*catalog.Node, struct{}, error) {
		n := new(catalog.Node)
		if err := json.Unmarshal(raw, n); err != nil {
			return nil, struct{}{}, err
		}
		n.Address, n.Datacenter = intern(n.Address), intern(n.Datacenter)
		n.TaggedAddresses, n.Meta = nilIfEmpty(n.TaggedAddresses), nilIfEmpty(n.Meta)
		return n, struct{}{}, nil
	})
	return n, err
}

// decodeInstance returns the service row of an instance and its checks;
// one key covers both, so the checks slice is shared too.
func decodeInstance(w wireInstance, node string) (*catalog.Service, []*catalog.Check, error) {
	h := sha256.New()
	var n [8]byte
	for _, raw := range append([]json.RawMessage{w.Service}, w.Checks...) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(raw)))
		h.Write(n[:])
		h.Write(raw)
	}
	return instanceRows.get(rowKey(h.Sum(nil)[:16]), func() (*catalog.Service, []*catalog.Check, error) {
		s := new(catalog.Service)
		if err := json.Unmarshal(w.Service, s); err != nil {
			return nil, nil, fmt.Errorf("service: %w", err)
		}
		// Strings that many rows carry are shared: node names, addresses,
		// statuses, check names, tags.
		s.Node = sameString(s.Node, node)
		s.Name, s.Kind, s.Address = intern(s.Name), intern(s.Kind), intern(s.Address)
		for i, tag := range s.Tags {
			s.Tags[i] = intern(tag)
		}
		s.TaggedAddresses, s.Meta = nilIfEmpty(s.TaggedAddresses), nilIfEmpty(s.Meta)
		var checks []*catalog.Check
		if len(w.Checks) > 0 {
			checks = make([]*catalog.Check, len(w.Checks))
		}
		for i, raw := range w.Checks {
			c := new(catalog.Check)
			if err := json.Unmarshal(raw, c); err != nil {
				return nil, nil, fmt.Errorf("check %d: %w", i, err)
			}
			c.Node = sameString(c.Node, node)
			c.ServiceID, c.ServiceName = sameString(c.ServiceID, s.ID), sameString(c.ServiceName, s.Name)
			if slices.Equal(c.ServiceTags, s.Tags) {
				c.ServiceTags = s.Tags
			}
			c.Name, c.Status, c.Type = intern(c.Name), intern(c.Status), intern(c.Type)
			checks[i] = c
		}
		return s, checks, nil
	})
}

func intern(s string) string { return unique.Make(s).Value() }

// sameString returns b, the same string as a held elsewhere, if equal.
func sameString(a, b string) string {
	if a == b {
		return b
	}
	return a
}

func nilIfEmpty[M ~map[K]V, K comparable, V any](m M) M {
	if len(m) == 0 {
		return nil
	}
	return m
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
