package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/metrics"
)

// metrics serves /v1/agent/metrics: Prometheus text with
// ?format=prometheus (Consul's path, so existing scrape configs work),
// else Consul's JSON shape.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
	if err := h.mayAgent(r, false); err != nil {
		h.fail(w, r, err)
		return
	}
	if h.gatherer == nil {
		h.fail(w, r, fmt.Errorf("%w: metrics are not enabled in this process", catalog.ErrNotFound))
		return
	}
	if r.URL.Query().Get("format") == "prometheus" {
		promhttp.HandlerFor(h.gatherer, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}).ServeHTTP(w, r)
		return
	}
	families, err := h.gatherer.Gather()
	if err != nil && len(families) == 0 {
		h.fail(w, r, fmt.Errorf("gather metrics: %w", err))
		return
	}
	h.writeJSON(w, r, metrics.ConsulJSON(families, time.Now()))
}

// live answers while the process serves HTTP at all.
func (h *handler) live(w http.ResponseWriter, r *http.Request) {
	h.writeJSON(w, r, map[string]any{"live": true})
}

// readyz answers 200 when the process can do its job (a leader or a fresh
// view, DNS answering), else 503 with what is missing.
func (h *handler) readyz(w http.ResponseWriter, r *http.Request) {
	ok, missing := true, map[string]string{}
	if h.ready != nil {
		ok, missing = h.ready()
	}
	body := map[string]any{"ready": ok, "not_ready": missing}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
	}
	h.writeJSONCode(w, r, code, body)
}

// MetricsConfig is what the separate metrics listener (-metrics-addr)
// serves.
type MetricsConfig struct {
	// Gatherer is what /v1/agent/metrics serves (both formats). Nil
	// answers 404 "metrics are not enabled".
	Gatherer prometheus.Gatherer
	// EnableDebug adds net/http/pprof under /debug/pprof/ (and
	// /debug/logs). The main API (New) never serves either.
	EnableDebug bool
	// Logs returns the process's recent log lines, served at
	// /debug/logs with EnableDebug (for `warren debug`). Nil: 404.
	Logs   func() []byte
	Logger *slog.Logger
}

// NewMetrics returns the handler of the metrics listener: GET
// /v1/agent/metrics (?format=prometheus or Consul's JSON) and, with
// EnableDebug, /debug/pprof/ and /debug/logs. Everything else is 404.
func NewMetrics(cfg MetricsConfig) http.Handler {
	h := &handler{gatherer: cfg.Gatherer, log: cfg.Logger, dc: "dc1"}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/agent/metrics", h.metrics)
	if cfg.EnableDebug {
		// pprof.Index serves every named profile (/debug/pprof/heap,
		// /debug/pprof/goroutine, ...); the others are not profiles.
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		if cfg.Logs != nil {
			mux.HandleFunc("GET /debug/logs", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.Write(cfg.Logs())
			})
		}
	}
	return mux
}
