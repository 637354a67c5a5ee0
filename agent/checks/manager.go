package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Defaults of ManagerConfig.
const (
	// DefaultMinFlapInterval: at most one status change per check per second
	// reaches Notify; with it a change is delivered within a second.
	DefaultMinFlapInterval = time.Second
	// DefaultOutputUpdateInterval is Consul's check_update_interval: a
	// change of output alone is delivered at most this often.
	DefaultOutputUpdateInterval = 5 * time.Minute
)

// ErrStopped is returned by Add after Run has returned.
var ErrStopped = errors.New("checks: manager stopped")

// Update is a change of a check's reported state.
type Update struct {
	CheckID string
	Status  string // catalog.HealthPassing, HealthWarning or HealthCritical
	Output  string // at most MaxOutputLen bytes
}

// ManagerConfig configures a Manager. Zero values take the defaults.
type ManagerConfig struct {
	Logger *slog.Logger
	// Notify receives every change of a check's status or output, after
	// the thresholds and the rate limits. Calls for one check are
	// sequential and in order; calls for different checks are concurrent.
	// It must return quickly and must not call Add or Remove (hand the
	// update to another goroutine, e.g. anti-entropy's queue). No call for
	// a check starts after Remove returns for it, or after Run returns.
	Notify func(Update)
	// OnProbe, if set, is told the kind and raw result of every probe
	// (before thresholds), for metrics. It must return at once.
	OnProbe func(kind, status string)
	// MinFlapInterval is the least time between two updates of one check
	// (default DefaultMinFlapInterval). A change inside it is held, and when
	// it ends the latest state is sent, or nothing if the check flapped
	// back to what was last sent.
	MinFlapInterval time.Duration
	// OutputUpdateInterval is the least time between updates of one check
	// whose status did not change (default DefaultOutputUpdateInterval).
	OutputUpdateInterval time.Duration
	// MinInterval is the shortest interval a check runs at (default
	// DefaultMinInterval); shorter intervals are raised to it with a
	// warning, as Consul does.
	MinInterval time.Duration
	// EnableLocalScriptChecks is the agent's enable_local_script_checks.
	// When false, Add refuses script checks whatever their source: the
	// Manager's own guard beside Definition.Validate at the boundary.
	EnableLocalScriptChecks bool
	// OutputMaxSize is check_output_max_size: the most output a check
	// reports, marker included (default and most: MaxOutputLen).
	// OnTruncate, if set, is called for each output that was cut; it
	// must return at once.
	OutputMaxSize int
	OnTruncate    func()
	// Reap is called, on a goroutine of its own, when a check with
	// DeregisterCriticalServiceAfter has been critical that long. The agent
	// deregisters the service (and Removes its checks) there.
	Reap func(serviceID, checkID string)
}

func (c *ManagerConfig) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Notify == nil {
		c.Notify = func(Update) {}
	}
	if c.MinFlapInterval <= 0 {
		c.MinFlapInterval = DefaultMinFlapInterval
	}
	if c.OutputUpdateInterval <= 0 {
		c.OutputUpdateInterval = DefaultOutputUpdateInterval
	}
	if c.MinInterval <= 0 {
		c.MinInterval = DefaultMinInterval
	}
	if c.OutputMaxSize <= 0 || c.OutputMaxSize > MaxOutputLen {
		c.OutputMaxSize = MaxOutputLen
	}
	if c.Reap == nil {
		c.Reap = func(string, string) {}
	}
}

// Manager owns the check runners: two goroutines per check, all under
// Run's context. Checks may be added before Run; they start when it does.
type Manager struct {
	cfg ManagerConfig

	opMu sync.Mutex     // serializes Add and Remove, which wait for runners
	wg   sync.WaitGroup // every goroutine Run must wait for

	mu      sync.Mutex
	checks  map[string]*check
	ctx     context.Context // Run's; nil before Run
	stopped bool            // Run has ended
}

// NewManager returns a Manager; call Run to start its checks.
func NewManager(cfg ManagerConfig) *Manager {
	cfg.setDefaults()
	return &Manager{cfg: cfg, checks: map[string]*check{}}
}

// Run runs the checks until ctx ends, then waits for every runner to stop.
// It returns nil on a clean shutdown.
func (m *Manager) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.ctx != nil {
		m.mu.Unlock()
		return errors.New("checks: Run called twice")
	}
	m.ctx = ctx
	for _, c := range m.checks {
		m.startLocked(c)
	}
	m.mu.Unlock()

	<-ctx.Done()
	m.mu.Lock()
	m.stopped = true // no runner starts after this, so wg.Wait is safe
	m.mu.Unlock()
	m.wg.Wait()
	return nil
}

func (m *Manager) startLocked(c *check) {
	if c.started || m.ctx == nil || m.stopped {
		return
	}
	ctx, cancel := context.WithCancel(m.ctx)
	c.started, c.cancel, c.done = true, cancel, make(chan struct{})
	c.mu.Lock()
	c.ttlUpdated = time.Now()
	c.mu.Unlock()
	poke(c.wake) // a deregister timer may need arming from the start
	m.wg.Go(func() {
		defer close(c.done)
		var deliver sync.WaitGroup
		deliver.Go(func() { c.deliver(ctx) })
		c.run(ctx)
		deliver.Wait()
	})
}

// stop ends c's goroutines and waits for them. started, cancel and done
// were read under m.mu by the caller's detach.
func stopCheck(c *check, started bool) {
	if started {
		c.cancel()
		<-c.done
	}
}

// Add validates d and runs it. Script checks are refused unless
// ManagerConfig.EnableLocalScriptChecks is set; the caller must also have
// called d.Validate with the definition's Source, which is what refuses
// script checks from the HTTP API. A check with the same ID is replaced;
// it is restarted (status back to d.Status) only if its definition changed.
func (m *Manager) Add(d Definition) error {
	if err := d.Validate(SourceConfigFile, m.cfg.EnableLocalScriptChecks); err != nil {
		return fmt.Errorf("add check %q: %w", d.CheckID(), err)
	}
	d = cloneDefinition(d)
	id := d.CheckID()

	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		return ErrStopped
	}
	old := m.checks[id]
	if old != nil && reflect.DeepEqual(old.def, d) {
		m.mu.Unlock()
		return nil
	}
	c := newCheck(m, d)
	if d.Interval > 0 && d.Interval < m.cfg.MinInterval {
		c.log.Warn("check interval below the minimum; raised", "interval", d.Interval, "min", m.cfg.MinInterval)
	}
	m.checks[id] = c
	oldStarted := old != nil && old.started
	m.mu.Unlock()

	// The old runner ends before the new one starts, so Notify never sees
	// the two interleaved.
	if old != nil {
		stopCheck(old, oldStarted)
	}
	m.mu.Lock()
	m.startLocked(c)
	m.mu.Unlock()
	return nil
}

// Remove stops and forgets the check; once it returns, Notify is not
// called for it again. Removing an unknown ID does nothing.
func (m *Manager) Remove(id string) {
	m.opMu.Lock()
	defer m.opMu.Unlock()
	m.mu.Lock()
	c := m.checks[id]
	delete(m.checks, id)
	started := c != nil && c.started
	m.mu.Unlock()
	if c != nil {
		stopCheck(c, started)
	}
}

// SetTTL sets the status and output of a TTL check and restarts its TTL;
// it backs Consul's /v1/agent/check/pass|warn|fail|update endpoints, which
// map to catalog.HealthPassing, HealthWarning and HealthCritical. The
// output is capped at MaxOutputLen. Thresholds do not apply (as in Consul).
func (m *Manager) SetTTL(id, status, output string) error {
	if err := catalog.ValidateStatus("Status", status); err != nil {
		return err
	}
	c := m.get(id)
	if c == nil {
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	if c.kind != KindTTL {
		return &catalog.FieldError{Field: "CheckID", Reason: fmt.Sprintf("%q is a %s check, not a TTL check", id, c.kind)}
	}
	c.setTTL(status, output)
	return nil
}

// Status returns the check's current status and output, after thresholds
// but before rate limiting: what the agent reports locally.
func (m *Manager) Status(id string) (status, output string, ok bool) {
	c := m.get(id)
	if c == nil {
		return "", "", false
	}
	status, output = c.state()
	return status, output, true
}

// IDs returns the IDs of the checks, sorted.
func (m *Manager) IDs() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.checks))
}

func (m *Manager) get(id string) *check {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.checks[id]
}

// cloneDefinition copies the slices and maps, so the caller's later
// changes cannot race with the runner.
func cloneDefinition(d Definition) Definition {
	d.Args = slices.Clone(d.Args)
	if d.Header != nil {
		h := make(map[string][]string, len(d.Header))
		for k, vs := range d.Header {
			h[k] = slices.Clone(vs)
		}
		d.Header = h
	}
	return d
}
