package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
	"github.com/warren-mesh/warren/server/fsm"
)

// applyTimeout bounds how long a write waits to be committed.
const applyTimeout = 30 * time.Second

// leaderWait bounds how long a follower waits for a leader to appear before
// it answers "no cluster leader" (an election takes a few hundred ms).
const leaderWait = 5 * time.Second

// endpoint is one method of Server.Call.
type endpoint struct {
	// write endpoints and leader-only operations always run on the leader.
	leaderOnly bool
	newReq     func() any
	newReply   func() any
	// consistency of a read request; writes ignore it.
	consistency func(req any) catalog.Consistency
	run         func(ctx context.Context, req any) (any, error)
}

func typed[Req, Reply any](leaderOnly bool, run func(context.Context, *Req) (*Reply, error)) endpoint {
	return endpoint{
		leaderOnly: leaderOnly,
		newReq:     func() any { return new(Req) },
		newReply:   func() any { return new(Reply) },
		consistency: func(req any) catalog.Consistency {
			if r, ok := req.(*rpc.ReadRequest); ok {
				return r.Options.Consistency
			}
			if r, ok := req.(interface{ ReadConsistency() catalog.Consistency }); ok {
				return r.ReadConsistency()
			}
			return catalog.ConsistencyDefault
		},
		run: func(ctx context.Context, req any) (any, error) { return run(ctx, req.(*Req)) },
	}
}

func (s *Server) buildEndpoints() map[string]endpoint {
	return map[string]endpoint{
		rpc.MethodRegister:          typed(true, s.localRegister),
		rpc.MethodDeregister:        typed(true, s.localDeregister),
		rpc.MethodNodes:             typed(false, s.readNodes),
		rpc.MethodServices:          typed(false, s.readServices),
		rpc.MethodServiceNodes:      typed(false, s.readServiceNodes),
		rpc.MethodNodeServices:      typed(false, s.readNodeServices),
		rpc.MethodCheckServiceNodes: typed(false, s.readCheckServiceNodes),
		rpc.MethodServiceChecks:     typed(false, s.readServiceChecks),
		rpc.MethodNodeChecks:        typed(false, s.readNodeChecks),
		rpc.MethodChecksInState:     typed(false, s.readChecksInState),
		rpc.MethodRaftConfiguration: typed(true, s.localRaftConfiguration),
		rpc.MethodRemovePeer:        typed(true, s.localRemovePeer),
		rpc.MethodSnapshotSave:      typed(true, s.localSnapshotSave),
		rpc.MethodSnapshotRestore:   typed(true, s.localSnapshotRestore),
		rpc.MethodStatus:            typed(false, s.localStatus),
		rpc.MethodCARoots:           typed(false, s.readCARoots),
		rpc.MethodCAConfigGet:       typed(false, s.readCAConfig),
		rpc.MethodCAConfigSet:       typed(true, s.localSetCAConfig),
		rpc.MethodCASign:            typed(true, s.localSign),
		rpc.MethodCASignJWT:         typed(true, s.localSignJWT),
		rpc.MethodIntentionApply:    typed(true, s.localIntentionApply),
		rpc.MethodIntentionQuery:    typed(false, s.readIntentions),

		acl.MethodBootstrap:    typed(true, s.localACLBootstrap),
		acl.MethodResolve:      typed(false, s.readACLResolve),
		acl.MethodTokenSet:     typed(true, s.localACLTokenSet),
		acl.MethodTokenRead:    typed(false, s.readACLToken),
		acl.MethodTokenDelete:  typed(true, s.localACLTokenDelete),
		acl.MethodTokenList:    typed(false, s.readACLTokens),
		acl.MethodPolicySet:    typed(true, s.localACLPolicySet),
		acl.MethodPolicyRead:   typed(false, s.readACLPolicy),
		acl.MethodPolicyDelete: typed(true, s.localACLPolicyDelete),
		acl.MethodPolicyList:   typed(false, s.readACLPolicies),
		acl.MethodRoleSet:      typed(true, s.localACLRoleSet),
		acl.MethodRoleRead:     typed(false, s.readACLRole),
		acl.MethodRoleDelete:   typed(true, s.localACLRoleDelete),
		acl.MethodRoleList:     typed(false, s.readACLRoles),

		acl.MethodEnrollmentTokenCreate: typed(true, s.localEnrollmentTokenCreate),
		acl.MethodEnrollmentTokenList:   typed(false, s.readEnrollmentTokens),
		acl.MethodEnrollCA:              typed(false, s.readEnrollCA),
		acl.MethodEnroll:                typed(true, s.localEnroll),
		rpc.MethodAutoEncryptSign:       typed(true, s.localAutoEncryptSign), // server/autoencrypt.go
	}
}

// servesLocally reports whether this server answers a request itself:
// stale reads anywhere, everything else only on the ready leader.
func (s *Server) servesLocally(ep endpoint, req any) bool {
	if !ep.leaderOnly && ep.consistency(req) == catalog.ConsistencyStale {
		return true
	}
	return s.IsLeader()
}

// call runs method here or on the leader.
func call[Req, Reply any](ctx context.Context, s *Server, method string, req *Req) (*Reply, error) {
	ep, ok := s.endpoints[method]
	if !ok {
		return nil, fmt.Errorf("unknown method %s", method)
	}
	a, err := s.authorizeCall(ctx, method, req)
	if err != nil {
		return nil, err
	}
	if s.servesLocally(ep, req) {
		out, err := ep.run(ctx, req)
		if err != nil {
			return nil, err
		}
		filterReply(a, out)
		return out.(*Reply), nil
	}
	var reply Reply
	if err := s.forwardInto(ctx, method, req, &reply); err != nil {
		return nil, err
	}
	filterReply(a, &reply)
	return &reply, nil
}

// forward sends req to the leader and returns its reply as a JSON message.
func (s *Server) forward(ctx context.Context, method string, req any) (any, error) {
	var reply json.RawMessage
	if err := s.forwardInto(ctx, method, req, &reply); err != nil {
		return nil, err
	}
	return reply, nil
}

// forwardInto sends req to the leader, decoding its reply into reply.
// Every catalog write is idempotent (an upsert or a delete), so a request
// that may or may not have reached a leader that went away is safe to send
// again, as Consul's RPC hold does.
func (s *Server) forwardInto(ctx context.Context, method string, req, reply any) error {
	hold := time.Now().Add(leaderWait)
	for {
		addr, err := s.waitLeader(ctx)
		if err != nil {
			return err
		}
		s.metrics.forwarded.WithLabelValues(method).Inc()
		err = s.pool.Forward(ctx, addr, method, req, reply)
		if err == nil {
			return nil
		}
		if !errors.Is(err, catalog.ErrNoLeader) || time.Now().After(hold) {
			return err
		}
		// A write that may have been applied is not sent again: applied
		// twice, it could undo another client's write made in between.
		if ep, ok := s.endpoints[method]; ok && ep.leaderOnly && rpc.MaybeSent(err) {
			return fmt.Errorf("%w: %v", catalog.ErrMaybeApplied, err)
		}
		s.log.Debug("forward to leader failed; retrying", "method", method, "leader", addr, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitLeader returns the leader's address, waiting through an election.
func (s *Server) waitLeader(ctx context.Context) (string, error) {
	deadline := time.NewTimer(leaderWait)
	defer deadline.Stop()
	poll := time.NewTicker(25 * time.Millisecond)
	defer poll.Stop()
	for {
		if addr := s.LeaderAddr(); addr != "" && addr != s.cfg.AdvertiseAddr {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-deadline.C:
			return "", catalog.ErrNoLeader
		case <-poll.C:
			if s.IsLeader() {
				return s.cfg.AdvertiseAddr, nil
			}
		}
	}
}

// grpcService is the gRPC face of the server.
type grpcService struct {
	pb.UnimplementedServerServer
	s *Server
}

func (g *grpcService) Call(ctx context.Context, req *pb.CallRequest) (reply *pb.CallReply, err error) {
	ep, ok := g.s.endpoints[req.Method]
	if ok {
		start := time.Now()
		defer func() {
			outcome := "ok"
			if err != nil {
				outcome = "error"
			}
			g.s.metrics.rpcRequests.WithLabelValues(req.Method, outcome).Inc()
			g.s.metrics.rpcLatency.WithLabelValues(req.Method).Observe(time.Since(start).Seconds())
		}()
	}
	if !ok {
		return nil, rpc.ToStatus(fmt.Errorf("%w: unknown method %q", catalog.ErrInvalid, req.Method))
	}
	if err := g.s.allowCall(ctx); err != nil { // rpc_rate (server/ratelimit.go)
		return nil, rpc.ToStatus(err)
	}
	in := ep.newReq()
	if err := json.Unmarshal(req.Body, in); err != nil {
		return nil, rpc.ToStatus(fmt.Errorf("%w: decode %s: %v", catalog.ErrInvalid, req.Method, err))
	}
	ctx = acl.WithSecret(ctx, req.Token)
	var authz acl.Authorizer
	if !req.Forwarded {
		// A request from outside the server set is checked here, by
		// the server it reached; forwarded ones were checked already.
		if authz, err = g.s.authorizeCall(ctx, req.Method, in); err != nil {
			return nil, rpc.ToStatus(err)
		}
	}
	var out any
	switch {
	case g.s.servesLocally(ep, in):
		out, err = ep.run(ctx, in)
	case req.Forwarded:
		// A forwarded request is never forwarded again: if we are no
		// longer the leader, the forwarding server retries.
		err = catalog.ErrNoLeader
	default:
		// An agent's request: forward it as we would our own.
		if authz != nil {
			typed := ep.newReply()
			if err = g.s.forwardInto(ctx, req.Method, in, typed); err == nil {
				out = typed
			}
		} else {
			out, err = g.s.forward(ctx, req.Method, in)
		}
	}
	if err != nil {
		return nil, rpc.ToStatus(err)
	}
	filterReply(authz, out)
	body, err := json.Marshal(out)
	if err != nil {
		return nil, rpc.ToStatus(fmt.Errorf("encode %s reply: %w", req.Method, err))
	}
	return &pb.CallReply{Body: body}, nil
}

func (g *grpcService) Join(ctx context.Context, req *pb.JoinRequest) (*pb.JoinReply, error) {
	return g.s.handleJoin(ctx, req)
}

func (g *grpcService) Watch(req *pb.WatchRequest, stream grpc.ServerStreamingServer[pb.WatchEvent]) error {
	// The stream carries every service and node: an agent's token must
	// read them all (node identities and agent policies do).
	if g.s.acl.cfg.Enabled {
		id, err := g.s.ResolveToken(stream.Context(), req.Token)
		if err != nil {
			return rpc.ToStatus(err)
		}
		if !id.Authorizer.ServiceRead("") {
			return rpc.ToStatus(denied("service_prefix \"\": read", ""))
		}
	}
	return g.s.watch(stream)
}

// applyCommand commits a command through Raft and returns the FSM's error.
func (s *Server) applyCommand(ctx context.Context, t fsm.MessageType, cmd any) error {
	data, err := fsm.Encode(t, cmd)
	if err != nil {
		return err
	}
	timeout := applyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	start := time.Now()
	f := s.raft.Apply(data, timeout)
	err = f.Error()
	s.metrics.applyLatency.Observe(time.Since(start).Seconds())
	if err != nil {
		switch err {
		case raft.ErrNotLeader, raft.ErrLeadershipTransferInProgress:
			// Refused before it entered the log: safe to retry.
			return fmt.Errorf("%w: %v", catalog.ErrNoLeader, err)
		case raft.ErrLeadershipLost:
			return fmt.Errorf("%w: leadership lost while committing", catalog.ErrMaybeApplied)
		case raft.ErrEnqueueTimeout:
			return fmt.Errorf("commit timed out: %w", context.DeadlineExceeded)
		}
		return fmt.Errorf("apply: %w", err)
	}
	if resp, ok := f.Response().(error); ok && resp != nil {
		return resp
	}
	return nil
}

func (s *Server) localRegister(ctx context.Context, req *rpc.RegisterRequest) (*rpc.Empty, error) {
	r := &req.Registration
	if r.Node.Datacenter != "" && r.Node.Datacenter != s.cfg.Datacenter {
		return nil, fmt.Errorf("%w %q", catalog.ErrUnknownDatacenter, r.Node.Datacenter)
	}
	r.Node.Datacenter = s.cfg.Datacenter
	r.Normalize()
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if err := s.applyCommand(ctx, fsm.RegisterType, r); err != nil {
		return nil, fmt.Errorf("register node %q: %w", r.Node.Name, err)
	}
	return &rpc.Empty{}, nil
}

func (s *Server) localDeregister(ctx context.Context, req *rpc.DeregisterRequest) (*rpc.Empty, error) {
	d := &req.Deregistration
	if err := d.Validate(); err != nil {
		return nil, err
	}
	if err := s.applyCommand(ctx, fsm.DeregisterType, d); err != nil {
		return nil, fmt.Errorf("deregister node %q: %w", d.Node, err)
	}
	return &rpc.Empty{}, nil
}

// blockingRead runs read until its index differs from the request's
// MinIndex or the wait ends. A watch that fires without a change to the
// result's index (the result cannot have changed) does not answer: the
// watcher keeps waiting, so indexes never move without a change.
func (s *Server) blockingRead(ctx context.Context, req *rpc.ReadRequest, read func(ws memdb.WatchSet, reply *rpc.ReadReply) (uint64, error)) (*rpc.ReadReply, error) {
	opts := req.Options
	if opts.Consistency == catalog.ConsistencyConsistent {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return nil, fmt.Errorf("%w: verify leadership: %v", catalog.ErrNoLeader, err)
		}
	}
	wait := opts.MaxWait
	if wait <= 0 {
		wait = catalog.DefaultQueryWait
	}
	wait = min(wait, catalog.MaxQueryWait)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for waited := false; ; waited = true {
		reply := &rpc.ReadReply{}
		ws := memdb.NewWatchSet()
		ws.Add(s.store.AbandonCh())
		idx, err := read(ws, reply)
		if err != nil {
			return nil, err
		}
		reply.Meta = s.queryMeta(max(idx, 1))
		if opts.MinIndex == 0 || reply.Meta.Index != opts.MinIndex {
			if waited {
				s.metrics.wakeups.Inc()
			}
			return reply, nil
		}
		if waited {
			s.metrics.internalWakes.Inc()
		}
		s.metrics.watchers.Inc()
		err = ws.WatchCtx(ctx)
		s.metrics.watchers.Dec()
		if err != nil {
			return reply, nil // the wait is over: answer with the unchanged result
		}
	}
}

func (s *Server) queryMeta(idx uint64) catalog.QueryMeta {
	m := catalog.QueryMeta{Index: idx}
	if s.raft.State() == raft.Leader {
		m.KnownLeader = s.leaderReady.Load()
		return m
	}
	m.KnownLeader = s.LeaderAddr() != ""
	if last := s.raft.LastContact(); !last.IsZero() {
		m.LastContact = time.Since(last)
	}
	return m
}

func (s *Server) readNodes(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Nodes, err = s.store.Nodes(ws, req.NodeMeta)
		return idx, err
	})
}

func (s *Server) readServices(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Services, err = s.store.Services(ws, req.NodeMeta)
		return idx, err
	})
}

func (s *Server) readServiceNodes(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.ServiceNodes, err = s.store.ServiceNodes(ws, req.Service, req.Tags)
		return idx, err
	})
}

func (s *Server) readNodeServices(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Node, r.NodeServices, err = s.store.NodeServices(ws, req.Node)
		return idx, err
	})
}

func (s *Server) readCheckServiceNodes(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (uint64, error) {
		idx, all, err := s.store.CheckServiceNodes(ws, req.Service, req.Tags)
		if err != nil || !req.PassingOnly {
			r.CheckServiceNodes = all
			return idx, err
		}
		for _, csn := range all {
			if catalog.AggregatedStatus(csn.Checks) == catalog.HealthPassing {
				r.CheckServiceNodes = append(r.CheckServiceNodes, csn)
			}
		}
		return idx, nil
	})
}

func (s *Server) readServiceChecks(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Checks, err = s.store.ServiceChecks(ws, req.Service)
		return idx, err
	})
}

func (s *Server) readNodeChecks(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Checks, err = s.store.NodeChecks(ws, req.Node)
		return idx, err
	})
}

func (s *Server) readChecksInState(ctx context.Context, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	switch req.State {
	case catalog.HealthAny, catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical:
	default:
		return nil, &catalog.FieldError{Field: "state", Reason: fmt.Sprintf("%q is not one of any, passing, warning, critical", req.State)}
	}
	return s.blockingRead(ctx, req, func(ws memdb.WatchSet, r *rpc.ReadReply) (idx uint64, err error) {
		idx, r.Checks, err = s.store.ChecksInState(ws, req.State)
		return idx, err
	})
}
