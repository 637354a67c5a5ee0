package acl

import (
	"fmt"
	"testing"
)

func mustRules(t testing.TB, src string) *Rules {
	t.Helper()
	r, err := ParseRules(src)
	if err != nil {
		t.Fatalf("parse %q: %v", src, err)
	}
	return r
}

// check is one question to an authorizer and the answer it must give.
type check struct {
	what string // "service:read", "intention:write", "node:read", "agent:write", "operator:read", ...
	name string
	want bool
}

func ask(z Authorizer, what, name string) bool {
	switch what {
	case "service:read":
		return z.ServiceRead(name)
	case "service:write":
		return z.ServiceWrite(name)
	case "intention:read":
		return z.IntentionRead(name)
	case "intention:write":
		return z.IntentionWrite(name)
	case "node:read":
		return z.NodeRead(name)
	case "node:write":
		return z.NodeWrite(name)
	case "agent:read":
		return z.AgentRead(name)
	case "agent:write":
		return z.AgentWrite(name)
	case "operator:read":
		return z.OperatorRead()
	case "operator:write":
		return z.OperatorWrite()
	case "acl:read":
		return z.ACLRead()
	case "acl:write":
		return z.ACLWrite()
	case "keyring:read":
		return z.KeyringRead()
	case "keyring:write":
		return z.KeyringWrite()
	case "mesh:read":
		return z.MeshRead()
	case "mesh:write":
		return z.MeshWrite()
	}
	panic("unknown question " + what)
}

func runChecks(t *testing.T, z Authorizer, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := ask(z, c.what, c.name); got != c.want {
			t.Errorf("%s %q = %v, want %v", c.what, c.name, got, c.want)
		}
	}
}

func TestAuthorizerPrecedence(t *testing.T) {
	tests := []struct {
		name         string
		defaultAllow bool
		policies     []string
		checks       []check
	}{
		{name: "no rules, default deny", checks: []check{
			{"service:read", "web", false}, {"node:read", "n", false}, {"operator:read", "", false},
			{"mesh:read", "", false}, {"acl:read", "", false}, {"intention:read", "web", false},
		}},
		{name: "no rules, default allow: everything but acl", defaultAllow: true, checks: []check{
			{"service:write", "web", true}, {"node:write", "n", true}, {"operator:write", "", true},
			{"keyring:write", "", true}, {"mesh:write", "", true}, {"intention:write", "web", true},
			{"agent:write", "n", true}, {"acl:read", "", false}, {"acl:write", "", false},
		}},
		{name: "write implies read; read does not give write", policies: []string{
			`service "web" { policy = "write" }
			 service "db" { policy = "read" }`}, checks: []check{
			{"service:read", "web", true}, {"service:write", "web", true},
			{"service:read", "db", true}, {"service:write", "db", false},
			{"service:read", "dbx", false}, {"service:read", "we", false},
		}},
		{name: "a rule overrides default allow", defaultAllow: true, policies: []string{
			`service "db" { policy = "read" }
			 node_prefix "secret-" { policy = "deny" }`}, checks: []check{
			{"service:write", "db", false}, {"service:read", "db", true}, {"service:write", "web", true},
			{"node:read", "secret-1", false}, {"node:read", "secret", true},
		}},
		{name: "exact beats prefix, either way", policies: []string{
			`service_prefix "" { policy = "write" }
			 service "db" { policy = "deny" }
			 node_prefix "" { policy = "deny" }
			 node "n1" { policy = "read" }`}, checks: []check{
			{"service:read", "db", false}, {"service:write", "dbx", true}, {"service:write", "d", true},
			{"node:read", "n1", true}, {"node:write", "n1", false}, {"node:read", "n2", false},
			{"node:read", "n", false}, {"node:read", "n11", false},
		}},
		{name: "longest prefix wins", policies: []string{
			`service_prefix "" { policy = "read" }
			 service_prefix "we" { policy = "deny" }
			 service_prefix "web" { policy = "write" }
			 service_prefix "web-internal" { policy = "deny" }`}, checks: []check{
			{"service:read", "api", true}, {"service:write", "api", false},
			{"service:read", "w", true}, {"service:read", "we", false}, {"service:read", "wex", false},
			{"service:write", "web", true}, {"service:write", "web-1", true},
			{"service:read", "web-internal", false}, {"service:read", "web-internal-x", false},
			{"service:write", "web-inter", true}, {"service:read", "", true},
		}},
		{name: "an exact rule under a prefix leaves its neighbours to the prefix", policies: []string{
			`service_prefix "web" { policy = "write" }
			 service "web-admin" { policy = "deny" }`}, checks: []check{
			{"service:read", "web-admin", false}, {"service:write", "web-admi", true},
			{"service:write", "web-admin2", true}, {"service:read", "wex", false},
		}},
		{name: "empty prefix covers everything, empty exact only the empty name", policies: []string{
			`node_prefix "" { policy = "read" }
			 service "" { policy = "write" }`}, checks: []check{
			{"node:read", "anything", true}, {"node:read", "", true}, {"node:write", "x", false},
			{"service:write", "", true}, {"service:read", "web", false},
		}},
		{name: "merging: deny wins for the same exact name", policies: []string{
			`service "web" { policy = "write" }`,
			`service "web" { policy = "deny" }`,
			`service "web" { policy = "read" }`}, checks: []check{
			{"service:read", "web", false}, {"intention:read", "web", false},
		}},
		{name: "merging: deny wins for the same prefix", policies: []string{
			`node_prefix "db" { policy = "write" }`,
			`node_prefix "db" { policy = "deny" }`}, checks: []check{
			{"node:read", "db1", false},
		}},
		{name: "merging: most permissive without deny", policies: []string{
			`service "web" { policy = "read" }
			 operator = "read"`,
			`service "web" { policy = "write" }
			 operator = "write"`}, checks: []check{
			{"service:write", "web", true}, {"operator:write", "", true},
		}},
		{name: "merging: an exact read in one policy beats a prefix write in another", policies: []string{
			`service "web" { policy = "read" }`,
			`service_prefix "" { policy = "write" }`}, checks: []check{
			{"service:write", "web", false}, {"service:write", "api", true},
		}},
		{name: "merging: deny on top-level rules", policies: []string{
			`acl = "write"`, `acl = "deny"`, `keyring = "read"`}, checks: []check{
			{"acl:read", "", false}, {"keyring:read", "", true}, {"keyring:write", "", false},
		}},
		{name: "intentions derived: read for read or write, deny for deny", defaultAllow: true, policies: []string{
			`service "w" { policy = "write" }
			 service "r" { policy = "read" }
			 service "d" { policy = "deny" }
			 service_prefix "p" { policy = "write" }`}, checks: []check{
			{"intention:read", "w", true}, {"intention:write", "w", false},
			{"intention:read", "r", true}, {"intention:write", "r", false},
			{"intention:read", "d", false},
			{"intention:read", "p1", true}, {"intention:write", "p1", false},
			{"intention:write", "other", true},
		}},
		{name: "intentions set explicitly", policies: []string{
			`service "web" { policy = "read" intentions = "write" }
			 service_prefix "" { policy = "read" intentions = "deny" }`}, checks: []check{
			{"intention:write", "web", true}, {"service:write", "web", false},
			{"intention:read", "api", false}, {"service:read", "api", true},
		}},
		{name: "intentions merge before being derived, as Consul", policies: []string{
			`service "web" { policy = "write" }`,
			`service "web" { policy = "read" intentions = "write" }`}, checks: []check{
			{"intention:write", "web", true}, {"service:write", "web", true},
		}},
		{name: "mesh follows operator when unset", policies: []string{`operator = "write"`}, checks: []check{
			{"mesh:write", "", true}, {"operator:write", "", true},
		}},
		{name: "mesh rule beats operator", policies: []string{`operator = "write"
			mesh = "read"`}, checks: []check{
			{"mesh:read", "", true}, {"mesh:write", "", false},
		}},
		{name: "acl write implies read, and acl read is not the default", defaultAllow: true, policies: []string{`acl = "read"`}, checks: []check{
			{"acl:read", "", true}, {"acl:write", "", false},
		}},
		{name: "agents", policies: []string{`agent_prefix "" { policy = "read" }
			agent "n1" { policy = "write" }`}, checks: []check{
			{"agent:write", "n1", true}, {"agent:write", "n2", false}, {"agent:read", "n2", true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules []*Rules
			for _, p := range tt.policies {
				rules = append(rules, mustRules(t, p))
			}
			runChecks(t, NewAuthorizer(tt.defaultAllow, rules...), tt.checks)
		})
	}
}

func TestStaticAuthorizers(t *testing.T) {
	all := []string{"service:write", "intention:write", "node:write", "agent:write", "operator:write", "keyring:write", "mesh:write"}
	for _, what := range all {
		if !ask(ManageAll(), what, "x") || !ask(AllowAll(), what, "x") || ask(DenyAll(), what, "x") {
			t.Errorf("%s: ManageAll %v AllowAll %v DenyAll %v", what, ask(ManageAll(), what, "x"), ask(AllowAll(), what, "x"), ask(DenyAll(), what, "x"))
		}
	}
	if !ManageAll().ACLWrite() || AllowAll().ACLRead() || DenyAll().ACLRead() {
		t.Error("only ManageAll manages ACLs")
	}
}

// TestRadixMatchesLinearScan compares the radix lookup with the obvious
// definition on many generated rule sets and names.
func TestRadixMatchesLinearScan(t *testing.T) {
	names := []string{"", "a", "ab", "abc", "abd", "b", "ba", "bab", "abcd", "x", "abcde", "bb"}
	lvl := []Access{AccessRead, AccessWrite, AccessDeny}
	for seed := 0; seed < 500; seed++ {
		var exact, prefix []NameRule
		s := seed
		for i, n := range names {
			switch (s >> (i % 8)) % 5 {
			case 1:
				exact = append(exact, NameRule{n, lvl[(s+i)%3]})
			case 2:
				prefix = append(prefix, NameRule{n, lvl[(s+i)%3]})
			case 3:
				exact = append(exact, NameRule{n, lvl[(s+i)%3]})
				prefix = append(prefix, NameRule{n, lvl[(s+2*i)%3]})
			}
			s = s*1103515245 + 12345
			if s < 0 {
				s = -s
			}
		}
		z := NewAuthorizer(false, &Rules{Nodes: exact, NodePrefixes: prefix})
		for _, q := range append(names, "abcdef", "c", "aa", "abx") {
			want := linearLookup(exact, prefix, q)
			if got := z.NodeRead(q); got != (want == AccessRead || want == AccessWrite) {
				t.Fatalf("seed %d: exact %v prefix %v: NodeRead(%q) = %v, want level %v", seed, exact, prefix, q, got, want)
			}
		}
	}
}

func linearLookup(exact, prefix []NameRule, name string) Access {
	for _, r := range exact {
		if r.Name == name {
			return r.Policy
		}
	}
	best, bestLen := AccessUnset, -1
	for _, r := range prefix {
		if len(r.Name) <= len(name) && name[:len(r.Name)] == r.Name && len(r.Name) > bestLen {
			best, bestLen = r.Policy, len(r.Name)
		}
	}
	return best
}

func TestAuthorizerLookupDoesNotAllocate(t *testing.T) {
	z := NewAuthorizer(false, benchRules(t)...)
	allocs := testing.AllocsPerRun(100, func() {
		z.ServiceRead("svc-57-sidecar-proxy")
		z.NodeRead("node-3")
		z.IntentionWrite("team-9-api")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per lookup", allocs)
	}
}

// benchRules is ~100 policies of the shapes real clusters have: service
// identities, team prefixes, node rules and a few denies.
func benchRules(t testing.TB) []*Rules {
	var rules []*Rules
	for i := range 60 {
		rules = append(rules, ServiceIdentityRules(ServiceIdentity{ServiceName: fmt.Sprintf("svc-%d", i)}))
	}
	for i := range 30 {
		rules = append(rules, mustRules(t, fmt.Sprintf(`
service_prefix "team-%d-" { policy = "write" }
service "team-%d-admin" { policy = "deny" }
node "node-%d" { policy = "write" }
agent_prefix "node-%d" { policy = "read" }`, i, i, i, i)))
	}
	for i := range 10 {
		rules = append(rules, NodeIdentityRules(NodeIdentity{NodeName: fmt.Sprintf("host-%d", i), Datacenter: "dc1"}))
	}
	return rules
}

func BenchmarkAuthorizerServiceRead(b *testing.B) {
	z := NewAuthorizer(false, benchRules(b)...)
	names := []string{"svc-57-sidecar-proxy", "team-12-api", "team-12-admin", "unknown-service", "svc-1"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		z.ServiceRead(names[i%len(names)])
	}
}

func BenchmarkNewAuthorizer(b *testing.B) {
	rules := benchRules(b)
	b.ReportAllocs()
	for b.Loop() {
		NewAuthorizer(false, rules...)
	}
}
