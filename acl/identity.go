package acl

import (
	"errors"
	"fmt"
	"slices"
)

// ServiceIdentityRules are the rules a service identity grants, Consul's:
// write on the service and on its sidecar proxy, read on every service and
// node (for discovery).
func ServiceIdentityRules(si ServiceIdentity) *Rules {
	return &Rules{
		Services: []ServiceRule{
			{Name: si.ServiceName, Policy: AccessWrite},
			{Name: si.ServiceName + "-sidecar-proxy", Policy: AccessWrite},
		},
		ServicePrefixes: []ServiceRule{{Name: "", Policy: AccessRead}},
		NodePrefixes:    []NameRule{{Name: "", Policy: AccessRead}},
	}
}

// NodeIdentityRules are the rules a node identity grants, Consul's: write
// on the node, read on every service.
func NodeIdentityRules(ni NodeIdentity) *Rules {
	return &Rules{
		Nodes:           []NameRule{{Name: ni.NodeName, Policy: AccessWrite}},
		ServicePrefixes: []ServiceRule{{Name: "", Policy: AccessRead}},
	}
}

// ErrNoToken is returned by Resolve for a nil token.
var ErrNoToken = errors.New("acl: no token")

// PolicyLookup finds a policy by a link's ID (when set) or else its Name;
// false when there is none. RoleLookup does the same for roles.
type (
	PolicyLookup func(PolicyLink) (*Policy, bool)
	RoleLookup   func(RoleLink) (*Role, bool)
)

// Resolve assembles the Authorizer of tok in datacenter dc: the rules of
// its policies, of its roles' policies and identities, and of its own
// service and node identities, compiled by NewAuthorizer(defaultAllow, ...).
//
//   - A link to a policy or role that does not exist (deleted since) is
//     skipped, as Consul does.
//   - A policy with Datacenters applies only in those; a service identity
//     with Datacenters likewise; a node identity only in its Datacenter.
//   - The global-management policy (GlobalManagementPolicyID, linked by ID,
//     or a name that resolves to that ID) makes the result ManageAll.
//   - A stored policy whose rules do not parse is an error (policies are
//     validated when written, so this means a corrupt store).
//
// Resolve does not check expiry (tok.Expired needs the caller's clock) and
// parses each policy's rules on every call: callers on the request path
// cache the result per token and state index.
func Resolve(tok *Token, policies PolicyLookup, roles RoleLookup, dc string, defaultAllow bool) (Authorizer, error) {
	if tok == nil {
		return nil, ErrNoToken
	}
	var (
		rules  []*Rules
		seen   = map[string]bool{} // policy IDs already added
		manage bool
	)
	addPolicies := func(links []PolicyLink) error {
		for _, l := range links {
			if l.ID == GlobalManagementPolicyID {
				manage = true
				continue
			}
			p, ok := policies(l)
			if !ok || p == nil || seen[p.ID] {
				continue
			}
			seen[p.ID] = true
			if len(p.Datacenters) > 0 && !slices.Contains(p.Datacenters, dc) {
				continue
			}
			if p.ID == GlobalManagementPolicyID {
				manage = true
				continue
			}
			r, err := ParseRules(p.Rules)
			if err != nil {
				return fmt.Errorf("policy %q (%s): %w", p.Name, p.ID, err)
			}
			rules = append(rules, r)
		}
		return nil
	}
	addIdentities := func(sis []ServiceIdentity, nis []NodeIdentity) {
		for _, si := range sis {
			if len(si.Datacenters) == 0 || slices.Contains(si.Datacenters, dc) {
				rules = append(rules, ServiceIdentityRules(si))
			}
		}
		for _, ni := range nis {
			if ni.Datacenter == dc {
				rules = append(rules, NodeIdentityRules(ni))
			}
		}
	}
	if err := addPolicies(tok.Policies); err != nil {
		return nil, fmt.Errorf("resolve token %s: %w", tok.AccessorID, err)
	}
	for _, l := range tok.Roles {
		role, ok := roles(l)
		if !ok || role == nil {
			continue
		}
		if err := addPolicies(role.Policies); err != nil {
			return nil, fmt.Errorf("resolve token %s: role %q: %w", tok.AccessorID, role.Name, err)
		}
		addIdentities(role.ServiceIdentities, role.NodeIdentities)
	}
	addIdentities(tok.ServiceIdentities, tok.NodeIdentities)
	if manage {
		return ManageAll(), nil
	}
	return NewAuthorizer(defaultAllow, rules...), nil
}
