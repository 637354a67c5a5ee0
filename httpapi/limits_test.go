package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/audit"
	"github.com/warren-mesh/warren/internal/limits"
)

// blockingBackend holds every blocking read until its context ends.
type blockingBackend struct {
	*fakeBackend
	started chan struct{}
}

func (b *blockingBackend) Services(ctx context.Context, q catalog.QueryOptions, meta map[string]string) (map[string][]string, catalog.QueryMeta, error) {
	if q.MinIndex > 0 {
		select {
		case b.started <- struct{}{}:
		default:
		}
		select {
		case <-ctx.Done():
			return nil, catalog.QueryMeta{}, ctx.Err()
		case <-time.After(q.MaxWait):
			return map[string][]string{}, catalog.QueryMeta{Index: q.MinIndex}, nil
		}
	}
	return b.fakeBackend.Services(ctx, q, meta)
}

// A client at its blocking-query cap gets 429 at once, naming the limit;
// its non-blocking reads still work, and a slot freed is usable again.
func TestBlockingQueriesPerClient(t *testing.T) {
	be := &blockingBackend{fakeBackend: newFakeBackend(), started: make(chan struct{}, 10)}
	rej := limits.NewRejections(nil)
	srv := httptest.NewServer(New(Config{Backend: be, MaxBlockingQueriesPerClient: 3, Rejections: rej}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			// Three different queries (identical ones share one backend read).
			req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/catalog/services?index=5&wait=1m&node-meta=rack:r%d", srv.URL, i), nil)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	for range 3 {
		select {
		case <-be.started:
		case <-time.After(5 * time.Second):
			t.Fatal("blocking queries did not start")
		}
	}
	start := time.Now()
	resp, body := do(t, "GET", srv.URL+"/v1/catalog/services?index=5&wait=1m", "")
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, limits.HTTPBlockingQueriesPerClient) {
		t.Fatalf("fourth blocking query: %d %q, want 429 naming the limit", resp.StatusCode, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("the refusal took %v", took)
	}
	if resp, body := do(t, "GET", srv.URL+"/v1/catalog/services", ""); resp.StatusCode != 200 {
		t.Fatalf("non-blocking read at the cap: %d %q", resp.StatusCode, body)
	}
	if n := rej.Count(limits.HTTPBlockingQueriesPerClient); n != 1 {
		t.Fatalf("rejections %v, want 1", n)
	}
	cancel()
	wg.Wait()
	// The server frees the slots once it sees the clients gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := do(t, "GET", srv.URL+"/v1/catalog/services", "")
		resp2, _ := do(t, "GET", srv.URL+"/v1/catalog/services?index=5&wait=50ms", "")
		if resp.StatusCode == 200 && resp2.StatusCode != 429 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the slots were not freed after the clients left")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MaxBodyBytes sets the JSON body limit: 413 naming it, counted.
func TestConfiguredBodyLimit(t *testing.T) {
	rej := limits.NewRejections(nil)
	srv := httptest.NewServer(New(Config{Backend: newFakeBackend(), MaxBodyBytes: 2048, Rejections: rej}))
	defer srv.Close()
	big := `{"Node":"n1","Address":"10.0.0.1","NodeMeta":{"a":"` + strings.Repeat("x", 3000) + `"}}`
	resp, body := do(t, "PUT", srv.URL+"/v1/catalog/register", big)
	if resp.StatusCode != 413 || !strings.Contains(body, limits.HTTPBodySize) || !strings.Contains(body, "2048") {
		t.Fatalf("%d %q, want 413 naming the limit", resp.StatusCode, body)
	}
	if rej.Count(limits.HTTPBodySize) != 1 {
		t.Fatalf("rejections %v", rej.Count(limits.HTTPBodySize))
	}
	if resp, body := do(t, "PUT", srv.URL+"/v1/catalog/register", `{"Node":"n1","Address":"10.0.0.1"}`); resp.StatusCode != 200 {
		t.Fatalf("small body: %d %q", resp.StatusCode, body)
	}
}

// An absurdly long path is refused before routing, with a body.
func TestLongPath(t *testing.T) {
	srv := httptest.NewServer(New(Config{Backend: newFakeBackend()}))
	defer srv.Close()
	for _, p := range []string{"/v1/catalog/service/", "/v1/agent/service/deregister/", "/v1/health/node/"} {
		method := "GET"
		if strings.Contains(p, "deregister") {
			method = "PUT"
		}
		resp, body := do(t, method, srv.URL+p+strings.Repeat("a", 20<<10), "")
		if resp.StatusCode != 400 || !strings.Contains(body, "path") {
			t.Fatalf("%s: %d %q", p, resp.StatusCode, body)
		}
	}
}

// recordingAuditor keeps the events.
type recordingAuditor struct {
	mu     sync.Mutex
	events []audit.Event
	ctxIDs []*acl.Identity
}

func (a *recordingAuditor) Audit(ctx context.Context, e audit.Event) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, e)
	a.ctxIDs = append(a.ctxIDs, acl.FromContext(ctx))
}

// Writes are audited (route pattern, status, request ID matching the
// response's X-Request-Id, never the query); reads are not; the accessor
// comes from an identity an outer layer put in the context.
func TestAuditMiddleware(t *testing.T) {
	rec := &recordingAuditor{}
	h := New(Config{Backend: newFakeBackend(), Audit: rec})
	withIdentity := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Test-Accessor"); id != "" {
			r = r.WithContext(acl.NewContext(r.Context(), &acl.Identity{AccessorID: id}))
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(withIdentity)
	defer srv.Close()

	resp, _ := do(t, "PUT", srv.URL+"/v1/catalog/register?token=query-secret", `{"Node":"n1","Address":"10.0.0.1"}`,
		"X-Test-Accessor", "acc-1", "X-Consul-Token", "header-secret")
	do(t, "GET", srv.URL+"/v1/catalog/nodes", "")
	do(t, "PUT", srv.URL+"/v1/catalog/register", `{"Node":""}`)
	do(t, "DELETE", srv.URL+"/v1/nowhere", "")

	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.events) != 3 {
		t.Fatalf("%d events, want 3 (two PUTs, one DELETE): %+v", len(rec.events), rec.events)
	}
	e := rec.events[0]
	if e.Route != "PUT /v1/catalog/register" || e.Method != "PUT" || e.Status != 200 || e.AccessorID != "acc-1" ||
		e.RequestID == "" || e.RequestID != resp.Header.Get("X-Request-Id") || !strings.HasPrefix(e.ClientAddr, "127.0.0.1:") || e.Duration <= 0 {
		t.Fatalf("first event %+v", e)
	}
	if s := fmt.Sprintf("%+v", rec.events); strings.Contains(s, "secret") {
		t.Fatalf("a secret in the events: %s", s)
	}
	if e := rec.events[1]; e.Status != 400 || e.AccessorID != "" || e.Result != "error" {
		t.Fatalf("second event %+v", e)
	}
	if e := rec.events[2]; e.Route != "(unmatched)" || e.Status != 404 {
		t.Fatalf("third event %+v", e)
	}
}

// SetAuditAccessor, called inside the audit layer, names the accessor.
func TestSetAuditAccessor(t *testing.T) {
	rec := &recordingAuditor{}
	h := &handler{audit: rec}
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		SetAuditAccessor(r, "acc-inner")
		w.WriteHeader(204)
	})
	srv := httptest.NewServer(h.withRequestState(h.auditWrites(inner)))
	defer srv.Close()
	do(t, "POST", srv.URL+"/x", "")
	if len(rec.events) != 1 || rec.events[0].AccessorID != "acc-inner" || rec.events[0].Status != 204 {
		t.Fatalf("events %+v", rec.events)
	}
}
