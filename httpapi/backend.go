package httpapi

import (
	"context"
	"io"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// Backend is what the HTTP API needs from the control plane. The server
// implements it (forwarding to the leader where the consistency mode asks);
// tests use fakes. Errors wrap catalog.ErrInvalid (400), catalog.ErrNoLeader
// (503), catalog.ErrNotFound (404) or catalog.ErrUnknownDatacenter (500).
type Backend interface {
	Register(ctx context.Context, r *catalog.Registration) error
	Deregister(ctx context.Context, d *catalog.Deregistration) error

	Nodes(ctx context.Context, q catalog.QueryOptions, nodeMeta map[string]string) ([]*catalog.Node, catalog.QueryMeta, error)
	// Services returns service name -> sorted, de-duplicated tags.
	Services(ctx context.Context, q catalog.QueryOptions, nodeMeta map[string]string) (map[string][]string, catalog.QueryMeta, error)
	ServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string) ([]catalog.ServiceNode, catalog.QueryMeta, error)
	// NodeServices returns a nil node when the node is not registered.
	NodeServices(ctx context.Context, q catalog.QueryOptions, node string) (*catalog.Node, []*catalog.Service, catalog.QueryMeta, error)
	CheckServiceNodes(ctx context.Context, q catalog.QueryOptions, service string, tags []string, passingOnly bool) ([]catalog.CheckServiceNode, catalog.QueryMeta, error)
	ServiceChecks(ctx context.Context, q catalog.QueryOptions, service string) ([]*catalog.Check, catalog.QueryMeta, error)
	NodeChecks(ctx context.Context, q catalog.QueryOptions, node string) ([]*catalog.Check, catalog.QueryMeta, error)
	// ChecksInState takes passing, warning, critical or any.
	ChecksInState(ctx context.Context, q catalog.QueryOptions, state string) ([]*catalog.Check, catalog.QueryMeta, error)

	// Leader is the leader's RPC address, "" when there is none.
	Leader(ctx context.Context) (string, error)
	// Peers are the RPC addresses of the voting servers.
	Peers(ctx context.Context) ([]string, error)
	RaftConfiguration(ctx context.Context) (*RaftConfiguration, error)
	// RemovePeer removes a server from the Raft configuration by ID or address.
	RemovePeer(ctx context.Context, id, address string) error

	// SnapshotSave writes a point-in-time snapshot of the whole state to w.
	SnapshotSave(ctx context.Context, w io.Writer) error
	// SnapshotRestore replaces the whole state with the snapshot read from r.
	SnapshotRestore(ctx context.Context, r io.Reader) error

	// Self describes the local node for /v1/agent/self.
	Self() Self

	// CARoots is the trust bundle; CAConfiguration and SetCAConfiguration
	// read and change the built-in CA's configuration (a new key type or
	// Config.RotateRoot rotates the root).
	CARoots(ctx context.Context, q catalog.QueryOptions) (*api.CARootList, catalog.QueryMeta, error)
	CAConfiguration(ctx context.Context, q catalog.QueryOptions) (*api.CAConfiguration, catalog.QueryMeta, error)
	SetCAConfiguration(ctx context.Context, c *api.CAConfiguration) error
	// IntentionApply upserts (op "upsert", ixn the body) or deletes (op
	// "delete") the intention from source to destination ("name" or
	// "ns/name").
	IntentionApply(ctx context.Context, op, source, destination string, ixn *api.Intention) error
	// IntentionQuery answers intention reads (list, exact, check, match,
	// authorize); an exact query for a missing pair is ErrNotFound.
	IntentionQuery(ctx context.Context, q catalog.QueryOptions, iq *api.IntentionQuery) (*api.IntentionResult, catalog.QueryMeta, error)
}

// RaftServer is one server in the Raft configuration.
type RaftServer struct {
	ID      string
	Node    string
	Address string
	Leader  bool
	Voter   bool
}

// RaftConfiguration is the Raft configuration with the index it was read at.
type RaftConfiguration struct {
	Servers []RaftServer
	Index   uint64
}

// Self is the local node as /v1/agent/self reports it.
type Self struct {
	NodeName   string
	NodeID     string
	Datacenter string
	Server     bool
	Version    string
	// Member is the node's gossip identity.
	MemberAddr string
	MemberPort int
}
