package api

import "time"

// ACL wire types of /v1/acl/*, with the field names and omitted-when-empty
// rules of Consul's. Namespaces, partitions, auth methods and templated
// policies are left out.

// ACLLink names a policy or a role by ID or Name; in requests either one
// will do, answers carry both.
type ACLLink struct {
	ID   string
	Name string
}

// The link types of Consul's API are all ACLLink.
type (
	ACLTokenPolicyLink = ACLLink
	ACLTokenRoleLink   = ACLLink
	ACLRolePolicyLink  = ACLLink
)

// ACLServiceIdentity grants write on a service and its sidecar proxy and
// read on every service and node, in Datacenters (every one when empty).
type ACLServiceIdentity struct {
	ServiceName string
	Datacenters []string `json:",omitempty"`
}

// ACLNodeIdentity grants write on a node and read on every service, in one
// datacenter.
type ACLNodeIdentity struct {
	NodeName   string
	Datacenter string
}

// ACLToken is a token as PUT /v1/acl/token takes it and the token
// endpoints answer. Warren stores only a hash of SecretID, so SecretID is
// set only in the answers of PUT /v1/acl/bootstrap and of the create that
// made the token (or a create that gave its own SecretID); reads, updates
// and lists answer with it empty.
type ACLToken struct {
	CreateIndex       uint64
	ModifyIndex       uint64
	AccessorID        string
	SecretID          string
	Description       string
	Policies          []*ACLTokenPolicyLink `json:",omitempty"`
	Roles             []*ACLTokenRoleLink   `json:",omitempty"`
	ServiceIdentities []*ACLServiceIdentity `json:",omitempty"`
	NodeIdentities    []*ACLNodeIdentity    `json:",omitempty"`
	Local             bool
	// ExpirationTTL is a request field: the server sets ExpirationTime to
	// CreateTime plus it, and answers without it, as Consul does. It is
	// accepted as a Go duration string ("1h") or nanoseconds (what
	// Consul's Go client sends).
	ExpirationTTL  Duration   `json:",omitempty"`
	ExpirationTime *time.Time `json:",omitempty"`
	CreateTime     time.Time  `json:",omitempty"`
	Hash           []byte     `json:",omitempty"`
}

// ACLTokenListEntry is one token of GET /v1/acl/tokens (SecretID empty,
// see ACLToken).
type ACLTokenListEntry struct {
	CreateIndex       uint64
	ModifyIndex       uint64
	AccessorID        string
	SecretID          string
	Description       string
	Policies          []*ACLTokenPolicyLink `json:",omitempty"`
	Roles             []*ACLTokenRoleLink   `json:",omitempty"`
	ServiceIdentities []*ACLServiceIdentity `json:",omitempty"`
	NodeIdentities    []*ACLNodeIdentity    `json:",omitempty"`
	Local             bool
	ExpirationTime    *time.Time `json:",omitempty"`
	CreateTime        time.Time
	Hash              []byte
}

// ACLPolicy is a policy as PUT /v1/acl/policy takes it and the policy
// endpoints answer. Rules is in Consul's HCL or JSON rule language.
type ACLPolicy struct {
	ID          string
	Name        string
	Description string
	Rules       string
	Datacenters []string
	Hash        []byte
	CreateIndex uint64
	ModifyIndex uint64
}

// ACLPolicyListEntry is one policy of GET /v1/acl/policies (no Rules).
type ACLPolicyListEntry struct {
	ID          string
	Name        string
	Description string
	Datacenters []string
	Hash        []byte
	CreateIndex uint64
	ModifyIndex uint64
}

// ACLRole is a role as PUT /v1/acl/role takes it and the role endpoints
// (GET /v1/acl/roles included) answer.
type ACLRole struct {
	ID                string
	Name              string
	Description       string
	Policies          []*ACLRolePolicyLink  `json:",omitempty"`
	ServiceIdentities []*ACLServiceIdentity `json:",omitempty"`
	NodeIdentities    []*ACLNodeIdentity    `json:",omitempty"`
	Hash              []byte
	CreateIndex       uint64
	ModifyIndex       uint64
}
