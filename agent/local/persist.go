package local

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/warren-mesh/warren/internal/atomicfile"
)

// Blob kinds, which are also the directory names under DataDir/local/.
const (
	kindService = "services"
	kindCheck   = "checks"
)

// blobStore keeps the opaque blobs of API registrations, one file per
// service or check: DataDir/local/<kind>/<sha256(id)>.json. IDs may hold
// any character but '/' and NUL and run to 256 bytes, so they are hashed
// into file names (as Consul does) and kept inside the file.
type blobStore struct {
	dir    string
	logger *slog.Logger
}

// blobFile is the content of a blob file.
type blobFile struct {
	ID   string
	Blob []byte
}

func openBlobStore(dataDir string, logger *slog.Logger) (*blobStore, error) {
	b := &blobStore{dir: filepath.Join(dataDir, "local"), logger: logger}
	for _, kind := range []string{kindService, kindCheck} {
		dir := filepath.Join(b.dir, kind)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("local state: %w", err)
		}
		// A crash during a write leaves its temp file behind; nothing else
		// writes here while New runs.
		tmps, _ := filepath.Glob(filepath.Join(dir, "*.json.tmp*"))
		for _, t := range tmps {
			_ = os.Remove(t)
		}
	}
	return b, nil
}

func (b *blobStore) path(kind, id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(b.dir, kind, hex.EncodeToString(sum[:])+".json")
}

// put writes blob for id atomically, or removes the file if blob is nil.
func (b *blobStore) put(kind, id string, blob []byte) error {
	path := b.path(kind, id)
	if blob == nil {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil // spare the directory fsync
		}
		if err := atomicfile.Remove(path); err != nil {
			return fmt.Errorf("remove persisted %s %q: %w", strings.TrimSuffix(kind, "s"), id, err)
		}
		return nil
	}
	data, err := json.Marshal(blobFile{ID: id, Blob: blob})
	if err != nil {
		return fmt.Errorf("encode persisted %s %q: %w", strings.TrimSuffix(kind, "s"), id, err)
	}
	if err := atomicfile.Write(path, data, 0o600); err != nil {
		return fmt.Errorf("persist %s %q: %w", strings.TrimSuffix(kind, "s"), id, err)
	}
	return nil
}

// load returns the blobs of kind by ID. A file that cannot be read or
// decoded, or whose name does not match its ID, is skipped with a logged
// error naming it; only an unreadable directory fails.
func (b *blobStore) load(kind string) (map[string][]byte, error) {
	dir := filepath.Join(b.dir, kind)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read persisted %s: %w", kind, err)
	}
	out := map[string][]byte{}
	for _, ent := range entries {
		name := ent.Name()
		if !ent.Type().IsRegular() || !strings.HasSuffix(name, ".json") {
			continue // temp files of an interrupted write, strays
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			b.logger.Error("skipping unreadable persisted registration", "file", path, "err", err)
			continue
		}
		var f blobFile
		if err := json.Unmarshal(data, &f); err != nil {
			b.logger.Error("skipping corrupt persisted registration", "file", path, "err", err)
			continue
		}
		if f.Blob == nil || b.path(kind, f.ID) != path {
			b.logger.Error("skipping corrupt persisted registration", "file", path, "err", "content does not match the file name")
			continue
		}
		out[f.ID] = f.Blob
	}
	return out, nil
}
