package view_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/agent/view"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server/servertest"
)

// TestViewsFollowServer runs views over real watch streams from an
// in-process server: views that connect at the same index get the same
// snapshot and share its rows; a change reaches every view; a view that
// connects after the change gets a snapshot that has it.
func TestViewsFollowServer(t *testing.T) {
	c := servertest.New(t, 1)
	leader := c.WaitLeader()
	cl, err := consulapi.NewClient(&consulapi.Config{Address: leader.HTTP.URL})
	if err != nil {
		t.Fatal(err)
	}
	register := func(i int, status string) {
		t.Helper()
		id := fmt.Sprintf("web-%d", i)
		if _, err := cl.Catalog().Register(&consulapi.CatalogRegistration{Node: fmt.Sprintf("node-%d", i%3), Address: "10.1.0.1",
			Service: &consulapi.AgentService{ID: id, Service: "web", Port: 8000 + i},
			Check:   &consulapi.AgentCheck{CheckID: id + "-alive", Name: "alive", Status: status, ServiceID: id}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 6 {
		register(i, consulapi.HealthPassing)
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := func() *view.View {
		pool := rpc.NewPool()
		t.Cleanup(pool.Close)
		v := view.New(view.Config{Pool: pool, Servers: func() []string { return []string{leader.Server.Addr()} }})
		wg.Add(1)
		go func() { defer wg.Done(); _ = v.Run(ctx) }()
		return v
	}
	status := func(v *view.View, id string) string {
		for _, csn := range v.ServiceInstances("web") {
			if csn.Service.ID == id {
				return catalog.AggregatedStatus(csn.Checks)
			}
		}
		return ""
	}
	await := func(v *view.View, what string, cond func() bool) {
		t.Helper()
		servertest.WaitFor(t, 10*time.Second, func() error {
			if !cond() {
				return fmt.Errorf("%s: view at index %d, web %d instances", what, v.Index(), len(v.ServiceInstances("web")))
			}
			return nil
		})
	}

	a, b := start(), start()
	for _, v := range []*view.View{a, b} {
		await(v, "six instances", func() bool { return len(v.ServiceInstances("web")) == 6 })
	}
	wa, wb := a.ServiceInstances("web"), b.ServiceInstances("web")
	for i := range wa {
		if wa[i].Service != wb[i].Service || wa[i].Node != wb[i].Node || &wa[i].Checks[0] != &wb[i].Checks[0] {
			t.Fatalf("instance %s: the two views hold different rows", wa[i].Service.ID)
		}
	}

	register(4, consulapi.HealthCritical)
	for _, v := range []*view.View{a, b} {
		await(v, "web-4 critical", func() bool { return status(v, "web-4") == catalog.HealthCritical })
	}
	if got := status(a, "web-3"); got != catalog.HealthPassing {
		t.Fatalf("web-3 is %q after web-4 turned critical", got)
	}
	if catalog.AggregatedStatus(wa[4].Checks) != catalog.HealthPassing {
		t.Fatal("a list handed out before the change was modified")
	}
	late := start()
	await(late, "a late view has web-4 critical", func() bool { return status(late, "web-4") == catalog.HealthCritical })
	if late.Index() < a.Index() {
		t.Fatalf("late view at index %d, earlier views at %d", late.Index(), a.Index())
	}
}
