package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/internal/atomicfile"
)

// dataDirMeta is what a server records about itself in its data dir, so
// that a data dir is never silently reused for another node, datacenter or
// cluster.
type dataDirMeta struct {
	NodeID     string `json:"node_id"`
	Datacenter string `json:"datacenter"`
	ClusterID  string `json:"cluster_id,omitempty"`
}

const metaFile = "server.json"

// openDataDir creates the data dir if needed, takes its lock (one process
// per data dir) and loads or creates its metadata.
func openDataDir(dir, datacenter, nodeID string) (*dataDirMeta, *os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open data dir lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		return nil, nil, fmt.Errorf("data dir %s is in use by another warren process", dir)
	}
	path := filepath.Join(dir, metaFile)
	var m dataDirMeta
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if nodeID == "" {
			nodeID = uuid.NewString()
		}
		m = dataDirMeta{NodeID: nodeID, Datacenter: datacenter}
		if err := writeFileAtomic(path, mustJSON(m)); err != nil {
			_ = lock.Close()
			return nil, nil, err
		}
	case err != nil:
		_ = lock.Close()
		return nil, nil, fmt.Errorf("read %s: %w", path, err)
	default:
		if err := json.Unmarshal(b, &m); err != nil || m.NodeID == "" {
			_ = lock.Close()
			return nil, nil, fmt.Errorf("%s is corrupt (not a warren data dir?): cannot read node ID", path)
		}
		if _, err := uuid.Parse(m.NodeID); err != nil {
			_ = lock.Close()
			return nil, nil, fmt.Errorf("%s is corrupt: node ID %q is not a UUID", path, m.NodeID)
		}
		if m.Datacenter != datacenter {
			_ = lock.Close()
			return nil, nil, fmt.Errorf("data dir %s belongs to datacenter %q, not %q: use another data dir or the right -datacenter", dir, m.Datacenter, datacenter)
		}
	}
	return &m, lock, nil
}

func (m *dataDirMeta) save(dir string) error {
	return writeFileAtomic(filepath.Join(dir, metaFile), mustJSON(m))
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

func writeFileAtomic(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600)
}

// protectRaftDir makes the Raft dir private to the server's user: the Raft
// log and snapshots hold the CA's private keys in clear (unlike snapshot
// archives, see redactSnapshot). A dir made by an older version or by hand
// with wider permissions is tightened, with a warning.
func protectRaftDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("raft dir: %w", err)
	}
	if fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("raft dir %s is %v and holds the CA keys; making it 0700: %w", dir, fi.Mode().Perm(), err)
	}
	log.Warn("raft dir was readable by others; made it 0700 (it holds the CA private keys)", "dir", dir, "was", fi.Mode().Perm().String())
	return nil
}
