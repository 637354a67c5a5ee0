package acl

import (
	"errors"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/catalog"
)

func TestValidate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	tests := []struct {
		name      string
		err       error
		wantField string // "" means valid
		wantIn    string // a substring of the reason
	}{
		{"policy ok", ValidatePolicy(&Policy{Name: "web-write_1", Rules: `service "web" { policy = "write" }`, Datacenters: []string{"dc1"}}), "", ""},
		{"policy empty name", ValidatePolicy(&Policy{}), "Name", "must be 1-128"},
		{"policy name with a slash", ValidatePolicy(&Policy{Name: "../etc"}), "Name", `"../etc"`},
		{"policy name too long", ValidatePolicy(&Policy{Name: long(129)}), "Name", "1-128"},
		{"policy name at the limit", ValidatePolicy(&Policy{Name: long(128)}), "", ""},
		{"policy rules with line", ValidatePolicy(&Policy{Name: "p", Rules: "\nservice \"web\" { policy = \"wirte\" }"}), "Rules",
			`rules:2,26: invalid policy "wirte" for service "web"`},
		{"policy bad datacenter", ValidatePolicy(&Policy{Name: "p", Datacenters: []string{"dc 1"}}), "Datacenters[0]", "not a valid datacenter"},
		{"policy long description", ValidatePolicy(&Policy{Name: "p", Description: long(MaxDescriptionLen + 1)}), "Description", "longer than"},
		{"role ok", ValidateRole(&Role{Name: long(256), Policies: []PolicyLink{{ID: "x"}}}), "", ""},
		{"role name too long", ValidateRole(&Role{Name: long(257)}), "Name", "1-256"},
		{"role empty link", ValidateRole(&Role{Name: "r", Policies: []PolicyLink{{ID: "x"}, {}}}), "Policies[1]", "needs an ID or a Name"},
		{"role bad service identity", ValidateRole(&Role{Name: "r", ServiceIdentities: []ServiceIdentity{{ServiceName: "Web"}}}),
			"ServiceIdentities[0].ServiceName", `"Web" must be`},
		{"token ok", ValidateToken(&Token{Policies: []PolicyLink{{Name: "p"}}, Roles: []RoleLink{{ID: "r"}},
			ServiceIdentities: []ServiceIdentity{{ServiceName: "web_1-a", Datacenters: []string{"dc1"}}},
			NodeIdentities:    []NodeIdentity{{NodeName: "host-1", Datacenter: "dc1"}}}), "", ""},
		{"token empty role link", ValidateToken(&Token{Roles: []RoleLink{{}}}), "Roles[0]", "needs an ID or a Name"},
		{"token service identity ending in dash", ValidateToken(&Token{ServiceIdentities: []ServiceIdentity{{ServiceName: "web-"}}}),
			"ServiceIdentities[0].ServiceName", "starting and ending"},
		{"token service identity missing", ValidateToken(&Token{ServiceIdentities: []ServiceIdentity{{}}}),
			"ServiceIdentities[0].ServiceName", "missing"},
		{"token service identity bad dc", ValidateToken(&Token{ServiceIdentities: []ServiceIdentity{{ServiceName: "w", Datacenters: []string{"-"}}}}),
			"ServiceIdentities[0].Datacenters[0]", "datacenter"},
		{"token node identity without datacenter", ValidateToken(&Token{NodeIdentities: []NodeIdentity{{NodeName: "h"}}}),
			"NodeIdentities[0].Datacenter", "missing"},
		{"token node identity bad name", ValidateToken(&Token{NodeIdentities: []NodeIdentity{{NodeName: "h/../x", Datacenter: "dc1"}}}),
			"NodeIdentities[0].NodeName", `"h/../x"`},
		{"token description too long", ValidateToken(&Token{Description: long(MaxDescriptionLen + 1)}), "Description", "longer than"},
		{"token accessor not a UUID", ValidateToken(&Token{AccessorID: "../../etc/passwd"}), "AccessorID", "must be a UUID"},
		{"token accessor UUID", ValidateToken(&Token{AccessorID: "6a1253d2-1785-24fd-91c2-f8e78c745511"}), "", ""},
		{"secret UUID", ValidateSecretID("6a1253d2-1785-24fd-91c2-f8e78c745511"), "", ""},
		{"secret with the right length", ValidateSecretID("6a1253d2-1785-24fd-91c2-f8e78c74551x"), "SecretID", "is not a UUID"},
		{"secret that looks like a stored hash", ValidateSecretID(HashSecret("x")), "SecretID", "must be a UUID"},
		{"token too many policies", ValidateToken(&Token{Policies: make([]PolicyLink, MaxLinks+1)}), "Policies", "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.wantField == "" {
				if tt.err != nil {
					t.Fatalf("unexpected error: %v", tt.err)
				}
				return
			}
			var fe *catalog.FieldError
			if !errors.As(tt.err, &fe) {
				t.Fatalf("error %v (%T), want a *catalog.FieldError", tt.err, tt.err)
			}
			if fe.Field != tt.wantField || !strings.Contains(fe.Reason, tt.wantIn) {
				t.Errorf("got %s: %s; want field %s with %q", fe.Field, fe.Reason, tt.wantField, tt.wantIn)
			}
		})
	}
}
