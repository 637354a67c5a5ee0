// Package state is the state store behind Warren's Consul-compatible
// catalog: it owns the go-memdb schema, write transactions, watch sets and
// snapshot/restore. It sees no config and no clocks: every write carries the
// Raft index of its command. It is imported by server/fsm (writes, snapshot,
// restore) and server (reads and blocking queries).
//
// Objects returned by reads are the rows stored in memdb and are shared with
// every other reader: callers must not mutate them (copy first).
//
// Every read returns the index of its own result: the highest ModifyIndex
// among the rows in the read's scope and the index of the last deletion in
// that scope (kept in a tombstones table, one row per scope key), or 1 if
// both are 0. It adds to the caller's watch set the watch channels of exactly
// the index entries it touched, plus AbandonCh, so a blocking query wakes
// when its result may have changed and (apart from rare radix-tree
// restructurings) not otherwise.
package state

import (
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
)

// watchLimit bounds the number of fine-grained watch channels one read adds
// to a watch set; beyond it a read falls back to a coarser channel.
const watchLimit = 2048

// Store is the catalog state store. Reads are lock-free and may run
// concurrently with one writer (the Raft FSM).
type Store struct {
	mu      sync.Mutex // serializes Restore
	cur     atomic.Pointer[generation]
	changes *changeLog
	strs    interner // repeated strings of written rows (intern.go)
}

// generation is one memdb instance; Restore replaces it.
type generation struct {
	db      *memdb.MemDB
	abandon chan struct{}
}

func newGeneration() *generation {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		panic("state: invalid schema: " + err.Error())
	}
	return &generation{db: db, abandon: make(chan struct{})}
}

// New returns an empty store.
func New() *Store {
	s := &Store{changes: newChangeLog()}
	s.cur.Store(newGeneration())
	return s
}

func (s *Store) gen() *generation { return s.cur.Load() }

// AbandonCh is closed when the store's contents are replaced by Restore.
// Reads add it to their watch set; callers holding other channels of this
// store should add it too.
func (s *Store) AbandonCh() <-chan struct{} { return s.gen().abandon }

// LastIndex returns the highest index at which anything was written (a
// command that changed nothing does not count), or 0 for an empty store.
func (s *Store) LastIndex() uint64 {
	tx := s.gen().db.Txn(false)
	defer tx.Abort()
	return tableIndexValue(tx, indexAll)
}

// Meta returns the cluster metadata value stored under key.
func (s *Store) Meta(key string) (string, bool) {
	tx := s.gen().db.Txn(false)
	defer tx.Abort()
	raw, err := tx.First(tableMeta, "id", key)
	if err != nil || raw == nil {
		return "", false
	}
	return raw.(*metaRow).Value, true
}

func tableIndexValue(tx *memdb.Txn, key string) uint64 {
	raw, err := tx.First(tableIndex, "id", key)
	if err != nil || raw == nil {
		return 0
	}
	return raw.(*indexRow).Value
}
