package httpapi

import (
	"context"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// Agent is what the /v1/agent endpoints need from the local agent. Errors
// follow Backend's conventions (catalog.ErrInvalid -> 400, ErrNotFound ->
// 404).
type Agent interface {
	// Local services and checks, as this agent holds them.
	Services() []*catalog.Service
	Checks() []*catalog.Check
	// RegisterService adds or replaces a local service and its checks; the
	// registration is validated here (field errors name the field),
	// persisted, and synced to the servers.
	RegisterService(ctx context.Context, r *api.AgentServiceRegistration) error
	DeregisterService(ctx context.Context, id string) error
	RegisterCheck(ctx context.Context, r *api.AgentCheckRegistration) error
	DeregisterCheck(ctx context.Context, id string) error
	// UpdateTTL sets a TTL check's status (passing, warning, critical) and
	// output.
	UpdateTTL(ctx context.Context, checkID, status, output string) error
	// EnableNodeMaintenance / service maintenance: enable=true adds a
	// critical maintenance check with reason.
	NodeMaintenance(ctx context.Context, enable bool, reason string) error
	ServiceMaintenance(ctx context.Context, serviceID string, enable bool, reason string) error
	// Reload re-reads the config dir; on error the old config stays.
	Reload(ctx context.Context) error

	// Gossip membership.
	Members() []api.AgentMember
	Join(ctx context.Context, addr string) error
	Leave(ctx context.Context) error
	ForceLeave(ctx context.Context, node string, prune bool) error

	// ConnectCALeaf is the leaf certificate of a service registered on
	// this agent (by name or ID; ErrNotFound otherwise), with the key the
	// agent made for it. With q.MinIndex it blocks until the leaf changes.
	ConnectCALeaf(ctx context.Context, service string, q catalog.QueryOptions) (*api.LeafCert, catalog.QueryMeta, error)

	// SelfInfo is /v1/agent/self: config, member, and the last
	// anti-entropy sync's outcome.
	SelfInfo() AgentSelfInfo
}

// AgentSelfInfo is what /v1/agent/self reports beyond Self.
type AgentSelfInfo struct {
	Self
	Member api.AgentMember
	// Meta is the node meta.
	Meta map[string]string
	// LastSync is the RFC 3339 time of the last successful anti-entropy
	// sync ("" if none), LastSyncError the error of the last failed one.
	LastSync      string
	LastSyncError string
}
