package connect

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/catalog"
)

func ixn(src, dst, action string) *Intention {
	sns, sname := splitName(src)
	dns, dname := splitName(dst)
	x := &Intention{SourceNS: sns, SourceName: sname, DestinationNS: dns, DestinationName: dname, Action: action}
	x.Normalize()
	return x
}

// TestPrecedenceTable is Consul's documented table ("Precedence and match
// order"), namespaces included.
func TestPrecedenceTable(t *testing.T) {
	tests := []struct {
		src, dst string
		want     int
	}{
		{"ns/web", "ns/db", 9},
		{"ns/*", "ns/db", 8},
		{"*/*", "ns/db", 7},
		{"ns/web", "ns/*", 6},
		{"ns/*", "ns/*", 5},
		{"*/*", "ns/*", 4},
		{"ns/web", "*/*", 3},
		{"ns/*", "*/*", 2},
		{"*/*", "*/*", 1},
		// Without namespaces (Consul CE): 9, 8, 6, 5.
		{"web", "db", 9},
		{"*", "db", 8},
		{"web", "*", 6},
		{"*", "*", 5},
	}
	for _, tt := range tests {
		if got := ixn(tt.src, tt.dst, "allow").Precedence; got != tt.want {
			t.Errorf("%s => %s: precedence %d, want %d", tt.src, tt.dst, got, tt.want)
		}
	}
}

func TestIntentionValidate(t *testing.T) {
	tests := []struct {
		name  string
		x     Intention
		field string // "" means valid
	}{
		{"exact", Intention{SourceName: "web", DestinationName: "db", Action: "allow"}, ""},
		{"wildcard source", Intention{SourceName: "*", DestinationName: "db", Action: "deny"}, ""},
		{"wildcard destination", Intention{SourceName: "web", DestinationName: "*", Action: "deny"}, ""},
		{"both wildcards", Intention{SourceName: "*", DestinationName: "*", Action: "deny"}, ""},
		{"wildcard namespaces", Intention{SourceNS: "*", SourceName: "*", DestinationNS: "team-a", DestinationName: "db", Action: "allow"}, ""},
		{"consul source type", Intention{SourceName: "web", DestinationName: "db", Action: "allow", SourceType: "consul"}, ""},
		{"meta", Intention{SourceName: "web", DestinationName: "db", Action: "allow", Meta: map[string]string{"owner": "team-a"}}, ""},
		{"no source", Intention{DestinationName: "db", Action: "allow"}, "SourceName"},
		{"no destination", Intention{SourceName: "web", Action: "allow"}, "DestinationName"},
		{"no action", Intention{SourceName: "web", DestinationName: "db"}, "Action"},
		{"unknown action", Intention{SourceName: "web", DestinationName: "db", Action: "maybe"}, "Action"},
		{"upper-case action", Intention{SourceName: "web", DestinationName: "db", Action: "ALLOW"}, "Action"},
		{"partial wildcard source", Intention{SourceName: "web*", DestinationName: "db", Action: "allow"}, "SourceName"},
		{"partial wildcard destination", Intention{SourceName: "web", DestinationName: "d*", Action: "allow"}, "DestinationName"},
		{"malformed name", Intention{SourceName: "web/../x", DestinationName: "db", Action: "allow"}, "SourceName"},
		{"name with space", Intention{SourceName: "web", DestinationName: "my db", Action: "allow"}, "DestinationName"},
		{"wildcard ns with exact name", Intention{SourceNS: "*", SourceName: "web", DestinationName: "db", Action: "allow"}, "SourceName"},
		{"partial wildcard ns", Intention{DestinationNS: "team*", SourceName: "web", DestinationName: "db", Action: "allow"}, "DestinationNS"},
		{"bad ns", Intention{SourceNS: "a_b", SourceName: "web", DestinationName: "db", Action: "allow"}, "SourceNS"},
		{"unknown source type", Intention{SourceName: "web", DestinationName: "db", Action: "allow", SourceType: "external"}, "SourceType"},
		{"long description", Intention{SourceName: "web", DestinationName: "db", Action: "allow", Description: strings.Repeat("x", 2000)}, "Description"},
		{"bad meta key", Intention{SourceName: "web", DestinationName: "db", Action: "allow", Meta: map[string]string{"a b": "c"}}, "Meta"},
		{"reserved meta key", Intention{SourceName: "web", DestinationName: "db", Action: "allow", Meta: map[string]string{"consul-x": "c"}}, "Meta"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.x.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *catalog.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Fatalf("Validate = %v, want a FieldError on %s", err, tt.field)
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Fatal("not an ErrInvalid")
			}
		})
	}
}

func TestIntentionJSONShape(t *testing.T) {
	x := ixn("web", "db", "allow")
	x.ID = "9f3c0e4a-0000-1111-2222-333344445555"
	b, err := json.Marshal(x)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ID", "SourceNS", "SourceName", "DestinationNS", "DestinationName", "SourceType", "Action", "Precedence", "CreatedAt", "UpdatedAt", "CreateIndex", "ModifyIndex"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
	if m["SourceType"] != "consul" || m["Precedence"] != float64(9) || m["SourceNS"] != "default" {
		t.Fatalf("normalized fields: %s", b)
	}
	if x.String() != "web => db (allow)" || ixn("ns/web", "db", "deny").String() != "ns/web => db (deny)" {
		t.Fatalf("String = %q", x.String())
	}
}

func TestMatch(t *testing.T) {
	ixns := []*Intention{
		ixn("*", "*", "deny"),
		ixn("web", "*", "allow"),
		ixn("*", "db", "deny"),
		ixn("web", "db", "allow"),
		ixn("api", "db", "allow"),
		ixn("*", "cache", "allow"),
		ixn("batch", "cache", "deny"),
		ixn("team-a/*", "team-a/db", "allow"),
		ixn("*/*", "team-a/db", "deny"),
	}
	tests := []struct {
		src, dst string
		want     string // String() of the match, "" for none
	}{
		{"web", "db", "web => db (allow)"},     // exact beats everything
		{"api", "db", "api => db (allow)"},     // exact beats "* => db"
		{"billing", "db", "* => db (deny)"},    // wildcard source, exact destination
		{"web", "cache", "* => cache (allow)"}, // exact destination beats "web => *"
		{"batch", "cache", "batch => cache (deny)"},
		{"web", "search", "web => * (allow)"},  // exact source, wildcard destination
		{"billing", "search", "* => * (deny)"}, // the catch-all
		{"team-a/web", "team-a/db", "team-a/* => team-a/db (allow)"},
		{"team-b/web", "team-a/db", "*/* => team-a/db (deny)"},
		{"web", "team-a/db", "*/* => team-a/db (deny)"}, // "web" is default/web
	}
	for _, tt := range tests {
		got, ok := Match(ixns, tt.src, tt.dst)
		if tt.want == "" {
			if ok {
				t.Errorf("Match(%s, %s) = %s, want none", tt.src, tt.dst, got)
			}
			continue
		}
		if !ok || got.String() != tt.want {
			t.Errorf("Match(%s, %s) = %v, want %s", tt.src, tt.dst, got, tt.want)
		}
	}
	// The input order does not matter.
	rev := make([]*Intention, len(ixns))
	for i, x := range ixns {
		rev[len(ixns)-1-i] = x
	}
	for _, tt := range tests {
		a, _ := Match(ixns, tt.src, tt.dst)
		b, _ := Match(rev, tt.src, tt.dst)
		if a != b {
			t.Errorf("order-dependent match for %s => %s", tt.src, tt.dst)
		}
	}
	// A duplicate pair: deny wins.
	dup := []*Intention{ixn("web", "db", "allow"), ixn("web", "db", "deny")}
	if x, _ := Match(dup, "web", "db"); x.Action != "deny" {
		t.Fatal("allow won over deny at equal precedence")
	}
	if _, ok := Match(nil, "web", "db"); ok {
		t.Fatal("match in an empty list")
	}
	if _, ok := Match([]*Intention{nil, ixn("a", "b", "allow")}, "web", "db"); ok {
		t.Fatal("unrelated intention matched")
	}
}

func TestFilterAndSort(t *testing.T) {
	ixns := []*Intention{ixn("*", "*", "deny"), ixn("web", "db", "allow"), ixn("*", "db", "deny"), ixn("web", "*", "allow"), ixn("api", "cache", "allow")}
	got := Filter(ixns, MatchDestination, "db")
	var s []string
	for _, x := range got {
		s = append(s, x.String())
	}
	if want := "web => db (allow)|* => db (deny)|web => * (allow)|* => * (deny)"; strings.Join(s, "|") != want {
		t.Fatalf("Filter by destination = %s, want %s", strings.Join(s, "|"), want)
	}
	s = nil
	for _, x := range Filter(ixns, MatchSource, "web") {
		s = append(s, x.String())
	}
	if want := "web => db (allow)|* => db (deny)|web => * (allow)|* => * (deny)"; strings.Join(s, "|") != want {
		t.Fatalf("Filter by source = %s, want %s", strings.Join(s, "|"), want)
	}
}

func TestAuthorize(t *testing.T) {
	ixns := []*Intention{ixn("web", "db", "allow"), ixn("*", "db", "deny")}
	tests := []struct {
		src, dst     string
		defaultAllow bool
		allowed      bool
		reason       string
	}{
		{"web", "db", false, true, "Matched intention: web => db (allow)"},
		{"web", "db", true, true, "Matched intention: web => db (allow)"},
		{"api", "db", true, false, "Matched intention: * => db (deny)"},
		{"api", "cache", true, true, "No matching intention, default_intention_policy is allow"},
		{"api", "cache", false, false, "No matching intention, default_intention_policy is deny"},
	}
	for _, tt := range tests {
		allowed, reason := Authorize(ixns, tt.src, tt.dst, tt.defaultAllow)
		if allowed != tt.allowed || reason != tt.reason {
			t.Errorf("Authorize(%s, %s, default %t) = %t %q, want %t %q", tt.src, tt.dst, tt.defaultAllow, allowed, reason, tt.allowed, tt.reason)
		}
	}
	if allowed, _ := Authorize(nil, "a", "b", false); allowed {
		t.Fatal("empty list with default deny allowed")
	}
	if allowed, _ := Authorize(nil, "a", "b", true); !allowed {
		t.Fatal("empty list with default allow denied")
	}
}
