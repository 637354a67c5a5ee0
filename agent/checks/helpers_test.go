package checks

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain fails the run if a check goroutine outlives its test: every
// Manager in these tests is stopped, so none may remain.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leak := leakedCheckGoroutine(); leak != "" {
			fmt.Fprintf(os.Stderr, "leaked check goroutine:\n%s\n", leak)
			code = 1
		}
	}
	os.Exit(code)
}

func leakedCheckGoroutine() string {
	deadline := time.Now().Add(waitTimeout)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leak string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "agent/checks.(*check)") || strings.Contains(g, "agent/checks.(*Manager)") {
				leak = g
				break
			}
		}
		if leak == "" || time.Now().After(deadline) {
			return leak
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitTimeout bounds every wait for a condition; conditions are polled,
// never assumed after a sleep.
const waitTimeout = 5 * time.Second

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type stampedUpdate struct {
	Update
	at time.Time
}

// recorder collects the updates a Manager delivers.
type recorder struct {
	mu      sync.Mutex
	updates []stampedUpdate
}

func (r *recorder) notify(u Update) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updates = append(r.updates, stampedUpdate{u, time.Now()})
}

func (r *recorder) forCheck(id string) []stampedUpdate {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []stampedUpdate
	for _, u := range r.updates {
		if u.CheckID == id {
			out = append(out, u)
		}
	}
	return out
}

// startManager runs a Manager with test timings until the test ends. The
// flap limit is off (1ms) unless cfg sets one.
func startManager(t *testing.T, cfg ManagerConfig) (*Manager, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg.Notify == nil {
		cfg.Notify = rec.notify
	}
	if cfg.MinInterval == 0 {
		cfg.MinInterval = time.Millisecond
	}
	if cfg.MinFlapInterval == 0 {
		cfg.MinFlapInterval = time.Millisecond
	}
	if cfg.OutputUpdateInterval == 0 {
		cfg.OutputUpdateInterval = time.Millisecond
	}
	m := NewManager(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Errorf("Run did not return after cancel")
		}
	})
	return m, rec
}

// waitStatus waits until check id has status and returns its output.
func waitStatus(t *testing.T, m *Manager, id, status string) string {
	t.Helper()
	var got, out string
	deadline := time.Now().Add(waitTimeout)
	for {
		s, o, ok := m.Status(id)
		if ok && s == status {
			return o
		}
		got, out = s, o
		if time.Now().After(deadline) {
			t.Fatalf("check %q: status %q (output %q), want %q", id, got, out, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustAdd(t *testing.T, m *Manager, d Definition) {
	t.Helper()
	if err := m.Add(d); err != nil {
		t.Fatalf("Add: %v", err)
	}
}
