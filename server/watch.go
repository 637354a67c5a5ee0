package server

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
)

// watchDebounce coalesces a burst of writes into one event.
const watchDebounce = 10 * time.Millisecond

// watch streams this server's catalog to an agent's view: a snapshot, then
// the services and nodes whose index moved. It needs no leader, so views
// keep following whichever server they reach during an election.
func (s *Server) watch(stream grpc.ServerStreamingServer[pb.WatchEvent]) error {
	ctx := stream.Context()
	sentSvc := map[string]uint64{}
	sentNode := map[string]uint64{}
	first := true
	for {
		ws := memdb.NewWatchSet()
		ws.Add(s.store.AbandonCh())
		if s.store.AbandonCh() == nil {
			return fmt.Errorf("store closed")
		}
		body, idx, err := s.watchDelta(ws, sentSvc, sentNode, first)
		if err != nil {
			return rpc.ToStatus(err)
		}
		if first || len(body.Services) > 0 || len(body.Nodes) > 0 {
			data, err := json.Marshal(body)
			if err != nil {
				return rpc.ToStatus(fmt.Errorf("encode watch event: %w", err))
			}
			if err := stream.Send(&pb.WatchEvent{Index: idx, Snapshot: first, Body: data}); err != nil {
				return err
			}
			first = false
		}
		if err := ws.WatchCtx(ctx); err != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(watchDebounce):
		}
	}
}

// watchDelta collects what changed since the indexes in sentSvc and
// sentNode (updating them), adding table-wide watches to ws.
func (s *Server) watchDelta(ws memdb.WatchSet, sentSvc, sentNode map[string]uint64, all bool) (*rpc.WatchBody, uint64, error) {
	body := &rpc.WatchBody{Services: map[string][]catalog.CheckServiceNode{}, Nodes: map[string]*catalog.Node{}}
	// Table-wide watches: any service, check or node write wakes the
	// stream; the per-service indexes below decide what is sent.
	if _, _, err := s.store.ChecksInState(ws, catalog.HealthAny); err != nil {
		return nil, 0, err
	}
	_, names, err := s.store.Services(ws, nil)
	if err != nil {
		return nil, 0, err
	}
	_, nodes, err := s.store.Nodes(ws, nil)
	if err != nil {
		return nil, 0, err
	}
	for name := range names {
		idx, csns, err := s.store.CheckServiceNodes(nil, name, nil)
		if err != nil {
			return nil, 0, err
		}
		if all || sentSvc[name] != idx {
			body.Services[name] = csns
			sentSvc[name] = idx
		}
	}
	for name := range sentSvc {
		if _, ok := names[name]; !ok {
			body.Services[name] = nil
			delete(sentSvc, name)
		}
	}
	seen := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		seen[n.Name] = true
		if all || sentNode[n.Name] != n.ModifyIndex {
			body.Nodes[n.Name] = n
			sentNode[n.Name] = n.ModifyIndex
		}
	}
	for name := range sentNode {
		if !seen[name] {
			body.Nodes[name] = nil
			delete(sentNode, name)
		}
	}
	return body, s.store.LastIndex(), nil
}
