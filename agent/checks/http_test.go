package checks

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

func TestHTTPStatuses(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()

	m, rec := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "web", HTTP: srv.URL + "/health", Interval: 20 * time.Millisecond, Timeout: time.Second})

	out := waitStatus(t, m, "web", catalog.HealthPassing)
	if want := "HTTP GET " + srv.URL + "/health: 200 OK Output: hello"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	eventually(t, "passing update", func() bool {
		u := rec.forCheck("web")
		return len(u) > 0 && u[len(u)-1].Status == catalog.HealthPassing
	})

	code.Store(http.StatusTooManyRequests)
	if out := waitStatus(t, m, "web", catalog.HealthWarning); !strings.Contains(out, "429 Too Many Requests") {
		t.Errorf("warning output %q", out)
	}
	code.Store(http.StatusInternalServerError)
	if out := waitStatus(t, m, "web", catalog.HealthCritical); !strings.Contains(out, "500 Internal Server Error Output: hello") {
		t.Errorf("critical output %q", out)
	}
	code.Store(http.StatusNoContent)
	waitStatus(t, m, "web", catalog.HealthPassing)

	srv.Close()
	if out := waitStatus(t, m, "web", catalog.HealthCritical); !strings.Contains(out, "connect") {
		t.Errorf("output for a closed server %q", out)
	}
}

func TestHTTPMethodHeaderBody(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		switch {
		case r.Method != http.MethodPost:
			http.Error(w, "method "+r.Method, http.StatusBadRequest)
		case r.Header.Get("X-Token") != "secret":
			http.Error(w, "no token", http.StatusBadRequest)
		case r.Host != "svc.example":
			http.Error(w, "host "+r.Host, http.StatusBadRequest)
		case r.UserAgent() != userAgent:
			http.Error(w, "user agent "+r.UserAgent(), http.StatusBadRequest)
		case string(b) != `{"ping":1}`:
			http.Error(w, "body "+string(b), http.StatusBadRequest)
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	defer srv.Close()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{
		ID: "post", HTTP: srv.URL, Method: "POST", Body: `{"ping":1}`,
		Header:   map[string][]string{"X-Token": {"secret"}, "Host": {"svc.example"}},
		Interval: 20 * time.Millisecond,
	})
	if out := waitStatus(t, m, "post", catalog.HealthPassing); !strings.HasPrefix(out, "HTTP POST ") {
		t.Errorf("output %q", out)
	}
}

func TestHTTPRedirectsNotFollowedUnlessAsked(t *testing.T) {
	var redirects, targets atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) {
		redirects.Add(1)
		http.Redirect(w, r, "/target", http.StatusFound)
	})
	mux.HandleFunc("/target", func(w http.ResponseWriter, r *http.Request) {
		targets.Add(1)
		fmt.Fprint(w, "internal")
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "r", HTTP: srv.URL + "/redirect", Interval: 10 * time.Millisecond, Status: catalog.HealthPassing})
	if out := waitStatus(t, m, "r", catalog.HealthCritical); !strings.Contains(out, "302 Found") {
		t.Errorf("output %q", out)
	}
	eventually(t, "several probes", func() bool { return redirects.Load() >= 3 })
	if n := targets.Load(); n != 0 {
		t.Fatalf("redirect target requested %d times; redirects must not be followed", n)
	}

	mustAdd(t, m, Definition{ID: "r", HTTP: srv.URL + "/redirect", Interval: 10 * time.Millisecond, FollowRedirects: true})
	if out := waitStatus(t, m, "r", catalog.HealthPassing); !strings.Contains(out, "Output: internal") {
		t.Errorf("output %q", out)
	}
}

func TestHTTPTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "verify", HTTP: srv.URL, Interval: 20 * time.Millisecond, Status: catalog.HealthPassing})
	mustAdd(t, m, Definition{ID: "skip", HTTP: srv.URL, Interval: 20 * time.Millisecond, TLSSkipVerify: true})
	if out := waitStatus(t, m, "verify", catalog.HealthCritical); !strings.Contains(out, "certificate") {
		t.Errorf("output %q", out)
	}
	waitStatus(t, m, "skip", catalog.HealthPassing)
}

func TestHTTPOutputCapped(t *testing.T) {
	big := strings.Repeat("é", 8<<10) // multi-byte, so the cut must respect runes
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, big) }))
	defer srv.Close()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "big", HTTP: srv.URL, Interval: 20 * time.Millisecond})
	out := waitStatus(t, m, "big", catalog.HealthPassing)
	if len(out) > MaxOutputLen || !strings.HasSuffix(out, truncatedSuffix) {
		t.Fatalf("output of %d bytes, suffix %q", len(out), out[max(0, len(out)-30):])
	}
	if err := catalog.ValidateCheck("check", &catalog.Check{CheckID: "big", Output: out}); err != nil {
		t.Fatalf("catalog refuses the output: %v", err)
	}
}

func TestHTTPIgnoresProxyEnvironment(t *testing.T) {
	p := newHTTPProber(&Definition{HTTP: "http://127.0.0.1:1/"})
	if tr := p.client.Transport.(*http.Transport); tr.Proxy != nil {
		t.Fatal("HTTP check transport uses a proxy")
	}
}
