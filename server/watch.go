package server

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/catalog/state"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
)

// watchDebounce coalesces a burst of writes into one event.
const watchDebounce = 10 * time.Millisecond

// watch streams this server's catalog to an agent's view: a snapshot, then
// for each batch of commits the full instance lists of just the services
// they touched, read from the store's change feed. It needs no leader, so
// views keep following whichever server they reach during an election.
func (s *Server) watch(stream grpc.ServerStreamingServer[pb.WatchEvent]) error {
	ctx := stream.Context()
	for {
		cur := s.store.ChangeCursor()
		data, err := s.snapshots.get(cur, s.watchSnapshot)
		if err != nil {
			return rpc.ToStatus(err)
		}
		if err := stream.Send(&pb.WatchEvent{Index: cur.Index, Snapshot: true, Body: data}); err != nil {
			return err
		}
		cur, err = s.followChanges(ctx, stream, cur)
		if err != nil || ctx.Err() != nil {
			return err
		}
		// The feed no longer reaches back to cur: start over.
	}
}

// snapshotCacheTTL is how long an encoded snapshot is kept for views that
// connect at the same cursor.
const snapshotCacheTTL = 10 * time.Second

// snapshotCache holds the last encoded snapshot, so that views connecting
// at the same cursor (agents reconnecting after a server restart, the
// views benchmark) share one read of the store and one encoding instead
// of each costing a full one. It is dropped after snapshotCacheTTL.
type snapshotCache struct {
	mu     sync.Mutex
	cursor state.Cursor
	data   []byte
	expiry *time.Timer
}

func (c *snapshotCache) get(cur state.Cursor, read func() (*rpc.WatchBody, error)) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.data != nil && c.cursor == cur {
		return c.data, nil
	}
	body, err := read()
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode watch snapshot: %w", err)
	}
	c.cursor, c.data = cur, data
	if c.expiry == nil {
		c.expiry = time.AfterFunc(snapshotCacheTTL, c.drop)
	} else {
		c.expiry.Reset(snapshotCacheTTL)
	}
	return data, nil
}

func (c *snapshotCache) drop() {
	c.mu.Lock()
	c.data = nil
	c.mu.Unlock()
}

func sendWatch(stream grpc.ServerStreamingServer[pb.WatchEvent], idx uint64, snapshot bool, body *rpc.WatchBody) error {
	data, err := json.Marshal(body)
	if err != nil {
		return rpc.ToStatus(fmt.Errorf("encode watch event: %w", err))
	}
	return stream.Send(&pb.WatchEvent{Index: idx, Snapshot: snapshot, Body: data})
}

// followChanges sends deltas until ctx ends, the stream fails, or the feed
// loses cur (then it returns with a nil error for a new snapshot).
func (s *Server) followChanges(ctx context.Context, stream grpc.ServerStreamingServer[pb.WatchEvent], cur state.Cursor) (state.Cursor, error) {
	for {
		changes, next, ok := s.store.ChangesSince(cur)
		if !ok {
			return cur, nil
		}
		if len(changes) == 0 {
			select {
			case <-ctx.Done():
				return cur, nil
			case <-next:
			}
			// Let a burst of commits land, then send them as one event.
			select {
			case <-ctx.Done():
				return cur, nil
			case <-time.After(watchDebounce):
			}
			continue
		}
		body, err := s.watchDelta(changes)
		if err != nil {
			return cur, rpc.ToStatus(err)
		}
		cur.Index = changes[len(changes)-1].Index
		if err := sendWatch(stream, cur.Index, false, body); err != nil {
			return cur, err
		}
	}
}

func (s *Server) watchSnapshot() (*rpc.WatchBody, error) {
	body := &rpc.WatchBody{Services: map[string][]catalog.CheckServiceNode{}, Nodes: map[string]*catalog.Node{}}
	_, names, err := s.store.Services(nil, nil)
	if err != nil {
		return nil, err
	}
	for name := range names {
		if _, body.Services[name], err = s.store.CheckServiceNodes(nil, name, nil); err != nil {
			return nil, err
		}
	}
	_, nodes, err := s.store.Nodes(nil, nil)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		body.Nodes[n.Name] = n
	}
	return body, nil
}

// watchDelta reads the current state of what changes touched: each
// touched instance is sent whole, or as removed if it no longer exists (or
// is now an instance of another service).
func (s *Server) watchDelta(changes []state.Change) (*rpc.WatchBody, error) {
	keys := map[state.InstanceKey]bool{}
	nodes := map[string]bool{}
	for _, c := range changes {
		for _, k := range c.Instances {
			keys[k] = true
		}
		for _, n := range c.Nodes {
			nodes[n] = true
		}
	}
	body := &rpc.WatchBody{Nodes: make(map[string]*catalog.Node, len(nodes))}
	type id struct{ node, id string }
	sent := map[id]bool{}
	for n := range nodes {
		for _, csn := range s.store.NodeInstances(n) {
			body.Upserts = append(body.Upserts, csn)
			sent[id{n, csn.Service.ID}] = true
		}
		_, row, _, err := s.store.NodeServices(nil, n)
		if err != nil {
			return nil, err
		}
		body.Nodes[n] = row
	}
	for k := range keys {
		csn, ok := s.store.Instance(k.Node, k.ID)
		if ok && csn.Service.Name == k.Service {
			if !sent[id{k.Node, k.ID}] {
				body.Upserts = append(body.Upserts, csn)
				sent[id{k.Node, k.ID}] = true
			}
			continue
		}
		if k.Service != "" {
			body.Removed = append(body.Removed, rpc.InstanceKey(k))
		}
		if ok && !sent[id{k.Node, k.ID}] {
			// Renamed: it is now an instance of another service.
			body.Upserts = append(body.Upserts, csn)
			sent[id{k.Node, k.ID}] = true
		}
	}
	return body, nil
}
