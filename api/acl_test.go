package api

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestACLWireCompatibleWithConsulClient sends what Consul's Go client
// sends into our types and our answers into Consul's types.
func TestACLWireCompatibleWithConsulClient(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	// Requests: Consul's client encodes ExpirationTTL as nanoseconds.
	in, _ := json.Marshal(&consulapi.ACLToken{
		Description:       "d",
		Policies:          []*consulapi.ACLTokenPolicyLink{{Name: "p"}},
		Roles:             []*consulapi.ACLTokenRoleLink{{ID: "r"}},
		ServiceIdentities: []*consulapi.ACLServiceIdentity{{ServiceName: "web", Datacenters: []string{"dc1"}}},
		NodeIdentities:    []*consulapi.ACLNodeIdentity{{NodeName: "n", Datacenter: "dc1"}},
		ExpirationTTL:     time.Hour,
	})
	var tok ACLToken
	if err := json.Unmarshal(in, &tok); err != nil {
		t.Fatal(err)
	}
	want := ACLToken{Description: "d", Policies: []*ACLLink{{Name: "p"}}, Roles: []*ACLLink{{ID: "r"}},
		ServiceIdentities: []*ACLServiceIdentity{{ServiceName: "web", Datacenters: []string{"dc1"}}},
		NodeIdentities:    []*ACLNodeIdentity{{NodeName: "n", Datacenter: "dc1"}},
		ExpirationTTL:     Duration(time.Hour)}
	if !reflect.DeepEqual(tok, want) {
		t.Errorf("decoded %+v\nwant    %+v", tok, want)
	}

	// Answers (ExpirationTTL cleared by the server) decode in Consul's client.
	tok.ExpirationTTL, tok.ExpirationTime, tok.AccessorID, tok.SecretID = 0, &exp, "acc", "sec"
	tok.CreateIndex, tok.ModifyIndex, tok.Hash = 5, 6, []byte{1, 2}
	out, _ := json.Marshal(&tok)
	var ct consulapi.ACLToken
	if err := json.Unmarshal(out, &ct); err != nil {
		t.Fatal(err)
	}
	if ct.AccessorID != "acc" || ct.SecretID != "sec" || ct.Policies[0].Name != "p" || !ct.ExpirationTime.Equal(exp) ||
		ct.NodeIdentities[0].Datacenter != "dc1" || ct.ModifyIndex != 6 || string(ct.Hash) != "\x01\x02" {
		t.Errorf("Consul client decoded %+v", ct)
	}
	var list []consulapi.ACLTokenListEntry
	if err := json.Unmarshal(mustJSON(t, []ACLTokenListEntry{{AccessorID: "acc", Description: "d"}}), &list); err != nil || list[0].AccessorID != "acc" {
		t.Errorf("token list: %+v %v", list, err)
	}

	pol := ACLPolicy{ID: "id", Name: "n", Rules: `acl = "read"`, Datacenters: []string{"dc1"}, CreateIndex: 1}
	var cp consulapi.ACLPolicy
	if err := json.Unmarshal(mustJSON(t, pol), &cp); err != nil || cp.Rules != pol.Rules || cp.Datacenters[0] != "dc1" {
		t.Errorf("policy: %+v %v", cp, err)
	}
	var cpl []consulapi.ACLPolicyListEntry
	if err := json.Unmarshal(mustJSON(t, []ACLPolicyListEntry{{ID: "id", Name: "n"}}), &cpl); err != nil || cpl[0].Name != "n" {
		t.Errorf("policy list: %+v %v", cpl, err)
	}
	role := ACLRole{ID: "id", Name: "n", Policies: []*ACLLink{{ID: "p"}}, ServiceIdentities: []*ACLServiceIdentity{{ServiceName: "s"}}}
	var cr consulapi.ACLRole
	if err := json.Unmarshal(mustJSON(t, role), &cr); err != nil || cr.Policies[0].ID != "p" || cr.ServiceIdentities[0].ServiceName != "s" {
		t.Errorf("role: %+v %v", cr, err)
	}
	var back ACLRole
	if err := json.Unmarshal(mustJSON(t, cr), &back); err != nil || !reflect.DeepEqual(back, role) {
		t.Errorf("role round trip: %+v %v", back, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
