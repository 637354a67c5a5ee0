// Package rpc is the server-to-server protocol: the gRPC service in pb/
// (generated, committed; `make generate`), the request and reply types of
// its Call method, error mapping across the wire, and a pooled client.
// It imports only catalog; server imports it.
package rpc

import (
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Methods of Server.Call.
const (
	MethodRegister          = "Catalog.Register"
	MethodDeregister        = "Catalog.Deregister"
	MethodNodes             = "Catalog.Nodes"
	MethodServices          = "Catalog.Services"
	MethodServiceNodes      = "Catalog.ServiceNodes"
	MethodNodeServices      = "Catalog.NodeServices"
	MethodCheckServiceNodes = "Health.ServiceNodes"
	MethodServiceChecks     = "Health.ServiceChecks"
	MethodNodeChecks        = "Health.NodeChecks"
	MethodChecksInState     = "Health.ChecksInState"
	MethodRaftConfiguration = "Operator.RaftConfiguration"
	MethodRemovePeer        = "Operator.RemovePeer"
	MethodSnapshotSave      = "Snapshot.Save"
	MethodSnapshotRestore   = "Snapshot.Restore"
	MethodStatus            = "Status.Get"
)

// StatusReply is the leader's and the voters' RPC addresses.
type StatusReply struct {
	Leader string
	Peers  []string
}

// RegisterRequest carries a catalog registration to the leader.
type RegisterRequest struct {
	Registration catalog.Registration
}

// DeregisterRequest carries a catalog deregistration to the leader.
type DeregisterRequest struct {
	Deregistration catalog.Deregistration
}

// Empty is the reply of calls that return nothing.
type Empty struct{}

// ReadRequest is the request of every catalog and health read; each method
// uses the fields it needs.
type ReadRequest struct {
	Options     catalog.QueryOptions
	NodeMeta    map[string]string `json:",omitempty"`
	Service     string            `json:",omitempty"`
	Tags        []string          `json:",omitempty"`
	Node        string            `json:",omitempty"`
	State       string            `json:",omitempty"`
	PassingOnly bool              `json:",omitempty"`
}

// ReadReply is the reply of every catalog and health read; each method
// fills the fields of its result.
type ReadReply struct {
	Meta              catalog.QueryMeta
	Nodes             []*catalog.Node            `json:",omitempty"`
	Services          map[string][]string        `json:",omitempty"`
	ServiceNodes      []catalog.ServiceNode      `json:",omitempty"`
	Node              *catalog.Node              `json:",omitempty"`
	NodeServices      []*catalog.Service         `json:",omitempty"`
	CheckServiceNodes []catalog.CheckServiceNode `json:",omitempty"`
	Checks            []*catalog.Check           `json:",omitempty"`
}

// RaftServer is one member of the Raft configuration.
type RaftServer struct {
	ID      string
	Node    string
	Address string
	Leader  bool
	Voter   bool
}

// RaftConfigurationReply is the Raft configuration as the leader sees it.
type RaftConfigurationReply struct {
	Servers []RaftServer
	Index   uint64
}

// RemovePeerRequest removes a server by ID or by address.
type RemovePeerRequest struct {
	ID      string
	Address string
}

// SnapshotReply carries a snapshot archive.
type SnapshotReply struct {
	Data []byte
}

// SnapshotRestoreRequest carries a snapshot archive to restore.
type SnapshotRestoreRequest struct {
	Data []byte
}

// WatchBody is the body of a WatchEvent. A snapshot fills Services and
// Nodes; a delta fills Upserts (instances to add or replace), Removed
// (instances that are gone) and Nodes (a node mapped to nil is gone).
type WatchBody struct {
	Services map[string][]catalog.CheckServiceNode `json:",omitempty"`
	Nodes    map[string]*catalog.Node              `json:",omitempty"`
	Upserts  []catalog.CheckServiceNode            `json:",omitempty"`
	Removed  []InstanceKey                         `json:",omitempty"`
}

// InstanceKey names a service instance.
type InstanceKey struct {
	Service string
	Node    string
	ID      string
}

// MethodAutoEncryptSign signs an agent's client certificate (auto-encrypt):
// the only call a client without a certificate may make, over TLS.
const MethodAutoEncryptSign = "AutoEncrypt.Sign"

// AutoEncryptSignRequest asks the servers for an agent's client
// certificate. A request without a CSR asks only for the trust domain,
// which the agent needs to put its SPIFFE ID in the CSR.
type AutoEncryptSignRequest struct {
	Datacenter string
	Node       string
	NodeID     string
	// CSR is DER: the agent SPIFFE ID
	// (spiffe://<td>/agent/client/dc/<dc>/id/<node-id>) as its only URI
	// SAN, DNS SANs among client.<dc>.<domain> and localhost.
	// The call's ACL token (the agent's) needs node:write on Node, as
	// Consul's AutoEncrypt.Sign asks (server/aclenforce.go).
	CSR []byte `json:",omitempty"`
}

// AutoEncryptSignReply is the signed certificate (with the intermediates
// of the built-in CA, the chain a TLS client presents).
type AutoEncryptSignReply struct {
	TrustDomain string
	CertPEM     string `json:",omitempty"`
	ValidAfter  time.Time
	ValidBefore time.Time
}
