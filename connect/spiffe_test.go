package connect

import (
	"testing"
)

const testTD = "11111111-2222-3333-4444-555555555555.warren"

func TestTrustDomain(t *testing.T) {
	if got := TrustDomain("11111111-2222-3333-4444-555555555555"); got != testTD {
		t.Fatalf("TrustDomain = %q, want %q", got, testTD)
	}
	if got := TrustDomain("ABCDEF00-2222-3333-4444-555555555555"); got != "abcdef00-2222-3333-4444-555555555555.warren" {
		t.Fatalf("TrustDomain lower-cases: got %q", got)
	}
}

func TestServiceID(t *testing.T) {
	tests := []struct {
		name            string
		td, ns, dc, svc string
		want            string // "" means the zero ID
	}{
		{"plain", testTD, "default", "dc1", "web", "spiffe://" + testTD + "/ns/default/dc/dc1/svc/web"},
		{"empty ns is default", testTD, "", "dc1", "web", "spiffe://" + testTD + "/ns/default/dc/dc1/svc/web"},
		{"other ns", testTD, "team-a", "eu-west", "db", "spiffe://" + testTD + "/ns/team-a/dc/eu-west/svc/db"},
		{"bad trust domain", "Not A Domain", "default", "dc1", "web", ""},
		{"empty service", testTD, "default", "dc1", "", ""},
		{"slash in service", testTD, "default", "dc1", "a/b", ""},
		{"dot segment", testTD, "default", "..", "web", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ServiceID(tt.td, tt.ns, tt.dc, tt.svc)
			if tt.want == "" {
				if !id.IsZero() {
					t.Fatalf("ServiceID = %s, want the zero ID", id)
				}
				if _, err := ServiceIDErr(tt.td, tt.ns, tt.dc, tt.svc); err == nil {
					t.Fatal("ServiceIDErr: no error")
				}
				return
			}
			if id.String() != tt.want {
				t.Fatalf("ServiceID = %s, want %s", id, tt.want)
			}
			p, err := ParseServiceID(id.String())
			if err != nil {
				t.Fatalf("ParseServiceID: %v", err)
			}
			if p.ID() != id {
				t.Fatalf("round trip: %s != %s", p.ID(), id)
			}
		})
	}
}

func TestParseServiceID(t *testing.T) {
	tests := []struct {
		uri     string
		want    ServiceIdentity
		wantErr bool
	}{
		{uri: "spiffe://" + testTD + "/ns/default/dc/dc1/svc/web", want: ServiceIdentity{testTD, "default", "dc1", "web"}},
		{uri: "spiffe://example.org/ns/a/dc/b/svc/c", want: ServiceIdentity{"example.org", "a", "b", "c"}},
		{uri: "spiffe://" + testTD + "/agent/client/dc/dc1/id/abc", wantErr: true},
		{uri: "spiffe://" + testTD + "/ns/default/dc/dc1/svc/web/extra", wantErr: true},
		{uri: "spiffe://" + testTD + "/ns/default/dc/dc1/svx/web", wantErr: true},
		{uri: "spiffe://" + testTD, wantErr: true},
		{uri: "https://" + testTD + "/ns/default/dc/dc1/svc/web", wantErr: true},
		{uri: "", wantErr: true},
		{uri: "spiffe://" + testTD + "/ns/default/dc/dc1/svc/web?x=1", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseServiceID(tt.uri)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseServiceID(%q) err = %v, wantErr %t", tt.uri, err, tt.wantErr)
			continue
		}
		if err == nil && got != tt.want {
			t.Errorf("ParseServiceID(%q) = %+v, want %+v", tt.uri, got, tt.want)
		}
	}
}

func TestAgentID(t *testing.T) {
	id := AgentID(testTD, "dc1", "4b1b2c3d-0000-1111-2222-333344445555")
	want := "spiffe://" + testTD + "/agent/client/dc/dc1/id/4b1b2c3d-0000-1111-2222-333344445555"
	if id.String() != want {
		t.Fatalf("AgentID = %s, want %s", id, want)
	}
	a, err := ParseAgentID(id.String())
	if err != nil || a != (AgentIdentity{testTD, "dc1", "4b1b2c3d-0000-1111-2222-333344445555"}) {
		t.Fatalf("ParseAgentID = %+v, %v", a, err)
	}
	if _, err := ParseAgentID(ServiceID(testTD, "", "dc1", "web").String()); err == nil {
		t.Fatal("ParseAgentID accepted a service ID")
	}
	if !AgentID(testTD, "dc1", "").IsZero() {
		t.Fatal("AgentID with an empty node ID is not zero")
	}
}
