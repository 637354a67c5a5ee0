package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/server/servertest"
)

type blockResult struct {
	index uint64
	n     int
	err   error
	took  time.Duration
}

// block runs a blocking health query for web at index and reports when it
// returns.
func block(cl *consulapi.Client, index uint64, wait time.Duration, stale bool) <-chan blockResult {
	out := make(chan blockResult, 1)
	go func() {
		start := time.Now()
		entries, meta, err := cl.Health().Service("web", "", true, &consulapi.QueryOptions{WaitIndex: index, WaitTime: wait, AllowStale: stale})
		r := blockResult{err: err, n: len(entries), took: time.Since(start)}
		if meta != nil {
			r.index = meta.LastIndex
		}
		out <- r
	}()
	return out
}

func TestBlockingQueryWakesOnlyOnItsChange(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()
	for _, n := range []*servertest.Node{leader, c.Followers()[0]} {
		t.Run(n.Name, func(t *testing.T) {
			cl := client(t, n)
			stale := n != leader
			if _, err := client(t, leader).Catalog().Register(registration(1), nil); err != nil {
				t.Fatal(err)
			}
			_, lmeta, err := client(t, leader).Health().Service("web", "", true, nil)
			if err != nil {
				t.Fatal(err)
			}
			idx := lmeta.LastIndex
			// Wait until this server has applied the registration.
			servertest.WaitFor(t, 5*time.Second, func() error {
				_, meta, err := cl.Health().Service("web", "", true, &consulapi.QueryOptions{AllowStale: stale})
				if err == nil && meta.LastIndex != idx {
					return fmt.Errorf("index %d, leader's %d", meta.LastIndex, idx)
				}
				return err
			})

			// An unrelated write must not wake the watcher.
			w := block(cl, idx, 2*time.Second, stale)
			other := &consulapi.CatalogRegistration{Node: "node-x", Address: "10.9.9.9",
				Service: &consulapi.AgentService{ID: "api-1", Service: "api", Port: 9}}
			if _, err := client(t, leader).Catalog().Register(other, nil); err != nil {
				t.Fatal(err)
			}
			// Re-registering web exactly as it is changes nothing either.
			if _, err := client(t, leader).Catalog().Register(registration(1), nil); err != nil {
				t.Fatal(err)
			}
			r := <-w
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.took < 1900*time.Millisecond {
				t.Fatalf("watcher woke after %s with index %d (was %d): an unrelated write woke it", r.took, r.index, idx)
			}
			if r.index != idx {
				t.Fatalf("index moved from %d to %d without a change", idx, r.index)
			}

			// A real change wakes it promptly with a higher index.
			w = block(cl, idx, 30*time.Second, stale)
			time.Sleep(100 * time.Millisecond) // let the watcher park; correctness does not depend on it
			if _, err := client(t, leader).Catalog().Register(registration(2), nil); err != nil {
				t.Fatal(err)
			}
			r = <-w
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.took > 5*time.Second || r.index <= idx || r.n != 2 {
				t.Fatalf("after a change: took %s, index %d (was %d), %d instances", r.took, r.index, idx, r.n)
			}

			// A health change (check goes critical) wakes the passing view
			// and drops the instance.
			idx = r.index
			w = block(cl, idx, 30*time.Second, stale)
			crit := registration(2)
			crit.Check.Status = consulapi.HealthCritical
			if _, err := client(t, leader).Catalog().Register(crit, nil); err != nil {
				t.Fatal(err)
			}
			r = <-w
			if r.err != nil || r.index <= idx || r.n != 1 {
				t.Fatalf("after critical: index %d (was %d), %d passing instances, err %v", r.index, idx, r.n, r.err)
			}

			// A deregistration moves the index too (tombstone), and the
			// instance is gone.
			idx = r.index
			w = block(cl, idx, 30*time.Second, stale)
			if _, err := client(t, leader).Catalog().Deregister(&consulapi.CatalogDeregistration{Node: crit.Node, ServiceID: crit.Service.ID}, nil); err != nil {
				t.Fatal(err)
			}
			r = <-w
			if r.err != nil || r.index <= idx {
				t.Fatalf("after deregister: index %d (was %d), err %v", r.index, idx, r.err)
			}
			// Clean up for the next subtest.
			for _, id := range []string{"web-1"} {
				_, _ = client(t, leader).Catalog().Deregister(&consulapi.CatalogDeregistration{Node: registration(1).Node, ServiceID: id}, nil)
			}
		})
	}
}

func TestBlockingQueryEndsWhenClientGoesAway(t *testing.T) {
	c := servertest.New(t, 1)
	cl := client(t, c.Nodes[0])
	if _, err := cl.Catalog().Register(registration(1), nil); err != nil {
		t.Fatal(err)
	}
	_, meta, err := cl.Catalog().Service("web", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = cl.Catalog().Service("web", "", (&consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: time.Minute}).WithContext(ctx))
	if err == nil {
		t.Fatal("blocking query returned without a change or a timeout")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("blocking query outlived its client by %s", time.Since(start))
	}
}
