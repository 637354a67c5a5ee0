package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/metrics"
)

// metrics serves /v1/agent/metrics: Prometheus text with
// ?format=prometheus (Consul's path, so existing scrape configs work),
// else Consul's JSON shape.
func (h *handler) metrics(w http.ResponseWriter, r *http.Request) {
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
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		b, _ := json.Marshal(body)
		w.Write(append(b, '\n'))
		return
	}
	h.writeJSON(w, r, body)
}
