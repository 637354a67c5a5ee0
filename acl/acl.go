// Package acl owns Warren's access control: the rule language (Consul's HCL
// and JSON policy rules), the Authorizer compiled from a token's policies,
// roles and identities, the filters that drop what a token may not read,
// and the token secret hashing. It holds no state and opens no sockets; the
// servers store tokens, policies and roles, the agents and servers enforce.
// It imports catalog only.
package acl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Built-in IDs, Consul's.
const (
	// AnonymousTokenID is the accessor of the token used when a request
	// carries none.
	AnonymousTokenID = "00000000-0000-0000-0000-000000000002"
	// GlobalManagementPolicyID is the policy that allows everything.
	GlobalManagementPolicyID   = "00000000-0000-0000-0000-000000000001"
	GlobalManagementPolicyName = "global-management"
)

// Authorizer answers whether a token may do something. Every method is a
// final answer (default policy already applied).
type Authorizer interface {
	ACLRead() bool
	ACLWrite() bool
	AgentRead(node string) bool
	AgentWrite(node string) bool
	NodeRead(node string) bool
	NodeWrite(node string) bool
	ServiceRead(service string) bool
	ServiceWrite(service string) bool
	// IntentionRead and IntentionWrite are about intentions whose
	// destination is service.
	IntentionRead(service string) bool
	IntentionWrite(service string) bool
	OperatorRead() bool
	OperatorWrite() bool
	KeyringRead() bool
	KeyringWrite() bool
	MeshRead() bool
	MeshWrite() bool
}

// PolicyLink names a policy from a token or a role.
type PolicyLink struct {
	ID   string `json:",omitempty"`
	Name string `json:",omitempty"`
}

// RoleLink names a role from a token.
type RoleLink struct {
	ID   string `json:",omitempty"`
	Name string `json:",omitempty"`
}

// ServiceIdentity grants write on a service and its sidecar proxy, and read
// on every service and node (for discovery), as Consul's does.
type ServiceIdentity struct {
	ServiceName string
	Datacenters []string `json:",omitempty"`
}

// NodeIdentity grants write on a node and read on every service, as
// Consul's does.
type NodeIdentity struct {
	NodeName   string
	Datacenter string
}

// Token is a stored ACL token. The secret is never stored: SecretHash is
// HashSecret of it.
type Token struct {
	AccessorID        string
	SecretHash        string
	Description       string            `json:",omitempty"`
	Policies          []PolicyLink      `json:",omitempty"`
	Roles             []RoleLink        `json:",omitempty"`
	ServiceIdentities []ServiceIdentity `json:",omitempty"`
	NodeIdentities    []NodeIdentity    `json:",omitempty"`
	Local             bool              `json:",omitempty"`
	ExpirationTime    *time.Time        `json:",omitempty"`
	CreateTime        time.Time
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool {
	return t.ExpirationTime != nil && !now.Before(*t.ExpirationTime)
}

// Policy is a named set of rules.
type Policy struct {
	ID          string
	Name        string
	Description string   `json:",omitempty"`
	Rules       string   `json:",omitempty"`
	Datacenters []string `json:",omitempty"`
	CreateIndex uint64   `json:",omitempty"`
	ModifyIndex uint64   `json:",omitempty"`
}

// Role is a named set of policies and identities tokens can link to.
type Role struct {
	ID                string
	Name              string
	Description       string            `json:",omitempty"`
	Policies          []PolicyLink      `json:",omitempty"`
	ServiceIdentities []ServiceIdentity `json:",omitempty"`
	NodeIdentities    []NodeIdentity    `json:",omitempty"`
	CreateIndex       uint64            `json:",omitempty"`
	ModifyIndex       uint64            `json:",omitempty"`
}

// HashSecret is how a secret is stored and looked up: the hex SHA-256 of
// it. A stolen store or snapshot holds only these, and presenting one as a
// token hashes it again, which matches nothing.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Identity is who made a request, once its token is resolved.
type Identity struct {
	// AccessorID is the token's public ID (AnonymousTokenID when the
	// request carried none); audit logs record it, never the secret.
	AccessorID string
	Authorizer Authorizer
}

type identityKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity ctx carries, nil if none.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}
