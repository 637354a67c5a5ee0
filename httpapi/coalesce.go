package httpapi

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/catalog"
)

// blockingFlights coalesces identical blocking queries. Requests for the
// same query (path, every option but index and wait, and the same ACL
// token) at the same index share one blocking read on the backend and its
// answer, encoded once: 10,000 watchers of one service cost the servers one
// watch, one read and one encoding per change instead of 10,000 of each,
// and the change reaches them all in the time it takes to write 10,000
// responses. Consul runs one blocking read per request.
//
// Each request keeps its own wait: one whose wait ends before the shared
// read's answers with the current result (a non-blocking read), one whose
// wait is longer than the shared read's waits on in a new one, so nobody is
// answered early with an unchanged index. A shared read stops when its
// wait ends or when every request sharing it has gone.
type blockingFlights struct {
	mu      sync.Mutex
	m       map[string]*flight
	members int // requests in a flight, all flights together
}

// flight is one shared blocking read. Its result fields are written before
// done is closed and only read after.
type flight struct {
	done   chan struct{}
	cancel context.CancelFunc
	refs   int // requests sharing it; guarded by blockingFlights.mu

	body []byte
	meta catalog.QueryMeta
	err  error
}

func newBlockingFlights() *blockingFlights { return &blockingFlights{m: map[string]*flight{}} }

// join returns the flight for key, starting one that runs run (with a
// context of its own that keeps parent's values) if there is none. run
// bounds itself (the query's wait); its context ends when the last
// request leaves. The caller must leave the flight.
func (fs *blockingFlights) join(key string, parent context.Context,
	run func(ctx context.Context) ([]byte, catalog.QueryMeta, error)) *flight {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.members++
	if f, ok := fs.m[key]; ok {
		f.refs++
		return f
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	f := &flight{done: make(chan struct{}), cancel: cancel, refs: 1}
	fs.m[key] = f
	// The flight's goroutine ends with run: at the end of its wait, or
	// when the last request leaves (leave cancels ctx).
	go func() {
		defer close(f.done)
		f.body, f.meta, f.err = run(ctx)
		cancel()
		fs.mu.Lock()
		if fs.m[key] == f {
			delete(fs.m, key)
		}
		fs.mu.Unlock()
	}()
	return f
}

// leave drops the caller's share of f; the last to leave stops it.
func (fs *blockingFlights) leave(key string, f *flight) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	fs.members--
	f.refs--
	if f.refs > 0 {
		return
	}
	if fs.m[key] == f {
		delete(fs.m, key) // later requests start afresh
	}
	f.cancel()
}

// counts returns the requests waiting in flights and the flights that
// new requests can join.
func (fs *blockingFlights) counts() (waiting, reads int) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.members, len(fs.m)
}

// collectors are the flights' gauges: how many blocking queries wait, and
// on how many shared reads.
func (fs *blockingFlights) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "http", Name: "blocking_queries_waiting",
			Help: "Blocking queries waiting for a change."}, func() float64 { w, _ := fs.counts(); return float64(w) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "http", Name: "blocking_shared_reads",
			Help: "Blocking reads the waiting queries share (identical queries at the same index share one)."},
			func() float64 { _, r := fs.counts(); return float64(r) }),
	}
}

// blockingAnswer answers a blocking query (q.MinIndex > 0) through a shared
// flight: the encoded body and its meta.
func (h *handler) blockingAnswer(r *http.Request, q catalog.QueryOptions, fn queryFunc) ([]byte, catalog.QueryMeta, error) {
	ctx := r.Context()
	qk := queryKey(r)
	key := qk + "@" + strconv.FormatUint(q.MinIndex, 10)
	deadline := time.Now().Add(q.MaxWait)
	own := time.NewTimer(q.MaxWait)
	defer own.Stop()
	for {
		wait := max(time.Until(deadline), time.Millisecond) // 0 would mean the default wait
		f := h.flights.join(key, ctx, func(fctx context.Context) ([]byte, catalog.QueryMeta, error) {
			fq := q
			fq.MaxWait = wait
			return h.encodedAnswer(r.Clone(fctx), fq, fn, qk)
		})
		select {
		case <-f.done:
			h.flights.leave(key, f)
			if f.err != nil {
				return nil, f.meta, f.err
			}
			if f.meta.Index == q.MinIndex && time.Until(deadline) > 0 {
				continue // the flight's wait ended, not ours: wait on
			}
			return f.body, f.meta, nil
		case <-own.C:
			// Our wait ends before the flight's: answer with what is
			// current now.
			h.flights.leave(key, f)
			now := q
			now.MinIndex = 0
			return h.encodedAnswer(r, now, fn, qk)
		case <-ctx.Done():
			h.flights.leave(key, f)
			return nil, catalog.QueryMeta{}, ctx.Err()
		}
	}
}

// encodedAnswer runs fn and encodes its answer, sharing the encoding with
// other requests for the same result (sharedBodies); qk is r's queryKey.
func (h *handler) encodedAnswer(r *http.Request, q catalog.QueryOptions, fn queryFunc, qk string) ([]byte, catalog.QueryMeta, error) {
	body, meta, err := fn(r, q)
	if err != nil {
		return nil, meta, err
	}
	b, err := h.shared.encode(sharedKey(qk, meta), body, wantsPretty(r)) // ?pretty is part of qk
	if err != nil {
		return nil, meta, &encodeError{err}
	}
	return b, meta, nil
}

// encodeError is a failure to encode an answer (a 500).
type encodeError struct{ err error }

func (e *encodeError) Error() string { return "encode response: " + e.err.Error() }
func (e *encodeError) Unwrap() error { return e.err }
