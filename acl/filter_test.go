package acl

import (
	"maps"
	"slices"
	"testing"

	"github.com/warren-mesh/warren/catalog"
)

// filterAuthz may read nodes "n1" and "n2" and services with prefix "web".
func filterAuthz(t *testing.T) Authorizer {
	return NewAuthorizer(false, mustRules(t, `
node "n1" { policy = "read" }
node "n2" { policy = "read" }
service_prefix "web" { policy = "read" }
`))
}

func TestFilterNodes(t *testing.T) {
	z := filterAuthz(t)
	n1, n2, n3 := &catalog.Node{Name: "n1"}, &catalog.Node{Name: "n2"}, &catalog.Node{Name: "n3"}
	all := []*catalog.Node{n1, n2}
	got, filtered := FilterNodes(z, all)
	if filtered || len(got) != 2 || &got[0] != &all[0] {
		t.Errorf("nothing to drop: got %v filtered %v (same backing array %v)", got, filtered, &got[0] == &all[0])
	}
	in := []*catalog.Node{n3, n1, n3, n2, n3}
	got, filtered = FilterNodes(z, in)
	if !filtered || !slices.Equal(got, []*catalog.Node{n1, n2}) {
		t.Errorf("got %v filtered %v", got, filtered)
	}
	if in[2] != nil || in[4] != nil {
		t.Error("dropped rows still referenced by the backing array")
	}
	if got, filtered := FilterNodes(z, nil); got != nil || filtered {
		t.Errorf("nil: %v %v", got, filtered)
	}
	if got, filtered := FilterNodes(DenyAll(), []*catalog.Node{n1}); len(got) != 0 || !filtered {
		t.Errorf("deny all: %v %v", got, filtered)
	}
}

func TestFilterServiceTags(t *testing.T) {
	z := filterAuthz(t)
	m := map[string][]string{"web": {"a"}, "web-admin": nil, "db": {"b"}}
	got, filtered := FilterServiceTags(z, m)
	if !filtered || !slices.Equal(slices.Sorted(maps.Keys(got)), []string{"web", "web-admin"}) {
		t.Errorf("got %v filtered %v", got, filtered)
	}
	if _, filtered := FilterServiceTags(z, map[string][]string{"web": nil}); filtered {
		t.Error("filtered with nothing to drop")
	}
}

func TestFilterServiceNodes(t *testing.T) {
	z := filterAuthz(t)
	row := func(node, svc string) catalog.ServiceNode {
		return catalog.ServiceNode{Node: &catalog.Node{Name: node}, Service: &catalog.Service{Node: node, Name: svc}}
	}
	rows := []catalog.ServiceNode{row("n1", "web"), row("n3", "web"), row("n1", "db"), row("n2", "web-2")}
	got, filtered := FilterServiceNodes(z, rows)
	if !filtered || len(got) != 2 || got[0].Node.Name != "n1" || got[1].Service.Name != "web-2" {
		t.Errorf("got %+v filtered %v", got, filtered)
	}
	// Check rows use the same rule: node read and service read.
	crow := func(node, svc string) catalog.CheckServiceNode {
		return catalog.CheckServiceNode{Node: &catalog.Node{Name: node}, Service: &catalog.Service{Node: node, Name: svc}}
	}
	crows := []catalog.CheckServiceNode{crow("n1", "web"), crow("n3", "web"), crow("n2", "db"), {Node: &catalog.Node{Name: "n1"}}}
	cgot, filtered := FilterCheckServiceNodes(z, crows)
	if !filtered || len(cgot) != 1 || cgot[0].Node.Name != "n1" {
		t.Errorf("got %+v filtered %v", cgot, filtered)
	}
	ok := []catalog.CheckServiceNode{crow("n1", "web")}
	if _, filtered := FilterCheckServiceNodes(z, ok); filtered {
		t.Error("filtered with nothing to drop")
	}
}

func TestFilterChecks(t *testing.T) {
	z := filterAuthz(t)
	checks := []*catalog.Check{
		{Node: "n1", CheckID: "node-check"},
		{Node: "n3", CheckID: "other-node"},
		{Node: "n1", CheckID: "web-check", ServiceID: "web-1", ServiceName: "web"},
		{Node: "n1", CheckID: "db-check", ServiceID: "db-1", ServiceName: "db"},
	}
	got, filtered := FilterChecks(z, checks)
	var ids []string
	for _, c := range got {
		ids = append(ids, c.CheckID)
	}
	if !filtered || !slices.Equal(ids, []string{"node-check", "web-check"}) {
		t.Errorf("got %v filtered %v", ids, filtered)
	}
}

func TestFilterNodeServices(t *testing.T) {
	z := filterAuthz(t)
	svcs := []*catalog.Service{{Node: "n1", Name: "web"}, {Node: "n1", Name: "db"}}
	got, filtered := FilterNodeServices(z, svcs)
	if !filtered || len(got) != 1 || got[0].Name != "web" {
		t.Errorf("got %v filtered %v", got, filtered)
	}
	got, filtered = FilterNodeServices(z, []*catalog.Service{{Node: "n3", Name: "web"}})
	if !filtered || len(got) != 0 {
		t.Errorf("unreadable node: got %v filtered %v", got, filtered)
	}
}

func TestFilterDoesNotAllocateWhenNothingIsDropped(t *testing.T) {
	z := AllowAll()
	nodes := []*catalog.Node{{Name: "a"}, {Name: "b"}}
	rows := []catalog.CheckServiceNode{{Node: nodes[0], Service: &catalog.Service{Name: "s"}}}
	allocs := testing.AllocsPerRun(100, func() {
		FilterNodes(z, nodes)
		FilterCheckServiceNodes(z, rows)
	})
	if allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}
