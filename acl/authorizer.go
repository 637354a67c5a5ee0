package acl

import (
	"slices"
	"strings"
)

// NewAuthorizer compiles the rules of many policies into one Authorizer,
// with Consul's precedence:
//
//   - an exact rule (service "web") beats every prefix rule;
//   - among prefix rules (service_prefix "we"), the longest prefix wins, and
//     the empty prefix covers every name;
//   - several policies giving a rule for the same exact name, or the same
//     prefix, merge: deny wins, else the most permissive (write > read);
//   - write implies read;
//   - with no rule, defaultAllow decides, except for acl, which needs a
//     rule (or ManageAll) even when the default is allow, as in Consul;
//   - mesh without a rule follows the operator rule, as in Consul;
//   - a service rule without intentions gives intentions read when its
//     policy is read or write, deny when it is deny (Consul's derivation,
//     applied after merging).
//
// Lookups walk a radix tree once: O(len(name)), no allocation.
func NewAuthorizer(defaultAllow bool, rules ...*Rules) Authorizer {
	z := &authorizer{defaultAllow: defaultAllow}
	services, nodes, agents := merger{}, merger{}, merger{}
	for _, r := range rules {
		if r == nil {
			continue
		}
		z.acl = mergeAccess(z.acl, r.ACL)
		z.operator = mergeAccess(z.operator, r.Operator)
		z.keyring = mergeAccess(z.keyring, r.Keyring)
		z.mesh = mergeAccess(z.mesh, r.Mesh)
		for _, s := range r.Services {
			services.add(s.Name, false, rule{s.Policy, s.Intentions})
		}
		for _, s := range r.ServicePrefixes {
			services.add(s.Name, true, rule{s.Policy, s.Intentions})
		}
		nodes.addNames(r.Nodes, false)
		nodes.addNames(r.NodePrefixes, true)
		agents.addNames(r.Agents, false)
		agents.addNames(r.AgentPrefixes, true)
	}
	for _, e := range services {
		e.exact.intentions = derivedIntentions(e.exact)
		e.prefix.intentions = derivedIntentions(e.prefix)
	}
	z.services = services.tree()
	z.nodes = nodes.tree()
	z.agents = agents.tree()
	if z.mesh == AccessUnset {
		z.mesh = z.operator
	}
	return z
}

func derivedIntentions(r rule) Access {
	if r.intentions != AccessUnset || r.policy == AccessUnset {
		return r.intentions
	}
	if r.policy == AccessDeny {
		return AccessDeny
	}
	return AccessRead
}

// ManageAll is the authorizer of a token with the global-management
// policy: everything, ACL management included.
func ManageAll() Authorizer { return staticAuthorizer{allow: true, manage: true} }

// AllowAll allows everything but ACL management: Consul's default_policy
// "allow" for a token with no rules.
func AllowAll() Authorizer { return staticAuthorizer{allow: true} }

// DenyAll denies everything.
func DenyAll() Authorizer { return staticAuthorizer{} }

type staticAuthorizer struct{ allow, manage bool }

func (s staticAuthorizer) ACLRead() bool              { return s.manage }
func (s staticAuthorizer) ACLWrite() bool             { return s.manage }
func (s staticAuthorizer) AgentRead(string) bool      { return s.allow }
func (s staticAuthorizer) AgentWrite(string) bool     { return s.allow }
func (s staticAuthorizer) NodeRead(string) bool       { return s.allow }
func (s staticAuthorizer) NodeWrite(string) bool      { return s.allow }
func (s staticAuthorizer) ServiceRead(string) bool    { return s.allow }
func (s staticAuthorizer) ServiceWrite(string) bool   { return s.allow }
func (s staticAuthorizer) IntentionRead(string) bool  { return s.allow }
func (s staticAuthorizer) IntentionWrite(string) bool { return s.allow }
func (s staticAuthorizer) OperatorRead() bool         { return s.allow }
func (s staticAuthorizer) OperatorWrite() bool        { return s.allow }
func (s staticAuthorizer) KeyringRead() bool          { return s.allow }
func (s staticAuthorizer) KeyringWrite() bool         { return s.allow }
func (s staticAuthorizer) MeshRead() bool             { return s.allow }
func (s staticAuthorizer) MeshWrite() bool            { return s.allow }

type authorizer struct {
	defaultAllow                 bool
	acl, operator, keyring, mesh Access
	services, nodes, agents      *radixNode
}

// allows applies a rule's level to a wanted one; no rule means the default.
func (z *authorizer) allows(have, want Access) bool {
	switch have {
	case AccessUnset:
		return z.defaultAllow
	case AccessWrite:
		return true
	case AccessList:
		return want == AccessRead || want == AccessList
	case AccessRead:
		return want == AccessRead
	}
	return false
}

func (z *authorizer) ACLRead() bool  { return z.acl != AccessUnset && z.allows(z.acl, AccessRead) }
func (z *authorizer) ACLWrite() bool { return z.acl != AccessUnset && z.allows(z.acl, AccessWrite) }
func (z *authorizer) AgentRead(node string) bool {
	return z.allows(z.agents.lookup(node).policy, AccessRead)
}
func (z *authorizer) AgentWrite(node string) bool {
	return z.allows(z.agents.lookup(node).policy, AccessWrite)
}
func (z *authorizer) NodeRead(node string) bool {
	return z.allows(z.nodes.lookup(node).policy, AccessRead)
}
func (z *authorizer) NodeWrite(node string) bool {
	return z.allows(z.nodes.lookup(node).policy, AccessWrite)
}
func (z *authorizer) ServiceRead(svc string) bool {
	return z.allows(z.services.lookup(svc).policy, AccessRead)
}
func (z *authorizer) ServiceWrite(svc string) bool {
	return z.allows(z.services.lookup(svc).policy, AccessWrite)
}
func (z *authorizer) IntentionRead(svc string) bool {
	return z.allows(z.services.lookup(svc).intentions, AccessRead)
}
func (z *authorizer) IntentionWrite(svc string) bool {
	return z.allows(z.services.lookup(svc).intentions, AccessWrite)
}
func (z *authorizer) OperatorRead() bool  { return z.allows(z.operator, AccessRead) }
func (z *authorizer) OperatorWrite() bool { return z.allows(z.operator, AccessWrite) }
func (z *authorizer) KeyringRead() bool   { return z.allows(z.keyring, AccessRead) }
func (z *authorizer) KeyringWrite() bool  { return z.allows(z.keyring, AccessWrite) }
func (z *authorizer) MeshRead() bool      { return z.allows(z.mesh, AccessRead) }
func (z *authorizer) MeshWrite() bool     { return z.allows(z.mesh, AccessWrite) }

// rule is what applies to one name: the policy, and for services the
// intentions level.
type rule struct{ policy, intentions Access }

func (r rule) merge(o rule) rule {
	return rule{mergeAccess(r.policy, o.policy), mergeAccess(r.intentions, o.intentions)}
}

// entry holds the exact and the prefix rule of one string.
type entry struct {
	key           string
	exact, prefix rule
}

// merger collects the rules of one resource from every policy.
type merger map[string]*entry

func (m merger) add(name string, prefix bool, r rule) {
	e := m[name]
	if e == nil {
		e = &entry{key: name}
		m[name] = e
	}
	if prefix {
		e.prefix = e.prefix.merge(r)
	} else {
		e.exact = e.exact.merge(r)
	}
}

func (m merger) addNames(rules []NameRule, prefix bool) {
	for _, r := range rules {
		m.add(r.Name, prefix, rule{policy: r.Policy})
	}
}

func (m merger) tree() *radixNode {
	if len(m) == 0 {
		return nil
	}
	entries := make([]*entry, 0, len(m))
	for _, e := range m {
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *entry) int { return strings.Compare(a.key, b.key) })
	return buildRadix(entries, 0, "")
}

// radixNode is a node of a read-only compressed radix tree. The path from
// the root to a node spells the key its rules are for.
type radixNode struct {
	label         string // the edge from the parent
	exact, prefix rule
	first         string // first byte of each child's label, for IndexByte
	children      []*radixNode
}

// buildRadix builds the node for entries, sorted by key and all sharing
// their first depth bytes, reached by label.
func buildRadix(entries []*entry, depth int, label string) *radixNode {
	n := &radixNode{label: label}
	if len(entries) > 0 && len(entries[0].key) == depth {
		n.exact, n.prefix = entries[0].exact, entries[0].prefix
		entries = entries[1:]
	}
	var first []byte
	for len(entries) > 0 {
		c := entries[0].key[depth]
		end := 1
		for end < len(entries) && entries[end].key[depth] == c {
			end++
		}
		group := entries[:end]
		// The group's common prefix beyond depth is the child's label:
		// sorted keys share with each other what the first and last share.
		lo, hi := group[0].key, group[len(group)-1].key
		l := depth + 1
		for l < len(lo) && l < len(hi) && lo[l] == hi[l] {
			l++
		}
		n.children = append(n.children, buildRadix(group, l, lo[depth:l]))
		first = append(first, c)
		entries = entries[end:]
	}
	n.first = string(first)
	return n
}

// lookup returns the rule for name: its exact rule if it has one, else the
// rule of its longest prefix that has a prefix rule, else the zero rule.
func (n *radixNode) lookup(name string) rule {
	var best rule
	for n != nil {
		if n.prefix.policy != AccessUnset {
			best = n.prefix
		}
		if name == "" {
			if n.exact.policy != AccessUnset {
				return n.exact
			}
			return best
		}
		i := strings.IndexByte(n.first, name[0])
		if i < 0 {
			return best
		}
		c := n.children[i]
		if !strings.HasPrefix(name, c.label) {
			return best
		}
		name = name[len(c.label):]
		n = c
	}
	return best
}
