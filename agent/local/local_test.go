package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// fakeCatalog is an in-memory catalog with the state store's write
// semantics, that counts writes and fails on demand.
type fakeCatalog struct {
	mu       sync.Mutex
	nodes    map[string]*catalog.Node
	services map[string]map[string]*catalog.Service // node -> service ID
	checks   map[string]map[string]*catalog.Check   // node -> check ID
	fail     error
	writes   int // Register and Deregister calls that succeeded
	attempts int // every call, failed or not
	reads    int // NodeServices calls that succeeded
	regs     []catalog.Registration
}

func newFakeCatalog() *fakeCatalog {
	return &fakeCatalog{
		nodes:    map[string]*catalog.Node{},
		services: map[string]map[string]*catalog.Service{},
		checks:   map[string]map[string]*catalog.Check{},
	}
}

func (f *fakeCatalog) setFail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = err
}

func (f *fakeCatalog) NodeServices(ctx context.Context, node string) (*catalog.Node, []*catalog.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		return nil, nil, f.fail
	}
	f.reads++
	var n *catalog.Node
	if row := f.nodes[node]; row != nil {
		c := copyNode(row)
		c.RaftIndex = row.RaftIndex
		n = &c
	}
	var out []*catalog.Service
	for _, s := range f.services[node] {
		c := copyService(s)
		c.RaftIndex = s.RaftIndex
		out = append(out, c)
	}
	return n, out, nil
}

func (f *fakeCatalog) NodeChecks(ctx context.Context, node string) ([]*catalog.Check, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		return nil, f.fail
	}
	var out []*catalog.Check
	for _, c := range f.checks[node] {
		cc := *c
		cc.ServiceTags = slices.Clone(c.ServiceTags)
		out = append(out, &cc)
	}
	return out, nil
}

func (f *fakeCatalog) Register(ctx context.Context, r *catalog.Registration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		return f.fail
	}
	name := r.Node.Name
	if name == "" {
		return &catalog.FieldError{Field: "Node", Reason: "missing"}
	}
	if r.Service != nil && r.Service.Name == "bad" {
		return fmt.Errorf("register: %w", &catalog.FieldError{Field: "Service.Service", Reason: "bad"})
	}
	f.writes++
	f.regs = append(f.regs, *r)
	if !r.SkipNodeUpdate || f.nodes[name] == nil {
		n := copyNode(&r.Node)
		if n.Datacenter == "" {
			n.Datacenter = "dc1" // the server stamps its datacenter
		}
		n.RaftIndex = catalog.RaftIndex{CreateIndex: 7, ModifyIndex: 7}
		f.nodes[name] = &n
	}
	if f.services[name] == nil {
		f.services[name] = map[string]*catalog.Service{}
		f.checks[name] = map[string]*catalog.Check{}
	}
	if r.Service != nil {
		s := copyService(r.Service)
		s.Node = name
		s.RaftIndex = catalog.RaftIndex{CreateIndex: 8, ModifyIndex: 9}
		f.services[name][s.ID] = s
	}
	for _, c := range r.Checks {
		cc := copyCheck(c)
		cc.Node = name
		if cc.ServiceID != "" {
			s := f.services[name][cc.ServiceID]
			if s == nil {
				return &catalog.FieldError{Field: "ServiceID", Reason: "unknown service"}
			}
			cc.ServiceName, cc.ServiceTags = s.Name, slices.Clone(s.Tags)
		}
		f.checks[name][cc.CheckID] = cc
	}
	return nil
}

func (f *fakeCatalog) Deregister(ctx context.Context, d *catalog.Deregistration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.fail != nil {
		return f.fail
	}
	f.writes++
	switch {
	case d.CheckID != "":
		delete(f.checks[d.Node], d.CheckID)
	case d.ServiceID != "":
		delete(f.services[d.Node], d.ServiceID)
		for id, c := range f.checks[d.Node] {
			if c.ServiceID == d.ServiceID {
				delete(f.checks[d.Node], id)
			}
		}
	default:
		delete(f.nodes, d.Node)
		delete(f.services, d.Node)
		delete(f.checks, d.Node)
	}
	return nil
}

// put writes rows directly, behind the agent's back.
func (f *fakeCatalog) put(n *catalog.Node, svcs []*catalog.Service, checks []*catalog.Check) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n != nil {
		c := copyNode(n)
		f.nodes[n.Name] = &c
		if f.services[n.Name] == nil {
			f.services[n.Name] = map[string]*catalog.Service{}
			f.checks[n.Name] = map[string]*catalog.Check{}
		}
	}
	for _, s := range svcs {
		f.services[s.Node][s.ID] = copyService(s)
	}
	for _, c := range checks {
		f.checks[c.Node][c.CheckID] = copyCheck(c)
	}
}

func (f *fakeCatalog) service(node, id string) *catalog.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s := f.services[node][id]; s != nil {
		return copyService(s)
	}
	return nil
}

func (f *fakeCatalog) check(node, id string) *catalog.Check {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.checks[node][id]; c != nil {
		cc := *c
		return &cc
	}
	return nil
}

func (f *fakeCatalog) counts() (writes, reads, attempts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes, f.reads, f.attempts
}

var testNode = catalog.Node{
	ID:              "5f2d1f9e-3c1b-4f5a-9a44-2b3a1c6f0e11",
	Name:            "node1",
	Address:         "10.0.0.1",
	TaggedAddresses: map[string]string{"lan": "10.0.0.1"},
	Meta:            map[string]string{"rack": "r1"},
}

// start returns a State for testNode over f, running until the test ends.
func start(t *testing.T, f *fakeCatalog, tweak func(*Config)) *State {
	t.Helper()
	s := newState(t, f, tweak)
	run(t, s)
	return s
}

func newState(t *testing.T, f *fakeCatalog, tweak func(*Config)) *State {
	t.Helper()
	cfg := Config{Node: testNode, Syncer: f, SyncInterval: time.Hour}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.backoffBase = 10 * time.Millisecond
	s.backoffMax = 200 * time.Millisecond
	return s
}

func run(t *testing.T, s *State) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitSynced(t *testing.T, s *State) {
	t.Helper()
	waitFor(t, 5*time.Second, "a successful sync", func() bool {
		ok, err := s.LastSync()
		return !ok.IsZero() && err == nil
	})
}

func webService() *catalog.Service {
	return &catalog.Service{Name: "web", Tags: []string{"v1"}, Port: 8080, Meta: map[string]string{"team": "a"}}
}

func webCheck() *catalog.Check {
	return &catalog.Check{Name: "web-http", Type: "http", Definition: catalog.CheckDefinition{HTTP: "http://127.0.0.1:8080/health", Interval: "10s"}}
}

func TestAddServiceAppearsPromptly(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	waitSynced(t, s)
	f.mu.Lock()
	registered := f.nodes["node1"] != nil
	f.mu.Unlock()
	if !registered {
		t.Fatal("first full sync did not register the node")
	}

	began := time.Now()
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web in the catalog", func() bool {
		return f.service("node1", "web") != nil && f.check("node1", "web-http") != nil
	})
	t.Logf("pushed in %v", time.Since(began))

	got := f.service("node1", "web")
	if got.Name != "web" || got.Port != 8080 || got.Node != "node1" || got.Weights != (catalog.Weights{Passing: 1, Warning: 1}) {
		t.Errorf("catalog service = %+v", got)
	}
	c := f.check("node1", "web-http")
	if c.ServiceID != "web" || c.Status != catalog.HealthCritical || c.Node != "node1" {
		t.Errorf("catalog check = %+v", c)
	}
	// Local reads see the same, with the check's service filled in.
	lc, ok := s.Check("web-http")
	if !ok || lc.ServiceName != "web" || !slices.Equal(lc.ServiceTags, []string{"v1"}) {
		t.Errorf("local check = %+v, %v", lc, ok)
	}

	// One registration per service, the node skipped since it is in sync.
	f.mu.Lock()
	last := f.regs[len(f.regs)-1]
	f.mu.Unlock()
	if last.Service == nil || last.Service.ID != "web" || !last.SkipNodeUpdate || len(last.Checks) != 1 {
		t.Errorf("last registration = %+v", last)
	}
}

func TestUpdateCheckPushedWithinASecond(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheck(&catalog.Check{CheckID: "mem", Name: "memory", Status: catalog.HealthPassing}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the checks in the catalog", func() bool {
		return f.check("node1", "web-http") != nil && f.check("node1", "mem") != nil
	})
	writes, _, _ := f.counts()

	if err := s.UpdateCheck("web-http", catalog.HealthPassing, "HTTP 200"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the status in the catalog", func() bool {
		c := f.check("node1", "web-http")
		return c.Status == catalog.HealthPassing && c.Output == "HTTP 200"
	})
	// A node-level check goes in a registration without a service.
	if err := s.UpdateCheck("mem", catalog.HealthWarning, "85%"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "the node check in the catalog", func() bool {
		return f.check("node1", "mem").Status == catalog.HealthWarning
	})
	f.mu.Lock()
	last := f.regs[len(f.regs)-1]
	f.mu.Unlock()
	if last.Service != nil || len(last.Checks) != 1 || last.Checks[0].CheckID != "mem" {
		t.Errorf("node check registration = %+v", last)
	}

	// The same status and output again is not a change.
	after, _, _ := f.counts()
	if err := s.UpdateCheck("mem", catalog.HealthWarning, "85%"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // longer than the debounce: a push would have happened
	if w, _, _ := f.counts(); w != after {
		t.Errorf("an unchanged update wrote %d times", w-after)
	}
	if after-writes != 2 {
		t.Errorf("two updates took %d writes", after-writes)
	}

	if err := s.UpdateCheck("nope", catalog.HealthPassing, ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("UpdateCheck(unknown) = %v", err)
	}
	if err := s.UpdateCheck("mem", "fine", ""); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("UpdateCheck(bad status) = %v", err)
	}
}

func TestBurstCoalesces(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web", func() bool { return f.check("node1", "web-http") != nil })
	before, _, _ := f.counts()
	for i := range 20 {
		if err := s.UpdateCheck("web-http", catalog.HealthPassing, fmt.Sprint("run ", i)); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, time.Second, "the last output", func() bool { return f.check("node1", "web-http").Output == "run 19" })
	if w, _, _ := f.counts(); w-before > 3 {
		t.Errorf("a burst of 20 updates took %d writes", w-before)
	}
}

func TestFullSyncRestoresWhatWasDeletedBehindTheAgent(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, func(c *Config) { c.SyncInterval = 50 * time.Millisecond })
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web", func() bool { return f.check("node1", "web-http") != nil })

	if err := f.Deregister(context.Background(), &catalog.Deregistration{Node: "node1", ServiceID: "web"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "web restored", func() bool {
		return f.service("node1", "web") != nil && f.check("node1", "web-http") != nil
	})

	// A whole node deleted comes back too, with everything on it.
	if err := f.Deregister(context.Background(), &catalog.Deregistration{Node: "node1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "node restored", func() bool {
		f.mu.Lock()
		n := f.nodes["node1"]
		f.mu.Unlock()
		return n != nil && n.Address == "10.0.0.1" && f.check("node1", "web-http") != nil
	})

	// A row changed behind the agent's back is put back.
	f.mu.Lock()
	f.services["node1"]["web"].Port = 9999
	f.checks["node1"]["web-http"].Status = catalog.HealthPassing
	f.mu.Unlock()
	waitFor(t, 2*time.Second, "web repaired", func() bool {
		return f.service("node1", "web").Port == 8080 && f.check("node1", "web-http").Status == catalog.HealthCritical
	})
}

func TestFullSyncRemovesUnknownEntriesOnly(t *testing.T) {
	f := newFakeCatalog()
	other := catalog.Node{Name: "node2", Address: "10.0.0.2"}
	stale := catalog.Node{Name: "node1", Address: "10.0.0.99"}
	f.put(&stale,
		[]*catalog.Service{{Node: "node1", ID: "old", Name: "old"}, {Node: "node1", ID: "old2", Name: "old2"}},
		[]*catalog.Check{
			{Node: "node1", CheckID: SerfHealthID, Name: "Serf Health Status", Status: catalog.HealthPassing},
			{Node: "node1", CheckID: "old-check", ServiceID: "old", Status: catalog.HealthPassing},
			{Node: "node1", CheckID: "old-node-check", Status: catalog.HealthPassing},
		})
	f.put(&other,
		[]*catalog.Service{{Node: "node2", ID: "db", Name: "db"}},
		[]*catalog.Check{{Node: "node2", CheckID: "db-check", ServiceID: "db", Status: catalog.HealthPassing}})

	s := newState(t, f, nil)
	if err := s.AddService(webService(), nil, nil); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	waitSynced(t, s)

	f.mu.Lock()
	defer f.mu.Unlock()
	if got := slices.Sorted(maps.Keys(f.services["node1"])); !slices.Equal(got, []string{"web"}) {
		t.Errorf("node1 services = %v, want [web]", got)
	}
	if got := slices.Sorted(maps.Keys(f.checks["node1"])); !slices.Equal(got, []string{SerfHealthID}) {
		t.Errorf("node1 checks = %v, want [serfHealth]", got)
	}
	if f.nodes["node1"].Address != "10.0.0.1" {
		t.Errorf("node1 address = %q, want it fixed", f.nodes["node1"].Address)
	}
	if f.services["node2"]["db"] == nil || f.checks["node2"]["db-check"] == nil || f.nodes["node2"] == nil {
		t.Error("another node's entries were touched")
	}
	// old-check went with its service: no separate deregistration.
	// Writes: dereg old, dereg old2, dereg old-node-check, node, web.
	if f.writes != 5 {
		t.Errorf("sync took %d writes, want 5", f.writes)
	}
}

func TestRemoveDeregisters(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	if err := s.AddService(webService(), []*catalog.Check{webCheck(), {CheckID: "web-tcp", Name: "tcp"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheck(&catalog.Check{CheckID: "mem", Name: "memory"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "all in the catalog", func() bool {
		return f.check("node1", "web-tcp") != nil && f.check("node1", "mem") != nil
	})

	// Replacing the service drops its checks that are not in the new list.
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web-tcp gone", func() bool { return f.check("node1", "web-tcp") == nil })
	if _, ok := s.Check("web-tcp"); ok {
		t.Error("web-tcp still local")
	}

	if err := s.RemoveCheck("mem"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveService("web"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "all gone", func() bool {
		return f.check("node1", "mem") == nil && f.service("node1", "web") == nil && f.check("node1", "web-http") == nil
	})
	if len(s.Services()) != 0 || len(s.Checks()) != 0 {
		t.Errorf("local state not empty: %v %v", s.Services(), s.Checks())
	}
	if err := s.RemoveService("web"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("RemoveService(removed) = %v", err)
	}
	if err := s.RemoveCheck("mem"); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("RemoveCheck(removed) = %v", err)
	}

	// Removed and re-added before a sync: the new one wins.
	waitSynced(t, s)
	if err := s.AddService(webService(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveService("web"); err != nil {
		t.Fatal(err)
	}
	svc := webService()
	svc.Port = 7070
	if err := s.AddService(svc, nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web 7070", func() bool {
		got := f.service("node1", "web")
		return got != nil && got.Port == 7070
	})
}

func TestValidation(t *testing.T) {
	s := newState(t, newFakeCatalog(), nil)
	var fe *catalog.FieldError
	if err := s.AddCheck(&catalog.Check{CheckID: "c", ServiceID: "ghost"}, nil); !errors.As(err, &fe) || !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("AddCheck(unknown service) = %v, want a FieldError", err)
	}
	if err := s.AddCheck(&catalog.Check{CheckID: SerfHealthID}, nil); !errors.As(err, &fe) {
		t.Errorf("AddCheck(serfHealth) = %v, want a FieldError", err)
	}
	if err := s.AddService(&catalog.Service{Name: "not a label"}, nil, nil); !errors.As(err, &fe) {
		t.Errorf("AddService(bad name) = %v, want a FieldError", err)
	}
	if err := s.AddService(webService(), []*catalog.Check{{CheckID: "a"}, {CheckID: "a"}}, nil); !errors.As(err, &fe) {
		t.Errorf("AddService(duplicate checks) = %v, want a FieldError", err)
	}
	if len(s.Services()) != 0 {
		t.Error("a rejected service was stored")
	}
	if _, err := New(Config{Node: testNode}); err == nil {
		t.Error("New without a Syncer succeeded")
	}
}

func TestFailureRetriedWithBackoff(t *testing.T) {
	f := newFakeCatalog()
	f.setFail(errors.New("connection refused"))
	s := start(t, f, nil)
	if err := s.AddService(webService(), nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "a few failed attempts", func() bool {
		_, _, a := f.counts()
		return a >= 4
	})
	ok, err := s.LastSync()
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !ok.IsZero() {
		t.Errorf("LastSync = %v, %v; want the error and no success", ok, err)
	}
	// Backoff: over 300ms, base 10ms doubling to 200ms allows only a handful
	// of attempts (each full-sync attempt is one call).
	_, _, a0 := f.counts()
	time.Sleep(300 * time.Millisecond)
	if _, _, a1 := f.counts(); a1-a0 > 5 {
		t.Errorf("%d attempts in 300ms: no backoff", a1-a0)
	}
	// Local state keeps working meanwhile.
	if err := s.AddCheck(&catalog.Check{CheckID: "mem", Name: "memory"}, nil); err != nil {
		t.Fatal(err)
	}

	f.setFail(nil)
	waitFor(t, 2*time.Second, "web and mem after recovery", func() bool {
		return f.service("node1", "web") != nil && f.check("node1", "mem") != nil
	})
	waitSynced(t, s)
}

func TestSyncFullEndsBackoff(t *testing.T) {
	f := newFakeCatalog()
	f.setFail(errors.New("down"))
	s := newState(t, f, nil)
	s.backoffBase, s.backoffMax = time.Hour, time.Hour
	run(t, s)
	waitFor(t, time.Second, "a failed sync", func() bool { _, err := s.LastSync(); return err != nil })
	f.setFail(nil)
	s.SyncFull()
	waitSynced(t, s)
}

func TestRejectedRegistrationDoesNotBlockOthers(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	waitSynced(t, s)
	if err := s.AddService(&catalog.Service{Name: "bad"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddService(webService(), nil, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Second, "web", func() bool { return f.service("node1", "web") != nil })
	waitFor(t, time.Second, "the rejection in LastSync", func() bool {
		_, err := s.LastSync()
		return errors.Is(err, catalog.ErrInvalid)
	})
	// No backoff retries of a rejection: it waits for a change or a full sync.
	_, _, a0 := f.counts()
	time.Sleep(100 * time.Millisecond)
	if _, _, a1 := f.counts(); a1 != a0 {
		t.Errorf("a rejected registration was retried %d times", a1-a0)
	}
}

func TestNothingSyncedTwice(t *testing.T) {
	f := newFakeCatalog()
	s := newState(t, f, func(c *Config) { c.SyncInterval = 20 * time.Millisecond })
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, nil); err != nil {
		t.Fatal(err)
	}
	tagged := &catalog.Service{ID: "api-1", Name: "api", Tags: []string{"a"}, EnableTagOverride: true,
		TaggedAddresses: map[string]catalog.ServiceAddress{"lan": {Address: "10.0.0.1", Port: 80}}}
	if err := s.AddService(tagged, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheck(&catalog.Check{Name: "mem", Status: catalog.HealthPassing, Output: "ok"}, nil); err != nil {
		t.Fatal(err)
	}
	run(t, s)
	waitSynced(t, s)
	w0, r0, _ := f.counts()
	if w0 != 3 { // node with mem, web with its check, api-1
		t.Errorf("first sync took %d writes, want 3", w0)
	}
	waitFor(t, 5*time.Second, "five more full syncs", func() bool {
		_, r, _ := f.counts()
		return r >= r0+5
	})
	if w, _, _ := f.counts(); w != w0 {
		t.Errorf("full syncs with nothing changed wrote %d times", w-w0)
	}

	// EnableTagOverride: tags changed in the catalog are adopted, not
	// overwritten.
	f.mu.Lock()
	f.services["node1"]["api-1"].Tags = []string{"b", "c"}
	f.mu.Unlock()
	waitFor(t, 2*time.Second, "tags adopted", func() bool {
		svc, _ := s.Service("api-1")
		return slices.Equal(svc.Tags, []string{"b", "c"})
	})
	if got := f.service("node1", "api-1").Tags; !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("catalog tags = %v, overwritten", got)
	}
	if w, _, _ := f.counts(); w != w0 {
		t.Errorf("tag override wrote %d times", w-w0)
	}
}

func TestSetNode(t *testing.T) {
	f := newFakeCatalog()
	s := start(t, f, nil)
	waitSynced(t, s)
	w0, _, _ := f.counts()
	s.SetNode(testNode) // unchanged: nothing to push
	n := testNode
	n.Meta = map[string]string{"rack": "r2"}
	s.SetNode(n)
	waitFor(t, time.Second, "new meta", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.nodes["node1"].Meta["rack"] == "r2"
	})
	if w, _, _ := f.counts(); w != w0+1 {
		t.Errorf("SetNode took %d writes, want 1", w-w0)
	}
}

func TestChanged(t *testing.T) {
	s := newState(t, newFakeCatalog(), nil)
	ch := s.Changed()
	select {
	case <-ch:
		t.Fatal("closed before a change")
	default:
	}
	if err := s.AddService(webService(), nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("not closed after AddService")
	}
	if s.Changed() == ch {
		t.Error("channel not replaced")
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil))
	tweak := func(c *Config) { c.DataDir = dir; c.Logger = logger }

	s := newState(t, newFakeCatalog(), tweak)
	if err := s.AddService(webService(), []*catalog.Check{webCheck()}, []byte(`{"service":"web"}`)); err != nil {
		t.Fatal(err)
	}
	odd := &catalog.Service{ID: "odd id: ü " + strings.Repeat("x", 240), Name: "odd"}
	if err := s.AddService(odd, nil, []byte("odd")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddService(&catalog.Service{Name: "fromfile"}, nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheck(&catalog.Check{CheckID: "mem", Name: "memory"}, []byte("mem-def")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheck(&catalog.Check{CheckID: "web-extra", ServiceID: "web"}, []byte("extra-def")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "local")); err != nil || !fi.IsDir() {
		t.Fatalf("DataDir/local: %v", err)
	}

	// A corrupt file and a leftover temp file.
	corrupt := filepath.Join(dir, "local", kindService, strings.Repeat("0", 64)+".json")
	if err := os.WriteFile(corrupt, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "local", kindCheck, "abc.json.tmp123"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	s2 := newState(t, newFakeCatalog(), tweak)
	svcs, checks, err := s2.Persisted()
	if err != nil {
		t.Fatal(err)
	}
	wantSvcs := map[string][]byte{"web": []byte(`{"service":"web"}`), odd.ID: []byte("odd")}
	if !maps.EqualFunc(svcs, wantSvcs, bytes.Equal) {
		t.Errorf("persisted services = %q, want %q", svcs, wantSvcs)
	}
	wantChecks := map[string][]byte{"mem": []byte("mem-def"), "web-extra": []byte("extra-def")}
	if !maps.EqualFunc(checks, wantChecks, bytes.Equal) {
		t.Errorf("persisted checks = %q, want %q", checks, wantChecks)
	}
	logMu.Lock()
	if !strings.Contains(logs.String(), corrupt) {
		t.Errorf("log does not name the corrupt file %s:\n%s", corrupt, logs.String())
	}
	logMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "local", kindCheck, "abc.json.tmp123")); !os.IsNotExist(err) {
		t.Errorf("temp file left behind: %v", err)
	}

	// RemoveService deletes its blob and the blobs of its checks; a service
	// re-added from a config file (persist nil) loses its blob.
	if err := s.RemoveService("web"); err != nil {
		t.Fatal(err)
	}
	if err := s.AddService(odd, nil, nil); err != nil {
		t.Fatal(err)
	}
	svcs, checks, err = s.Persisted()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 0 || !maps.EqualFunc(checks, map[string][]byte{"mem": []byte("mem-def")}, bytes.Equal) {
		t.Errorf("after removal: services %q, checks %q", svcs, checks)
	}
	if err := s.RemoveCheck("mem"); err != nil {
		t.Fatal(err)
	}
	if _, checks, _ = s.Persisted(); len(checks) != 0 {
		t.Errorf("after RemoveCheck: checks %q", checks)
	}
}

func TestNoPersistenceWithoutDataDir(t *testing.T) {
	s := newState(t, newFakeCatalog(), nil)
	if err := s.AddService(webService(), nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	svcs, checks, err := s.Persisted()
	if err != nil || len(svcs) != 0 || len(checks) != 0 {
		t.Errorf("Persisted() = %v, %v, %v", svcs, checks, err)
	}
}

func TestScaleAndBackoff(t *testing.T) {
	for _, tc := range []struct{ nodes, want int }{{1, 1}, {128, 1}, {129, 2}, {256, 2}, {257, 3}, {512, 3}, {10000, 8}} {
		if got := scaleFactor(tc.nodes); got != tc.want {
			t.Errorf("scaleFactor(%d) = %d, want %d", tc.nodes, got, tc.want)
		}
	}
	s := newState(t, newFakeCatalog(), func(c *Config) {
		c.SyncInterval = 0
		c.ClusterSize = func() int { return 1000 }
	})
	if d := s.fullInterval(); d < 4*time.Minute || d > 4*time.Minute+4*time.Minute/16 {
		t.Errorf("full interval at 1000 nodes = %v, want 4m plus up to 1/16", d)
	}
	s.backoffBase, s.backoffMax = 250*time.Millisecond, 30*time.Second
	for n, want := range map[int]time.Duration{1: 250 * time.Millisecond, 2: 500 * time.Millisecond, 4: 2 * time.Second} {
		if d := s.backoff(n); d < want*3/4 || d > want*5/4 {
			t.Errorf("backoff(%d) = %v, want about %v", n, d, want)
		}
	}
	if d := s.backoff(100); d > 30*time.Second || d < 20*time.Second {
		t.Errorf("backoff(100) = %v, want near the 30s cap", d)
	}
}

func TestRunTwice(t *testing.T) {
	s := start(t, newFakeCatalog(), nil)
	waitSynced(t, s)
	if err := s.Run(context.Background()); err == nil {
		t.Error("a second Run started")
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
