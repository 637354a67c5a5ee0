package server

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/rpc"
)

// The server is the HTTP API's backend: each method runs here or on the
// leader, as its consistency mode asks.
var _ httpapi.Backend = (*Server)(nil)

// Register commits a registration.
func (s *Server) Register(ctx context.Context, r *catalog.Registration) error {
	_, err := call[rpc.RegisterRequest, rpc.Empty](ctx, s, rpc.MethodRegister, &rpc.RegisterRequest{Registration: *r})
	return err
}

// Deregister commits a deregistration.
func (s *Server) Deregister(ctx context.Context, d *catalog.Deregistration) error {
	_, err := call[rpc.DeregisterRequest, rpc.Empty](ctx, s, rpc.MethodDeregister, &rpc.DeregisterRequest{Deregistration: *d})
	return err
}

func (s *Server) read(ctx context.Context, method string, req *rpc.ReadRequest) (*rpc.ReadReply, catalog.QueryMeta, error) {
	reply, err := call[rpc.ReadRequest, rpc.ReadReply](ctx, s, method, req)
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return reply, reply.Meta, nil
}

// Nodes lists nodes, filtered by node meta.
func (s *Server) Nodes(ctx context.Context, q catalog.QueryOptions, nodeMeta map[string]string) ([]*catalog.Node, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, rpc.MethodNodes, &rpc.ReadRequest{Options: q, NodeMeta: nodeMeta})
	if err != nil {
		return nil, m, err
	}
	return r.Nodes, m, nil
}

// Services lists service names with their tags.
func (s *Server) Services(ctx context.Context, q catalog.QueryOptions, nodeMeta map[string]string) (map[string][]string, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, rpc.MethodServices, &rpc.ReadRequest{Options: q, NodeMeta: nodeMeta})
	if err != nil {
		return nil, m, err
	}
	return r.Services, m, nil
}

// ServiceNodes lists the instances of a service.
func (s *Server) ServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string) ([]catalog.ServiceNode, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, rpc.MethodServiceNodes, &rpc.ReadRequest{Options: q, Service: service, Tags: tags})
	if err != nil {
		return nil, m, err
	}
	return r.ServiceNodes, m, nil
}

// NodeServices returns a node and its services.
func (s *Server) NodeServices(ctx context.Context, q catalog.QueryOptions, node string) (*catalog.Node, []*catalog.Service, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, rpc.MethodNodeServices, &rpc.ReadRequest{Options: q, Node: node})
	if err != nil {
		return nil, nil, m, err
	}
	return r.Node, r.NodeServices, m, nil
}

// CheckServiceNodes lists the instances of a service with their checks.
func (s *Server) CheckServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string, passingOnly bool) ([]catalog.CheckServiceNode, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, rpc.MethodCheckServiceNodes, &rpc.ReadRequest{Options: q, Service: service, Tags: tags, PassingOnly: passingOnly})
	if err != nil {
		return nil, m, err
	}
	return r.CheckServiceNodes, m, nil
}

// ServiceChecks lists the checks of a service's instances.
func (s *Server) ServiceChecks(ctx context.Context, q catalog.QueryOptions, service string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return s.checks(ctx, rpc.MethodServiceChecks, &rpc.ReadRequest{Options: q, Service: service})
}

// NodeChecks lists the checks of a node.
func (s *Server) NodeChecks(ctx context.Context, q catalog.QueryOptions, node string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return s.checks(ctx, rpc.MethodNodeChecks, &rpc.ReadRequest{Options: q, Node: node})
}

// ChecksInState lists the checks in a state.
func (s *Server) ChecksInState(ctx context.Context, q catalog.QueryOptions, state string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return s.checks(ctx, rpc.MethodChecksInState, &rpc.ReadRequest{Options: q, State: state})
}

func (s *Server) checks(ctx context.Context, method string, req *rpc.ReadRequest) ([]*catalog.Check, catalog.QueryMeta, error) {
	r, m, err := s.read(ctx, method, req)
	if err != nil {
		return nil, m, err
	}
	return r.Checks, m, nil
}

// Leader is the leader's RPC address, "" when there is none.
func (s *Server) Leader(context.Context) (string, error) { return s.LeaderAddr(), nil }

// Peers are the addresses of the voting servers.
func (s *Server) Peers(context.Context) ([]string, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	peers := []string{}
	for _, srv := range f.Configuration().Servers {
		if srv.Suffrage == raft.Voter {
			peers = append(peers, string(srv.Address))
		}
	}
	return peers, nil
}

func (s *Server) localStatus(ctx context.Context, _ *rpc.Empty) (*rpc.StatusReply, error) {
	peers, err := s.Peers(ctx)
	if err != nil {
		return nil, err
	}
	return &rpc.StatusReply{Leader: s.LeaderAddr(), Peers: peers}, nil
}

// RaftConfiguration is the leader's view of the Raft configuration.
func (s *Server) RaftConfiguration(ctx context.Context) (*httpapi.RaftConfiguration, error) {
	r, err := call[rpc.RaftConfigurationReply, rpc.RaftConfigurationReply](ctx, s, rpc.MethodRaftConfiguration, &rpc.RaftConfigurationReply{})
	if err != nil {
		return nil, err
	}
	out := &httpapi.RaftConfiguration{Index: r.Index}
	for _, srv := range r.Servers {
		out.Servers = append(out.Servers, httpapi.RaftServer(srv))
	}
	return out, nil
}

// RemovePeer removes a server from the Raft configuration.
func (s *Server) RemovePeer(ctx context.Context, id, address string) error {
	_, err := call[rpc.RemovePeerRequest, rpc.Empty](ctx, s, rpc.MethodRemovePeer, &rpc.RemovePeerRequest{ID: id, Address: address})
	return err
}

func (s *Server) localRaftConfiguration(_ context.Context, _ *rpc.RaftConfigurationReply) (*rpc.RaftConfigurationReply, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	leader := s.LeaderAddr()
	out := &rpc.RaftConfigurationReply{Index: f.Index()}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, srv := range f.Configuration().Servers {
		node := "(unknown)"
		if info, ok := s.known[string(srv.ID)]; ok {
			node = info.NodeName
		}
		if string(srv.ID) == s.meta.NodeID {
			node = s.cfg.NodeName
		}
		out.Servers = append(out.Servers, rpc.RaftServer{
			ID:      string(srv.ID),
			Node:    node,
			Address: string(srv.Address),
			Leader:  string(srv.Address) == leader,
			Voter:   srv.Suffrage == raft.Voter,
		})
	}
	return out, nil
}

func (s *Server) localRemovePeer(_ context.Context, req *rpc.RemovePeerRequest) (*rpc.Empty, error) {
	if (req.ID == "") == (req.Address == "") {
		return nil, &catalog.FieldError{Field: "id", Reason: "give exactly one of id or address"}
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	for _, srv := range f.Configuration().Servers {
		if string(srv.ID) == req.ID || string(srv.Address) == req.Address {
			if err := s.raft.RemoveServer(srv.ID, 0, 0).Error(); err != nil {
				return nil, fmt.Errorf("remove server %s: %w", srv.ID, err)
			}
			s.mu.Lock()
			delete(s.known, string(srv.ID))
			s.mu.Unlock()
			s.log.Info("removed server from raft", "id", srv.ID, "addr", srv.Address)
			return &rpc.Empty{}, nil
		}
	}
	return nil, fmt.Errorf("%w: no server with id %q / address %q in the raft configuration", catalog.ErrNotFound, req.ID, req.Address)
}

// Self describes this server.
func (s *Server) Self() httpapi.Self {
	host, port, _ := net.SplitHostPort(s.cfg.AdvertiseAddr)
	p, _ := strconv.Atoi(port)
	return httpapi.Self{
		NodeName:   s.cfg.NodeName,
		NodeID:     s.meta.NodeID,
		Datacenter: s.cfg.Datacenter,
		Server:     true,
		Version:    s.cfg.Version,
		MemberAddr: host,
		MemberPort: p,
	}
}
