package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/catalog"
)

func TestQueryOptions(t *testing.T) {
	within := func(base time.Duration) [2]time.Duration { return [2]time.Duration{base, base + base/16} }
	tests := []struct {
		query       string
		minIndex    uint64
		wait        [2]time.Duration // inclusive bounds: jitter is random
		consistency catalog.Consistency
		effective   string
	}{
		{"", 0, within(5 * time.Minute), catalog.ConsistencyDefault, "leader"},
		{"index=42", 42, within(5 * time.Minute), catalog.ConsistencyDefault, "leader"},
		{"index=42&wait=10s", 42, within(10 * time.Second), catalog.ConsistencyDefault, "leader"},
		{"index=1&wait=10000ms", 1, within(10 * time.Second), catalog.ConsistencyDefault, "leader"}, // the official client's form
		{"wait=5m", 0, within(5 * time.Minute), catalog.ConsistencyDefault, "leader"},
		{"wait=1h", 0, within(10 * time.Minute), catalog.ConsistencyDefault, "leader"},
		{"wait=0s", 0, within(5 * time.Minute), catalog.ConsistencyDefault, "leader"},
		{"stale", 0, within(5 * time.Minute), catalog.ConsistencyStale, "stale"},
		{"stale=&cached", 0, within(5 * time.Minute), catalog.ConsistencyStale, "stale"},
		{"consistent", 0, within(5 * time.Minute), catalog.ConsistencyConsistent, "consistent"},
		{"dc=dc1", 0, within(5 * time.Minute), catalog.ConsistencyDefault, "leader"},
	}
	f, _, srv := newTestServer(t)
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			resp, body := do(t, "GET", srv.URL+"/v1/catalog/nodes?"+tt.query, "")
			if resp.StatusCode != 200 || body != "[]\n" {
				t.Fatalf("%d %q", resp.StatusCode, body)
			}
			q := f.LastQuery()
			if q.MinIndex != tt.minIndex || q.Consistency != tt.consistency {
				t.Errorf("options = %+v, want index %d consistency %d", q, tt.minIndex, tt.consistency)
			}
			if q.MaxWait < tt.wait[0] || q.MaxWait > tt.wait[1] {
				t.Errorf("MaxWait = %v, want within %v", q.MaxWait, tt.wait)
			}
			if got := resp.Header.Get("X-Consul-Effective-Consistency"); got != tt.effective {
				t.Errorf("X-Consul-Effective-Consistency = %q, want %q", got, tt.effective)
			}
		})
	}
}

func TestQueryOptionErrors(t *testing.T) {
	tests := []struct {
		query string
		code  int
		want  string
	}{
		{"stale&consistent", 400, "Cannot specify ?stale with ?consistent"},
		{"index=abc", 400, "index"},
		{"index=-1", 400, "index"},
		{"wait=soon", 400, "wait"},
		{"wait=10", 400, "wait"},
		{"wait=-1s", 400, "wait"},
		{"dc=dc2", 500, "No path to datacenter"},
		{"filter=Node%20==", 400, "filter"},    // a syntax error
		{"filter=a&filter=b", 400, "filter: "}, // one expression, on the routes that take one
		// Nested parentheses cost the parser exponential work: bounded.
		{"filter=" + url.QueryEscape(strings.Repeat("(", 200)+"a == b"+strings.Repeat(")", 200)), 400, "filter"},
	}
	f, _, srv := newTestServer(t)
	for _, tt := range tests {
		for _, path := range []string{"/v1/catalog/nodes", "/v1/health/state/any", "/v1/status/leader", "/v1/snapshot"} {
			resp, body := do(t, "GET", srv.URL+path+"?"+tt.query, "")
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("%s?%s: %d %q, want %d naming %q", path, tt.query, resp.StatusCode, body, tt.code, tt.want)
			}
		}
	}
	if f.LastQuery() != (catalog.QueryOptions{}) {
		t.Errorf("backend was queried: %+v", f.LastQuery())
	}
}

func TestBlockingWaitBounds(t *testing.T) {
	for range 1000 {
		if w := blockingWait(16 * time.Second); w < 16*time.Second || w >= 17*time.Second {
			t.Fatalf("blockingWait(16s) = %v", w)
		}
	}
	if w := blockingWait(time.Nanosecond); w != time.Nanosecond {
		t.Errorf("blockingWait(1ns) = %v", w)
	}
}

func TestQueryMetaHeaders(t *testing.T) {
	f, c, srv := newTestServer(t)
	// An empty catalog has index 0; the header must still be at least 1.
	resp, _ := do(t, "GET", srv.URL+"/v1/health/state/any", "")
	h := resp.Header
	if h.Get("X-Consul-Index") != "1" || h.Get("X-Consul-KnownLeader") != "true" || h.Get("X-Consul-LastContact") != "0" {
		t.Errorf("headers = %v", h)
	}
	registerFixture(t, c)
	_, meta, err := c.Health().Service("web", "", false, &consulapi.QueryOptions{AllowStale: true})
	if err != nil || meta.LastIndex != 3 || !meta.KnownLeader {
		t.Errorf("meta = %+v, %v", meta, err)
	}
	if f.LastQuery().Consistency != catalog.ConsistencyStale {
		t.Errorf("consistency = %v", f.LastQuery().Consistency)
	}
}

// A blocking query ends when its client goes away: the handler passes the
// request's context to the backend.
func TestBlockingQueryEndsWithClient(t *testing.T) {
	f, _, srv := newTestServer(t)
	f.block = true
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/catalog/nodes?index=5&wait=10m", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Wait until the backend holds the query, then hang up.
	for f.LastQuery().MinIndex != 5 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-f.blocked:
		if err != context.Canceled {
			t.Errorf("backend context ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("backend query still blocked after the client went away")
	}
	<-done
}

// The request log names the route, not the URL, and never a token.
func TestRequestLog(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewServer(New(Config{Backend: newFakeBackend(), Logger: logger}))
	defer srv.Close()
	do(t, "GET", srv.URL+"/v1/catalog/service/web?token=secret-query-token", "", "X-Consul-Token", "secret-header-token")
	do(t, "GET", srv.URL+"/v1/nope", "")
	out := buf.String()
	for _, want := range []string{`path="GET /v1/catalog/service/{name}"`, "status=200", "duration=", "status=404"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "secret") {
		t.Errorf("log holds a token:\n%s", out)
	}
}

// TestPretty: ?pretty indents the answer by four spaces, as Consul does, on
// plain reads, on blocking reads (whose encoding is shared) and on agent
// reads; without it the answer is compact; both hold the same JSON.
func TestPretty(t *testing.T) {
	_, c, srv := newTestServer(t)
	registerFixture(t, c)
	_, compact := do(t, "GET", srv.URL+"/v1/catalog/nodes", "")
	_, pretty := do(t, "GET", srv.URL+"/v1/catalog/nodes?pretty", "")
	_, blocking := do(t, "GET", srv.URL+"/v1/catalog/nodes?pretty&index=1&wait=1s", "")
	if strings.Contains(compact, "\n    ") || !strings.Contains(pretty, "[\n    {\n        \"ID\": ") {
		t.Fatalf("compact %q\npretty %q", compact, pretty)
	}
	if blocking != pretty {
		t.Fatalf("blocking pretty answer differs:\n%s\n%s", blocking, pretty)
	}
	var a, b any
	if json.Unmarshal([]byte(compact), &a) != nil || json.Unmarshal([]byte(pretty), &b) != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("pretty and compact hold different JSON")
	}
	if _, body := do(t, "GET", srv.URL+"/v1/agent/self?pretty", ""); !strings.HasPrefix(body, "{\n    \"Config\": {") {
		t.Fatalf("agent self, pretty: %q", body)
	}
}

// TestFilterErrors: an evaluation error names the expression and the
// selector, and a selector that goes through a list says how to write it.
func TestFilterErrors(t *testing.T) {
	_, c, srv := newTestServer(t)
	registerFixture(t, c)
	for _, tc := range []struct{ filter, want string }{
		{`Servce.ID == web`, `Servce`},
		{`Checks.Status == passing`, `any Checks as c { c.Status == passing }`},
	} {
		resp, body := do(t, "GET", srv.URL+"/v1/health/service/web?filter="+url.QueryEscape(tc.filter), "")
		if resp.StatusCode != 400 || !strings.Contains(body, tc.want) || !strings.Contains(body, tc.filter) {
			t.Errorf("filter %s: %d %q, want 400 naming %q", tc.filter, resp.StatusCode, body, tc.want)
		}
	}
	// The suggested form works.
	resp, body := do(t, "GET", srv.URL+"/v1/health/service/web?filter="+url.QueryEscape(`any Checks as c { c.Status == critical }`), "")
	var rows []map[string]any
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &rows) != nil || len(rows) != 1 {
		t.Errorf("any Checks: %d %q", resp.StatusCode, body)
	}
}
