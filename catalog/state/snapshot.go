package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

// Snapshot format: JSON lines. The first line is a header,
//
//	{"format":"warren-state","version":1}
//
// then one record per row, {"t":<type>,"v":<row>}, with type one of meta,
// index, tombstone, node, service, check (rows are the catalog types and
// the store's own row types, with Go field names), and last a trailer
// {"t":"end","n":<number of row records>} so that a truncated stream is
// detected. Readers reject an unknown format, a newer version and unknown
// record types.
const (
	snapshotFormat  = "warren-state"
	snapshotVersion = 1
)

type snapshotHeader struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
}

type record struct {
	T string          `json:"t"`
	V json.RawMessage `json:"v,omitempty"`
	N int64           `json:"n,omitempty"`
}

type outRecord struct {
	T string `json:"t"`
	V any    `json:"v,omitempty"`
	N int64  `json:"n,omitempty"`
}

// Snapshot is a point-in-time view of the store for the Raft FSM. Taking it
// is cheap (a memdb read txn); WriteTo streams it. Close it when done.
type Snapshot struct {
	tx *memdb.Txn
}

// Snapshot opens a point-in-time snapshot of the store.
func (s *Store) Snapshot() *Snapshot {
	return &Snapshot{tx: s.gen().db.Txn(false)}
}

// Close releases the snapshot.
func (sn *Snapshot) Close() { sn.tx.Abort() }

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// snapshotTables are the tables in the order they are written, with their
// record types.
var snapshotTables = []struct{ table, typ string }{
	{tableMeta, "meta"},
	{tableIndex, "index"},
	{tableTombstones, "tombstone"},
	{tableNodes, "node"},
	{tableServices, "service"},
	{tableChecks, "check"},
}

// WriteTo streams the snapshot to w and returns the bytes written.
func (sn *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(snapshotHeader{Format: snapshotFormat, Version: snapshotVersion}); err != nil {
		return cw.n, err
	}
	var rows int64
	for _, t := range snapshotTables {
		it, err := sn.tx.Get(t.table, "id")
		if err != nil {
			return cw.n, err
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := enc.Encode(outRecord{T: t.typ, V: raw}); err != nil {
				return cw.n, err
			}
			rows++
		}
	}
	if err := enc.Encode(outRecord{T: "end", N: rows}); err != nil {
		return cw.n, err
	}
	err := bw.Flush()
	return cw.n, err
}

// Restore reads a snapshot written by WriteTo into a fresh memdb and, if
// the whole stream is valid, swaps it in and closes the old AbandonCh. On
// error the store is left as it was.
func (s *Store) Restore(r io.Reader) error {
	g := newGeneration()
	if err := load(g.db, r); err != nil {
		return fmt.Errorf("state: restore: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.cur.Swap(g)
	s.changes.reset()
	close(old.abandon)
	return nil
}

func load(db *memdb.MemDB, r io.Reader) error {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("reading header: %w", err)
	}
	if h.Format != snapshotFormat {
		return fmt.Errorf("not a Warren state snapshot (format %q)", h.Format)
	}
	if h.Version < 1 || h.Version > snapshotVersion {
		return fmt.Errorf("unsupported snapshot version %d (this build reads up to %d)", h.Version, snapshotVersion)
	}
	tx := db.Txn(true)
	defer tx.Abort()
	var rows int64
	for {
		var rec record
		if err := dec.Decode(&rec); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("truncated snapshot: no end record")
			}
			return fmt.Errorf("record %d: %w", rows+1, err)
		}
		var (
			table string
			obj   any
		)
		switch rec.T {
		case "end":
			if rec.N != rows {
				return fmt.Errorf("end record counts %d rows, read %d", rec.N, rows)
			}
			tx.Commit()
			return nil
		case "meta":
			table, obj = tableMeta, &metaRow{}
		case "index":
			table, obj = tableIndex, &indexRow{}
		case "tombstone":
			table, obj = tableTombstones, &tombstone{}
		case "node":
			table, obj = tableNodes, &catalog.Node{}
		case "service":
			table, obj = tableServices, &catalog.Service{}
		case "check":
			table, obj = tableChecks, &catalog.Check{}
		default:
			return fmt.Errorf("record %d: unknown type %q", rows+1, rec.T)
		}
		rows++
		if err := json.Unmarshal(rec.V, obj); err != nil {
			return fmt.Errorf("record %d (%s): %w", rows, rec.T, err)
		}
		if err := tx.Insert(table, obj); err != nil {
			return fmt.Errorf("record %d (%s): %w", rows, rec.T, err)
		}
	}
}
