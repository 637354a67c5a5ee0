package checks

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/warren-mesh/warren/catalog"
)

// check_output_max_size: outputs are cut to the configured size, keeping
// the head of an HTTP body and the tail of a script's output, and each
// cut is reported to OnTruncate.
func TestOutputMaxSize(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "HEAD"+strings.Repeat("é", 3000))
	}))
	defer srv.Close()
	var cut atomic.Int64
	m, _ := startManager(t, ManagerConfig{OutputMaxSize: 100, OnTruncate: func() { cut.Add(1) }})
	mustAdd(t, m, Definition{ID: "big", HTTP: srv.URL, Interval: 20 * time.Millisecond})
	out := waitStatus(t, m, "big", catalog.HealthPassing)
	if len(out) > 100 || !strings.HasSuffix(out, truncatedSuffix) || !strings.Contains(out, "Output: HEAD") || !utf8.ValidString(out) {
		t.Fatalf("output of %d bytes: %q", len(out), out)
	}
	eventually(t, "a counted cut", func() bool { return cut.Load() > 0 })

	if err := m.Add(Definition{ID: "ttl", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if err := m.SetTTL("ttl", catalog.HealthPassing, strings.Repeat("x", 500)); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := m.Status("ttl"); len(out) > 100 || !strings.HasSuffix(out, truncatedSuffix) {
		t.Fatalf("TTL output of %d bytes: %q", len(out), out)
	}
	// A short output is not cut and not counted.
	before := cut.Load()
	if err := m.SetTTL("ttl", catalog.HealthPassing, "fine"); err != nil {
		t.Fatal(err)
	}
	if _, out, _ := m.Status("ttl"); out != "fine" || cut.Load() != before {
		t.Fatalf("short output %q, cuts %d -> %d", out, before, cut.Load())
	}
}

func TestCapOutputKeepsScriptTail(t *testing.T) {
	m := NewManager(ManagerConfig{OutputMaxSize: 64})
	out := m.capOutput(KindScript, capTail(strings.Repeat("a", 5000)+"the reason"))
	if len(out) > 64 || !strings.HasPrefix(out, truncatedPrefix) || !strings.HasSuffix(out, "the reason") || strings.Count(out, truncatedPrefix) != 1 {
		t.Fatalf("%d bytes: %q", len(out), out)
	}
}

// Followed redirects: at most 5, GET only (a 307 does not replay a PUT on
// its target), and the definition's token headers stay with the first
// request.
func TestHTTPRedirectPolicy(t *testing.T) {
	var putsAtTarget, tokensAtTarget atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/start", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/target", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			putsAtTarget.Add(1)
		}
		if r.Header.Get("X-Consul-Token") != "" || r.Header.Get("Authorization") != "" {
			tokensAtTarget.Add(1)
		}
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	m, _ := startManager(t, ManagerConfig{})
	token := map[string][]string{"X-Consul-Token": {"secret"}, "Authorization": {"Bearer secret"}}
	mustAdd(t, m, Definition{ID: "put", HTTP: srv.URL + "/start", Method: "PUT", Header: token, FollowRedirects: true, Interval: 20 * time.Millisecond, Status: catalog.HealthPassing})
	mustAdd(t, m, Definition{ID: "get", HTTP: srv.URL + "/start", Header: token, FollowRedirects: true, Interval: 20 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "loop", HTTP: srv.URL + "/loop", FollowRedirects: true, Interval: 20 * time.Millisecond, Status: catalog.HealthPassing})
	if out := waitStatus(t, m, "put", catalog.HealthCritical); !strings.Contains(out, "307") {
		t.Errorf("put: %q", out)
	}
	waitStatus(t, m, "get", catalog.HealthPassing)
	if out := waitStatus(t, m, "loop", catalog.HealthCritical); !strings.Contains(out, "stopped after 5 redirects") {
		t.Errorf("loop: %q", out)
	}
	if putsAtTarget.Load() != 0 || tokensAtTarget.Load() != 0 {
		t.Fatalf("at the redirect target: %d PUTs, %d requests with a token", putsAtTarget.Load(), tokensAtTarget.Load())
	}
}
