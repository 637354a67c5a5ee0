package view

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// testInstance is instance j of service s on node n.
func testInstance(s, j int, n *catalog.Node, status string) catalog.CheckServiceNode {
	name := fmt.Sprintf("vsvc-%05d", s)
	id := fmt.Sprintf("%s-%d", name, j)
	idx := catalog.RaftIndex{CreateIndex: uint64(10 + s), ModifyIndex: uint64(10 + s)}
	return catalog.CheckServiceNode{Node: n,
		Service: &catalog.Service{Node: n.Name, ID: id, Name: name, Tags: []string{n.Datacenter}, Address: "127.0.0.1",
			Port: 20000 + s, Weights: catalog.Weights{Passing: 1, Warning: 1}, RaftIndex: idx},
		Checks: []*catalog.Check{{Node: n.Name, CheckID: "check-" + id, Name: "bench check", Status: status,
			ServiceID: id, ServiceName: name, ServiceTags: []string{n.Datacenter}, RaftIndex: idx}}}
}

// testSnapshot is the views benchmark's catalog as a server encodes it:
// services x per instances spread over nodes.
func testSnapshot(services, per, nodes int, dc string) []byte {
	body := rpc.WatchBody{Services: map[string][]catalog.CheckServiceNode{}, Nodes: map[string]*catalog.Node{}}
	for s := range services {
		for j := range per {
			nn := fmt.Sprintf("vnode-%04d", (j*(nodes/per)+s)%nodes)
			n := body.Nodes[nn]
			if n == nil {
				n = &catalog.Node{Name: nn, Address: "127.0.0.1", Datacenter: dc, RaftIndex: catalog.RaftIndex{CreateIndex: 5, ModifyIndex: 5}}
				body.Nodes[nn] = n
			}
			name := fmt.Sprintf("vsvc-%05d", s)
			body.Services[name] = append(body.Services[name], testInstance(s, j, n, catalog.HealthPassing))
		}
	}
	return mustJSON(body)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func applyJSON(t testing.TB, v *View, index uint64, snapshot bool, data []byte) {
	t.Helper()
	ev, err := decodeEvent(data)
	if err != nil {
		t.Fatal(err)
	}
	v.apply(index, snapshot, ev)
}

func ids(list []catalog.CheckServiceNode) []string {
	var out []string
	for _, csn := range list {
		out = append(out, csn.Node.Name+"/"+csn.Service.ID+"/"+catalog.AggregatedStatus(csn.Checks))
	}
	return out
}

func TestViewSnapshotAndDeltas(t *testing.T) {
	snap := testSnapshot(4, 3, 6, "dc1")
	a, b := New(Config{}), New(Config{})
	applyJSON(t, a, 10, true, snap)
	applyJSON(t, b, 10, true, snap)

	got := a.ServiceInstances("VSVC-00001")
	if want := "[vnode-0001/vsvc-00001-0/passing vnode-0003/vsvc-00001-1/passing vnode-0005/vsvc-00001-2/passing]"; fmt.Sprint(ids(got)) != want {
		t.Fatalf("ServiceInstances = %v, want %s", ids(got), want)
	}
	// Two views hold the same rows, and an instance's node is the node row.
	other := b.ServiceInstances("vsvc-00001")
	n, _ := a.Node("vnode-0001")
	if got[0].Service != other[0].Service || got[0].Checks[0] != other[0].Checks[0] || got[0].Node != n {
		t.Fatalf("rows are not shared: %p %p, %p %p, %p %p", got[0].Service, other[0].Service, got[0].Checks[0], other[0].Checks[0], got[0].Node, n)
	}

	// A delta: one instance critical, one removed, one added, a node gone.
	n3, _ := a.Node("vnode-0003")
	delta := rpc.WatchBody{
		Upserts: []catalog.CheckServiceNode{testInstance(1, 1, n3, catalog.HealthCritical), testInstance(1, 7, n3, catalog.HealthPassing)},
		Removed: []rpc.InstanceKey{{Service: "vsvc-00001", Node: "vnode-0005", ID: "vsvc-00001-2"}},
		Nodes:   map[string]*catalog.Node{"vnode-0004": nil},
	}
	gen := a.Generation()
	applyJSON(t, a, 11, false, mustJSON(delta))
	if a.Generation() == gen || a.Index() != 11 {
		t.Fatalf("generation %d -> %d, index %d", gen, a.Generation(), a.Index())
	}
	if want := "[vnode-0001/vsvc-00001-0/passing vnode-0003/vsvc-00001-1/critical vnode-0003/vsvc-00001-7/passing]"; fmt.Sprint(ids(a.ServiceInstances("vsvc-00001"))) != want {
		t.Fatalf("after delta = %v, want %s", ids(a.ServiceInstances("vsvc-00001")), want)
	}
	// What readers got before is unchanged.
	if want := "[vnode-0001/vsvc-00001-0/passing vnode-0003/vsvc-00001-1/passing vnode-0005/vsvc-00001-2/passing]"; fmt.Sprint(ids(got)) != want {
		t.Fatalf("a reader's earlier list changed: %v", ids(got))
	}
	if _, ok := a.Node("vnode-0004"); ok {
		t.Fatal("node vnode-0004 still present after its removal")
	}
	if len(a.Nodes()) != 5 {
		t.Fatalf("Nodes() = %d, want 5", len(a.Nodes()))
	}
	// The other view did not see a's delta.
	if want := "passing"; catalog.AggregatedStatus(b.ServiceInstances("vsvc-00001")[1].Checks) != want {
		t.Fatal("view b changed with view a's delta")
	}

	// Removing every instance removes the service.
	var gone []rpc.InstanceKey
	for _, csn := range a.ServiceInstances("vsvc-00002") {
		gone = append(gone, rpc.InstanceKey{Service: csn.Service.Name, Node: csn.Node.Name, ID: csn.Service.ID})
	}
	applyJSON(t, a, 12, false, mustJSON(rpc.WatchBody{Removed: gone}))
	if a.ServiceInstances("vsvc-00002") != nil || len(a.ServiceNames()) != 3 {
		t.Fatalf("service vsvc-00002 not removed: %v", a.ServiceNames())
	}

	// A new snapshot replaces everything.
	applyJSON(t, a, 20, true, testSnapshot(1, 3, 3, "dc1"))
	if names := a.ServiceNames(); len(names) != 1 || len(a.Nodes()) != 3 {
		t.Fatalf("after snapshot: services %v, %d nodes", names, len(a.Nodes()))
	}
}

func TestDecodeEventErrors(t *testing.T) {
	for _, body := range []string{
		`{"Upserts":[{"Node":null,"Service":{"ID":"x"}}]}`,
		`{"Upserts":[{"Node":{"Name":"n"},"Service":{"ID":"x"},"Checks":[null]}]}`,
		`{"Services":{"web":[{"Node":{"Name":3},"Service":{}}]}}`,
		`{"Upserts":`,
	} {
		if _, err := decodeEvent([]byte(body)); err == nil {
			t.Errorf("decodeEvent(%s): no error", body)
		}
	}
}

// TestRowsCollected checks that the row tables do not keep rows no view
// holds: they are collected, and their entries swept as the table grows.
func TestRowsCollected(t *testing.T) {
	runtime.GC() // rows of earlier tests' views
	before := live(instanceRows)
	v := New(Config{})
	applyJSON(t, v, 1, true, testSnapshot(500, 3, 30, "collected-1"))
	if got := live(instanceRows); got != before+1500 {
		t.Fatalf("live instance rows after snapshot: %d, want %d", got, before+1500)
	}
	runtime.KeepAlive(v)
	v = nil
	deadline := time.Now().Add(10 * time.Second)
	for live(instanceRows) > before {
		if time.Now().After(deadline) {
			t.Fatalf("%d instance rows live after the view is gone, want <= %d", live(instanceRows), before)
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	// 1,500 new rows make the table sweep the 1,500 collected ones.
	w := New(Config{})
	applyJSON(t, w, 1, true, testSnapshot(500, 3, 30, "collected-2"))
	if dead := instanceRows.size() - live(instanceRows); dead >= 1500 {
		t.Fatalf("%d collected rows still in the table after 1,500 new ones", dead)
	}
	runtime.KeepAlive(w)
}

// live counts a table's rows that are still reachable.
func live[T, X any](t *rowTable[T, X]) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, e := range t.rows {
		if e.row.Value() != nil {
			n++
		}
	}
	return n
}

// BenchmarkViewHeap measures the live heap of views holding the views
// benchmark's catalog (10,000 services x 3 instances on 3,000 nodes): the
// first view pays for the rows (what one agent holds), each further view
// in the process only for its own lists and maps.
//
//	go test -run '^$' -bench ViewHeap -benchtime 1x ./agent/view/
func BenchmarkViewHeap(b *testing.B) {
	data := testSnapshot(10000, 3, 3000, "dc1")
	b.ReportMetric(float64(len(data))/(1<<20), "snapshot-MiB")
	for b.Loop() {
		h0 := liveHeap()
		first := New(Config{})
		applyJSON(b, first, 1, true, data)
		h1 := liveHeap()
		const more = 10
		views := make([]*View, more)
		for i := range views {
			views[i] = New(Config{})
			applyJSON(b, views[i], 1, true, data)
		}
		h2 := liveHeap()
		b.ReportMetric(float64(h1-h0)/(1<<20), "first-view-MiB")
		b.ReportMetric(float64(h2-h1)/more/(1<<20), "further-view-MiB")
		runtime.KeepAlive(first)
		runtime.KeepAlive(views)
	}
}

func liveHeap() uint64 {
	// Twice: the first empties sync.Pools into their victim caches.
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkDecodeSnapshot decodes the views benchmark's snapshot: "shared"
// while another view holds its rows (only the hashing and lookups),
// "fresh" when no row is live, and "plain" with encoding/json into
// rpc.WatchBody (the decoding before rows were shared).
func BenchmarkDecodeSnapshot(b *testing.B) {
	data := testSnapshot(10000, 3, 3000, "decode")
	b.Run("shared", func(b *testing.B) {
		holder := New(Config{})
		applyJSON(b, holder, 1, true, data)
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if _, err := decodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
		runtime.KeepAlive(holder)
	})
	b.Run("fresh", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			if _, err := decodeEvent(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var body rpc.WatchBody
			if err := json.Unmarshal(data, &body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
