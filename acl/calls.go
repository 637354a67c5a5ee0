package acl

import (
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Server.Call methods of the ACL API, with their request and reply types:
// the servers serve them, the HTTP API and the CLI call them.
const (
	MethodBootstrap    = "ACL.Bootstrap"
	MethodResolve      = "ACL.Resolve"
	MethodTokenSet     = "ACL.TokenSet"
	MethodTokenRead    = "ACL.TokenRead"
	MethodTokenDelete  = "ACL.TokenDelete"
	MethodTokenList    = "ACL.TokenList"
	MethodPolicySet    = "ACL.PolicySet"
	MethodPolicyRead   = "ACL.PolicyRead"
	MethodPolicyDelete = "ACL.PolicyDelete"
	MethodPolicyList   = "ACL.PolicyList"
	MethodRoleSet      = "ACL.RoleSet"
	MethodRoleRead     = "ACL.RoleRead"
	MethodRoleDelete   = "ACL.RoleDelete"
	MethodRoleList     = "ACL.RoleList"
)

// TokenSetRequest creates (Create) or updates a token. SecretID may be
// given on create (as Consul allows); the server makes one otherwise.
type TokenSetRequest struct {
	Token         Token
	SecretID      string        `json:",omitempty"`
	ExpirationTTL time.Duration `json:",omitempty"`
	Create        bool          `json:",omitempty"`
}

// TokenReply is one token. SecretID is set only in the reply to the
// call that made the token: the servers keep only its hash.
type TokenReply struct {
	Token    *Token
	SecretID string `json:",omitempty"`
	Meta     catalog.QueryMeta
}

// ReadRequest names one ACL object by ID or (policies and roles) by
// name; Self reads the caller's own token.
type ReadRequest struct {
	ID      string `json:",omitempty"`
	Name    string `json:",omitempty"`
	Self    bool   `json:",omitempty"`
	Options catalog.QueryOptions
}

// ReadConsistency lets the endpoint table honour ?stale.
func (r *ReadRequest) ReadConsistency() catalog.Consistency { return r.Options.Consistency }

// ListReply is a list of tokens, policies or roles.
type ListReply struct {
	Tokens   []*Token  `json:",omitempty"`
	Policies []*Policy `json:",omitempty"`
	Roles    []*Role   `json:",omitempty"`
	Meta     catalog.QueryMeta
}

// PolicySetRequest creates (Create) or updates a policy.
type PolicySetRequest struct {
	Policy Policy
	Create bool `json:",omitempty"`
}

// PolicyReply is one policy.
type PolicyReply struct {
	Policy *Policy
	Meta   catalog.QueryMeta
}

// RoleSetRequest creates (Create) or updates a role.
type RoleSetRequest struct {
	Role   Role
	Create bool `json:",omitempty"`
}

// RoleReply is one role.
type RoleReply struct {
	Role *Role
	Meta catalog.QueryMeta
}

// ResolveReply is what an agent needs to build the authorizer of the
// caller's token: the token and everything it links to, resolved.
type ResolveReply struct {
	Token    *Token
	Policies []*Policy `json:",omitempty"`
	Roles    []*Role   `json:",omitempty"`
	// DefaultAllow is the servers' default_policy.
	DefaultAllow bool
	// Enabled is false when the servers run without ACLs.
	Enabled bool
}

// Identity builds the identity the reply describes, in datacenter dc.
func (r *ResolveReply) Identity(dc string) (*Identity, error) {
	if !r.Enabled {
		return &Identity{AccessorID: AnonymousTokenID, Authorizer: AllowAll()}, nil
	}
	if r.Token == nil {
		return nil, catalog.ErrACLNotFound
	}
	policies := map[string]*Policy{}
	for _, p := range r.Policies {
		policies[p.ID], policies["name:"+p.Name] = p, p
	}
	roles := map[string]*Role{}
	for _, x := range r.Roles {
		roles[x.ID], roles["name:"+x.Name] = x, x
	}
	authz, err := Resolve(r.Token,
		func(l PolicyLink) (*Policy, bool) {
			if l.ID != "" {
				p, ok := policies[l.ID]
				return p, ok
			}
			p, ok := policies["name:"+l.Name]
			return p, ok
		},
		func(l RoleLink) (*Role, bool) {
			if l.ID != "" {
				x, ok := roles[l.ID]
				return x, ok
			}
			x, ok := roles["name:"+l.Name]
			return x, ok
		},
		dc, r.DefaultAllow)
	if err != nil {
		return nil, err
	}
	return &Identity{AccessorID: r.Token.AccessorID, Authorizer: authz}, nil
}
