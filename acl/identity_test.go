package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestIdentityRules(t *testing.T) {
	t.Run("service identity", func(t *testing.T) {
		z := NewAuthorizer(false, ServiceIdentityRules(ServiceIdentity{ServiceName: "web"}))
		runChecks(t, z, []check{
			{"service:write", "web", true}, {"service:write", "web-sidecar-proxy", true},
			{"service:write", "web2", false}, {"service:read", "db", true}, {"service:write", "db", false},
			{"node:read", "any", true}, {"node:write", "any", false},
			{"intention:read", "web", true}, {"intention:write", "web", false},
			{"agent:read", "any", false}, {"operator:read", "", false},
		})
	})
	t.Run("node identity", func(t *testing.T) {
		z := NewAuthorizer(false, NodeIdentityRules(NodeIdentity{NodeName: "host-1", Datacenter: "dc1"}))
		runChecks(t, z, []check{
			{"node:write", "host-1", true}, {"node:read", "host-2", false},
			{"service:read", "web", true}, {"service:write", "web", false},
		})
	})
}

// store is an in-memory policy and role store for Resolve.
type store struct {
	policies []*Policy
	roles    []*Role
}

func (s *store) policy(l PolicyLink) (*Policy, bool) {
	for _, p := range s.policies {
		if (l.ID != "" && p.ID == l.ID) || (l.ID == "" && p.Name == l.Name) {
			return p, true
		}
	}
	return nil, false
}

func (s *store) role(l RoleLink) (*Role, bool) {
	for _, r := range s.roles {
		if (l.ID != "" && r.ID == l.ID) || (l.ID == "" && r.Name == l.Name) {
			return r, true
		}
	}
	return nil, false
}

func TestResolve(t *testing.T) {
	st := &store{
		policies: []*Policy{
			{ID: GlobalManagementPolicyID, Name: GlobalManagementPolicyName},
			{ID: "p-web", Name: "web-write", Rules: `service "web" { policy = "write" }`},
			{ID: "p-dc2", Name: "dc2-only", Rules: `node_prefix "" { policy = "write" }`, Datacenters: []string{"dc2"}},
			{ID: "p-deny-web", Name: "deny-web", Rules: `service "web" { policy = "deny" }`},
			{ID: "p-ops", Name: "ops", Rules: `operator = "write"`},
			{ID: "p-broken", Name: "broken", Rules: `service "x" { policy = "all" }`},
		},
		roles: []*Role{
			{ID: "r-ops", Name: "ops", Policies: []PolicyLink{{Name: "ops"}},
				ServiceIdentities: []ServiceIdentity{{ServiceName: "api"}},
				NodeIdentities:    []NodeIdentity{{NodeName: "h1", Datacenter: "dc1"}}},
			{ID: "r-mgmt", Name: "mgmt", Policies: []PolicyLink{{Name: GlobalManagementPolicyName}}},
			{ID: "r-broken", Name: "broken", Policies: []PolicyLink{{ID: "p-broken"}}},
		},
	}
	tests := []struct {
		name    string
		tok     *Token
		dc      string
		checks  []check
		wantErr string
	}{
		{name: "policy by ID and by name", tok: &Token{Policies: []PolicyLink{{ID: "p-web"}, {Name: "ops"}}}, dc: "dc1",
			checks: []check{{"service:write", "web", true}, {"operator:write", "", true}, {"service:read", "db", false}, {"acl:read", "", false}}},
		{name: "policy limited to another datacenter", tok: &Token{Policies: []PolicyLink{{ID: "p-dc2"}}}, dc: "dc1",
			checks: []check{{"node:write", "n", false}}},
		{name: "policy limited to this datacenter", tok: &Token{Policies: []PolicyLink{{ID: "p-dc2"}}}, dc: "dc2",
			checks: []check{{"node:write", "n", true}}},
		{name: "deny across policies wins", tok: &Token{Policies: []PolicyLink{{ID: "p-web"}, {ID: "p-deny-web"}}}, dc: "dc1",
			checks: []check{{"service:read", "web", false}}},
		{name: "deny in a token's policy beats a role's service identity", tok: &Token{
			Policies: []PolicyLink{{ID: "p-deny-web"}}, ServiceIdentities: []ServiceIdentity{{ServiceName: "web"}}}, dc: "dc1",
			checks: []check{{"service:write", "web", false}, {"service:write", "web-sidecar-proxy", true}}},
		{name: "missing policies and roles are skipped", tok: &Token{Policies: []PolicyLink{{ID: "gone"}}, Roles: []RoleLink{{Name: "gone"}}}, dc: "dc1",
			checks: []check{{"service:read", "web", false}}},
		{name: "global management by ID", tok: &Token{Policies: []PolicyLink{{ID: GlobalManagementPolicyID}}}, dc: "dc1",
			checks: []check{{"acl:write", "", true}, {"service:write", "x", true}}},
		{name: "global management by name", tok: &Token{Policies: []PolicyLink{{Name: GlobalManagementPolicyName}}}, dc: "dc1",
			checks: []check{{"acl:write", "", true}}},
		{name: "global management through a role", tok: &Token{Roles: []RoleLink{{ID: "r-mgmt"}}}, dc: "dc1",
			checks: []check{{"acl:write", "", true}}},
		{name: "role policies and identities", tok: &Token{Roles: []RoleLink{{Name: "ops"}}}, dc: "dc1",
			checks: []check{{"operator:write", "", true}, {"service:write", "api-sidecar-proxy", true},
				{"node:write", "h1", true}, {"service:read", "other", true}, {"service:write", "other", false}}},
		{name: "node identity of another datacenter", tok: &Token{Roles: []RoleLink{{Name: "ops"}}}, dc: "dc2",
			checks: []check{{"node:write", "h1", false}, {"service:write", "api", true}}},
		{name: "service identity limited to datacenters", tok: &Token{
			ServiceIdentities: []ServiceIdentity{{ServiceName: "web", Datacenters: []string{"dc2"}}}}, dc: "dc1",
			checks: []check{{"service:write", "web", false}, {"service:read", "web", false}}},
		{name: "node identity on the token", tok: &Token{NodeIdentities: []NodeIdentity{{NodeName: "h9", Datacenter: "dc1"}}}, dc: "dc1",
			checks: []check{{"node:write", "h9", true}, {"node:write", "h8", false}}},
		{name: "broken stored policy", tok: &Token{AccessorID: "acc", Policies: []PolicyLink{{ID: "p-broken"}}}, dc: "dc1",
			wantErr: `resolve token acc: policy "broken" (p-broken): rules:1,24: invalid policy "all" for service "x": want read, write or deny`},
		{name: "broken stored policy through a role", tok: &Token{AccessorID: "acc", Roles: []RoleLink{{ID: "r-broken"}}}, dc: "dc1",
			wantErr: `resolve token acc: role "broken": policy "broken"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			z, err := Resolve(tt.tok, st.policy, st.role, tt.dc, false)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			runChecks(t, z, tt.checks)
		})
	}
	if _, err := Resolve(nil, st.policy, st.role, "dc1", false); !errors.Is(err, ErrNoToken) {
		t.Errorf("nil token: %v", err)
	}
	z, err := Resolve(&Token{}, st.policy, st.role, "dc1", true)
	if err != nil || !z.ServiceWrite("x") || z.ACLRead() {
		t.Errorf("empty token, default allow: %v, service write %v, acl read %v", err, z.ServiceWrite("x"), z.ACLRead())
	}
}

// BenchmarkResolve resolves a token of a typical shape: two policies, a
// role with one more and a service identity. Its cost (rule parsing
// dominates) is why servers cache authorizers.
func BenchmarkResolve(b *testing.B) {
	st := &store{
		policies: []*Policy{
			{ID: "p1", Name: "p1", Rules: "service_prefix \"\" {\n  policy = \"read\"\n}\nnode_prefix \"\" {\n  policy = \"read\"\n}\n"},
			{ID: "p2", Name: "p2", Rules: "service \"web\" {\n  policy = \"write\"\n  intentions = \"write\"\n}\nagent_prefix \"web-\" {\n  policy = \"write\"\n}\n"},
			{ID: "p3", Name: "p3", Rules: "operator = \"read\"\nkey_prefix \"config/\" {\n  policy = \"read\"\n}\n"},
		},
		roles: []*Role{{ID: "r1", Name: "r1", Policies: []PolicyLink{{ID: "p3"}}}},
	}
	tok := &Token{Policies: []PolicyLink{{ID: "p1"}, {Name: "p2"}}, Roles: []RoleLink{{ID: "r1"}},
		ServiceIdentities: []ServiceIdentity{{ServiceName: "api"}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Resolve(tok, st.policy, st.role, "dc1", false); err != nil {
			b.Fatal(err)
		}
	}
}
