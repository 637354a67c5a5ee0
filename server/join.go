package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/rpc/pb"
)

// errOtherCluster ends the server: its data dir belongs to another cluster
// than the servers it was told to join.
var errOtherCluster = errors.New("data dir belongs to another cluster")

func (s *Server) selfInfo() *pb.ServerInfo {
	return &pb.ServerInfo{
		NodeName:        s.cfg.NodeName,
		NodeId:          s.meta.NodeID,
		Address:         s.cfg.AdvertiseAddr,
		Datacenter:      s.cfg.Datacenter,
		BootstrapExpect: int32(s.cfg.BootstrapExpect),
		ClusterId:       s.clusterID(),
	}
}

// inConfiguration reports whether this server is in the Raft configuration
// it holds, i.e. it is part of a cluster.
func (s *Server) inConfiguration() bool {
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return false
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(s.meta.NodeID) {
			return true
		}
	}
	return false
}

// Discovered tells the server about another server's RPC address, found by
// gossip. The join loop contacts it: to bootstrap, to be added to the
// cluster, or to check that it is of the same cluster.
func (s *Server) Discovered(rpcAddr string) {
	if rpcAddr == "" || rpcAddr == s.cfg.AdvertiseAddr {
		return
	}
	s.mu.Lock()
	if _, ok := s.targets[rpcAddr]; !ok {
		s.targets[rpcAddr] = false
	}
	s.mu.Unlock()
	select {
	case s.discovered <- struct{}{}:
	default:
	}
}

// pendingTargets are the server addresses not yet contacted successfully.
func (s *Server) pendingTargets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for addr, done := range s.targets {
		if !done {
			out = append(out, addr)
		}
	}
	sort.Strings(out)
	return out
}

func (s *Server) markContacted(addr string) {
	s.mu.Lock()
	s.targets[addr] = true
	s.mu.Unlock()
}

// joinLoop contacts every server it learns of (retry_join seeds and
// gossip discoveries) until this server is part of a cluster, bootstrapping
// one when bootstrap_expect servers know of each other; after that it still
// contacts each newly discovered server once, so a new server is added by
// the leader and a server of another cluster is refused.
func (s *Server) joinLoop(ctx context.Context) error {
	for _, addr := range s.cfg.RetryJoin {
		s.Discovered(addr)
	}
	wasMember := s.inConfiguration()
	for attempt := 0; ; attempt++ {
		member := s.inConfiguration()
		if member && !wasMember {
			s.log.Info("joined cluster", "leader", s.LeaderAddr())
		}
		wasMember = member
		if !member {
			s.maybeBootstrap()
		}
		leaderHint := ""
		for _, addr := range s.pendingTargets() {
			reply, err := s.joinOne(ctx, addr)
			if err != nil {
				if errors.Is(err, errOtherCluster) {
					return err
				}
				s.log.Debug("join attempt failed", "addr", addr, "err", err)
				continue
			}
			if member || s.inConfiguration() {
				s.markContacted(addr)
			}
			if reply.Leader != "" {
				leaderHint = reply.Leader
			}
		}
		if !member && leaderHint != "" && leaderHint != s.cfg.AdvertiseAddr && !s.inConfiguration() {
			// Ask the leader itself, which adds us as a voter.
			if _, err := s.joinOne(ctx, leaderHint); errors.Is(err, errOtherCluster) {
				return err
			}
		}
		if !member {
			s.maybeBootstrap()
			if attempt > 0 && attempt%20 == 0 {
				s.log.Warn("still not part of a cluster", "known_servers", s.knownCount(), "bootstrap_expect", s.cfg.BootstrapExpect)
			}
		}
		var retry <-chan time.Time
		if len(s.pendingTargets()) > 0 || !s.inConfiguration() {
			retry = time.After(s.cfg.RetryInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.discovered:
		case <-retry:
		}
	}
}

func (s *Server) joinOne(ctx context.Context, addr string) (*pb.JoinReply, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	reply, err := s.pool.Join(ctx, addr, s.selfInfo())
	if err != nil {
		if st, ok := status.FromError(err); ok && st.Code() == codes.FailedPrecondition {
			return nil, fmt.Errorf("%w: %s", errOtherCluster, st.Message())
		}
		return nil, err
	}
	for _, info := range reply.Known {
		if err := s.learn(info); err != nil {
			return nil, err
		}
	}
	return reply, nil
}

// learn records a server we heard of, refusing one from another cluster.
func (s *Server) learn(info *pb.ServerInfo) error {
	if info == nil || info.NodeId == "" {
		return nil
	}
	if info.Datacenter != s.cfg.Datacenter {
		return fmt.Errorf("server %s (%s) is in datacenter %q, not %q", info.NodeName, info.Address, info.Datacenter, s.cfg.Datacenter)
	}
	if mine := s.clusterID(); mine != "" && info.ClusterId != "" && info.ClusterId != mine {
		return fmt.Errorf("%w: server %s (%s) is in cluster %s, this data dir is of cluster %s", errOtherCluster, info.NodeName, info.Address, info.ClusterId, mine)
	}
	if _, _, err := net.SplitHostPort(info.Address); err != nil {
		return fmt.Errorf("server %s: bad address %q", info.NodeName, info.Address)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if info.NodeId != s.meta.NodeID {
		s.known[info.NodeId] = info
	}
	return nil
}

func (s *Server) knownCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.known)
}

// maybeBootstrap bootstraps Raft with every known server once
// bootstrap_expect of them, none yet part of a cluster, know each other.
// Every server computes the same configuration from the same set, so all of
// them may call it; raft refuses it where there is state already.
func (s *Server) maybeBootstrap() {
	if s.cfg.BootstrapExpect <= 0 || s.bootOK.Load() {
		return
	}
	s.mu.Lock()
	var servers []raft.Server
	for _, info := range s.known {
		if info.ClusterId != "" {
			// A cluster exists: join it rather than make another.
			s.mu.Unlock()
			return
		}
		if int(info.BootstrapExpect) != s.cfg.BootstrapExpect {
			s.log.Warn("server has a different bootstrap_expect", "server", info.NodeName, "theirs", info.BootstrapExpect, "ours", s.cfg.BootstrapExpect)
			continue
		}
		servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(info.NodeId), Address: raft.ServerAddress(info.Address)})
	}
	s.mu.Unlock()
	if len(servers) < s.cfg.BootstrapExpect {
		return
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: servers}).Error()
	switch {
	case err == nil:
		s.log.Info("bootstrapped raft cluster", "servers", len(servers))
	case errors.Is(err, raft.ErrCantBootstrap):
		// Another server bootstrapped first and replicated to us.
	default:
		s.log.Error("bootstrap raft cluster", "err", err)
		return
	}
	s.bootOK.Store(true)
}

// handleJoin is the receiving side of Join.
func (s *Server) handleJoin(ctx context.Context, req *pb.JoinRequest) (*pb.JoinReply, error) {
	if err := s.learn(req.Self); err != nil {
		if errors.Is(err, errOtherCluster) {
			return nil, status.Error(codes.FailedPrecondition, err.Error())
		}
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if s.IsLeader() && req.Self.NodeId != s.meta.NodeID {
		if err := s.addVoter(req.Self); err != nil {
			s.log.Warn("add server", "server", req.Self.NodeName, "err", err)
		}
	}
	s.maybeBootstrap()
	s.mu.Lock()
	reply := &pb.JoinReply{Self: s.selfInfo(), Leader: s.LeaderAddr()}
	for _, info := range s.known {
		reply.Known = append(reply.Known, info)
	}
	s.mu.Unlock()
	reply.Known = append(reply.Known, reply.Self)
	return reply, nil
}

// addVoter adds a live server that asked to join, unless it is a member.
func (s *Server) addVoter(info *pb.ServerInfo) error {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == raft.ServerID(info.NodeId) {
			if string(srv.Address) == info.Address {
				return nil
			}
			// Same server, new address: replace it.
			break
		}
	}
	s.log.Info("adding server to raft", "server", info.NodeName, "id", info.NodeId, "addr", info.Address)
	return s.raft.AddVoter(raft.ServerID(info.NodeId), raft.ServerAddress(info.Address), 0, 10*time.Second).Error()
}
