package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"
)

// Registration benchmark parameters and target.
const (
	regNodes        = 200  // registrations are spread over this many nodes
	regServiceNames = 20   // and this many service names
	regTarget       = 8000 // registrations per second
)

// regResult is one measured run.
type regResult struct {
	count    int             // registrations answered 200 within the window
	errors   int             // failed registrations, warm-up included
	firstErr error           // the first failure, for the log
	lat      []time.Duration // latency of each counted registration, sorted
	window   time.Duration
	cpu      string // cores used by each process during the window
	// serverCPU is the servers' CPU time in the window.
	serverCPU float64
}

// cpuPerReg is the servers' CPU time per counted registration.
func (r regResult) cpuPerReg() time.Duration {
	if r.count == 0 {
		return 0
	}
	return time.Duration(r.serverCPU / float64(r.count) * float64(time.Second))
}

func (r regResult) rate() float64 { return float64(r.count) / r.window.Seconds() }

func (r regResult) String() string {
	return fmt.Sprintf("%.0f/s (n=%d p50=%s p99=%s errors=%d)", r.rate(), r.count,
		ms(percentile(r.lat, 50)), ms(percentile(r.lat, 99)), r.errors)
}

// runRegistrations measures PUT /v1/catalog/register throughput against
// the leader, o.runs times on a fresh cluster each, and reports the median.
func runRegistrations(ctx context.Context, o *options, rep *report) error {
	// Each run with metrics (as shipped) is followed by one without
	// (WARREN_DISABLE_METRICS=1), for the cost of instrumentation.
	var runs, bare []regResult
	for i := range o.runs {
		r, err := registrationRun(ctx, o, i+1)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		log.Printf("reg: run %d: %s", i+1, r)
		log.Printf("reg: run %d: CPU cores used in the window: %s", i+1, r.cpu)
		if r.firstErr != nil {
			log.Printf("reg: run %d: first error: %v", i+1, r.firstErr)
		}
		runs = append(runs, r)
		nm, err := registrationRun(ctx, o, i+1, disableMetricsEnv+"=1")
		if err != nil {
			return fmt.Errorf("run %d without metrics: %w", i+1, err)
		}
		log.Printf("reg: run %d without metrics: %s", i+1, nm)
		bare = append(bare, nm)
	}
	med := medianRun(runs)
	medBare := medianRun(bare)
	cost := metricsCost(med.rate(), medBare.rate())
	rep.info("registrations_per_sec_no_metrics", fmt.Sprintf("%.0f", medBare.rate()))
	// The servers' CPU per registration is steadier than throughput on a
	// shared 2-core machine: the cost of metrics in CPU, median of the
	// runs' ratios.
	var ratios []float64
	for i := range runs {
		if b := bare[i].cpuPerReg(); b > 0 {
			ratios = append(ratios, float64(runs[i].cpuPerReg())/float64(b))
		}
	}
	if len(ratios) > 0 {
		slices.Sort(ratios)
		cpuCost := ratios[len(ratios)/2] - 1
		rep.check("registration_metrics_cpu_cost", fmt.Sprintf("%.1f%% (servers' CPU per registration with %s / without %s, median of %d paired runs)",
			100*cpuCost, med.cpuPerReg(), medBare.cpuPerReg(), len(ratios)), fmt.Sprintf("<= %.0f%%", 100*metricsCostTarget), cpuCost <= metricsCostTarget)
	}
	rep.check("registration_metrics_cost", fmt.Sprintf("%.1f%% (with/without %.3f)", 100*cost, ratioOf(med.rate(), medBare.rate())),
		fmt.Sprintf("<= %.0f%%", 100*metricsCostTarget), cost <= metricsCostTarget)
	for i, r := range bare {
		rep.info(fmt.Sprintf("registrations_run%d_no_metrics", i+1), r.String())
	}
	totalErrs := 0
	for _, r := range runs {
		totalErrs += r.errors
	}
	rep.check("registrations_per_sec", fmt.Sprintf("%.0f", med.rate()), fmt.Sprintf(">= %d", regTarget), med.rate() >= regTarget)
	for i, r := range runs {
		rep.info(fmt.Sprintf("registrations_run%d", i+1), r.String())
	}
	rep.info("registration_cpu_cores", med.cpu)
	rep.info("registration_latency_p50", ms(percentile(med.lat, 50)))
	rep.info("registration_latency_p99", ms(percentile(med.lat, 99)))
	rep.check("registration_errors", fmt.Sprint(totalErrs), "== 0", totalErrs == 0)
	rep.note("registrations: %d clients, each its own keep-alive connection, PUT to the leader; %s warm-up then %s measured; median of %d runs, each on a fresh cluster",
		o.clients, o.warmup, o.duration, len(runs))
	rep.note("registration metrics cost: 1 - median rate with metrics / median rate with %s=1 on every server (HTTP records nothing, components get a throwaway registry); runs alternate with and without", disableMetricsEnv)
	return nil
}

// medianRun is the run with the median rate.
func medianRun(runs []regResult) regResult {
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b regResult) int {
		switch {
		case a.rate() < b.rate():
			return -1
		case a.rate() > b.rate():
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}

// registrationRun starts a cluster (env added to the servers'
// environment), loads its leader for warmup+duration with o.clients
// clients, and stops the cluster.
func registrationRun(ctx context.Context, o *options, run int, env ...string) (regResult, error) {
	c, err := startCluster(ctx, o.warren, o.keep, env...)
	if err != nil {
		return regResult{}, err
	}
	defer c.stop()
	leader := c.leader
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	probe := instance{node: "bench-probe", nodeAddr: loopback, service: "probe", serviceID: "probe", port: 1}
	if err := registerRetry(ctx, hc, leader.baseURL(), probe); err != nil {
		return regResult{}, fmt.Errorf("cluster not accepting writes: %w", err)
	}

	start := time.Now()
	t0 := start.Add(o.warmup)
	t1 := t0.Add(o.duration)
	stopPerf := startPerf(ctx, o.perfDir, fmt.Sprintf("reg-run%d%s-%s", run, map[bool]string{true: "-nometrics"}[len(env) > 0], leader.name), []int{leader.pid()}, t0, o.duration)
	defer stopPerf()

	results := make([]regResult, o.clients)
	var wg sync.WaitGroup
	for w := range o.clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[w] = regWorker(ctx, leader.baseURL(), run, w, o.clients, t0, t1)
		}()
	}
	cpu, serverCPU := measureCPU(ctx, c, leader, t0, t1)
	wg.Wait()
	if ctx.Err() != nil {
		return regResult{}, ctx.Err()
	}
	if err := c.checkAlive(); err != nil {
		return regResult{}, err
	}
	r := mergeRuns(results, o.duration)
	r.cpu, r.serverCPU = cpu, serverCPU
	return r, nil
}

// regWorker registers unique instances back to back until t1 over its own
// keep-alive connection. It counts the registrations that completed within
// [t0, t1] and every failure.
func regWorker(ctx context.Context, base string, run, w, clients int, t0, t1 time.Time) regResult {
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	var r regResult
	for seq := 0; ; seq++ {
		if time.Now().After(t1) || ctx.Err() != nil {
			return r
		}
		n := w + seq*clients
		in := instance{
			node:      fmt.Sprintf("bench-node-%03d", n%regNodes),
			nodeAddr:  loopback,
			service:   fmt.Sprintf("web-%02d", n%regServiceNames),
			serviceID: fmt.Sprintf("r%d-c%02d-%07d", run, w, seq),
			port:      10000 + seq%50000,
		}
		s := time.Now()
		err := register(ctx, hc, base, in)
		e := time.Now()
		switch {
		case err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled):
			return r // interrupted, not a server failure
		case err != nil:
			r.errors++
			if r.firstErr == nil {
				r.firstErr = err
			}
		case !e.Before(t0) && !e.After(t1):
			r.count++
			r.lat = append(r.lat, e.Sub(s))
		}
	}
}

// mergeRuns adds up the workers' results.
func mergeRuns(rs []regResult, window time.Duration) regResult {
	out := regResult{window: window}
	for _, r := range rs {
		out.count += r.count
		out.errors += r.errors
		if out.firstErr == nil {
			out.firstErr = r.firstErr
		}
		out.lat = append(out.lat, r.lat...)
	}
	slices.Sort(out.lat)
	return out
}

// measureCPU reports the cores each process used between t0 and t1.
func measureCPU(ctx context.Context, c *cluster, leader *proc, t0, t1 time.Time) (string, float64) {
	if sleepCtx(ctx, time.Until(t0)) != nil {
		return "", 0
	}
	m := newCPUMeter(c, leader)
	if sleepCtx(ctx, time.Until(t1)) != nil {
		return "", 0
	}
	return m.String(), m.serverSeconds()
}
