package main

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/warren-mesh/warren/agent/view"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// Views benchmark parameters and target (issue 6, "Server to agents"): a
// 3-server cluster holding viewsServices services x viewsPerService
// instances, viewsTarget agent views (the real agent/view code, each with
// its own rpc.Pool, so its own gRPC connection) in this process; one
// instance turns critical and every view must show it within viewsTarget.
//
// BENCH_VIEWS and BENCH_VIEW_SERVICES override the counts (for quick runs).
// The number of views is also capped by memory (measured per view after
// the first batch) and by viewsStartBudget of connection time; what was
// actually run is reported. Views decode each row once per process and
// share it (agent/view's row tables, as one agent shares a node's row
// among that node's instances), so the first view pays for the catalog's
// rows and each further one for its own lists, maps and connection: the
// report gives both.
const (
	viewsServices     = 10000
	viewsPerService   = 3
	viewsNodes        = 3000 // instances spread over this many nodes
	viewsTarget       = 1000
	viewsLatency      = time.Second
	viewsBatch        = 20
	viewsStartBudget  = 15 * time.Minute
	viewsMemFraction  = 0.5 // of MemAvailable the views may use
	viewsRegWorkers   = 32
	viewsChangeWait   = 30 * time.Second
	viewsSyncTimeout  = 2 * time.Minute // one batch to hold the catalog
	viewsChangedSvcNo = 5000
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func viewService(s int) string { return fmt.Sprintf("vsvc-%05d", s) }

// viewInstance is instance j of service s; the three instances of a
// service live on three different nodes.
func viewInstance(s, j, services int) instance {
	i := s*viewsPerService + j
	nodes := min(viewsNodes, services*viewsPerService)
	return instance{
		node:      fmt.Sprintf("vnode-%04d", (j*(nodes/viewsPerService)+s)%nodes),
		nodeAddr:  loopback,
		service:   viewService(s),
		serviceID: fmt.Sprintf("%s-%d", viewService(s), j),
		port:      20000 + i%30000,
	}
}

func runViews(ctx context.Context, o *options, rep *report) error {
	services := envInt("BENCH_VIEW_SERVICES", viewsServices)
	want := envInt("BENCH_VIEWS", viewsTarget)
	c, err := startCluster(ctx, o.warren, o.keep)
	if err != nil {
		return err
	}
	defer c.stop()
	leader := c.leader

	// --- the catalog, registered concurrently through the leader.
	start := time.Now()
	n := services * viewsPerService
	if err := forEachParallel(ctx, n, viewsRegWorkers, func(hc *httpClient, i int) error {
		return register(ctx, hc, leader.baseURL(), viewInstance(i/viewsPerService, i%viewsPerService, services))
	}); err != nil {
		return err
	}
	regTook := time.Since(start)
	log.Printf("views: %d services x %d instances registered in %s (%.0f/s)", services, viewsPerService, regTook.Round(time.Millisecond), float64(n)/regTook.Seconds())
	hc := newClient(4)
	defer hc.CloseIdleConnections()
	var names map[string][]string
	idx, err := hc.getJSON(ctx, leader.baseURL()+"/v1/catalog/services", &names)
	if err != nil {
		return err
	}

	// --- views, in batches, each over its own pool.
	var addrs []string
	for _, p := range c.procs {
		addrs = append(addrs, p.rpcAddr)
	}
	vctx, stopViews := context.WithCancel(ctx)
	var vwg sync.WaitGroup
	var views []*view.View
	var pools []*rpc.Pool
	defer func() {
		stopViews()
		vwg.Wait()
		for _, p := range pools {
			p.Close()
		}
	}()
	full := func(v *view.View) bool { return v.Index() >= idx && len(v.ServiceNames()) >= services }
	heap0 := viewsLiveHeap()
	rss0, _ := procStatusKB(os.Getpid(), "VmRSS")
	perView, heapFirst := uint64(0), uint64(0)
	capReason := ""
	limit := want
	start = time.Now()
	for len(views) < limit {
		if time.Since(start) > viewsStartBudget {
			capReason = fmt.Sprintf("connection-time budget %s reached", viewsStartBudget)
			break
		}
		batch := min(viewsBatch, limit-len(views))
		var added []*view.View
		for k := range batch {
			i := len(views) + k
			srv := slices.Clone(addrs)
			// View i prefers server i%3, as agents spread over the servers.
			slices.Reverse(srv[:i%len(srv)])
			slices.Reverse(srv[i%len(srv):])
			slices.Reverse(srv)
			pool := rpc.NewPool()
			v := view.New(view.Config{Pool: pool, Servers: func() []string { return srv }})
			pools = append(pools, pool)
			added = append(added, v)
			vwg.Add(1)
			go func() { defer vwg.Done(); _ = v.Run(vctx) }()
		}
		views = append(views, added...)
		if err := waitViews(ctx, added, full, viewsSyncTimeout); err != nil {
			return err
		}
		// The first batch pays for the rows the views share; the memory
		// cap is set from what the second batch adds.
		switch len(views) {
		case viewsBatch:
			heapFirst = viewsLiveHeap()
			perView = (heapFirst - heap0) / uint64(len(views))
			log.Printf("views: first %d views: %.1f MiB live heap each", len(views), float64(perView)/(1<<20))
		case 2 * viewsBatch:
			marginal := max(float64(viewsLiveHeap())-float64(heapFirst), 1) / viewsBatch
			if avail := memAvailable(); avail > 0 {
				if m := len(views) + int(float64(avail)*viewsMemFraction/marginal); m < limit {
					limit = m
					capReason = fmt.Sprintf("memory: %.1f MiB live heap per further view, %.0f%% of %.0f MiB available", marginal/(1<<20), 100*viewsMemFraction, float64(avail)/(1<<20))
				}
			}
			log.Printf("views: %.1f MiB live heap per further view; running up to %d views", marginal/(1<<20), limit)
		}
		if len(views)%100 == 0 || len(views) == limit {
			log.Printf("views: %d views hold the full catalog after %s", len(views), time.Since(start).Round(time.Second))
		}
	}
	connectTook := time.Since(start)
	log.Printf("views: %d views connected and current (index >= %d) after %s", len(views), idx, connectTook.Round(100*time.Millisecond))
	heapAll := viewsLiveHeap()
	runtime.GC()
	debug.FreeOSMemory()
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return err
	}
	if err := c.checkAlive(); err != nil {
		return err
	}
	rssAll, _ := procStatusKB(os.Getpid(), "VmRSS")

	// --- one instance turns critical.
	in := viewInstance(viewsChangedSvcNo%services, 1, services)
	isCritical := func(list []catalog.CheckServiceNode) bool {
		for _, csn := range list {
			if csn.Service.ID == in.serviceID {
				return catalog.AggregatedStatus(csn.Checks) == catalog.HealthCritical
			}
		}
		return false
	}
	lat := make([]time.Duration, len(views))
	var t0 time.Time
	ready := make(chan struct{})
	var wg sync.WaitGroup
	for i, v := range views {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.After(viewsChangeWait)
			<-ready
			for {
				ch := v.Changed()
				if isCritical(v.ServiceInstances(in.service)) {
					lat[i] = time.Since(t0)
					return
				}
				select {
				case <-ch:
				case <-deadline:
					lat[i] = -1
					return
				}
			}
		}()
	}
	reg := in.registration()
	reg.Check.Status = "critical"
	body := mustJSON(reg)
	cpu := newCPUMeter(c, leader)
	t0 = time.Now()
	close(ready)
	if err := hc.put(ctx, leader.baseURL()+"/v1/catalog/register", body); err != nil {
		return fmt.Errorf("turn %s critical: %w", in.serviceID, err)
	}
	ack := time.Since(t0)
	wg.Wait()
	cpuUse := cpu.String()
	var got []time.Duration
	missed := 0
	for _, d := range lat {
		if d < 0 {
			missed++
			continue
		}
		got = append(got, d)
	}
	slices.Sort(got)
	maxD := time.Duration(0)
	if len(got) > 0 {
		maxD = got[len(got)-1]
	}
	pass := missed == 0 && maxD <= viewsLatency && len(views) >= viewsTarget && services >= viewsServices
	rep.check("views_critical_max", fmt.Sprintf("%s (%d views, %d missed)", ms(maxD), len(views), missed),
		fmt.Sprintf("every one of %d views <= %s", viewsTarget, viewsLatency), pass)
	rep.info("views_critical_p50", ms(percentile(got, 50)))
	rep.info("views_critical_p99", ms(percentile(got, 99)))
	rep.info("views_critical_http_ack", ms(ack))
	// By the server each view follows (view i prefers server i%3): the
	// leader's views against the followers'.
	for si, p := range c.procs {
		var d []time.Duration
		for i, l := range lat {
			if i%len(c.procs) == si && l >= 0 {
				d = append(d, l)
			}
		}
		slices.Sort(d)
		role := "follower"
		if p == leader {
			role = "leader"
		}
		if len(d) > 0 {
			rep.info("views_via_"+p.name, fmt.Sprintf("%s: %d views, p50 %s, max %s", role, len(d), ms(percentile(d, 50)), ms(d[len(d)-1])))
		}
	}
	rep.info("views_cpu_during_change", cpuUse)
	rep.info("views_catalog", fmt.Sprintf("%d services x %d instances on %d nodes, registered in %s (%.0f/s, %d workers)",
		services, viewsPerService, min(viewsNodes, n), regTook.Round(time.Millisecond), float64(n)/regTook.Seconds(), viewsRegWorkers))
	mib := func(b float64) string { return fmt.Sprintf("%.2f MiB", b/(1<<20)) }
	rep.info("views_heap_first_batch", fmt.Sprintf("%s per view (%d views: the shared rows / %d, plus each view's own)", mib(float64(perView)), viewsBatch, viewsBatch))
	if len(views) > viewsBatch {
		rep.info("views_heap_marginal", fmt.Sprintf("%s per further view (%d views after the first %d)", mib(float64(heapAll-heapFirst)/float64(len(views)-viewsBatch)), len(views)-viewsBatch, viewsBatch))
	}
	rep.info("views_heap_total", fmt.Sprintf("%s live heap for %d views, %s per view; bench VmRSS %s -> %s", mib(float64(heapAll-heap0)), len(views),
		mib(float64(heapAll-heap0)/float64(len(views))), mib(float64(rss0)*1024), mib(float64(rssAll)*1024)))
	rep.info("views_connect_time", fmt.Sprintf("%s for %d views (each a full snapshot over its own stream)", connectTook.Round(time.Second), len(views)))
	if len(views) < viewsTarget || services < viewsServices {
		why := capReason
		if why == "" {
			why = "BENCH_VIEWS / BENCH_VIEW_SERVICES"
		}
		rep.info("views_scaled", fmt.Sprintf("SCALED: %d of %d views, %d of %d services (%s)", len(views), viewsTarget, services, viewsServices, why))
	}
	rep.note("views: each view is agent/view.View over its own rpc.Pool (one gRPC connection), view i preferring server i%%3; all in the bench process, sharing %d cores with the 3 servers; latency from just before PUT /v1/catalog/register (critical check) to the view's ServiceInstances showing it (woken by Changed())", runtime.NumCPU())
	return nil
}

// waitViews waits until every view satisfies full.
func waitViews(ctx context.Context, vs []*view.View, full func(*view.View) bool, d time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		n := 0
		for _, v := range vs {
			if full(v) {
				n++
			}
		}
		if n == len(vs) {
			return nil
		}
		if err := sleepCtx(ctx, 50*time.Millisecond); err != nil {
			return fmt.Errorf("only %d of %d views hold the catalog after %s", n, len(vs), d)
		}
	}
}

// viewsLiveHeap is the heap in use after a collection (two: the first
// only moves sync.Pools, gRPC's buffer pools among them, to their victim
// caches).
func viewsLiveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// memAvailable is /proc/meminfo's MemAvailable in bytes; 0 if unknown.
func memAvailable() uint64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// forEachParallel runs fn(i) for i in [0,n) on workers goroutines, each
// with its own keep-alive client; the first error stops it.
func forEachParallel(ctx context.Context, n, workers int, fn func(hc *httpClient, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := newClient(1)
			defer hc.CloseIdleConnections()
			for i := range jobs {
				if err := fn(hc, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	return context.Cause(ctx)
}
