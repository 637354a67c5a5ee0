package agent

import (
	"bytes"
	"context"
	"io"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/rpc"
)

// Backend is the HTTP API's catalog backend on a host that runs no server:
// every request goes to a server over gRPC, which forwards it to the
// leader where its consistency mode asks.
type Backend struct {
	a *Agent
}

var _ httpapi.Backend = Backend{}

// Backend returns the agent's catalog backend.
func (a *Agent) Backend() Backend { return Backend{a: a} }

func (b Backend) read(ctx context.Context, method string, req *rpc.ReadRequest) (*rpc.ReadReply, error) {
	var reply rpc.ReadReply
	if err := b.a.router.call(ctx, method, req, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Register sends a catalog registration.
func (b Backend) Register(ctx context.Context, r *catalog.Registration) error {
	return b.a.router.Register(ctx, r)
}

// Deregister sends a catalog deregistration.
func (b Backend) Deregister(ctx context.Context, d *catalog.Deregistration) error {
	return b.a.router.Deregister(ctx, d)
}

// Nodes lists nodes.
func (b Backend) Nodes(ctx context.Context, q catalog.QueryOptions, meta map[string]string) ([]*catalog.Node, catalog.QueryMeta, error) {
	r, err := b.read(ctx, rpc.MethodNodes, &rpc.ReadRequest{Options: q, NodeMeta: meta})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return r.Nodes, r.Meta, nil
}

// Services lists services with their tags.
func (b Backend) Services(ctx context.Context, q catalog.QueryOptions, meta map[string]string) (map[string][]string, catalog.QueryMeta, error) {
	r, err := b.read(ctx, rpc.MethodServices, &rpc.ReadRequest{Options: q, NodeMeta: meta})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return r.Services, r.Meta, nil
}

// ServiceNodes lists a service's instances.
func (b Backend) ServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string) ([]catalog.ServiceNode, catalog.QueryMeta, error) {
	r, err := b.read(ctx, rpc.MethodServiceNodes, &rpc.ReadRequest{Options: q, Service: service, Tags: tags})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return r.ServiceNodes, r.Meta, nil
}

// NodeServices returns a node and its services.
func (b Backend) NodeServices(ctx context.Context, q catalog.QueryOptions, node string) (*catalog.Node, []*catalog.Service, catalog.QueryMeta, error) {
	r, err := b.read(ctx, rpc.MethodNodeServices, &rpc.ReadRequest{Options: q, Node: node})
	if err != nil {
		return nil, nil, catalog.QueryMeta{}, err
	}
	return r.Node, r.NodeServices, r.Meta, nil
}

// CheckServiceNodes lists a service's instances with their checks.
func (b Backend) CheckServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string, passing bool) ([]catalog.CheckServiceNode, catalog.QueryMeta, error) {
	r, err := b.read(ctx, rpc.MethodCheckServiceNodes, &rpc.ReadRequest{Options: q, Service: service, Tags: tags, PassingOnly: passing})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return r.CheckServiceNodes, r.Meta, nil
}

func (b Backend) checks(ctx context.Context, method string, req *rpc.ReadRequest) ([]*catalog.Check, catalog.QueryMeta, error) {
	r, err := b.read(ctx, method, req)
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return r.Checks, r.Meta, nil
}

// ServiceChecks lists a service's checks.
func (b Backend) ServiceChecks(ctx context.Context, q catalog.QueryOptions, service string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return b.checks(ctx, rpc.MethodServiceChecks, &rpc.ReadRequest{Options: q, Service: service})
}

// NodeChecks lists a node's checks.
func (b Backend) NodeChecks(ctx context.Context, q catalog.QueryOptions, node string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return b.checks(ctx, rpc.MethodNodeChecks, &rpc.ReadRequest{Options: q, Node: node})
}

// ChecksInState lists checks in a state.
func (b Backend) ChecksInState(ctx context.Context, q catalog.QueryOptions, state string) ([]*catalog.Check, catalog.QueryMeta, error) {
	return b.checks(ctx, rpc.MethodChecksInState, &rpc.ReadRequest{Options: q, State: state})
}

func (b Backend) status(ctx context.Context) (*rpc.StatusReply, error) {
	var reply rpc.StatusReply
	if err := b.a.router.call(ctx, rpc.MethodStatus, &rpc.Empty{}, &reply); err != nil {
		return nil, err
	}
	return &reply, nil
}

// Leader is the leader's RPC address.
func (b Backend) Leader(ctx context.Context) (string, error) {
	r, err := b.status(ctx)
	if err != nil {
		return "", err
	}
	return r.Leader, nil
}

// Peers are the voters' RPC addresses.
func (b Backend) Peers(ctx context.Context) ([]string, error) {
	r, err := b.status(ctx)
	if err != nil {
		return nil, err
	}
	return r.Peers, nil
}

// RaftConfiguration is the leader's Raft configuration.
func (b Backend) RaftConfiguration(ctx context.Context) (*httpapi.RaftConfiguration, error) {
	var r rpc.RaftConfigurationReply
	if err := b.a.router.call(ctx, rpc.MethodRaftConfiguration, &rpc.RaftConfigurationReply{}, &r); err != nil {
		return nil, err
	}
	out := &httpapi.RaftConfiguration{Index: r.Index}
	for _, srv := range r.Servers {
		out.Servers = append(out.Servers, httpapi.RaftServer(srv))
	}
	return out, nil
}

// RemovePeer removes a server from the Raft configuration.
func (b Backend) RemovePeer(ctx context.Context, id, address string) error {
	return b.a.router.call(ctx, rpc.MethodRemovePeer, &rpc.RemovePeerRequest{ID: id, Address: address}, &rpc.Empty{})
}

// SnapshotSave fetches a snapshot from the leader.
func (b Backend) SnapshotSave(ctx context.Context, w io.Writer) error {
	var r rpc.SnapshotReply
	if err := b.a.router.call(ctx, rpc.MethodSnapshotSave, &rpc.Empty{}, &r); err != nil {
		return err
	}
	_, err := io.Copy(w, bytes.NewReader(r.Data))
	return err
}

// SnapshotRestore sends a snapshot to the leader.
func (b Backend) SnapshotRestore(ctx context.Context, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, rpc.MaxMessageSize))
	if err != nil {
		return err
	}
	return b.a.router.call(ctx, rpc.MethodSnapshotRestore, &rpc.SnapshotRestoreRequest{Data: data}, &rpc.Empty{})
}

// Self describes this agent.
func (b Backend) Self() httpapi.Self { return b.a.SelfInfo().Self }

// ACLCall runs an ACL API method on the servers.
func (b Backend) ACLCall(ctx context.Context, method string, req, reply any) error {
	return b.a.router.call(ctx, method, req, reply)
}
