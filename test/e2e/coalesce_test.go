package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestIdenticalWatchersShareOneRead drives `warren dev` with 140 identical
// blocking queries of a service (under the per-client cap of 150): the
// HTTP layer holds 140 waiting requests on one blocking read in the server
// (give or take the process's own few), and one registration answers every
// one of them, with the new index and the same body.
func TestIdenticalWatchersShareOneRead(t *testing.T) {
	p := startDev(t)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	reg := func(id string) {
		t.Helper()
		r := &consulapi.CatalogRegistration{Node: "watched-" + id, Address: "10.0.0.1",
			Service: &consulapi.AgentService{ID: id, Service: "watched", Port: 80}}
		if _, err := cl.Catalog().Register(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg("w1")
	_, meta, err := cl.Health().Service("watched", "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	before := scrape(t, p.HTTP)
	const n = 140
	type answer struct {
		index string
		body  string
		err   error
	}
	answers := make(chan answer, n)
	url := fmt.Sprintf("http://%s/v1/health/service/watched?index=%d&wait=2m", p.HTTP, meta.LastIndex)
	tr := &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 3 * time.Minute}
	for range n {
		go func() {
			resp, err := hc.Get(url)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers <- answer{index: resp.Header.Get("X-Consul-Index"), body: string(b), err: err}
		}()
	}
	const maxOwn = 10 // the dev process's own blocked reads that may come and go
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := scrape(t, p.HTTP)
		waiting := value(m, "warren_http_blocking_queries_waiting", nil)
		reads := value(m, "warren_http_blocking_shared_reads", nil)
		// The dev process's own components (roots, leaves, intentions)
		// open and close a few blocked reads of their own meanwhile; the
		// watchers must add one, not one each.
		serverWatchers := value(m, "warren_blocking_open_watchers", nil) - value(before, "warren_blocking_open_watchers", nil)
		if waiting == n && reads == 1 && serverWatchers >= 1 && serverWatchers <= maxOwn+1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v queries waiting on %v shared reads, %v more blocked reads in the server; want %d on 1, at most %d more", waiting, reads, serverWatchers, n, maxOwn+1)
		}
		time.Sleep(20 * time.Millisecond)
	}
	reg("w2")
	var first answer
	for i := range n {
		select {
		case a := <-answers:
			if a.err != nil {
				t.Fatalf("watcher: %v", a.err)
			}
			if idx, _ := strconv.ParseUint(a.index, 10, 64); idx <= meta.LastIndex {
				t.Fatalf("watcher answered at index %s, not after %d", a.index, meta.LastIndex)
			}
			if i == 0 {
				first = a
			} else if a.index != first.index || a.body != first.body {
				t.Fatalf("answers differ: %+v and %+v", a, first)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("only %d of %d watchers answered", i, n)
		}
	}
}
