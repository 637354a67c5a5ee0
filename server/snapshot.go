package server

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
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
		meta, rc, err = s.streamStore()
	}
	if err != nil {
		return nil, fmt.Errorf("open snapshot: %w", err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	hdr, _ := json.Marshal(snapshotHeader{Index: meta.Index, Term: meta.Term, ClusterID: s.clusterID()})
	fmt.Fprintf(zw, "%s\n%s\n", snapshotMagic, hdr)
	if err := redactSnapshot(zw, rc); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("compress snapshot: %w", err)
	}
	return &rpc.SnapshotReply{Data: buf.Bytes()}, nil
}

// streamStore streams the state store itself, for when Raft refuses a new
// snapshot because nothing was applied since the last one: the store then
// holds exactly the applied state.
func (s *Server) streamStore() (*raft.SnapshotMeta, io.ReadCloser, error) {
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

// redactSnapshot copies an FSM snapshot (JSON lines, see catalog/state)
// to w with the CA's private keys removed: the user archive never holds
// them. A restored archive has roots without keys; the leader then makes a
// fresh root (ensureCA) and keeps the restored ones trusted for one leaf
// TTL. As a last guard, a line that still holds a PEM private key refuses
// the whole archive.
func redactSnapshot(w io.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			out, rerr := redactLine(line)
			if rerr != nil {
				return rerr
			}
			if bytes.Contains(out, []byte("PRIVATE KEY")) {
				return errors.New("snapshot save: refusing to write an archive that holds a private key")
			}
			if _, werr := w.Write(out); werr != nil {
				return fmt.Errorf("copy snapshot: %w", werr)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("copy snapshot: %w", err)
		}
	}
}

func redactLine(line []byte) ([]byte, error) {
	if !bytes.Contains(line, []byte(metaCARoots)) {
		return line, nil
	}
	var rec struct {
		T string                     `json:"t"`
		V map[string]json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(line, &rec); err != nil || rec.T != "meta" {
		return line, nil
	}
	var key, value string
	if json.Unmarshal(rec.V["Key"], &key) != nil || key != metaCARoots || json.Unmarshal(rec.V["Value"], &value) != nil {
		return line, nil
	}
	var roots []*connect.Root
	if err := json.Unmarshal([]byte(value), &roots); err != nil {
		return nil, fmt.Errorf("snapshot save: decode CA roots: %w", err)
	}
	for _, root := range roots {
		root.RootKeyPEM, root.SigningKeyPEM, root.JWTKeyPEM = "", "", ""
	}
	b, err := json.Marshal(roots)
	if err != nil {
		return nil, err
	}
	if rec.V["Value"], err = json.Marshal(string(b)); err != nil {
		return nil, err
	}
	out, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
