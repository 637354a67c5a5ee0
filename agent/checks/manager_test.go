package checks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// The thresholds as a state machine, fed results directly.
func TestThresholdsUnit(t *testing.T) {
	m := NewManager(ManagerConfig{})
	c := newCheck(m, Definition{ID: "c", TCP: "x:1", Interval: time.Second, SuccessBeforePassing: 2, FailuresBeforeCritical: 3})
	pass := result{catalog.HealthPassing, "ok"}
	warn := result{catalog.HealthWarning, "meh"}
	fail := result{catalog.HealthCritical, "down"}
	steps := []struct {
		in         result
		wantStatus string
		wantOutput string
	}{
		{pass, catalog.HealthCritical, ""}, // 1 success of 2
		{fail, catalog.HealthCritical, ""}, // resets the successes, 1 failure of 3
		{pass, catalog.HealthCritical, ""},
		{warn, catalog.HealthWarning, "meh"}, // warning counts as a success
		{pass, catalog.HealthPassing, "ok"},
		{fail, catalog.HealthPassing, "ok"},
		{fail, catalog.HealthPassing, "ok"},
		{pass, catalog.HealthPassing, "ok"}, // resets the failures
		{fail, catalog.HealthPassing, "ok"},
		{fail, catalog.HealthPassing, "ok"},
		{fail, catalog.HealthCritical, "down"},
		{fail, catalog.HealthCritical, "down"},
	}
	for i, s := range steps {
		c.record(s.in)
		if st, out := c.state(); st != s.wantStatus || out != s.wantOutput {
			t.Fatalf("step %d (%s): %q %q, want %q %q", i, s.in.status, st, out, s.wantStatus, s.wantOutput)
		}
	}
}

// The thresholds against a real target: no change is reported before the
// target has answered the required number of times in a row.
func TestThresholdsHTTP(t *testing.T) {
	var failing atomic.Bool
	var oks, fails atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			fails.Add(1)
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		oks.Add(1)
	}))
	defer srv.Close()

	m, rec := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "h", HTTP: srv.URL, Interval: 10 * time.Millisecond, SuccessBeforePassing: 3, FailuresBeforeCritical: 3})
	waitStatus(t, m, "h", catalog.HealthPassing)
	if n := oks.Load(); n < 3 {
		t.Fatalf("passing after %d successes, want >= 3", n)
	}
	failing.Store(true)
	waitStatus(t, m, "h", catalog.HealthCritical)
	if n := fails.Load(); n < 3 {
		t.Fatalf("critical after %d failures, want >= 3", n)
	}
	eventually(t, "two updates", func() bool { return len(rec.forCheck("h")) == 2 })
	u := rec.forCheck("h")
	if u[0].Status != catalog.HealthPassing || u[1].Status != catalog.HealthCritical {
		t.Fatalf("updates %+v", u)
	}
}

// Flapping is rate-limited: updates of one check are at least
// MinFlapInterval apart, the latest state wins, and a flap back to what was
// last sent sends nothing.
func TestFlapRateLimit(t *testing.T) {
	const gap = 300 * time.Millisecond
	m, rec := startManager(t, ManagerConfig{MinFlapInterval: gap})
	mustAdd(t, m, Definition{ID: "t", TTL: time.Hour})
	set := func(status, output string) {
		t.Helper()
		if err := m.SetTTL("t", status, output); err != nil {
			t.Fatal(err)
		}
	}
	waitUpdates := func(n int) []stampedUpdate {
		t.Helper()
		eventually(t, "updates", func() bool { return len(rec.forCheck("t")) >= n })
		return rec.forCheck("t")
	}

	set(catalog.HealthPassing, "") // first change: at once
	waitUpdates(1)
	set(catalog.HealthWarning, "w")  // held ...
	set(catalog.HealthCritical, "c") // ... and superseded
	waitUpdates(2)
	set(catalog.HealthPassing, "") // flaps back to what was sent ...
	set(catalog.HealthCritical, "c")
	set(catalog.HealthWarning, "final") // ... and settles
	u := waitUpdates(3)

	want := []Update{
		{"t", catalog.HealthPassing, ""},
		{"t", catalog.HealthCritical, "c"},
		{"t", catalog.HealthWarning, "final"},
	}
	if len(u) != len(want) {
		t.Fatalf("updates %+v, want %+v", u, want)
	}
	for i := range want {
		if u[i].Update != want[i] {
			t.Errorf("update %d: %+v, want %+v", i, u[i].Update, want[i])
		}
		// Notify is stamped just after the send decision; allow for that.
		if i > 0 && u[i].at.Sub(u[i-1].at) < gap-20*time.Millisecond {
			t.Errorf("updates %d and %d only %s apart", i-1, i, u[i].at.Sub(u[i-1].at))
		}
	}
}

// A target flipping on every probe yields at most one update per
// MinFlapInterval.
func TestFlapRateLimitHTTP(t *testing.T) {
	const gap = 200 * time.Millisecond
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()

	m, rec := startManager(t, ManagerConfig{MinFlapInterval: gap})
	start := time.Now()
	mustAdd(t, m, Definition{ID: "flap", HTTP: srv.URL, Interval: 5 * time.Millisecond})
	eventually(t, "many probes", func() bool { return n.Load() >= 60 })
	got := len(rec.forCheck("flap")) // before elapsed: every counted update is inside it
	elapsed := time.Since(start)
	if limit := int(elapsed/gap) + 1; got > limit {
		t.Fatalf("%d updates in %s with a %s flap limit (max %d)", got, elapsed, gap, limit)
	}
	if got == 0 {
		t.Fatal("no updates at all")
	}
}

// A change of output alone waits for OutputUpdateInterval (Consul's
// check_update_interval); a status change does not.
func TestOutputOnlyChangesAreDeferred(t *testing.T) {
	const outputGap = 200 * time.Millisecond
	m, rec := startManager(t, ManagerConfig{OutputUpdateInterval: outputGap})
	mustAdd(t, m, Definition{ID: "t", TTL: time.Hour})
	m.SetTTL("t", catalog.HealthPassing, "1")
	eventually(t, "first update", func() bool { return len(rec.forCheck("t")) == 1 })
	m.SetTTL("t", catalog.HealthPassing, "2")
	m.SetTTL("t", catalog.HealthPassing, "3")
	eventually(t, "output update", func() bool { return len(rec.forCheck("t")) == 2 })
	u := rec.forCheck("t")
	if u[1].Output != "3" || u[1].at.Sub(u[0].at) < outputGap-20*time.Millisecond {
		t.Fatalf("output update %+v, %s after the first", u[1].Update, u[1].at.Sub(u[0].at))
	}
}

func TestAddReplaceRemove(t *testing.T) {
	m := NewManager(ManagerConfig{MinInterval: time.Millisecond})
	d := Definition{ID: "t", TTL: time.Hour, Status: catalog.HealthPassing}
	mustAdd(t, m, d) // before Run: starts with it
	if s, _, ok := m.Status("t"); !ok || s != catalog.HealthPassing {
		t.Fatalf("status before Run: %q %v", s, ok)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	first := m.get("t")
	eventually(t, "the check to start", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return first.started
	})
	mustAdd(t, m, d)
	if m.get("t") != first {
		t.Fatal("an identical definition restarted the check")
	}
	d.TTL = 2 * time.Hour
	mustAdd(t, m, d)
	second := m.get("t")
	if second == first {
		t.Fatal("a changed definition did not replace the check")
	}
	select {
	case <-first.done:
	default:
		t.Fatal("the replaced check's goroutines still run after Add returned")
	}
	m.Remove("t")
	if _, _, ok := m.Status("t"); ok {
		t.Fatal("removed check still has a status")
	}
	select {
	case <-second.done:
	default:
		t.Fatal("the removed check's goroutines still run after Remove returned")
	}
	m.Remove("t") // unknown: no-op

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := m.Add(d); !errors.Is(err, ErrStopped) {
		t.Fatalf("Add after Run: %v", err)
	}
}

func TestDeregisterCriticalServiceAfter(t *testing.T) {
	reaped := make(chan [2]string, 1)
	m, _ := startManager(t, ManagerConfig{Reap: func(svc, id string) { reaped <- [2]string{svc, id} }})
	start := time.Now()
	mustAdd(t, m, Definition{ID: "db-tcp", ServiceID: "db", TCP: "127.0.0.1:1", Interval: 20 * time.Millisecond, DeregisterCriticalServiceAfter: 150 * time.Millisecond})
	select {
	case got := <-reaped:
		if got != [2]string{"db", "db-tcp"} {
			t.Fatalf("reaped %v", got)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("reaped after %s, before the 150ms", d)
		}
	case <-time.After(waitTimeout):
		t.Fatal("service never reaped")
	}
}
