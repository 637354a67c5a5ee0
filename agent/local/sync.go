package local

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// scaleThreshold is the cluster size above which the full-sync interval
// grows, as Consul's aeScaleThreshold: the servers' load from full syncs
// then grows with log(N) instead of N.
const scaleThreshold = 128

// scaleFactor is 1 up to scaleThreshold nodes, then 1+ceil(log2(N/128)).
func scaleFactor(nodes int) int {
	if nodes <= scaleThreshold {
		return 1
	}
	return int(math.Ceil(math.Log2(float64(nodes))-math.Log2(scaleThreshold))) + 1
}

// fullInterval is the wait before the next full sync: the base interval
// scaled by the cluster size, plus up to 1/16 of it at random so agents
// restarted together do not sync in lockstep.
func (s *State) fullInterval() time.Duration {
	n := 1
	if s.clusterSize != nil {
		n = s.clusterSize()
	}
	d := s.interval * time.Duration(scaleFactor(n))
	return d + rand.N(d/16+1)
}

// backoff is the wait before retry n (1-based): backoffBase doubling up to
// backoffMax, with ±25% jitter.
func (s *State) backoff(n int) time.Duration {
	d := s.backoffMax
	if n-1 < 30 {
		d = min(s.backoffBase<<(n-1), s.backoffMax)
	}
	d = d*3/4 + rand.N(d/2+1)
	return min(d, s.backoffMax)
}

// Run is the anti-entropy loop: a full sync at start and then every
// fullInterval, a sync of local changes within the debounce of a change,
// and retries with backoff after a failure. It returns nil when ctx ends.
// Only one Run may run at a time.
func (s *State) Run(ctx context.Context) error {
	select {
	case s.running <- struct{}{}:
		defer func() { <-s.running }()
	default:
		return errors.New("local state: Run is already running")
	}

	var (
		fullAt    = time.Now() // next full sync
		partialAt time.Time    // next sync of changes; zero if none pending
		retryAt   time.Time    // nothing runs before it; zero if not failing
		failures  int
	)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		next := fullAt
		if !partialAt.IsZero() && partialAt.Before(next) {
			next = partialAt
		}
		if !retryAt.IsZero() && retryAt.After(next) {
			next = retryAt
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return nil
		case <-s.dirtyCh:
			if partialAt.IsZero() {
				partialAt = time.Now().Add(s.debounce)
			}
			continue
		case <-s.fullCh:
			fullAt, retryAt = time.Now(), time.Time{}
			continue
		case <-timer.C:
		}

		full := !time.Now().Before(fullAt)
		var err error
		if full {
			err = s.syncFull(ctx)
		} else {
			err = s.syncChanges(ctx)
		}
		partialAt = time.Time{} // a change during the sync has signalled dirtyCh again
		if ctx.Err() != nil {
			return nil
		}
		s.mu.Lock()
		s.lastErr = err
		if err == nil {
			s.lastOK = time.Now()
		}
		s.mu.Unlock()
		if s.onSync != nil {
			s.onSync(full, err)
		}

		var perm *permanentError
		switch {
		case err == nil || errors.As(err, &perm):
			if err != nil {
				s.logger.Error("anti-entropy: the servers rejected registrations; they are retried at the next change or full sync", "err", err)
			} else if failures > 0 {
				s.logger.Info("anti-entropy: sync succeeded again", "failures", failures)
			}
			failures, retryAt = 0, time.Time{}
			if full {
				fullAt = time.Now().Add(s.fullInterval())
			}
		default:
			failures++
			wait := s.backoff(failures)
			retryAt = time.Now().Add(wait)
			if !full {
				partialAt = retryAt
			}
			s.logger.Warn("anti-entropy: sync failed", "full", full, "err", err, "failures", failures, "retry_in", wait)
		}
	}
}

// permanentError gathers rejections (catalog.ErrInvalid) of single
// registrations: retrying them unchanged cannot help, so they do not put the
// loop into backoff.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// syncFull compares the catalog's view of this node with the local state,
// marks what differs, tombstones what the catalog has and the agent does
// not know, then pushes the differences.
func (s *State) syncFull(ctx context.Context) error {
	s.mu.Lock()
	name := s.node.Name
	s.mu.Unlock()

	cctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	node, services, err := s.syncer.NodeServices(cctx, name)
	cancel()
	if err != nil {
		return fmt.Errorf("read services of node %q: %w", name, err)
	}
	cctx, cancel = context.WithTimeout(ctx, s.callTimeout)
	checks, err := s.syncer.NodeChecks(cctx, name)
	cancel()
	if err != nil {
		return fmt.Errorf("read checks of node %q: %w", name, err)
	}

	s.mu.Lock()
	if s.node.Name == name { // else renamed meanwhile: everything is dirty anyway
		s.compareLocked(node, services, checks)
	}
	s.mu.Unlock()
	return s.syncChanges(ctx)
}

// compareLocked sets each entry's inSync from the catalog's rows, and adds
// tombstones for rows the agent does not know.
func (s *State) compareLocked(node *catalog.Node, services []*catalog.Service, checks []*catalog.Check) {
	s.nodeInSync = nodeInSync(&s.node, node)

	remoteSvcs := make(map[string]*catalog.Service, len(services))
	for _, r := range services {
		// The servers own the server service on their nodes.
		if r != nil && r.ID != catalog.ServerServiceID {
			remoteSvcs[r.ID] = r
		}
	}
	tagsAdopted := false
	for id, e := range s.services {
		r := remoteSvcs[id]
		switch {
		case e.deleted:
			if r == nil {
				delete(s.services, id) // already gone
			} else {
				e.inSync = false
			}
		case r == nil:
			e.inSync = false
		default:
			// Consul's EnableTagOverride: tags changed in the catalog by
			// someone else are adopted, not overwritten.
			if e.svc.EnableTagOverride && !slices.Equal(e.svc.Tags, r.Tags) {
				svc := copyService(e.svc)
				svc.Tags = slices.Clone(r.Tags)
				e.svc = svc
				tagsAdopted = true
			}
			e.inSync = serviceEqual(e.svc, r)
		}
	}
	for id, r := range remoteSvcs {
		if _, ok := s.services[id]; !ok {
			s.gen++
			s.services[id] = &serviceEntry{svc: copyService(r), deleted: true, gen: s.gen}
		}
	}

	remoteChecks := make(map[string]*catalog.Check, len(checks))
	for _, r := range checks {
		if r != nil && r.CheckID != SerfHealthID {
			remoteChecks[r.CheckID] = r
		}
	}
	for id, e := range s.checks {
		r := remoteChecks[id]
		switch {
		case e.deleted:
			if r == nil {
				delete(s.checks, id)
			} else {
				// Deregistering its catalog service removes it too.
				c := copyCheck(e.check)
				c.ServiceID = r.ServiceID
				e.check = c
				e.inSync = false
			}
		case r == nil:
			e.inSync = false
		default:
			e.inSync = checkEqual(e.check, r)
		}
	}
	for id, r := range remoteChecks {
		if _, ok := s.checks[id]; !ok {
			s.gen++
			s.checks[id] = &checkEntry{check: copyCheck(r), deleted: true, gen: s.gen}
		}
	}
	if tagsAdopted {
		close(s.changedCh)
		s.changedCh = make(chan struct{})
	}
}

// ref names an entry at the generation a sync saw.
type ref struct {
	id  string
	gen uint64
}

// syncOp is one call to the servers and the entries it brings in sync.
type syncOp struct {
	dereg    *catalog.Deregistration
	reg      *catalog.Registration
	services []ref
	checks   []ref
}

// syncChanges pushes every entry that is not in sync: deregistrations
// first, then the node with its node-level checks, then one registration
// per service with its checks that changed. It stops at the first failure
// other than a rejection of one registration (invalid or denied by ACLs).
func (s *State) syncChanges(ctx context.Context) error {
	ops, nodePending, nodeGen := s.plan()
	var rejected []error
	for _, op := range ops {
		if err := ctx.Err(); err != nil {
			return err
		}
		cctx, cancel := context.WithTimeout(ctx, s.callTimeout)
		var err error
		carriesNode := false
		if op.dereg != nil {
			err = s.syncer.Deregister(cctx, op.dereg)
			if err != nil {
				err = fmt.Errorf("deregister %s: %w", describeDereg(op.dereg), err)
			}
		} else {
			carriesNode = nodePending
			op.reg.SkipNodeUpdate = !nodePending
			err = s.syncer.Register(cctx, op.reg)
			if err != nil {
				err = fmt.Errorf("register %s: %w", describeReg(op.reg), err)
			}
		}
		cancel()
		// A registration the servers reject (invalid, or not allowed by
		// the agent's token) waits aside; the others go on.
		if err != nil && !errors.Is(err, catalog.ErrInvalid) && !errors.Is(err, catalog.ErrPermissionDenied) {
			return err
		}
		if err != nil {
			// Set the rejected entries aside until they change or the
			// next full sync finds them still out of sync.
			rejected = append(rejected, err)
		}
		s.mu.Lock()
		if carriesNode && err == nil {
			nodePending = false
			if s.nodeGen == nodeGen {
				s.nodeInSync = true
			}
		}
		s.markLocked(op)
		s.mu.Unlock()
	}
	if len(rejected) > 0 {
		return &permanentError{errors.Join(rejected...)}
	}
	return nil
}

// markLocked marks the entries of a finished op in sync, or drops their
// tombstones, unless they changed while the op ran.
func (s *State) markLocked(op syncOp) {
	for _, r := range op.services {
		if e, ok := s.services[r.id]; ok && e.gen == r.gen {
			if e.deleted {
				delete(s.services, r.id)
			} else {
				e.inSync = true
			}
		}
	}
	for _, r := range op.checks {
		if e, ok := s.checks[r.id]; ok && e.gen == r.gen {
			if e.deleted {
				delete(s.checks, r.id)
			} else {
				e.inSync = true
			}
		}
	}
}

// plan lists what syncChanges must send, from a snapshot (copies) of the
// entries that are not in sync.
func (s *State) plan() (ops []syncOp, nodePending bool, nodeGen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := s.node.Name
	node := copyNode(&s.node)

	// Service tombstones; their check tombstones go with them.
	deregSvcs := map[string]int{} // service ID -> index in ops
	for _, id := range sortedKeys(s.services) {
		e := s.services[id]
		if !e.deleted || e.inSync {
			continue
		}
		ops = append(ops, syncOp{
			dereg:    &catalog.Deregistration{Node: name, ServiceID: id},
			services: []ref{{id, e.gen}},
		})
		deregSvcs[id] = len(ops) - 1
	}
	for _, id := range sortedKeys(s.checks) {
		e := s.checks[id]
		if !e.deleted || e.inSync {
			continue
		}
		if i, ok := deregSvcs[e.check.ServiceID]; ok && e.check.ServiceID != "" {
			ops[i].checks = append(ops[i].checks, ref{id, e.gen})
			continue
		}
		ops = append(ops, syncOp{
			dereg:  &catalog.Deregistration{Node: name, CheckID: id},
			checks: []ref{{id, e.gen}},
		})
	}

	// Live entries that changed, grouped by service.
	byService := map[string][]*catalog.Check{}
	checkRefs := map[string][]ref{}
	for _, id := range sortedKeys(s.checks) {
		e := s.checks[id]
		if e.deleted || e.inSync {
			continue
		}
		sid := e.check.ServiceID
		if se, ok := s.services[sid]; sid != "" && (!ok || se.deleted) {
			continue // cannot happen: a service's removal tombstones its checks
		}
		byService[sid] = append(byService[sid], copyCheck(e.check))
		checkRefs[sid] = append(checkRefs[sid], ref{id, e.gen})
	}
	if !s.nodeInSync || len(byService[""]) > 0 {
		ops = append(ops, syncOp{
			reg:    &catalog.Registration{Node: node, Checks: byService[""]},
			checks: checkRefs[""],
		})
	}
	for _, id := range sortedKeys(s.services) {
		e := s.services[id]
		if e.deleted || (e.inSync && len(byService[id]) == 0) {
			continue
		}
		op := syncOp{
			reg:    &catalog.Registration{Node: node, Service: copyService(e.svc), Checks: byService[id]},
			checks: checkRefs[id],
		}
		if !e.inSync {
			op.services = []ref{{id, e.gen}}
		}
		ops = append(ops, op)
	}
	return ops, !s.nodeInSync, s.nodeGen
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func describeDereg(d *catalog.Deregistration) string {
	if d.ServiceID != "" {
		return fmt.Sprintf("service %q", d.ServiceID)
	}
	return fmt.Sprintf("check %q", d.CheckID)
}

func describeReg(r *catalog.Registration) string {
	if r.Service != nil {
		return fmt.Sprintf("service %q", r.Service.ID)
	}
	return fmt.Sprintf("node %q", r.Node.Name)
}
