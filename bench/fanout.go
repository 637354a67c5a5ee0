package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Fan-out benchmark parameters and target.
const (
	fanoutTarget  = 250 * time.Millisecond // every watcher answered within this of the change's ack
	fanoutWait    = "60s"                  // the watchers' ?wait
	parkQuiet     = 2 * time.Second        // all requests written and nothing answered for this long
	parkTimeout   = 35 * time.Second       // bound on opening every watcher (well under fanoutWait)
	spuriousQuiet = 2 * time.Second        // how long to look for wake-ups after the unrelated change
	wakeTimeout   = 20 * time.Second       // bound on collecting the answers to the change
	fdReserve     = 500                    // descriptors kept for everything but the watchers
)

// watchResult is what one watcher saw.
type watchResult struct {
	server string
	at     time.Time // when the whole answer had been read; zero if none
	status int
	index  uint64
	body   []byte // decoded into rows after the measurement (checkRows)
	rows   int
	err    error
}

// watchers is a set of long-poll GETs on one service, spread over servers.
//
// Each watcher is one goroutine on its own connection that writes its
// request and parses the answer with net/http's own response parser: the
// bench shares the machine's two cores with the servers it measures, and
// http.Transport's two extra goroutines per connection (30,000 in all) and
// decoding JSON while other answers arrive were a third of the CPU spent
// in the measured window. The answers are checked (status, index, JSON
// rows) once every watcher has returned.
type watchers struct {
	results  []watchResult
	wrote    atomic.Int64 // requests fully written to their connection
	lastWrit atomic.Int64 // unix nanos of the last write
	answered atomic.Int64
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	allDone  chan struct{} // closed when every watcher has returned
}

// runFanout parks watchers on /v1/health/service/fan, checks that an
// unrelated change wakes none of them, then makes one change to "fan" and
// measures how soon each watcher gets its answer.
func runFanout(ctx context.Context, o *options, rep *report) error {
	n := watcherBudget(o.watchers, rep)
	c, err := startCluster(ctx, o.warren, o.keep)
	if err != nil {
		return err
	}
	defer c.stop()
	leader := c.leader
	hc := newClient(4)
	defer hc.CloseIdleConnections()

	fan := func(i int) instance {
		return instance{node: fmt.Sprintf("fan-node-%d", i), nodeAddr: loopback, service: "fan", serviceID: fmt.Sprintf("fan-%d", i), port: 8000 + i}
	}
	if err := registerRetry(ctx, hc, leader.baseURL(), fan(1)); err != nil {
		return err
	}
	var rows []json.RawMessage
	idx, err := hc.getJSON(ctx, leader.baseURL()+"/v1/health/service/fan", &rows)
	if err != nil {
		return fmt.Errorf("read fan: %w", err)
	}
	if err := waitReplicated(ctx, hc, c, "fan", 1); err != nil {
		return err
	}
	log.Printf("fanout: fan has %d instance, X-Consul-Index %d; opening %d watchers", len(rows), idx, n)

	w := startWatchers(ctx, c.procs, n, idx)
	defer w.stop()
	if err := w.waitParked(ctx); err != nil {
		return err
	}
	for _, p := range c.procs {
		log.Printf("fanout: %s holds %d open descriptors", p.name, openFiles(p.pid()))
	}

	// An unrelated change must wake nobody.
	if err := register(ctx, hc, leader.baseURL(), instance{node: "other-node", nodeAddr: loopback, service: "other", serviceID: "other-1", port: 9000}); err != nil {
		return fmt.Errorf("register other: %w", err)
	}
	if err := waitReplicated(ctx, hc, c, "other", 1); err != nil {
		return err
	}
	if err := sleepCtx(ctx, spuriousQuiet); err != nil {
		return err
	}
	spurious := int(w.answered.Load())
	log.Printf("fanout: %d watchers answered before the change to fan (spurious)", spurious)

	// The one change.
	pids := []int{os.Getpid()}
	for _, p := range c.procs {
		pids = append(pids, p.pid())
	}
	stopPerf := startPerf(ctx, o.perfDir, "fanout-wake-all", pids, time.Now(), time.Second)
	defer stopPerf()
	if err := sleepCtx(ctx, 200*time.Millisecond); err != nil { // let perf attach
		return err
	}
	cpu := newCPUMeter(c, leader)
	sent := time.Now()
	if err := register(ctx, hc, leader.baseURL(), fan(2)); err != nil {
		return fmt.Errorf("register the second fan instance: %w", err)
	}
	ack := time.Now()
	log.Printf("fanout: change acknowledged in %s; collecting answers", ms(ack.Sub(sent)))
	w.waitAll(ctx, wakeTimeout)
	log.Printf("fanout: CPU cores used from the change until the last answer: %s", cpu)
	rep.info("fanout_cpu_cores", cpu.String())
	w.stop()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	w.checkRows()
	reportFanout(rep, w.results, idx, sent, ack, spurious, o.watchers)
	return nil
}

// watcherBudget caps the watchers at what RLIMIT_NOFILE lets the bench
// hold (one connection each), and says so in the report.
func watcherBudget(want int, rep *report) int {
	limit := fileLimit()
	n := min(want, limit-fdReserve)
	if n < want {
		rep.note("fan-out: RLIMIT_NOFILE %d allows only %d of the %d watchers asked for; %d measured", limit, n, want, n)
		log.Printf("fanout: reducing watchers to %d (RLIMIT_NOFILE %d)", n, limit)
	}
	return max(n, 1)
}

// waitReplicated waits until every server's own (stale) view of service
// has want instances.
func waitReplicated(ctx context.Context, hc *httpClient, c *cluster, service string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, p := range c.procs {
		for {
			got, _, err := staleServiceCount(ctx, hc, p.baseURL(), service)
			if err == nil && got >= want {
				break
			}
			if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
				return fmt.Errorf("%s: %s has %d of %d instances of %q (%v)", p.name, service, got, want, service, err)
			}
		}
	}
	return nil
}

// startWatchers opens n long-poll GETs of /v1/health/service/fan?stale at
// index idx, watcher i on server i%len(servers), each on its own
// connection.
func startWatchers(ctx context.Context, servers []*proc, n int, idx uint64) *watchers {
	ctx, cancel := context.WithCancel(ctx)
	w := &watchers{results: make([]watchResult, n), cancel: cancel, allDone: make(chan struct{})}
	for i := range n {
		s := servers[i%len(servers)]
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.results[i] = w.watch(ctx, s.httpAddr, fmt.Sprintf("/v1/health/service/fan?stale&index=%d&wait=%s", idx, fanoutWait))
			w.results[i].server = s.name
			w.answered.Add(1)
		}()
	}
	go func() {
		w.wg.Wait()
		close(w.allDone)
	}()
	return w
}

// watch runs one blocking GET of path on addr and records when its whole
// answer had been read.
func (w *watchers) watch(ctx context.Context, addr, path string) watchResult {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return watchResult{err: err}
	}
	// The connection stays open until stop (which cancels ctx), as a
	// client's keep-alive connection would: closing it at once would make
	// the server handle a FIN per watcher while others still wait.
	context.AfterFunc(ctx, func() { conn.Close() })
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: warren-bench\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return watchResult{err: fmt.Errorf("write request: %w", err)}
	}
	w.wrote.Add(1)
	w.lastWrit.Store(time.Now().UnixNano())
	resp, err := http.ReadResponse(bufio.NewReaderSize(conn, 1024), nil)
	if err != nil {
		return watchResult{err: fmt.Errorf("read answer: %w", err), at: answeredAt(ctx)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return watchResult{at: answeredAt(ctx), status: resp.StatusCode, index: consulIndex(resp), body: body, err: err}
}

// answeredAt is now, or zero when the watcher was cut by us.
func answeredAt(ctx context.Context) time.Time {
	if ctx.Err() != nil {
		return time.Time{}
	}
	return time.Now()
}

// checkRows decodes every answer's rows, after the measurement.
func (w *watchers) checkRows() {
	for i := range w.results {
		r := &w.results[i]
		if r.err != nil || r.body == nil {
			continue
		}
		var rows []json.RawMessage
		if err := json.Unmarshal(r.body, &rows); err != nil {
			r.err = fmt.Errorf("decode: %w", err)
		}
		r.rows, r.body = len(rows), nil
	}
}

// waitParked waits until every watcher's request has been written and no
// write has happened for parkQuiet.
func (w *watchers) waitParked(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, parkTimeout)
	defer cancel()
	n := int64(len(w.results))
	start := time.Now()
	for {
		wrote := w.wrote.Load()
		last := time.Unix(0, w.lastWrit.Load())
		if wrote == n && time.Since(last) >= parkQuiet {
			log.Printf("fanout: %d watchers parked (all written %s after start, quiet for %s since)", n,
				last.Sub(start).Round(time.Millisecond), parkQuiet)
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("only %d of %d watchers written within %s (%d answered): %w", wrote, n, parkTimeout, w.answered.Load(), err)
		}
	}
}

// waitAll waits until every watcher has returned, at most d.
func (w *watchers) waitAll(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.allDone:
	case <-t.C:
		log.Printf("fanout: %d of %d watchers answered within %s; cutting the rest", w.answered.Load(), len(w.results), d)
	case <-ctx.Done():
	}
}

// stop cuts every watcher still waiting, closes every connection and waits
// for all to return.
func (w *watchers) stop() {
	w.cancel()
	<-w.allDone
}

// reportFanout checks the answers to the change and adds the figures.
func reportFanout(rep *report, results []watchResult, idx uint64, sent, ack time.Time, spurious, asked int) {
	var lat []time.Duration
	answered, beforeAck, bad := 0, 0, 0
	perServer := map[string][]time.Duration{}
	var firstBad string
	for _, r := range results {
		if r.at.IsZero() || r.at.Before(sent) {
			continue // unanswered, or a spurious wake counted already
		}
		answered++
		if r.err != nil || r.status != http.StatusOK || r.index <= idx || r.rows != 2 {
			bad++
			if firstBad == "" {
				firstBad = fmt.Sprintf("%s: status %d index %d rows %d err %v", r.server, r.status, r.index, r.rows, r.err)
			}
		}
		d := max(r.at.Sub(ack), 0)
		if r.at.Before(ack) {
			beforeAck++
		}
		lat = append(lat, d)
		perServer[r.server] = append(perServer[r.server], d)
	}
	slices.Sort(lat)
	n := len(results)
	maxLat := time.Duration(0)
	if len(lat) > 0 {
		maxLat = lat[len(lat)-1]
	}
	allOK := answered == n && bad == 0 && maxLat <= fanoutTarget
	rep.check("fanout_watchers", fmt.Sprint(n), fmt.Sprintf("== %d", asked), n == asked)
	rep.check("fanout_answered", fmt.Sprint(answered), fmt.Sprintf("== %d", n), answered == n)
	rep.check("fanout_latency_max", ms(maxLat), "<= "+ms(fanoutTarget)+" (every watcher)", allOK)
	rep.info("fanout_latency_p50", ms(percentile(lat, 50)))
	rep.info("fanout_latency_p99", ms(percentile(lat, 99)))
	rep.check("fanout_spurious_wakeups", fmt.Sprint(spurious), "== 0", spurious == 0)
	rep.check("fanout_bad_answers", fmt.Sprint(bad), "== 0 (200, index > "+fmt.Sprint(idx)+", 2 instances)", bad == 0)
	rep.info("fanout_change_ack", ms(ack.Sub(sent)))
	for _, s := range slices.Sorted(maps.Keys(perServer)) {
		d := perServer[s]
		rep.info("fanout_max_on_"+s, fmt.Sprintf("%s (%d watchers)", ms(slices.Max(d)), len(d)))
	}
	if beforeAck > 0 {
		rep.note("fan-out: %d watchers were answered before the change's HTTP acknowledgment reached the bench; their latency counts as 0", beforeAck)
	}
	if firstBad != "" {
		log.Printf("fanout: first bad answer: %s", firstBad)
	}
}

// sleepCtx sleeps for d unless ctx is done first.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
