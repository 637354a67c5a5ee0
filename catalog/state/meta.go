package state

import (
	"strings"

	memdb "github.com/hashicorp/go-memdb"
)

// MetaEntry is one cluster metadata pair with the indexes of its writes.
type MetaEntry struct {
	Key         string
	Value       string
	CreateIndex uint64
	ModifyIndex uint64
}

// metaScope is the tombstone scope of a metadata key: "meta/" and the key
// up to and including its first '/' (the whole key if it has none). Keys
// that share a prefix ("intention/…") share a scope, so a prefix read sees
// deletions.
func metaScope(key string) string {
	if i := strings.IndexByte(key, '/'); i >= 0 {
		return "meta/" + key[:i+1]
	}
	return "meta/" + key
}

// MetaEntry returns the metadata pair stored under key and adds its watch
// channel to ws. The index is the pair's ModifyIndex, or the key's
// tombstone if it was deleted, or 1.
func (s *Store) MetaEntry(ws memdb.WatchSet, key string) (uint64, *MetaEntry, error) {
	r := s.read(ws)
	defer r.tx.Abort()
	ch, raw, err := r.tx.FirstWatch(tableMeta, "id", key)
	if err != nil {
		return 0, nil, err
	}
	r.watch(ch)
	var out *MetaEntry
	if raw != nil {
		m := raw.(*metaRow)
		r.see(m.ModifyIndex)
		out = &MetaEntry{Key: m.Key, Value: m.Value, CreateIndex: m.CreateIndex, ModifyIndex: m.ModifyIndex}
	}
	r.tomb(metaScope(key))
	idx, err := r.done()
	return idx, out, err
}

// MetaPrefix returns every metadata pair whose key starts with prefix,
// sorted by key, and watches them. prefix must end with '/' for deletions
// to count in the index (see DeleteMeta).
func (s *Store) MetaPrefix(ws memdb.WatchSet, prefix string) (uint64, []*MetaEntry, error) {
	r := s.read(ws)
	defer r.tx.Abort()
	rows := get[*metaRow](r, tableMeta, "id_prefix", prefix)
	out := make([]*MetaEntry, 0, len(rows))
	for _, m := range rows {
		r.see(m.ModifyIndex)
		out = append(out, &MetaEntry{Key: m.Key, Value: m.Value, CreateIndex: m.CreateIndex, ModifyIndex: m.ModifyIndex})
	}
	r.tomb(metaScope(prefix))
	idx, err := r.done()
	return idx, out, err
}

// DeleteMeta removes a metadata pair at index idx and records a tombstone
// for its scope. Deleting an absent key is a no-op.
func (t *WriteTxn) DeleteMeta(idx uint64, key string) error {
	if key == "" {
		return invalid("Key", "missing")
	}
	o := t.op(idx)
	raw, err := o.tx.First(tableMeta, "id", key)
	if err != nil || raw == nil {
		return err
	}
	if err := o.delete(tableMeta, raw); err != nil {
		return err
	}
	if err := o.tomb(metaScope(key)); err != nil {
		return err
	}
	return o.finish()
}
