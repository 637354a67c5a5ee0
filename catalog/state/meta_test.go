package state

import (
	"testing"

	memdb "github.com/hashicorp/go-memdb"
)

// TestMetaPrefixIndex: a prefix read's index moves on a write and on a
// deletion of a key under the prefix, and its watch fires for both.
func TestMetaPrefixIndex(t *testing.T) {
	s := New()
	write := func(idx uint64, f func(*WriteTxn) error) {
		t.Helper()
		txn := s.WriteTxn()
		if err := f(txn); err != nil {
			t.Fatal(err)
		}
		txn.Commit()
	}
	write(5, func(w *WriteTxn) error { return w.SetMeta(5, "intention/a", "1") })
	write(6, func(w *WriteTxn) error { return w.SetMeta(6, "intention/b", "2") })
	write(7, func(w *WriteTxn) error { return w.SetMeta(7, "other", "x") })
	ws := memdb.NewWatchSet()
	idx, rows, err := s.MetaPrefix(ws, "intention/")
	if err != nil || idx != 6 || len(rows) != 2 || rows[0].Key != "intention/a" || rows[1].CreateIndex != 6 {
		t.Fatalf("MetaPrefix: %d %+v %v", idx, rows, err)
	}
	write(9, func(w *WriteTxn) error { return w.DeleteMeta(9, "intention/a") })
	if ws.Watch(nil) {
		t.Fatal("the watch did not fire on a delete")
	}
	idx, rows, _ = s.MetaPrefix(nil, "intention/")
	if idx != 9 || len(rows) != 1 {
		t.Fatalf("after delete: %d %+v", idx, rows)
	}
	// Deleting an absent key changes nothing.
	write(10, func(w *WriteTxn) error { return w.DeleteMeta(10, "intention/zz") })
	if idx, _, _ = s.MetaPrefix(nil, "intention/"); idx != 9 {
		t.Fatalf("index moved on a no-op delete: %d", idx)
	}
	idx, e, _ := s.MetaEntry(nil, "other")
	if idx != 7 || e == nil || e.Value != "x" {
		t.Fatalf("MetaEntry: %d %+v", idx, e)
	}
}
