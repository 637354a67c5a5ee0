package checks

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// maxStagger bounds the random delay before a check's first probe. Consul
// staggers over the whole interval; a status must reach the servers within
// a second, so the first probe stays quick and the stagger only spreads a
// burst of checks registered together.
const maxStagger = 500 * time.Millisecond

// result is one probe's outcome, output already capped.
type result struct{ status, output string }

// prober runs one probe of a check kind. The context carries the timeout.
type prober interface {
	probe(ctx context.Context) result
}

func newProber(d *Definition) prober {
	switch d.Kind() {
	case KindHTTP:
		return newHTTPProber(d)
	case KindTCP:
		return &tcpProber{addr: d.TCP}
	case KindUDP:
		return newUDPProber(d)
	case KindGRPC:
		return newGRPCProber(d)
	case KindScript:
		return &scriptProber{args: d.Args, timeout: d.timeout()}
	}
	return nil // TTL: pushed, not probed
}

// check is one running check: a runner goroutine (probes or TTL expiry)
// and a delivery goroutine that reports changes, rate-limited.
type check struct {
	m        *Manager
	def      Definition
	id       string
	kind     string
	interval time.Duration
	timeout  time.Duration
	prober   prober
	log      *slog.Logger

	wake    chan struct{} // state changed: delivery should look (cap 1)
	ttlPoke chan struct{} // SetTTL was called: re-arm the expiry (cap 1)

	// Set by Manager.startLocked under Manager.mu, then read-only.
	started bool
	cancel  context.CancelFunc
	done    chan struct{} // closed when both goroutines have returned

	mu            sync.Mutex
	status        string // after thresholds: what the check is now
	output        string
	successes     int // consecutive non-critical probes
	failures      int // consecutive critical probes
	criticalSince time.Time
	ttlUpdated    time.Time
	ttlExpired    bool
	sentStatus    string // what Notify was last told (initially the start state)
	sentOutput    string
	sentAt        time.Time // zero: the next change goes out at once
	reaped        bool
}

func newCheck(m *Manager, d Definition) *check {
	status := d.Status
	if status == "" {
		status = catalog.HealthCritical
	}
	c := &check{
		m:          m,
		def:        d,
		id:         d.CheckID(),
		kind:       d.Kind(),
		interval:   max(d.Interval, m.cfg.MinInterval),
		timeout:    d.timeout(),
		prober:     newProber(&d),
		wake:       make(chan struct{}, 1),
		ttlPoke:    make(chan struct{}, 1),
		status:     status,
		sentStatus: status,
	}
	c.log = m.cfg.Logger.With("check", c.id, "kind", c.kind)
	if status == catalog.HealthCritical {
		c.criticalSince = time.Now()
	}
	return c
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// run is the check's runner goroutine.
func (c *check) run(ctx context.Context) {
	if c.kind == KindTTL {
		c.runTTL(ctx)
		return
	}
	timer := time.NewTimer(rand.N(min(c.interval, maxStagger)))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, c.timeout)
		r := c.prober.probe(pctx)
		cancel()
		if ctx.Err() != nil {
			return // stopped mid-probe: the result means nothing
		}
		if c.m.cfg.OnProbe != nil {
			c.m.cfg.OnProbe(c.def.Kind(), r.status)
		}
		c.record(r)
		// The interval runs from the end of a probe, as in Consul, so
		// probes never overlap.
		timer.Reset(c.interval)
	}
}

// record applies a probe result through the thresholds (Consul's
// StatusHandler): warning counts as a success, and a result that has not
// yet met its threshold changes nothing, output included.
func (c *check) record(r result) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.status == catalog.HealthCritical {
		c.failures++
		c.successes = 0
		if c.failures < c.def.FailuresBeforeCritical {
			c.log.Debug("check failed; below failures_before_critical", "failures", c.failures, "output", r.output)
			return
		}
	} else {
		c.successes++
		c.failures = 0
		if c.successes < c.def.SuccessBeforePassing {
			c.log.Debug("check succeeded; below success_before_passing", "successes", c.successes)
			return
		}
	}
	c.setLocked(r.status, r.output)
}

func (c *check) setLocked(status, output string) {
	output = c.m.capOutput(c.kind, output) // check_output_max_size
	if status == c.status && output == c.output {
		return
	}
	if status != catalog.HealthCritical {
		c.criticalSince = time.Time{}
		c.reaped = false
	} else if c.status != catalog.HealthCritical {
		c.criticalSince = time.Now()
	}
	c.status, c.output = status, output
	poke(c.wake)
}

func (c *check) state() (status, output string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status, c.output
}

// deliver is the check's delivery goroutine: it alone calls Notify for this
// check, so updates arrive in order. A status change goes out at once
// unless one went out less than MinFlapInterval ago; an output-only change
// waits OutputUpdateInterval. Either way the latest state is what is sent,
// and a flap that returns to what was last sent sends nothing.
func (c *check) deliver(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		case <-timer.C:
		}
		u, reap, wait := c.due(time.Now())
		if ctx.Err() != nil {
			return // removed or shutting down: nothing more goes out
		}
		if u != nil {
			c.m.cfg.Notify(*u)
		}
		if reap {
			c.log.Info("check critical too long; deregistering its service",
				"service", c.def.ServiceID, "after", c.def.DeregisterCriticalServiceAfter)
			c.m.wg.Go(func() { c.m.cfg.Reap(c.def.ServiceID, c.id) })
		}
		if wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop()
		}
	}
}

// due decides what to deliver now, and how long until it must look again
// (0: only when woken).
func (c *check) due(now time.Time) (u *Update, reap bool, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != c.sentStatus || c.output != c.sentOutput {
		gap := c.m.cfg.OutputUpdateInterval
		if c.status != c.sentStatus {
			gap = c.m.cfg.MinFlapInterval
		}
		if at := c.sentAt.Add(gap); now.Before(at) {
			wait = at.Sub(now)
		} else {
			if c.status != c.sentStatus {
				c.log.Info("check status changed", "from", c.sentStatus, "to", c.status)
			}
			u = &Update{CheckID: c.id, Status: c.status, Output: c.output}
			c.sentStatus, c.sentOutput, c.sentAt = c.status, c.output, now
		}
	}
	if after := c.def.DeregisterCriticalServiceAfter; after > 0 && c.status == catalog.HealthCritical && !c.reaped {
		if at := c.criticalSince.Add(after); now.Before(at) {
			if w := at.Sub(now); wait == 0 || w < wait {
				wait = w
			}
		} else {
			c.reaped = true
			reap = true
		}
	}
	return u, reap, wait
}
