package state

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
)

func node(name string, meta ...string) catalog.Node {
	n := catalog.Node{Name: name, Address: "10.0.0.1"}
	if len(meta) > 0 {
		n.Meta = map[string]string{}
		for i := 0; i+1 < len(meta); i += 2 {
			n.Meta[meta[i]] = meta[i+1]
		}
	}
	return n
}

func svcReg(nodeName, name, id string, tags ...string) *catalog.Registration {
	return &catalog.Registration{
		Node:    node(nodeName),
		Service: &catalog.Service{ID: id, Name: name, Tags: tags, Port: 80},
	}
}

func mustRegister(t testing.TB, s *Store, idx uint64, r *catalog.Registration) {
	t.Helper()
	tx := s.WriteTxn()
	if err := tx.Register(idx, r); err != nil {
		tx.Abort()
		t.Fatalf("register at %d: %v", idx, err)
	}
	tx.Commit()
}

func mustDeregister(t testing.TB, s *Store, idx uint64, d *catalog.Deregistration) {
	t.Helper()
	tx := s.WriteTxn()
	if err := tx.Deregister(idx, d); err != nil {
		tx.Abort()
		t.Fatalf("deregister at %d: %v", idx, err)
	}
	tx.Commit()
}

func fired(ws memdb.WatchSet) bool {
	return !ws.Watch(time.After(50 * time.Millisecond))
}

func serviceIDs(sns []catalog.ServiceNode) []string {
	var out []string
	for _, sn := range sns {
		out = append(out, sn.Node.Name+"/"+sn.Service.ID)
	}
	return out
}

func checkIDs(cs []*catalog.Check) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Node+"/"+c.CheckID+"="+c.Status)
	}
	return out
}

func TestRegisterDeregister(t *testing.T) {
	type step struct {
		reg   *catalog.Registration
		dereg *catalog.Deregistration
	}
	cases := []struct {
		name       string
		steps      []step
		wantNodes  []string
		wantWeb    []string
		wantChecks []string // NodeChecks("n1")
	}{
		{
			name:      "node only",
			steps:     []step{{reg: &catalog.Registration{Node: node("n1")}}},
			wantNodes: []string{"n1"},
		},
		{
			name: "service and checks",
			steps: []step{{reg: &catalog.Registration{
				Node:    node("n1"),
				Service: &catalog.Service{ID: "web1", Name: "web"},
				Checks: []*catalog.Check{
					{CheckID: "serf", Status: "passing"},
					{CheckID: "web1-http", ServiceID: "web1", Status: "critical"},
				},
			}}},
			wantNodes:  []string{"n1"},
			wantWeb:    []string{"n1/web1"},
			wantChecks: []string{"n1/serf=passing", "n1/web1-http=critical"},
		},
		{
			name: "update check status",
			steps: []step{
				{reg: &catalog.Registration{Node: node("n1"), Service: &catalog.Service{ID: "web1", Name: "web"},
					Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "critical"}}}},
				{reg: &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true,
					Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "passing"}}}},
			},
			wantNodes:  []string{"n1"},
			wantWeb:    []string{"n1/web1"},
			wantChecks: []string{"n1/c=passing"},
		},
		{
			name: "deregister service removes its checks",
			steps: []step{
				{reg: &catalog.Registration{Node: node("n1"), Service: &catalog.Service{ID: "web1", Name: "web"},
					Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "critical"}, {CheckID: "serf", Status: "passing"}}}},
				{reg: svcReg("n2", "web", "web2")},
				{dereg: &catalog.Deregistration{Node: "n1", ServiceID: "web1"}},
			},
			wantNodes:  []string{"n1", "n2"},
			wantWeb:    []string{"n2/web2"},
			wantChecks: []string{"n1/serf=passing"},
		},
		{
			name: "deregister node removes everything",
			steps: []step{
				{reg: &catalog.Registration{Node: node("n1"), Service: &catalog.Service{ID: "web1", Name: "web"},
					Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "critical"}}}},
				{reg: svcReg("n2", "web", "web2")},
				{dereg: &catalog.Deregistration{Node: "n1"}},
			},
			wantNodes: []string{"n2"},
			wantWeb:   []string{"n2/web2"},
		},
		{
			name: "deregister check",
			steps: []step{
				{reg: &catalog.Registration{Node: node("n1"), Checks: []*catalog.Check{{CheckID: "a", Status: "passing"}, {CheckID: "b", Status: "warning"}}}},
				{dereg: &catalog.Deregistration{Node: "n1", CheckID: "a"}},
			},
			wantNodes:  []string{"n1"},
			wantChecks: []string{"n1/b=warning"},
		},
		{
			name: "deregister unknown things is a no-op",
			steps: []step{
				{reg: svcReg("n1", "web", "web1")},
				{dereg: &catalog.Deregistration{Node: "nope"}},
				{dereg: &catalog.Deregistration{Node: "n1", ServiceID: "nope"}},
				{dereg: &catalog.Deregistration{Node: "n1", CheckID: "nope"}},
			},
			wantNodes: []string{"n1"},
			wantWeb:   []string{"n1/web1"},
		},
		{
			name: "service rename leaves old name",
			steps: []step{
				{reg: svcReg("n1", "web", "x")},
				{reg: svcReg("n1", "api", "x")},
			},
			wantNodes: []string{"n1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			for i, st := range tc.steps {
				idx := uint64(10 + i)
				if st.reg != nil {
					st.reg.Normalize()
					mustRegister(t, s, idx, st.reg)
				} else {
					mustDeregister(t, s, idx, st.dereg)
				}
			}
			_, nodes, err := s.Nodes(nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, n := range nodes {
				names = append(names, n.Name)
			}
			if !reflect.DeepEqual(names, tc.wantNodes) {
				t.Errorf("nodes = %v, want %v", names, tc.wantNodes)
			}
			_, web, _ := s.ServiceNodes(nil, "web", nil)
			if got := serviceIDs(web); !reflect.DeepEqual(got, tc.wantWeb) {
				t.Errorf("web = %v, want %v", got, tc.wantWeb)
			}
			_, checks, _ := s.NodeChecks(nil, "n1")
			if got := checkIDs(checks); !reflect.DeepEqual(got, tc.wantChecks) {
				t.Errorf("n1 checks = %v, want %v", got, tc.wantChecks)
			}
		})
	}
}

func TestRegisterFillsServiceFieldsOfChecks(t *testing.T) {
	s := New()
	r := &catalog.Registration{Node: node("n1"), Service: &catalog.Service{ID: "web1", Name: "web", Tags: []string{"v1"}},
		Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "passing", ServiceName: "bogus"}}}
	mustRegister(t, s, 5, r)
	_, cs, _ := s.ServiceChecks(nil, "web")
	if len(cs) != 1 || cs[0].ServiceName != "web" || !reflect.DeepEqual(cs[0].ServiceTags, []string{"v1"}) {
		t.Fatalf("checks = %+v", cs)
	}
	// Re-registering the service with new tags updates its check.
	mustRegister(t, s, 6, svcReg("n1", "web", "web1", "v2"))
	_, cs, _ = s.ServiceChecks(nil, "web")
	if len(cs) != 1 || !reflect.DeepEqual(cs[0].ServiceTags, []string{"v2"}) || cs[0].ModifyIndex != 6 || cs[0].CreateIndex != 5 {
		t.Fatalf("checks after retag = %+v", cs[0])
	}
	// Renaming moves the check to the new service name and tombstones the old.
	idxBefore, _, _ := s.ServiceChecks(nil, "web")
	mustRegister(t, s, 7, svcReg("n1", "api", "web1"))
	idx, cs, _ := s.ServiceChecks(nil, "web")
	if len(cs) != 0 || idx != 7 || idx <= idxBefore {
		t.Fatalf("web checks after rename = %v at %d", cs, idx)
	}
	_, cs, _ = s.ServiceChecks(nil, "api")
	if len(cs) != 1 {
		t.Fatalf("api checks = %v", cs)
	}
	// The caller's registration is not modified.
	if r.Checks[0].ServiceName != "bogus" || r.Checks[0].ModifyIndex != 0 {
		t.Fatalf("registration mutated: %+v", r.Checks[0])
	}
}

func TestRejectedRegistrationLeavesNoTrace(t *testing.T) {
	s := New()
	mustRegister(t, s, 1, svcReg("n0", "db", "db1"))
	before := s.LastIndex()

	tx := s.WriteTxn()
	if err := tx.Register(2, svcReg("n1", "web", "web1")); err != nil {
		t.Fatal(err)
	}
	bad := &catalog.Registration{
		Node:    node("n2"),
		Service: &catalog.Service{ID: "api1", Name: "api"},
		Checks: []*catalog.Check{
			{CheckID: "ok", Status: "passing"},
			{CheckID: "bad", ServiceID: "nope", Status: "passing"},
		},
	}
	err := tx.Register(3, bad)
	var fe *catalog.FieldError
	if !errors.Is(err, catalog.ErrInvalid) || !errors.As(err, &fe) || fe.Field != "Checks[1].ServiceID" {
		t.Fatalf("err = %v, want FieldError on Checks[1].ServiceID wrapping ErrInvalid", err)
	}
	// A check naming a service of another node is rejected too.
	err = tx.Register(3, &catalog.Registration{Node: node("n2"), Checks: []*catalog.Check{{CheckID: "x", ServiceID: "db1"}}})
	if !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	tx.Commit()

	if got := s.LastIndex(); got != 2 || before != 1 {
		t.Fatalf("LastIndex = %d (before %d), want 2", got, before)
	}
	_, n, svcs, _ := s.NodeServices(nil, "n2")
	if n != nil || len(svcs) != 0 {
		t.Fatalf("n2 = %v %v, want nothing", n, svcs)
	}
	_, cs, _ := s.ChecksInState(nil, catalog.HealthAny)
	if len(cs) != 0 {
		t.Fatalf("checks = %v", checkIDs(cs))
	}
	_, svcMap, _ := s.Services(nil, nil)
	if _, ok := svcMap["api"]; ok || len(svcMap) != 2 {
		t.Fatalf("services = %v", svcMap)
	}
	// A check may name a service already on the node.
	mustRegister(t, s, 4, &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true,
		Checks: []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "passing"}}})
}

func TestNodeIDConflict(t *testing.T) {
	s := New()
	a := node("a")
	a.ID = "2b4bc2f2-5d2c-4dd6-9ad1-2c6b3f0fd7a1"
	mustRegister(t, s, 1, &catalog.Registration{Node: a})
	b := node("b")
	b.ID = a.ID
	tx := s.WriteTxn()
	defer tx.Abort()
	if err := tx.Register(2, &catalog.Registration{Node: b}); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func TestIdenticalReRegisterDoesNotMove(t *testing.T) {
	s := New()
	reg := func() *catalog.Registration {
		r := &catalog.Registration{
			Node:    node("n1", "rack", "r1"),
			Service: &catalog.Service{ID: "web1", Name: "web", Tags: []string{"a"}, Meta: map[string]string{}},
			Checks:  []*catalog.Check{{CheckID: "c", ServiceID: "web1", Status: "passing"}, {CheckID: "serf", Status: "passing"}},
		}
		r.Normalize()
		return r
	}
	mustRegister(t, s, 10, reg())
	ws := memdb.NewWatchSet()
	idx, _, _ := s.CheckServiceNodes(ws, "web", nil)
	ws2 := memdb.NewWatchSet()
	nidx, _, _, _ := s.NodeServices(ws2, "n1")
	r := reg()
	r.Service.Meta = nil // nil and empty are the same
	mustRegister(t, s, 11, r)
	if fired(ws) || fired(ws2) {
		t.Fatal("identical re-register fired a watch")
	}
	idx2, csn, _ := s.CheckServiceNodes(nil, "web", nil)
	nidx2, n, _, _ := s.NodeServices(nil, "n1")
	if idx2 != idx || nidx2 != nidx || idx != 10 {
		t.Fatalf("index moved: %d -> %d, %d -> %d", idx, idx2, nidx, nidx2)
	}
	if n.ModifyIndex != 10 || csn[0].Service.ModifyIndex != 10 || csn[0].Checks[0].ModifyIndex != 10 {
		t.Fatal("row rewritten")
	}
	if s.LastIndex() != 10 {
		t.Fatalf("LastIndex = %d", s.LastIndex())
	}
	// A real change moves ModifyIndex, keeps CreateIndex.
	r = reg()
	r.Service.Port = 81
	mustRegister(t, s, 12, r)
	_, csn, _ = s.CheckServiceNodes(nil, "web", nil)
	if sv := csn[0].Service; sv.ModifyIndex != 12 || sv.CreateIndex != 10 {
		t.Fatalf("service index = %+v", sv.RaftIndex)
	}
}

func TestIndexPerResult(t *testing.T) {
	s := New()
	mustRegister(t, s, 10, svcReg("n1", "web", "web1"))
	mustRegister(t, s, 11, svcReg("n2", "web", "web2"))

	ws := memdb.NewWatchSet()
	idx, sns, _ := s.ServiceNodes(ws, "web", nil)
	if idx != 11 || len(sns) != 2 {
		t.Fatalf("web idx = %d, %v", idx, serviceIDs(sns))
	}
	// Unrelated writes: another service (on a node hosting web, and on a new
	// node), a new name that "web" is a prefix of, a check on another node.
	mustRegister(t, s, 20, svcReg("n3", "api", "api1"))
	mustRegister(t, s, 21, &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true, Service: &catalog.Service{ID: "api2", Name: "api", Node: "n1"}})
	mustRegister(t, s, 26, &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true,
		Checks: []*catalog.Check{{CheckID: "api2-c", ServiceID: "api2", Status: "passing"}}})
	mustDeregister(t, s, 25, &catalog.Deregistration{Node: "n3"})
	if fired(ws) {
		t.Fatal("unrelated write fired the web watch")
	}
	// Names that "web" and "n1" are prefixes of may split radix edges and
	// wake the watch internally, but the result's index must not move.
	mustRegister(t, s, 27, svcReg("n1", "web2", "w3"))
	mustRegister(t, s, 28, svcReg("n4", "web22", "w4"))
	mustRegister(t, s, 29, svcReg("n10", "we", "w5"))
	ws = memdb.NewWatchSet()
	if idx1, _, _ := s.ServiceNodes(ws, "web", nil); idx1 != idx {
		t.Fatalf("web idx moved %d -> %d on prefix names", idx, idx1)
	}
	if idx2, _, _ := s.ServiceNodes(nil, "web", nil); idx2 != idx {
		t.Fatalf("web idx moved %d -> %d", idx, idx2)
	}
	// Deleting a web instance moves the index and fires.
	mustDeregister(t, s, 30, &catalog.Deregistration{Node: "n2", ServiceID: "web2"})
	if !fired(ws) {
		t.Fatal("deleting a web instance did not fire")
	}
	idx3, sns, _ := s.ServiceNodes(nil, "web", nil)
	if idx3 != 30 || len(sns) != 1 {
		t.Fatalf("web idx after delete = %d (%v)", idx3, serviceIDs(sns))
	}
	// Changing a hosting node fires and moves.
	ws = memdb.NewWatchSet()
	s.ServiceNodes(ws, "web", nil)
	n1 := node("n1")
	n1.Address = "10.0.0.9"
	mustRegister(t, s, 31, &catalog.Registration{Node: n1})
	if !fired(ws) {
		t.Fatal("node change did not fire")
	}
	if idx4, _, _ := s.ServiceNodes(nil, "web", nil); idx4 != 31 {
		t.Fatalf("idx = %d", idx4)
	}
	// Empty scope: index 1, never 0.
	if idx, _, _ := s.ServiceNodes(nil, "none", nil); idx != 1 {
		t.Fatalf("empty idx = %d", idx)
	}
}

func TestNodeCheckFiresCheckServiceNodes(t *testing.T) {
	s := New()
	mustRegister(t, s, 10, &catalog.Registration{Node: node("n1"), Service: &catalog.Service{ID: "web1", Name: "web"},
		Checks: []*catalog.Check{{CheckID: "serf", Status: "passing"}}})
	mustRegister(t, s, 11, svcReg("n2", "api", "api1"))

	ws := memdb.NewWatchSet()
	idx, csn, _ := s.CheckServiceNodes(ws, "web", nil)
	if idx != 10 || len(csn) != 1 || len(csn[0].Checks) != 1 {
		t.Fatalf("csn = %+v at %d", csn, idx)
	}
	// A node check on a node not hosting web does not move web's index
	// (it may split a radix edge that web's watch hangs on: an internal
	// wake-up only).
	mustRegister(t, s, 12, &catalog.Registration{Node: node("n2"), SkipNodeUpdate: true, Checks: []*catalog.Check{{CheckID: "serf", Status: "critical"}}})
	if idx2, _, _ := s.CheckServiceNodes(nil, "web", nil); idx2 != idx {
		t.Fatalf("node check on n2 moved web's index %d -> %d", idx, idx2)
	}
	ws = memdb.NewWatchSet()
	s.CheckServiceNodes(ws, "web", nil)
	mustRegister(t, s, 13, &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true, Checks: []*catalog.Check{{CheckID: "serf", Status: "critical"}}})
	if !fired(ws) {
		t.Fatal("node check on n1 did not fire web")
	}
	idx, csn, _ = s.CheckServiceNodes(nil, "web", nil)
	if idx != 13 || catalog.AggregatedStatus(csn[0].Checks) != catalog.HealthCritical {
		t.Fatalf("idx %d checks %v", idx, checkIDs(csn[0].Checks))
	}
	// Deleting the node check moves the index too.
	ws = memdb.NewWatchSet()
	s.CheckServiceNodes(ws, "web", nil)
	mustDeregister(t, s, 14, &catalog.Deregistration{Node: "n1", CheckID: "serf"})
	if !fired(ws) {
		t.Fatal("node check delete did not fire")
	}
	if idx, _, _ = s.CheckServiceNodes(nil, "web", nil); idx != 14 {
		t.Fatalf("idx = %d", idx)
	}
}

func TestFilters(t *testing.T) {
	s := New()
	r1 := &catalog.Registration{Node: node("n1", "rack", "a"), Service: &catalog.Service{ID: "web1", Name: "web", Tags: []string{"v1", "primary"}}}
	r2 := &catalog.Registration{Node: node("n2", "rack", "b"), Service: &catalog.Service{ID: "web2", Name: "web", Tags: []string{"v1"}}}
	r3 := &catalog.Registration{Node: node("n2", "rack", "b"), Service: &catalog.Service{ID: "db", Name: "db", Tags: []string{"Primary"}}}
	for i, r := range []*catalog.Registration{r1, r2, r3} {
		r.Normalize()
		mustRegister(t, s, uint64(i+1), r)
	}
	for _, tc := range []struct {
		tags []string
		want []string
	}{
		{nil, []string{"n1/web1", "n2/web2"}},
		{[]string{"v1"}, []string{"n1/web1", "n2/web2"}},
		{[]string{"v1", "primary"}, []string{"n1/web1"}},
		{[]string{"Primary"}, nil},
		{[]string{"v2"}, nil},
	} {
		idx, sns, _ := s.ServiceNodes(nil, "web", tc.tags)
		if got := serviceIDs(sns); !reflect.DeepEqual(got, tc.want) || idx != 2 {
			t.Errorf("tags %v: %v at %d, want %v at 2", tc.tags, got, idx, tc.want)
		}
		_, csn, _ := s.CheckServiceNodes(nil, "web", tc.tags)
		if len(csn) != len(tc.want) {
			t.Errorf("tags %v: csn %d", tc.tags, len(csn))
		}
	}
	_, nodes, _ := s.Nodes(nil, map[string]string{"rack": "b"})
	if len(nodes) != 1 || nodes[0].Name != "n2" {
		t.Errorf("nodes rack=b: %v", nodes)
	}
	_, svcs, _ := s.Services(nil, nil)
	want := map[string][]string{"web": {"primary", "v1"}, "db": {"Primary"}}
	if !reflect.DeepEqual(svcs, want) {
		t.Errorf("services = %v", svcs)
	}
	_, svcs, _ = s.Services(nil, map[string]string{"rack": "a"})
	if !reflect.DeepEqual(svcs, map[string][]string{"web": {"primary", "v1"}}) {
		t.Errorf("services rack=a = %v", svcs)
	}
	_, svcs, _ = s.Services(nil, map[string]string{"rack": "c"})
	if len(svcs) != 0 {
		t.Errorf("services rack=c = %v", svcs)
	}
}

func TestChecksInState(t *testing.T) {
	s := New()
	mustRegister(t, s, 1, &catalog.Registration{Node: node("n1"), Checks: []*catalog.Check{{CheckID: "a", Status: "passing"}, {CheckID: "b", Status: "critical"}}})
	mustRegister(t, s, 2, &catalog.Registration{Node: node("n2"), Checks: []*catalog.Check{{CheckID: "a", Status: "passing"}}})
	ws := memdb.NewWatchSet()
	idx, cs, _ := s.ChecksInState(ws, catalog.HealthPassing)
	if idx != 2 || !reflect.DeepEqual(checkIDs(cs), []string{"n1/a=passing", "n2/a=passing"}) {
		t.Fatalf("passing = %v at %d", checkIDs(cs), idx)
	}
	// n1/a leaves passing: the passing index moves although no passing row
	// has a higher ModifyIndex.
	mustRegister(t, s, 3, &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true, Checks: []*catalog.Check{{CheckID: "a", Status: "warning"}}})
	if !fired(ws) {
		t.Fatal("no fire")
	}
	idx, cs, _ = s.ChecksInState(nil, catalog.HealthPassing)
	if idx != 3 || len(cs) != 1 {
		t.Fatalf("passing = %v at %d", checkIDs(cs), idx)
	}
	_, cs, _ = s.ChecksInState(nil, catalog.HealthAny)
	if len(cs) != 3 {
		t.Fatalf("any = %v", checkIDs(cs))
	}
	if _, _, err := s.ChecksInState(nil, "bogus"); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
}

func TestMeta(t *testing.T) {
	s := New()
	if _, ok := s.Meta("cluster_id"); ok {
		t.Fatal("unexpected meta")
	}
	tx := s.WriteTxn()
	if err := tx.SetMeta(7, "cluster_id", "abc"); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
	if v, ok := s.Meta("cluster_id"); !ok || v != "abc" || s.LastIndex() != 7 {
		t.Fatalf("meta = %q %v, last %d", v, ok, s.LastIndex())
	}
}

func populate(t testing.TB, s *Store) {
	for i := range 20 {
		n := fmt.Sprintf("node%d", i)
		r := &catalog.Registration{
			Node:    node(n, "rack", fmt.Sprint(i%3)),
			Service: &catalog.Service{ID: "web-" + n, Name: "web", Tags: []string{fmt.Sprint("v", i%2)}, Meta: map[string]string{"k": "v"}},
			Checks: []*catalog.Check{
				{CheckID: "serf", Status: "passing"},
				{CheckID: "http", ServiceID: "web-" + n, Status: []string{"passing", "warning", "critical"}[i%3], Definition: catalog.CheckDefinition{HTTP: "http://x/"}},
			},
		}
		r.Normalize()
		mustRegister(t, s, uint64(100+i), r)
	}
	mustDeregister(t, s, 200, &catalog.Deregistration{Node: "node3"})
	mustDeregister(t, s, 201, &catalog.Deregistration{Node: "node4", ServiceID: "web-node4"})
	tx := s.WriteTxn()
	if err := tx.SetMeta(202, "cluster_id", "c1"); err != nil {
		t.Fatal(err)
	}
	tx.Commit()
}

type results struct {
	Last    uint64
	Nodes   any
	Svcs    any
	SN      any
	CSN     any
	NS      any
	SC      any
	NC      any
	CIS     any
	Indexes []uint64
}

func query(s *Store) results {
	var r results
	r.Last = s.LastIndex()
	i1, nodes, _ := s.Nodes(nil, nil)
	i2, svcs, _ := s.Services(nil, nil)
	i3, sn, _ := s.ServiceNodes(nil, "web", []string{"v1"})
	i4, csn, _ := s.CheckServiceNodes(nil, "web", nil)
	i5, n, ns, _ := s.NodeServices(nil, "node4")
	i6, sc, _ := s.ServiceChecks(nil, "web")
	i7, nc, _ := s.NodeChecks(nil, "node3")
	i8, cis, _ := s.ChecksInState(nil, "critical")
	r.Nodes, r.Svcs, r.SN, r.CSN, r.NS, r.SC, r.NC, r.CIS = nodes, svcs, sn, csn, []any{n, ns}, sc, nc, cis
	r.Indexes = []uint64{i1, i2, i3, i4, i5, i6, i7, i8}
	return r
}

func TestSnapshotRestore(t *testing.T) {
	s := New()
	populate(t, s)
	want := query(s)

	sn := s.Snapshot()
	// Writes after the snapshot are not in it.
	mustRegister(t, s, 300, svcReg("late", "web", "late"))
	var buf bytes.Buffer
	n, err := sn.WriteTo(&buf)
	sn.Close()
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v (buf %d)", n, err, buf.Len())
	}
	if !strings.HasPrefix(buf.String(), `{"format":"warren-state","version":1}`+"\n") {
		t.Fatalf("header: %.80s", buf.String())
	}

	ws := memdb.NewWatchSet()
	s.ServiceNodes(ws, "web", nil)
	abandon := s.AbandonCh()
	if err := s.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	select {
	case <-abandon:
	default:
		t.Fatal("AbandonCh not closed")
	}
	if !fired(ws) {
		t.Fatal("watch set not fired by restore")
	}
	got := query(s)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("restored results differ:\n got %+v\nwant %+v", got, want)
	}
	if v, ok := s.Meta("cluster_id"); !ok || v != "c1" {
		t.Fatalf("meta lost")
	}
	// The restored store keeps working and keeps tombstones.
	mustRegister(t, s, 301, svcReg("node5", "web", "web-node5", "v9"))
	if idx, _, _, _ := s.NodeServices(nil, "node3"); idx != 200 {
		t.Fatalf("tombstone index for node3 = %d", idx)
	}
}

func TestRestoreGarbageKeepsState(t *testing.T) {
	s := New()
	populate(t, s)
	want := query(s)
	var good bytes.Buffer
	sn := s.Snapshot()
	if _, err := sn.WriteTo(&good); err != nil {
		t.Fatal(err)
	}
	sn.Close()
	lines := strings.SplitAfter(good.String(), "\n")
	abandon := s.AbandonCh()
	for name, input := range map[string]string{
		"garbage":      "this is not a snapshot",
		"empty":        "",
		"wrong format": `{"format":"other","version":1}` + "\n",
		"newer":        `{"format":"warren-state","version":99}` + "\n",
		"truncated":    strings.Join(lines[:len(lines)/2], ""),
		"no end":       strings.Join(lines[:len(lines)-2], ""),
		"unknown type": lines[0] + `{"t":"weird","v":{}}` + "\n",
		"bad row":      lines[0] + `{"t":"node","v":{"Name":""}}` + "\n" + `{"t":"end","n":1}` + "\n",
		"bad count":    strings.Join(lines[:len(lines)-2], "") + `{"t":"end","n":1}` + "\n",
	} {
		if err := s.Restore(strings.NewReader(input)); err == nil {
			t.Errorf("%s: Restore succeeded", name)
		}
	}
	select {
	case <-abandon:
		t.Fatal("AbandonCh closed by failed restore")
	default:
	}
	if got := query(s); !reflect.DeepEqual(got, want) {
		t.Fatal("state changed by failed restore")
	}
}

func TestConcurrentReadsAndWrites(t *testing.T) {
	s := New()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s.CheckServiceNodes(memdb.NewWatchSet(), "web", nil)
				s.Nodes(nil, nil)
			}
		}()
	}
	for i := range 200 {
		mustRegister(t, s, uint64(i+1), svcReg(fmt.Sprint("n", i%10), "web", fmt.Sprint("w", i)))
		if i == 100 {
			sn := s.Snapshot()
			var buf bytes.Buffer
			sn.WriteTo(&buf)
			sn.Close()
			if err := s.Restore(&buf); err != nil {
				t.Error(err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func BenchmarkRegister(b *testing.B) {
	s := New()
	regs := benchRegs(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		tx := s.WriteTxn()
		if err := tx.Register(uint64(i+1), regs[i]); err != nil {
			b.Fatal(err)
		}
		tx.Commit()
	}
}

func BenchmarkRegisterBatch64(b *testing.B) {
	s := New()
	regs := benchRegs(b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += 64 {
		tx := s.WriteTxn()
		for j := i; j < i+64 && j < b.N; j++ {
			if err := tx.Register(uint64(j+1), regs[j]); err != nil {
				b.Fatal(err)
			}
		}
		tx.Commit()
	}
}

func benchRegs(n int) []*catalog.Registration {
	regs := make([]*catalog.Registration, n)
	for i := range regs {
		nn := fmt.Sprintf("node-%d", i%5000)
		id := fmt.Sprintf("svc-%d", i)
		r := &catalog.Registration{
			Node:    catalog.Node{Name: nn, Address: "10.1.2.3", Meta: map[string]string{"rack": "r1"}},
			Service: &catalog.Service{ID: id, Name: fmt.Sprintf("service-%d", i%200), Tags: []string{"v1", "primary"}, Port: 8080},
			Checks:  []*catalog.Check{{CheckID: "check-" + id, ServiceID: id, Status: "passing", Output: "HTTP GET 200"}},
		}
		r.Normalize()
		regs[i] = r
	}
	return regs
}

// A check ID is unique per node: registering it under another service, or
// at node level, moves it (CreateIndex kept), never duplicates it; removing
// it by ID finds it wherever it is.
func TestCheckIDMovesBetweenServices(t *testing.T) {
	s := New()
	mustRegister(t, s, 5, svcReg("n1", "web", "web1"))
	mustRegister(t, s, 6, svcReg("n1", "api", "api1"))
	chk := func(serviceID, status string) *catalog.Registration {
		return &catalog.Registration{Node: node("n1"), SkipNodeUpdate: true,
			Checks: []*catalog.Check{{CheckID: "probe", ServiceID: serviceID, Status: status}}}
	}
	mustRegister(t, s, 7, chk("web1", "passing"))
	mustRegister(t, s, 8, chk("api1", "critical"))
	_, cs, _ := s.NodeChecks(nil, "n1")
	if len(cs) != 1 || cs[0].ServiceID != "api1" || cs[0].ServiceName != "api" || cs[0].Status != "critical" || cs[0].CreateIndex != 7 || cs[0].ModifyIndex != 8 {
		t.Fatalf("after the move to api1: %+v", cs)
	}
	if _, web, _ := s.ServiceChecks(nil, "web"); len(web) != 0 {
		t.Fatalf("web still has checks: %v", checkIDs(web))
	}
	if _, csn, _ := s.CheckServiceNodes(nil, "api", nil); len(csn) != 1 || len(csn[0].Checks) != 1 {
		t.Fatalf("api instances: %+v", csn)
	}
	// To node level: it now applies to every instance on n1.
	mustRegister(t, s, 9, chk("", "warning"))
	_, cs, _ = s.NodeChecks(nil, "n1")
	if len(cs) != 1 || cs[0].ServiceID != "" || cs[0].ServiceName != "" || cs[0].CreateIndex != 7 {
		t.Fatalf("after the move to node level: %+v", cs)
	}
	if _, csn, _ := s.CheckServiceNodes(nil, "web", nil); len(csn) != 1 || len(csn[0].Checks) != 1 || csn[0].Checks[0].Status != "warning" {
		t.Fatalf("web instances with the node-level check: %+v", csn)
	}
	// Back to a service, then removed by ID alone.
	mustRegister(t, s, 10, chk("web1", "passing"))
	mustDeregister(t, s, 11, &catalog.Deregistration{Node: "n1", CheckID: "probe"})
	if _, cs, _ := s.NodeChecks(nil, "n1"); len(cs) != 0 {
		t.Fatalf("after removal: %v", checkIDs(cs))
	}
	// A check of one node never touches another node's check of that ID.
	mustRegister(t, s, 12, svcReg("n2", "web", "web1"))
	mustRegister(t, s, 13, chk("web1", "passing"))
	n2 := chk("web1", "critical")
	n2.Node = node("n2")
	mustRegister(t, s, 14, n2)
	_, all, _ := s.ChecksInState(nil, catalog.HealthAny)
	if got := checkIDs(all); !reflect.DeepEqual(got, []string{"n1/probe=passing", "n2/probe=critical"}) {
		t.Fatalf("checks = %v", got)
	}
}

// BenchmarkCheckServiceNodes reads one service of 200 instances, one per
// node, each node running 20 services with a check each and a node-level
// check: the readers group a node's checks by service (nodeChecks).
func BenchmarkCheckServiceNodes(b *testing.B) {
	s := New()
	idx := uint64(1)
	for n := range 200 {
		nn := fmt.Sprintf("node-%03d", n)
		mustRegister(b, s, idx, &catalog.Registration{Node: node(nn),
			Checks: []*catalog.Check{{CheckID: "serfHealth", Status: catalog.HealthPassing}}})
		idx++
		for k := range 20 {
			id := fmt.Sprintf("svc-%02d-%03d", k, n)
			r := svcReg(nn, fmt.Sprintf("svc-%02d", k), id)
			r.Checks = []*catalog.Check{{CheckID: "check-" + id, ServiceID: id, Status: catalog.HealthPassing}}
			mustRegister(b, s, idx, r)
			idx++
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		_, out, err := s.CheckServiceNodes(memdb.NewWatchSet(), "svc-07", nil)
		if err != nil || len(out) != 200 || len(out[0].Checks) != 2 {
			b.Fatalf("%d instances, err %v", len(out), err)
		}
	}
}

// BenchmarkRegisterBatched applies registrations (a new instance with a
// check, on one of 200 nodes) in transactions of 64, as the FSM applies a
// Raft batch: ns/op and allocations are per batch of 64 (building the
// registrations included).
func BenchmarkRegisterBatched(b *testing.B) {
	s := New()
	const batch = 64
	regs := make([]*catalog.Registration, batch)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		for j := range regs {
			n := i + j
			id := fmt.Sprintf("svc-%07d", n)
			regs[j] = &catalog.Registration{Node: node(fmt.Sprintf("node-%03d", n%200)),
				Service: &catalog.Service{ID: id, Name: fmt.Sprintf("web-%02d", n%20), Tags: []string{"bench"}, Port: 80},
				Checks:  []*catalog.Check{{CheckID: "check-" + id, ServiceID: id, Status: catalog.HealthPassing}}}
		}
		tx := s.WriteTxn()
		for _, r := range regs {
			if err := tx.Register(uint64(i+1), r); err != nil {
				b.Fatal(err)
			}
			i++
		}
		tx.Commit()
	}
}

// The change feed is bounded by entries and by names: a reader whose cursor
// fell off the end is told to take a snapshot; one within it gets every
// later change, oldest first.
func TestChangeFeedBounds(t *testing.T) {
	s := New()
	start := s.ChangeCursor()
	big := make([]InstanceKey, 1000)
	for i := range 40 { // 40,000 names: over changeLogKeys
		s.changes.publish(Change{Index: uint64(i + 1), Instances: big})
	}
	l := s.changes
	if l.keys > changeLogKeys || len(l.entries) != changeLogKeys/1000 {
		t.Fatalf("feed holds %d entries, %d names; want %d entries, at most %d names", len(l.entries), l.keys, changeLogKeys/1000, changeLogKeys)
	}
	if _, _, ok := s.ChangesSince(start); ok {
		t.Fatal("a cursor that fell off the feed was served")
	}
	cs, _, ok := s.ChangesSince(Cursor{Epoch: start.Epoch, Index: 37})
	if !ok || len(cs) != 3 || cs[0].Index != 38 || cs[2].Index != 40 {
		t.Fatalf("changes after 37: ok %v, %d changes", ok, len(cs))
	}
	// Small changes are bounded by count.
	for i := range changeLogSize + 10 {
		s.changes.publish(Change{Index: uint64(100 + i), Nodes: []string{"n"}})
	}
	if len(l.entries) != changeLogSize || l.keys != changeLogSize {
		t.Fatalf("feed holds %d entries, %d names; want %d of each", len(l.entries), l.keys, changeLogSize)
	}
	// One change larger than the bound is still kept: the newest always is.
	s.changes.publish(Change{Index: 100000, Instances: make([]InstanceKey, changeLogKeys+1)})
	if len(l.entries) != 1 || l.entries[0].Index != 100000 {
		t.Fatalf("after an oversized change: %d entries", len(l.entries))
	}
}

// TestKeepAgentNodeFields: a registration with KeepAgentNodeFields (the
// servers' membership reconciliation) changes an existing node's address
// but keeps the ID, tagged addresses and meta its agent registered; on a
// node that does not exist yet it writes them as given.
func TestKeepAgentNodeFields(t *testing.T) {
	s := New()
	agentNode := catalog.Node{ID: "11111111-2222-3333-4444-555555555555", Name: "a1", Address: "10.0.0.1", Datacenter: "dc1",
		TaggedAddresses: map[string]string{"lan": "10.0.0.1", "wan": "10.0.0.1"}, Meta: map[string]string{"rack": "r1"}}
	mustRegister(t, s, 1, &catalog.Registration{Node: agentNode})
	mustRegister(t, s, 2, &catalog.Registration{KeepAgentNodeFields: true,
		Node: catalog.Node{ID: "11111111-2222-3333-4444-555555555555", Name: "a1", Address: "10.0.0.9", Datacenter: "dc1"}})
	_, n, _, err := s.NodeServices(nil, "a1")
	if err != nil || n == nil {
		t.Fatalf("node a1: %v, %v", n, err)
	}
	if n.Address != "10.0.0.9" || n.TaggedAddresses["lan"] != "10.0.0.1" || n.Meta["rack"] != "r1" || n.ID != agentNode.ID {
		t.Fatalf("node a1 after the reconciler's registration: %+v", n)
	}
	// Without the flag the registration is the whole node, as before.
	mustRegister(t, s, 3, &catalog.Registration{Node: catalog.Node{ID: agentNode.ID, Name: "a1", Address: "10.0.0.9", Datacenter: "dc1"}})
	if _, n, _, _ = s.NodeServices(nil, "a1"); len(n.TaggedAddresses) != 0 || len(n.Meta) != 0 {
		t.Fatalf("node a1 after a plain registration: %+v", n)
	}
	// A node that does not exist yet is written as given.
	mustRegister(t, s, 4, &catalog.Registration{KeepAgentNodeFields: true,
		Node: catalog.Node{Name: "a2", Address: "10.0.0.2", Meta: map[string]string{"k": "v"}}})
	if _, n, _, _ = s.NodeServices(nil, "a2"); n == nil || n.Meta["k"] != "v" {
		t.Fatalf("new node a2: %+v", n)
	}
}
