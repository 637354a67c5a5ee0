package httpapi

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/catalog"
)

// wakeBackend answers blocking node reads the way the servers do: a read
// at the current index waits for a change, its wait, or its context.
type wakeBackend struct {
	*fakeBackend
	reads    atomic.Int64 // blocking reads started
	canceled atomic.Int64 // blocking reads ended by their context

	mu      sync.Mutex
	index   uint64
	changed chan struct{}
}

func newWakeBackend() *wakeBackend {
	return &wakeBackend{fakeBackend: newFakeBackend(), index: 1, changed: make(chan struct{})}
}

// change moves the index and wakes every blocked read.
func (b *wakeBackend) change() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.index++
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *wakeBackend) Nodes(ctx context.Context, q catalog.QueryOptions, _ map[string]string) ([]*catalog.Node, catalog.QueryMeta, error) {
	b.mu.Lock()
	idx, ch := b.index, b.changed
	b.mu.Unlock()
	if q.MinIndex > 0 && q.MinIndex == idx {
		b.reads.Add(1)
		t := time.NewTimer(q.MaxWait)
		defer t.Stop()
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			b.canceled.Add(1)
			return nil, catalog.QueryMeta{}, ctx.Err()
		}
		b.mu.Lock()
		idx = b.index
		b.mu.Unlock()
	}
	return []*catalog.Node{{Name: fmt.Sprintf("node-at-%d", idx), Address: "10.0.0.1"}}, catalog.QueryMeta{Index: idx, KnownLeader: true}, nil
}

type coalesceFixture struct {
	be  *wakeBackend
	reg *prometheus.Registry
	srv *httptest.Server
	ctx context.Context // ends before the server closes, cutting what still waits
}

func newCoalesceFixture(t *testing.T) *coalesceFixture {
	t.Helper()
	f := &coalesceFixture{be: newWakeBackend(), reg: prometheus.NewRegistry()}
	f.srv = httptest.NewServer(New(Config{Backend: f.be, Registerer: f.reg, MaxBlockingQueriesPerClient: 1000}))
	t.Cleanup(f.srv.Close)
	var cancel context.CancelFunc
	f.ctx, cancel = context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return f
}

// gauges reads warren_http_blocking_queries_waiting and _shared_reads.
func (f *coalesceFixture) gauges(t *testing.T) (waiting, reads int) {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "warren_http_blocking_queries_waiting":
			waiting = int(mf.GetMetric()[0].GetGauge().GetValue())
		case "warren_http_blocking_shared_reads":
			reads = int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return waiting, reads
}

func (f *coalesceFixture) waitGauges(t *testing.T, waiting, reads int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		w, r := f.gauges(t)
		if w == waiting && r == reads {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gauges: %d waiting on %d shared reads, want %d on %d", w, r, waiting, reads)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type answer struct {
	status int
	index  string
	body   string
	at     time.Time
	err    error
}

// get runs one GET in the background; its answer arrives on the channel.
func (f *coalesceFixture) get(ctx context.Context, path string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			ch <- answer{err: err, at: time.Now()}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- answer{status: resp.StatusCode, index: resp.Header.Get("X-Consul-Index"), body: string(b), at: time.Now(), err: err}
	}()
	return ch
}

func recv(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatalf("request: %v", a.err)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("no answer within 10s")
		return answer{}
	}
}

// 100 identical blocking queries wait on one backend read; one change
// answers them all with the new index and the same body.
func TestBlockingQueriesShareOneRead(t *testing.T) {
	f := newCoalesceFixture(t)
	var chs []<-chan answer
	for range 100 {
		chs = append(chs, f.get(f.ctx, "/v1/catalog/nodes?index=1&wait=1m"))
	}
	// A different query (another option) waits on a read of its own.
	other := f.get(f.ctx, "/v1/catalog/nodes?index=1&wait=1m&node-meta=rack:r1")
	f.waitGauges(t, 101, 2)
	if n := f.be.reads.Load(); n != 2 {
		t.Fatalf("%d blocking reads on the backend for 101 queries of 2 kinds, want 2", n)
	}
	f.be.change()
	want := recv(t, chs[0])
	if want.status != 200 || want.index != "2" || want.body == "" {
		t.Fatalf("answer %+v, want 200 at index 2", want)
	}
	for _, ch := range chs[1:] {
		if a := recv(t, ch); a.status != want.status || a.index != want.index || a.body != want.body {
			t.Fatalf("answer %+v, want %+v", a, want)
		}
	}
	if a := recv(t, other); a.status != 200 || a.index != "2" {
		t.Fatalf("other query: %+v", a)
	}
	f.waitGauges(t, 0, 0)
}

// A query whose wait ends before the shared read's is answered at the end
// of its own wait, unchanged; one whose wait is longer is not answered
// when the shared read's wait ends, only on a change.
func TestBlockingQueryKeepsItsOwnWait(t *testing.T) {
	f := newCoalesceFixture(t)
	long := f.get(f.ctx, "/v1/catalog/nodes?index=1&wait=1m")
	f.waitGauges(t, 1, 1)
	start := time.Now()
	short := recv(t, f.get(f.ctx, "/v1/catalog/nodes?index=1&wait=200ms"))
	if took := time.Since(start); short.status != 200 || short.index != "1" || took < 200*time.Millisecond || took > 5*time.Second {
		t.Fatalf("short wait: %+v after %v, want 200 at index 1 after about 200ms", short, took)
	}
	// A short-lived flight leads, a long query joins it: when the flight's
	// wait ends the long query goes on waiting, on a new read.
	f2 := newCoalesceFixture(t)
	first := f2.get(f2.ctx, "/v1/catalog/nodes?index=1&wait=300ms")
	f2.waitGauges(t, 1, 1)
	second := f2.get(f2.ctx, "/v1/catalog/nodes?index=1&wait=1m")
	f2.waitGauges(t, 2, 1)
	if a := recv(t, first); a.index != "1" {
		t.Fatalf("first: %+v", a)
	}
	f2.waitGauges(t, 1, 1)
	for deadline := time.Now().Add(5 * time.Second); f2.be.reads.Load() != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d backend reads, want 2 (the long query waits on a new one)", f2.be.reads.Load())
		}
	}
	select {
	case a := <-second:
		t.Fatalf("the long query was answered without a change: %+v", a)
	case <-time.After(100 * time.Millisecond):
	}
	f2.be.change()
	if a := recv(t, second); a.index != "2" {
		t.Fatalf("second after the change: %+v", a)
	}
	f.be.change()
	if a := recv(t, long); a.index != "2" {
		t.Fatalf("long after the change: %+v", a)
	}
}

// When every query sharing a read has gone, the read is stopped; while
// one remains, it goes on.
func TestSharedReadStopsWithItsLastQuery(t *testing.T) {
	f := newCoalesceFixture(t)
	ctx1, cancel1 := context.WithCancel(f.ctx)
	ctx2, cancel2 := context.WithCancel(f.ctx)
	a1 := f.get(ctx1, "/v1/catalog/nodes?index=1&wait=1m")
	a2 := f.get(ctx2, "/v1/catalog/nodes?index=1&wait=1m")
	f.waitGauges(t, 2, 1)
	cancel1() // the flight's starter goes away
	<-a1
	f.waitGauges(t, 1, 1)
	if n := f.be.canceled.Load(); n != 0 {
		t.Fatalf("the shared read was stopped while a query still waits on it")
	}
	cancel2()
	<-a2
	f.waitGauges(t, 0, 0)
	deadline := time.Now().Add(5 * time.Second)
	for f.be.canceled.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the shared read still runs after every query left")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
