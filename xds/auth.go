package xds

import (
	"context"
	"sync"
)

// TokenMetadataKey is the gRPC metadata key of the ACL token a proxy
// sends on its xDS streams, Consul's.
const TokenMetadataKey = "x-consul-token"

// StreamAuthorizer decides whether the caller of an xDS stream (ctx holds
// its gRPC metadata) may receive the configuration of the proxy nodeID. A
// non-nil error ends the stream with it (a gRPC status error keeps its
// code).
type StreamAuthorizer func(ctx context.Context, nodeID string) error

// streamAuth checks each stream once, on its first request naming a node.
type streamAuth struct {
	authorize StreamAuthorizer
	mu        sync.Mutex
	streams   map[int64]*authStream
}

type authStream struct {
	ctx  context.Context
	node string // the node authorized; "" until the first request
}

// SetAuthorizer makes every stream pass f before it gets anything; call
// it before serving.
func (s *Server) SetAuthorizer(f StreamAuthorizer) {
	s.auth = &streamAuth{authorize: f, streams: map[int64]*authStream{}}
}

func (a *streamAuth) open(ctx context.Context, id int64) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.streams[id] = &authStream{ctx: ctx}
	a.mu.Unlock()
}

func (a *streamAuth) closed(id int64) {
	if a == nil {
		return
	}
	a.mu.Lock()
	delete(a.streams, id)
	a.mu.Unlock()
}

// check authorizes the stream's node on its first request; a later
// request naming another node is checked again.
func (a *streamAuth) check(id int64, nodeID string) error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	st := a.streams[id]
	a.mu.Unlock()
	if st == nil {
		return nil // the per-type services open no stream callback here
	}
	if st.node != "" && (nodeID == "" || nodeID == st.node) {
		return nil
	}
	if err := a.authorize(st.ctx, nodeID); err != nil {
		return err
	}
	a.mu.Lock()
	st.node = nodeID
	a.mu.Unlock()
	return nil
}
