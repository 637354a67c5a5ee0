package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// snapshotMagic opens every snapshot archive, so a wrong file is refused
// with a clear message before anything is touched.
const snapshotMagic = "warren-snapshot-v1"

// snapshotHeader is the first line of an archive, after the magic.
type snapshotHeader struct {
	Index     uint64
	Term      uint64
	ClusterID string
}

// SnapshotSave writes a snapshot archive of the whole state to w: a gzip
// stream of the magic line, a JSON header line, then the FSM snapshot.
func (s *Server) SnapshotSave(ctx context.Context, w io.Writer) error {
	reply, err := call[rpc.Empty, rpc.SnapshotReply](ctx, s, rpc.MethodSnapshotSave, &rpc.Empty{})
	if err != nil {
		return err
	}
	_, err = w.Write(reply.Data)
	return err
}

// SnapshotRestore replaces the whole state with an archive read from r.
func (s *Server) SnapshotRestore(ctx context.Context, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, rpc.MaxMessageSize+1))
	if err != nil {
		return fmt.Errorf("read snapshot: %w", err)
	}
	if len(data) > rpc.MaxMessageSize {
		return fmt.Errorf("%w: snapshot larger than %d bytes", catalog.ErrInvalid, rpc.MaxMessageSize)
	}
	if _, _, err := openArchive(bytes.NewReader(data)); err != nil {
		return err
	}
	_, err = call[rpc.SnapshotRestoreRequest, rpc.Empty](ctx, s, rpc.MethodSnapshotRestore, &rpc.SnapshotRestoreRequest{Data: data})
	return err
}

func (s *Server) localSnapshotSave(_ context.Context, _ *rpc.Empty) (*rpc.SnapshotReply, error) {
	start := time.Now()
	defer func() { s.metrics.snapshotLength.Observe(time.Since(start).Seconds()) }()
	f := s.raft.Snapshot()
	if err := f.Error(); err != nil && err != raft.ErrNothingNewToSnapshot {
		return nil, fmt.Errorf("take snapshot: %w", err)
	}
	var rc io.ReadCloser
	var meta *raft.SnapshotMeta
	var err error
	if f.Error() == nil {
		meta, rc, err = f.Open()
	} else {
		meta, rc, err = s.openLatestSnapshot()
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	hdr, _ := json.Marshal(snapshotHeader{Index: meta.Index, Term: meta.Term, ClusterID: s.clusterID()})
	fmt.Fprintf(zw, "%s\n%s\n", snapshotMagic, hdr)
	if _, err := io.Copy(zw, rc); err != nil {
		return nil, fmt.Errorf("copy snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress snapshot: %w", err)
	}
	return &rpc.SnapshotReply{Data: buf.Bytes()}, nil
}

// openLatestSnapshot opens the newest snapshot on disk, for when nothing
// was written since it was taken.
func (s *Server) openLatestSnapshot() (*raft.SnapshotMeta, io.ReadCloser, error) {
	f := s.raft.Snapshot()
	if err := f.Error(); err == nil {
		return f.Open()
	}
	// Raft refuses to snapshot twice at one index; the state is then
	// exactly the store's, so stream the store.
	snap := s.store.Snapshot()
	pr, pw := io.Pipe()
	go func() {
		defer snap.Close()
		_, err := snap.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return &raft.SnapshotMeta{Index: s.raft.AppliedIndex()}, pr, nil
}

func (s *Server) localSnapshotRestore(_ context.Context, req *rpc.SnapshotRestoreRequest) (*rpc.Empty, error) {
	hdr, body, err := openArchive(bytes.NewReader(req.Data))
	if err != nil {
		return nil, err
	}
	state, err := io.ReadAll(body)
	if err != nil {
		return nil, fmt.Errorf("%w: read snapshot: %v", catalog.ErrInvalid, err)
	}
	meta := &raft.SnapshotMeta{Index: hdr.Index, Term: hdr.Term, Version: raft.SnapshotVersionMax, Size: int64(len(state))}
	if err := s.raft.Restore(meta, bytes.NewReader(state), 0); err != nil {
		return nil, fmt.Errorf("restore snapshot: %w", err)
	}
	s.log.Info("restored snapshot", "from_index", hdr.Index, "cluster_id", hdr.ClusterID)
	return &rpc.Empty{}, nil
}

// openArchive checks an archive's magic and header and returns a reader
// of the FSM snapshot it holds.
func openArchive(r io.Reader) (*snapshotHeader, io.Reader, error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: not a warren snapshot (not gzip): %v", catalog.ErrInvalid, err)
	}
	br := bufio.NewReader(zr)
	magic, err := br.ReadString('\n')
	if err != nil || magic != snapshotMagic+"\n" {
		return nil, nil, fmt.Errorf("%w: not a warren snapshot (bad magic)", catalog.ErrInvalid)
	}
	line, err := br.ReadBytes('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot header: %v", catalog.ErrInvalid, err)
	}
	var hdr snapshotHeader
	if err := json.Unmarshal(line, &hdr); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot header: %v", catalog.ErrInvalid, err)
	}
	return &hdr, br, nil
}
