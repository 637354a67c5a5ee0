// Package local owns the agent's local registrations: the services and
// checks registered on this agent (from config files or the agent HTTP
// API), the persistence of API registrations under the data directory, and
// anti-entropy, which keeps the servers' catalog entries for this node equal
// to the local state. The local state is the truth for its own node; the
// one exception is the "serfHealth" check, which the servers own.
//
// Only the agent wiring (agent/) imports this package. It imports catalog
// and internal/* only; what it needs from the servers is the Syncer
// interface, which the agent implements with the rpc client.
package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// SerfHealthID is the ID of the node check the servers own and maintain
// from gossip. Anti-entropy never deregisters it and the agent may not
// register a check with this ID.
const SerfHealthID = catalog.SerfCheckID

// Syncer is what anti-entropy needs from the servers.
type Syncer interface {
	// NodeServices returns the node row (nil if not registered) and the
	// service instances the catalog holds for node.
	NodeServices(ctx context.Context, node string) (*catalog.Node, []*catalog.Service, error)
	// NodeChecks returns every check the catalog holds for node.
	NodeChecks(ctx context.Context, node string) ([]*catalog.Check, error)
	Register(ctx context.Context, r *catalog.Registration) error
	Deregister(ctx context.Context, d *catalog.Deregistration) error
}

// Config is what a State needs.
type Config struct {
	// Node is this agent's node: name, ID, address, tagged addresses, meta
	// and datacenter. An empty Datacenter matches whatever the servers
	// stamp into the catalog.
	Node catalog.Node
	// DataDir is the agent's data directory. API registrations persist
	// under DataDir/local/ (created by New); "" disables persistence.
	DataDir string
	Syncer  Syncer
	Logger  *slog.Logger
	// ClusterSize returns the number of nodes in the cluster, which scales
	// the full-sync interval; nil counts as 1.
	ClusterSize func() int
	// OnSync, if set, is told the kind and outcome of every sync attempt
	// (for metrics); it must return at once.
	OnSync func(full bool, err error)
	// SyncInterval is the base full-sync interval; 0 means 60s.
	SyncInterval time.Duration
}

// DefaultSyncInterval is the base interval between full syncs.
const DefaultSyncInterval = 60 * time.Second

// serviceEntry is a local service, or a tombstone (deleted) for a service
// that must be deregistered from the catalog. gen is the generation of its
// last local change: a sync marks the entry in sync only if gen has not
// moved while the sync talked to the servers.
type serviceEntry struct {
	svc     *catalog.Service
	deleted bool
	inSync  bool
	gen     uint64
}

// checkEntry is the same for a check.
type checkEntry struct {
	check   *catalog.Check
	deleted bool
	inSync  bool
	gen     uint64
}

// State is the agent's local services and checks and the anti-entropy that
// pushes them to the servers. Its methods are safe for concurrent use.
type State struct {
	syncer      Syncer
	logger      *slog.Logger
	clusterSize func() int
	interval    time.Duration
	onSync      func(full bool, err error)
	store       *blobStore // nil without a data directory

	// Timings, fixed at New; tests shorten them.
	debounce    time.Duration
	backoffBase time.Duration
	backoffMax  time.Duration
	callTimeout time.Duration

	dirtyCh chan struct{} // a local change waits to be pushed
	fullCh  chan struct{} // SyncFull was called
	running chan struct{} // holds a token while Run runs

	mu         sync.Mutex
	gen        uint64
	node       catalog.Node
	nodeInSync bool
	nodeGen    uint64
	services   map[string]*serviceEntry
	checks     map[string]*checkEntry
	changedCh  chan struct{}
	lastOK     time.Time
	lastErr    error
}

// New returns the local state of the node cfg.Node, empty. The agent
// replays Persisted() and its config files into it, then calls Run.
func New(cfg Config) (*State, error) {
	if cfg.Syncer == nil {
		return nil, errors.New("local state: no Syncer")
	}
	if cfg.Node.Name == "" {
		return nil, errors.New("local state: no node name")
	}
	s := &State{
		syncer:      cfg.Syncer,
		logger:      cfg.Logger,
		clusterSize: cfg.ClusterSize,
		interval:    cfg.SyncInterval,
		onSync:      cfg.OnSync,
		debounce:    10 * time.Millisecond, // coalesces a burst; a change reaches the servers within ~10 ms plus a commit
		backoffBase: 250 * time.Millisecond,
		backoffMax:  30 * time.Second,
		callTimeout: 30 * time.Second,
		dirtyCh:     make(chan struct{}, 1),
		fullCh:      make(chan struct{}, 1),
		running:     make(chan struct{}, 1),
		node:        copyNode(&cfg.Node),
		services:    map[string]*serviceEntry{},
		checks:      map[string]*checkEntry{},
		changedCh:   make(chan struct{}),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.interval <= 0 {
		s.interval = DefaultSyncInterval
	}
	if cfg.DataDir != "" {
		st, err := openBlobStore(cfg.DataDir, s.logger)
		if err != nil {
			return nil, err
		}
		s.store = st
	}
	return s, nil
}

// AddService adds svc with checks, replacing a service with the same ID;
// the replaced service's checks that are not in checks are removed. A
// missing service ID defaults to the name, a missing check ID to the check
// name and a missing check status to critical; Node fields are set to this
// node and each check's ServiceID to svc.ID. svc and checks are copied.
//
// persist != nil is written atomically to disk keyed by the service ID (the
// agent keeps the API request there to re-create check runners at restart);
// persist == nil removes any blob persisted for that ID (a service from a
// config file). Blobs persisted for the listed checks by AddCheck are
// removed: the service's blob now defines them.
func (s *State) AddService(svc *catalog.Service, checks []*catalog.Check, persist []byte) error {
	if svc == nil {
		return &catalog.FieldError{Field: "Service", Reason: "missing"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	nsvc := copyService(svc)
	nchecks := make([]*catalog.Check, len(checks))
	for i, c := range checks {
		if c == nil {
			return &catalog.FieldError{Field: fmt.Sprintf("Checks[%d]", i), Reason: "null"}
		}
		nchecks[i] = copyCheck(c)
	}
	r := catalog.Registration{Node: catalog.Node{Name: s.node.Name}, Service: nsvc, Checks: nchecks}
	r.Normalize()
	if err := catalog.ValidateService(nsvc); err != nil {
		return err
	}
	if len(nchecks) > catalog.MaxChecks {
		return &catalog.FieldError{Field: "Checks", Reason: fmt.Sprintf("more than %d checks", catalog.MaxChecks)}
	}
	seen := map[string]bool{}
	for i, c := range nchecks {
		c.Node = s.node.Name
		c.ServiceID = nsvc.ID
		field := fmt.Sprintf("Checks[%d]", i)
		if err := validateCheck(field, c); err != nil {
			return err
		}
		if seen[c.CheckID] {
			return &catalog.FieldError{Field: field + ".CheckID", Reason: fmt.Sprintf("%q appears twice", c.CheckID)}
		}
		seen[c.CheckID] = true
	}

	// Disk first: if persistence fails, nothing changes.
	if s.store != nil {
		if err := s.store.put(kindService, nsvc.ID, persist); err != nil {
			return err
		}
		for _, c := range nchecks {
			if err := s.store.put(kindCheck, c.CheckID, nil); err != nil {
				return err
			}
		}
		for id, e := range s.checks {
			if !e.deleted && e.check.ServiceID == nsvc.ID && !seen[id] {
				if err := s.store.put(kindCheck, id, nil); err != nil {
					return err
				}
			}
		}
	}

	for id, e := range s.checks {
		if !e.deleted && e.check.ServiceID == nsvc.ID && !seen[id] {
			s.tombstoneCheck(e)
		}
	}
	s.setService(nsvc)
	for _, c := range nchecks {
		s.setCheck(c)
	}
	s.notifyLocked()
	return nil
}

// RemoveService removes the service id with its checks and persisted
// blobs. The error wraps catalog.ErrNotFound if id is unknown.
func (s *State) RemoveService(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.services[id]
	if !ok || e.deleted {
		return fmt.Errorf("service %q: %w", id, catalog.ErrNotFound)
	}
	var owned []*checkEntry
	for _, ce := range s.checks {
		if !ce.deleted && ce.check.ServiceID == id {
			owned = append(owned, ce)
		}
	}
	if s.store != nil {
		if err := s.store.put(kindService, id, nil); err != nil {
			return err
		}
		for _, ce := range owned {
			if err := s.store.put(kindCheck, ce.check.CheckID, nil); err != nil {
				return err
			}
		}
	}
	for _, ce := range owned {
		s.tombstoneCheck(ce)
	}
	s.gen++
	e.deleted, e.inSync, e.gen = true, false, s.gen
	s.notifyLocked()
	return nil
}

// AddCheck adds c, replacing a check with the same ID. A service check's
// ServiceID must name a local service, else the error is a
// catalog.FieldError. persist is handled as by AddService, keyed by the
// check ID.
func (s *State) AddCheck(c *catalog.Check, persist []byte) error {
	if c == nil {
		return &catalog.FieldError{Field: "Check", Reason: "missing"}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	nc := copyCheck(c)
	nc.Node = s.node.Name
	if nc.CheckID == "" {
		nc.CheckID = nc.Name
	}
	if nc.Status == "" {
		nc.Status = catalog.HealthCritical
	}
	if err := validateCheck("Check", nc); err != nil {
		return err
	}
	if nc.ServiceID != "" {
		if e, ok := s.services[nc.ServiceID]; !ok || e.deleted {
			return &catalog.FieldError{Field: "Check.ServiceID", Reason: fmt.Sprintf("service %q is not registered on this agent", nc.ServiceID)}
		}
	}
	if s.store != nil {
		if err := s.store.put(kindCheck, nc.CheckID, persist); err != nil {
			return err
		}
	}
	s.setCheck(nc)
	s.notifyLocked()
	return nil
}

// RemoveCheck removes the check id and its persisted blob. The error wraps
// catalog.ErrNotFound if id is unknown.
func (s *State) RemoveCheck(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.checks[id]
	if !ok || e.deleted {
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	if s.store != nil {
		if err := s.store.put(kindCheck, id, nil); err != nil {
			return err
		}
	}
	s.tombstoneCheck(e)
	s.notifyLocked()
	return nil
}

// UpdateCheck sets the status and output of the check id, as reported by
// its runner or a TTL update. Only a change is pushed to the servers.
// Output longer than catalog.MaxOutputLen is truncated.
func (s *State) UpdateCheck(id, status, output string) error {
	if err := catalog.ValidateStatus("Status", status); err != nil {
		return err
	}
	if len(output) > catalog.MaxOutputLen {
		output = output[:catalog.MaxOutputLen]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.checks[id]
	if !ok || e.deleted {
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	if e.check.Status == status && e.check.Output == output {
		return nil
	}
	// The entry's check may be shared with a sync in flight: replace it.
	nc := copyCheck(e.check)
	nc.Status, nc.Output = status, output
	s.gen++
	e.check, e.inSync, e.gen = nc, false, s.gen
	s.notifyLocked()
	return nil
}

// Service returns a copy of the local service id.
func (s *State) Service(id string) (*catalog.Service, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.services[id]
	if !ok || e.deleted {
		return nil, false
	}
	return copyService(e.svc), true
}

// Services returns copies of the local services, sorted by ID.
func (s *State) Services() []*catalog.Service {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*catalog.Service, 0, len(s.services))
	for _, e := range s.services {
		if !e.deleted {
			out = append(out, copyService(e.svc))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Check returns a copy of the local check id, with ServiceName and
// ServiceTags filled from its service.
func (s *State) Check(id string) (*catalog.Check, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.checks[id]
	if !ok || e.deleted {
		return nil, false
	}
	return s.viewCheck(e.check), true
}

// Checks returns copies of the local checks, sorted by ID, with ServiceName
// and ServiceTags filled from their services.
func (s *State) Checks() []*catalog.Check {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*catalog.Check, 0, len(s.checks))
	for _, e := range s.checks {
		if !e.deleted {
			out = append(out, s.viewCheck(e.check))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CheckID < out[j].CheckID })
	return out
}

// Persisted returns the blobs persisted by AddService and AddCheck, keyed
// by service ID and check ID, for the agent to replay at start. A blob that
// cannot be read or decoded is skipped with a logged error naming its file.
// Without a data directory both maps are empty.
func (s *State) Persisted() (services map[string][]byte, checks map[string][]byte, err error) {
	if s.store == nil {
		return map[string][]byte{}, map[string][]byte{}, nil
	}
	if services, err = s.store.load(kindService); err != nil {
		return nil, nil, err
	}
	if checks, err = s.store.load(kindCheck); err != nil {
		return nil, nil, err
	}
	return services, checks, nil
}

// SetNode replaces this agent's node (e.g. on a config reload); a change is
// pushed to the servers. A new name moves every service and check to it.
func (s *State) SetNode(n catalog.Node) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if nodeEqual(&s.node, &n) && s.node.Datacenter == n.Datacenter {
		return
	}
	renamed := n.Name != s.node.Name
	s.node = copyNode(&n)
	s.gen++
	s.nodeInSync, s.nodeGen = false, s.gen
	if renamed {
		// The old name's entries are the servers' to reap; everything is
		// new under the new name.
		for id, e := range s.services {
			if e.deleted {
				delete(s.services, id)
				continue
			}
			svc := copyService(e.svc)
			svc.Node = n.Name
			e.svc, e.inSync, e.gen = svc, false, s.gen
		}
		for id, e := range s.checks {
			if e.deleted {
				delete(s.checks, id)
				continue
			}
			c := copyCheck(e.check)
			c.Node = n.Name
			e.check, e.inSync, e.gen = c, false, s.gen
		}
	}
	s.notifyLocked()
}

// SyncFull asks Run for a full sync soon, ending any backoff (e.g. after
// the agent reconnected to the servers).
func (s *State) SyncFull() {
	select {
	case s.fullCh <- struct{}{}:
	default:
	}
}

// LastSync returns when the last sync (full or of changes) succeeded, and
// the error of the last attempt: nil if it succeeded.
func (s *State) LastSync() (ok time.Time, lastErr error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOK, s.lastErr
}

// Changed returns a channel that is closed at the next local change (a
// service or check added, removed or updated, or the node set). Take a new
// channel after each wake-up.
func (s *State) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changedCh
}

// setService stores svc (owned by the state) as live and dirty.
func (s *State) setService(svc *catalog.Service) {
	s.gen++
	s.services[svc.ID] = &serviceEntry{svc: svc, gen: s.gen}
}

// setCheck stores c (owned by the state) as live and dirty.
func (s *State) setCheck(c *catalog.Check) {
	s.gen++
	s.checks[c.CheckID] = &checkEntry{check: c, gen: s.gen}
}

// tombstoneCheck marks e for deregistration.
func (s *State) tombstoneCheck(e *checkEntry) {
	s.gen++
	e.deleted, e.inSync, e.gen = true, false, s.gen
}

// notifyLocked wakes Run for a sync of changes and Changed() waiters.
func (s *State) notifyLocked() {
	select {
	case s.dirtyCh <- struct{}{}:
	default:
	}
	close(s.changedCh)
	s.changedCh = make(chan struct{})
}

func (s *State) viewCheck(c *catalog.Check) *catalog.Check {
	out := copyCheck(c)
	if e, ok := s.services[c.ServiceID]; ok && c.ServiceID != "" && !e.deleted {
		out.ServiceName, out.ServiceTags = e.svc.Name, slices.Clone(e.svc.Tags)
	}
	return out
}

func validateCheck(field string, c *catalog.Check) error {
	if err := catalog.ValidateCheck(field, c); err != nil {
		return err
	}
	if c.CheckID == SerfHealthID {
		return &catalog.FieldError{Field: field + ".CheckID", Reason: fmt.Sprintf("%q is reserved for the servers", SerfHealthID)}
	}
	return nil
}

func copyNode(n *catalog.Node) catalog.Node {
	c := n.Clone()
	c.RaftIndex = catalog.RaftIndex{}
	return *c
}

func copyService(s *catalog.Service) *catalog.Service {
	c := s.Clone()
	c.RaftIndex = catalog.RaftIndex{}
	return c
}

// copyCheck copies c without the fields the catalog derives (ServiceName,
// ServiceTags, RaftIndex).
func copyCheck(c *catalog.Check) *catalog.Check {
	n := *c
	n.ServiceName, n.ServiceTags = "", nil
	n.RaftIndex = catalog.RaftIndex{}
	return &n
}

// nodeEqual compares the fields the agent owns, Datacenter aside (the
// servers stamp theirs).
func nodeEqual(a, b *catalog.Node) bool {
	x, y := *a, *b
	x.Datacenter, y.Datacenter = "", ""
	return x.SameAs(&y)
}

// nodeInSync reports whether the catalog's row remote matches local; an
// empty local Datacenter matches the one the servers stamped.
func nodeInSync(local, remote *catalog.Node) bool {
	return remote != nil && nodeEqual(local, remote) &&
		(local.Datacenter == "" || local.Datacenter == remote.Datacenter)
}

func serviceEqual(a, b *catalog.Service) bool { return a.SameAs(b) }

// checkEqual compares what the agent owns; ServiceName and ServiceTags are
// derived by the catalog.
func checkEqual(a, b *catalog.Check) bool {
	return a.Node == b.Node && a.CheckID == b.CheckID && a.Name == b.Name && a.Status == b.Status &&
		a.Notes == b.Notes && a.Output == b.Output && a.ServiceID == b.ServiceID &&
		a.Type == b.Type && a.Definition == b.Definition
}
