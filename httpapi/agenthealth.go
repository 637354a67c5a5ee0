package httpapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// The local health endpoints, /v1/agent/health/service/id/{id} and
// /v1/agent/health/service/name/{name}, answer from the agent's own state,
// without asking the servers: a load balancer or an orchestrator on the host
// can ask "is this instance healthy?" even while no server is reachable. As
// in Consul the status code carries the answer (200 passing, 429 warning,
// 503 critical or maintenance, 404 unknown), and ?format=text or an Accept
// of text/plain gives the bare status as the body.

// serviceHealth is one local instance with its checks and their aggregate.
type serviceHealth struct {
	AggregatedStatus string
	Service          *api.AgentService
	Checks           []*api.HealthCheck
}

// healthStatusMaintenance is the aggregate of an instance in maintenance
// (its own or its node's): Consul's api.HealthMaint.
const healthStatusMaintenance = "maintenance"

// localHealth aggregates svc's checks and its node's: maintenance beats
// critical beats warning beats passing, as in Consul's
// HealthChecks.AggregatedStatus.
func (h *handler) localHealth(svc *catalog.Service, checks []*catalog.Check) serviceHealth {
	out := serviceHealth{Service: h.fromLocalService(svc), Checks: []*api.HealthCheck{}}
	var mine []*catalog.Check
	maintenance := false
	for _, c := range checks {
		if c.ServiceID != svc.ID && c.ServiceID != "" {
			continue
		}
		mine = append(mine, c)
		out.Checks = append(out.Checks, fromCheck(c))
		maintenance = maintenance || catalog.IsMaintenanceCheck(c.CheckID)
	}
	out.AggregatedStatus = catalog.AggregatedStatus(mine)
	if maintenance {
		out.AggregatedStatus = healthStatusMaintenance
	}
	return out
}

// healthCode is the status code of an aggregate: 200 passing, 429 warning,
// 503 otherwise.
func healthCode(status string) int {
	switch status {
	case catalog.HealthPassing:
		return http.StatusOK
	case catalog.HealthWarning:
		return http.StatusTooManyRequests
	}
	return http.StatusServiceUnavailable
}

// wantsText reports whether the client asked for the bare status: an Accept
// of text/plain, or ?format=text (which wins over Accept when given).
func wantsText(r *http.Request) bool {
	if f := r.URL.Query().Get("format"); f != "" {
		return f == "text"
	}
	return strings.HasPrefix(r.Header.Get("Accept"), "text/plain")
}

// writeHealth answers with code and either status as text or body as JSON.
func (h *handler) writeHealth(w http.ResponseWriter, r *http.Request, code int, status string, body any) {
	if wantsText(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(code)
		fmt.Fprint(w, status)
		return
	}
	h.writeJSONCode(w, r, code, body)
}

// checkFormat refuses a ?format other than text or json.
func checkFormat(r *http.Request) error {
	switch f := r.URL.Query().Get("format"); f {
	case "", "text", "json":
		return nil
	default:
		return badRequest("format: %q is neither text nor json", f)
	}
}

// agentHealthByID answers GET /v1/agent/health/service/id/{id}.
func (h *handler) agentHealthByID(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := pathID(r, "service")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	for _, svc := range h.agent.Services() {
		if svc.ID != id {
			continue
		}
		if !authz(r).ServiceRead(svc.Name) {
			h.fail(w, r, forbidden("service:read", svc.Name))
			return
		}
		res := h.localHealth(svc, h.agent.Checks())
		h.writeHealth(w, r, healthCode(res.AggregatedStatus), res.AggregatedStatus, res)
		return
	}
	reason := fmt.Sprintf("ServiceId %s not found", id)
	h.writeHealth(w, r, http.StatusNotFound, reason, serviceHealth{AggregatedStatus: catalog.HealthCritical})
}

// agentHealthByName answers GET /v1/agent/health/service/name/{name}: every
// local instance of the service, and the worst of their codes (404 when
// there is none).
func (h *handler) agentHealthByName(w http.ResponseWriter, r *http.Request) {
	if err := checkFormat(r); err != nil {
		h.fail(w, r, err)
		return
	}
	name := r.PathValue("name")
	if name == "" {
		h.fail(w, r, badRequest("service name: missing from the path"))
		return
	}
	if !authz(r).ServiceRead(name) {
		h.fail(w, r, forbidden("service:read", name))
		return
	}
	code, status := http.StatusNotFound, fmt.Sprintf("ServiceName %s Not Found", name)
	out := []serviceHealth{}
	checks := h.agent.Checks()
	for _, svc := range h.agent.Services() {
		if svc.Name != name {
			continue
		}
		res := h.localHealth(svc, checks)
		out = append(out, res)
		// The worst wins: 200 passing < 429 warning < 503 critical.
		if c := healthCode(res.AggregatedStatus); code == http.StatusNotFound || c > code {
			code, status = c, res.AggregatedStatus
		}
	}
	h.writeHealth(w, r, code, status, out)
}
