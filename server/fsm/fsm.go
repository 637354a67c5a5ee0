// Package fsm is the Raft state machine: it decodes commands from the log
// and applies them to the state store. It is deterministic: no clocks, no
// randomness, no config; the leader stamps anything of that kind into a
// command before it enters the log. Only package server imports it.
package fsm

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/catalog/state"
)

// MessageType is the first byte of every command in the log.
type MessageType byte

// Command types. Never renumber: they are in every log on disk.
const (
	RegisterType   MessageType = 1
	DeregisterType MessageType = 2
	SetMetaType    MessageType = 3
	// MetaBatchType sets and deletes several metadata keys in one command
	// (the CA's roots and config, an intention).
	MetaBatchType MessageType = 4
)

// MetaBatch sets the pairs of Set, then deletes the keys of Delete, as one
// command: either all of it applies or none.
type MetaBatch struct {
	Set    []SetMeta `json:",omitempty"`
	Delete []string  `json:",omitempty"`
}

// SetMeta sets a key of the cluster metadata (such as the cluster ID).
type SetMeta struct {
	Key   string
	Value string
}

// Encode turns a command into a log entry's data.
func Encode(t MessageType, cmd any) ([]byte, error) {
	body, err := json.Marshal(cmd)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}

// FSM applies the Raft log to a state store. It implements
// raft.BatchingFSM, so a batch of commands shares one store transaction.
type FSM struct {
	store *state.Store
	// OnBatch, if set, is told the size of every batch applied (for
	// metrics; it must not touch the store).
	OnBatch func(n int)
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns an FSM over store.
func New(store *state.Store) *FSM { return &FSM{store: store} }

// Store is the state store the FSM writes to.
func (f *FSM) Store() *state.Store { return f.store }

// Apply applies one log entry.
func (f *FSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// ApplyBatch applies a batch of entries in one transaction. Each command
// validates before it writes, so a failing command leaves nothing in the
// shared transaction; its error is its response.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	txn := f.store.WriteTxn()
	wrote := false
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		out[i] = applyOne(txn, l)
		wrote = true
	}
	if wrote {
		txn.Commit()
	} else {
		txn.Abort()
	}
	if f.OnBatch != nil {
		f.OnBatch(len(logs))
	}
	return out
}

func applyOne(txn *state.WriteTxn, l *raft.Log) error {
	if len(l.Data) == 0 {
		return fmt.Errorf("log %d: empty command", l.Index)
	}
	body := l.Data[1:]
	switch MessageType(l.Data[0]) {
	case RegisterType:
		var r catalog.Registration
		if err := json.Unmarshal(body, &r); err != nil {
			return fmt.Errorf("log %d: decode registration: %w", l.Index, err)
		}
		return txn.Register(l.Index, &r)
	case DeregisterType:
		var d catalog.Deregistration
		if err := json.Unmarshal(body, &d); err != nil {
			return fmt.Errorf("log %d: decode deregistration: %w", l.Index, err)
		}
		return txn.Deregister(l.Index, &d)
	case SetMetaType:
		var m SetMeta
		if err := json.Unmarshal(body, &m); err != nil {
			return fmt.Errorf("log %d: decode meta: %w", l.Index, err)
		}
		return txn.SetMeta(l.Index, m.Key, m.Value)
	case MetaBatchType:
		var b MetaBatch
		if err := json.Unmarshal(body, &b); err != nil {
			return fmt.Errorf("log %d: decode meta batch: %w", l.Index, err)
		}
		// Validate before the first write, so a bad command leaves
		// nothing in the batch's shared transaction.
		for _, m := range b.Set {
			if m.Key == "" {
				return fmt.Errorf("log %d: meta batch: empty key", l.Index)
			}
		}
		for _, k := range b.Delete {
			if k == "" {
				return fmt.Errorf("log %d: meta batch: empty key", l.Index)
			}
		}
		for _, m := range b.Set {
			if err := txn.SetMeta(l.Index, m.Key, m.Value); err != nil {
				return err
			}
		}
		for _, k := range b.Delete {
			if err := txn.DeleteMeta(l.Index, k); err != nil {
				return err
			}
		}
		return nil
	}
	// An unknown type is a log written by a newer version: fail loudly
	// rather than silently diverge from servers that understand it.
	panic(fmt.Sprintf("log %d: unknown command type %d; upgrade this server", l.Index, l.Data[0]))
}

// Snapshot captures the store at this point of the log.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{snap: f.store.Snapshot()}, nil
}

// Restore replaces the store's state with a snapshot.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	if err := f.store.Restore(rc); err != nil {
		return fmt.Errorf("restore state: %w", err)
	}
	return nil
}

type snapshot struct {
	snap *state.Snapshot
}

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.snap.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() { s.snap.Close() }
