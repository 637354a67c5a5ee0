package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/catalog/state"
)

// BenchmarkStateStoreHeap measures, in process, the live heap the state
// store holds per registered instance (the memory benchmark's workload:
// nodes of 10 services, each with a check), to tell the store's share of a
// server's RSS from the rest. Run it with:
//
//	HEAPPROFILE=$PWD/heap.out go test -run '^$' -bench StateStoreHeap -benchtime 1x ./bench/
//	go tool pprof -sample_index=inuse_space -top heap.out
func BenchmarkStateStoreHeap(b *testing.B) {
	const instances, batch = 10000, 64
	for b.Loop() {
		before := liveHeap()
		s := state.New()
		for i := 0; i < instances; i += batch {
			txn := s.WriteTxn()
			for j := i; j < min(i+batch, instances); j++ {
				if err := txn.Register(uint64(j+10), memRegistration(j)); err != nil {
					b.Fatal(err)
				}
			}
			txn.Commit()
		}
		after := liveHeap()
		b.ReportMetric(float64(after-before)/instances, "live-B/instance")
		b.ReportMetric(float64(after-before)/(1<<20), "live-MiB")
		writeHeapProfile(b)
		runtime.KeepAlive(s)
	}
}

// writeHeapProfile writes the live heap to $HEAPPROFILE, if set, while the
// store is still reachable.
func writeHeapProfile(b *testing.B) {
	path := os.Getenv("HEAPPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// memRegistration is instance i of the memory benchmark, as the FSM
// decodes it.
func memRegistration(i int) *catalog.Registration {
	node := fmt.Sprintf("mem-node-%05d", i/memServicesPerNode)
	id := fmt.Sprintf("mem-%05d-%d", i/memServicesPerNode, i%memServicesPerNode)
	return &catalog.Registration{
		Node: catalog.Node{Name: node, Address: loopback, Datacenter: "dc1"},
		Service: &catalog.Service{Node: node, ID: id, Name: memService(i % memServicesPerNode),
			Tags: []string{"bench"}, Address: loopback, Port: 20000 + i%memServicesPerNode,
			Weights: catalog.Weights{Passing: 1, Warning: 1}},
		Checks: []*catalog.Check{{Node: node, CheckID: "check-" + id, Name: "bench check",
			Status: "passing", ServiceID: id}},
	}
}
