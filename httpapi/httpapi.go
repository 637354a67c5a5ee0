// Package httpapi serves Warren's HTTP API in Consul's v1 wire format: it
// decodes a request, calls the Backend, and encodes the answer. It holds no
// business logic; validation lives in catalog and the work in the Backend.
// Only the agent wires it; it imports catalog and api.
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/internal/logging"
)

// Default body limits (Config.MaxBodyBytes overrides the first).
// Snapshots are whole-state archives and get their own limit.
const (
	maxBodyBytes     = 1 << 20
	maxSnapshotBytes = 1 << 30
)

// Config is what the HTTP API needs.
type Config struct {
	Backend Backend
	// Logger gets a debug line per request and an error line per failure
	// the client did not cause. Nil discards.
	Logger *slog.Logger
	// Datacenter is ours; a request naming another gets "No path to
	// datacenter". Empty means "dc1".
	Datacenter string
	// Agent serves the /v1/agent endpoints. Nil (a process without a local
	// agent) answers them 404 "this process runs no local agent", except
	// /v1/agent/self, which then reports what Backend.Self knows.
	Agent Agent
	// Registerer gets the HTTP metrics; Gatherer is what
	// /v1/agent/metrics serves. Nil disables each.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Ready reports whether the process is ready to serve, and if not,
	// what is missing, for /v1/agent/health/ready. Nil means always ready.
	Ready func() (bool, map[string]string)
	// ACL resolves request tokens; nil runs without ACLs (every request
	// allowed). The /v1/acl endpoints need a Backend that is also an
	// ACLBackend.
	ACL ACLResolver
	// DefaultToken is the token of requests that carry none (Consul's
	// acl.tokens.default, or what PUT /v1/agent/token/default set since);
	// nil or "" is the anonymous token.
	DefaultToken func() string

	// Limits (httpapi/limits.go). MaxBodyBytes is the largest JSON body
	// (0: 1 MiB); MaxBlockingQueriesPerClient caps one client IP's
	// blocking queries in flight (0: no cap). Rejections counts both;
	// nil counts nothing.
	MaxBodyBytes                int64
	MaxBlockingQueriesPerClient int
	Rejections                  *limits.Rejections
	// Audit gets one event per write request (httpapi/audit.go); nil
	// audits nothing.
	Audit Auditor

	// Stats adds sections to /v1/agent/self's Stats, as Consul's
	// ("consul", "raft", "serf_lan"); nil adds none. XDS is its xDS
	// section; nil leaves that out.
	Stats func() map[string]map[string]string
	XDS   *api.AgentXDS
	// Monitor streams the process's logs at /v1/agent/monitor; nil
	// answers that route 404.
	Monitor *logging.Monitor
	// OnTokenUpdate applies a token set through PUT /v1/agent/token/{kind}
	// ("default" or "agent"); a new default token reaches the handler
	// through DefaultToken. Nil answers that route 404.
	OnTokenUpdate func(kind, secret string)
}

type handler struct {
	backend  Backend
	agent    Agent
	log      *slog.Logger
	dc       string
	gatherer prometheus.Gatherer
	ready    func() (bool, map[string]string)
	stats    func() map[string]map[string]string
	xds      *api.AgentXDS
	monitor  *logging.Monitor
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	shared   *sharedBodies
	flights  *blockingFlights

	acl           ACLResolver
	aclBackend    ACLBackend
	defaultToken  func() string
	onTokenUpdate func(kind, secret string)
	maxBody       int64
	blocking      *limits.PerKey
	rejections    *limits.Rejections
	audit         Auditor
}

// New returns the handler of every /v1 route. Unknown paths get 404 and a
// known path with the wrong method 405 (with an Allow header).
func New(cfg Config) http.Handler {
	h := &handler{backend: cfg.Backend, agent: cfg.Agent, log: cfg.Logger, dc: cfg.Datacenter,
		gatherer: cfg.Gatherer, ready: cfg.Ready, stats: cfg.Stats, xds: cfg.XDS, monitor: cfg.Monitor, shared: newSharedBodies(), flights: newBlockingFlights(),
		acl: cfg.ACL, defaultToken: cfg.DefaultToken, onTokenUpdate: cfg.OnTokenUpdate,
		maxBody: cfg.MaxBodyBytes, blocking: limits.NewPerKey(cfg.MaxBlockingQueriesPerClient),
		rejections: cfg.Rejections, audit: cfg.Audit}
	h.aclBackend, _ = cfg.Backend.(ACLBackend)
	if h.maxBody <= 0 {
		h.maxBody = maxBodyBytes
	}
	h.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "warren", Subsystem: "http", Name: "requests_total",
		Help: "HTTP requests by route template, method and status code.",
	}, []string{"route", "code"})
	h.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "warren", Subsystem: "http", Name: "request_duration_seconds",
		Help: "HTTP request latency by route template (blocking queries included).", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	}, []string{"route"})
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(h.requests, h.latency)
		cfg.Registerer.MustRegister(h.flights.collectors()...)
	} else {
		// No registry: no instrumentation at all (what
		// WARREN_DISABLE_METRICS measures against).
		h.requests, h.latency = nil, nil
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.dc == "" {
		h.dc = "dc1"
	}
	mux := http.NewServeMux()
	for pattern, fn := range map[string]http.HandlerFunc{
		"PUT /v1/catalog/register":             h.register,
		"PUT /v1/catalog/deregister":           h.deregister,
		"GET /v1/catalog/datacenters":          h.info(h.datacenters),
		"GET /v1/catalog/nodes":                h.query(h.nodes),
		"GET /v1/catalog/services":             h.query(h.services),
		"GET /v1/catalog/service/{name}":       h.query(h.serviceNodes),
		"GET /v1/catalog/node/{node}":          h.query(h.nodeServices),
		"GET /v1/catalog/node-services/{node}": h.query(h.nodeServiceList),
		"GET /v1/health/service/{name}":        h.query(h.healthService),
		"GET /v1/health/connect/{name}":        h.query(h.healthConnect),
		"GET /v1/catalog/connect/{name}":       h.query(h.connectNodes),
		"GET /v1/health/checks/{service}":      h.query(h.serviceChecks),
		"GET /v1/health/node/{node}":           h.query(h.nodeChecks),
		"GET /v1/health/state/{state}":         h.query(h.checksInState),
		"GET /v1/status/leader":                h.info(h.leader),
		"GET /v1/status/peers":                 h.info(h.peers),
		"GET /v1/agent/self":                   h.info(h.self),
		"GET /v1/agent/version":                h.info(h.agentVersion),
		"GET /v1/agent/monitor":                h.agentMonitor,
		"GET /v1/agent/metrics":                h.metrics,
		"GET /v1/agent/health/live":            h.live,
		"GET /v1/agent/health/ready":           h.readyz,

		"GET /v1/agent/services":                    h.agentRead(h.agentServices),
		"GET /v1/agent/service/{id...}":             h.withAgent(h.agentService),
		"GET /v1/agent/checks":                      h.agentRead(h.agentChecks),
		"GET /v1/agent/members":                     h.agentRead(h.agentMembers),
		"GET /v1/agent/health/service/id/{id...}":   h.withAgent(h.agentHealthByID),
		"GET /v1/agent/health/service/name/{name}":  h.withAgent(h.agentHealthByName),
		"PUT /v1/agent/service/register":            h.agentWrite(h.agentRegisterService),
		"PUT /v1/agent/service/deregister/{id...}":  h.agentWrite(h.agentDeregisterService),
		"PUT /v1/agent/service/maintenance/{id...}": h.agentWrite(h.agentServiceMaintenance),
		"PUT /v1/agent/check/register":              h.agentWrite(h.agentRegisterCheck),
		"PUT /v1/agent/check/deregister/{id...}":    h.agentWrite(h.agentDeregisterCheck),
		"PUT /v1/agent/check/pass/{id...}":          h.agentWrite(h.agentSetTTL(catalog.HealthPassing)),
		"PUT /v1/agent/check/warn/{id...}":          h.agentWrite(h.agentSetTTL(catalog.HealthWarning)),
		"PUT /v1/agent/check/fail/{id...}":          h.agentWrite(h.agentSetTTL(catalog.HealthCritical)),
		"PUT /v1/agent/check/update/{id...}":        h.agentWrite(h.agentUpdateTTL),
		"PUT /v1/agent/maintenance":                 h.agentWrite(h.agentNodeMaintenance),
		"PUT /v1/agent/reload":                      h.agentWrite(h.agentReload),
		"PUT /v1/agent/join/{address}":              h.agentWrite(h.agentJoin),
		"PUT /v1/agent/leave":                       h.agentWrite(h.agentLeave),
		"PUT /v1/agent/force-leave/{node}":          h.agentWrite(h.agentForceLeave),
		"PUT /v1/agent/token/{kind}":                h.agentWrite(h.agentSetToken),

		"GET /v1/operator/raft/configuration": h.info(h.raftConfiguration),
		"DELETE /v1/operator/raft/peer":       h.removePeer,
		"GET /v1/snapshot":                    h.snapshotSave,
		"PUT /v1/snapshot":                    h.snapshotRestore,

		"GET /v1/connect/ca/roots":                h.query(h.caRoots),
		"GET /v1/agent/connect/ca/roots":          h.query(h.caRoots),
		"GET /v1/connect/ca/configuration":        h.query(h.caConfiguration),
		"PUT /v1/connect/ca/configuration":        h.setCAConfiguration,
		"GET /v1/agent/connect/ca/leaf/{service}": h.withAgent(h.query(h.connectCALeaf)),
		"POST /v1/agent/connect/authorize":        h.connectAuthorize,
		"GET /v1/connect/intentions":              h.query(h.intentionList()),
		"GET /v1/connect/intentions/exact":        h.query(h.intentionExact()),
		"PUT /v1/connect/intentions/exact":        h.intentionWrite("upsert"),
		"DELETE /v1/connect/intentions/exact":     h.intentionWrite("delete"),
		"GET /v1/connect/intentions/check":        h.query(h.intentionCheck()),
		"GET /v1/connect/intentions/match":        h.query(h.intentionMatch()),
	} {
		mux.HandleFunc(pattern, h.withIdentity(fn))
	}
	for pattern, fn := range h.aclRoutes() {
		mux.HandleFunc(pattern, h.withIdentity(fn))
	}
	// Request state (body limit, audit identity) outermost, the audit
	// layer innermost where r.Pattern is the matched route; the token is
	// resolved inside each route (withIdentity), so that every answer,
	// refusals included, is logged and audited under its route.
	return h.withRequestState(h.logRequests(h.auditWrites(mux)))
}

// queryFunc answers a blocking read: the body to encode and the meta that
// becomes the X-Consul-* headers.
type queryFunc func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error)

// query wraps a blocking read: parse the query options, call fn, set the
// meta headers, encode.
func (h *handler) query(fn queryFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQueryOptions(r, h.dc)
		if err == nil {
			r, err = withFilter(r)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if q.MinIndex > 0 { // a blocking query: one of the client's slots
			release, ok := h.acquireBlocking(w, r)
			if !ok {
				return
			}
			defer release()
		}
		if q.MinIndex == 0 {
			body, meta, err := fn(r, q)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			setQueryMeta(w.Header(), meta, q.Consistency)
			h.writeJSON(w, r, body)
			return
		}
		// A blocking query: identical ones share one read and one
		// encoding of its answer (coalesce.go).
		b, meta, err := h.blockingAnswer(r, q, fn)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		setQueryMeta(w.Header(), meta, q.Consistency)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
}

// info wraps a read that is not a catalog query (status, agent, operator):
// options are still checked (dc, stale with consistent) but there is no index
// to report, so, like Consul, no X-Consul-Index header.
func (h *handler) info(fn func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, err := parseQueryOptions(r, h.dc)
		if err == nil {
			r, err = withFilter(r)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		body, err := fn(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, body)
	}
}

// httpError is an error with the status and one-line body it is answered
// with; request parsing returns them.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its status and one-line body. unexpected marks
// the errors that are ours, not the client's, and deserve an error log line.
func statusOf(err error) (code int, msg string, unexpected bool) {
	var he *httpError
	var fe *catalog.FieldError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he.code, he.msg, false
	case errors.As(err, &tooBig):
		name := limits.HTTPBodySize
		if tooBig.Limit == maxSnapshotBytes {
			name = "snapshot size"
		}
		return http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: the limit %s is %d bytes", name, tooBig.Limit), false
	case errors.As(err, &fe):
		return http.StatusBadRequest, fe.Error(), false
	case errors.Is(err, catalog.ErrInvalid):
		return http.StatusBadRequest, err.Error(), false
	case errors.Is(err, catalog.ErrMaybeApplied):
		return http.StatusServiceUnavailable, "The cluster lost its leader while committing this write: it may or may not have been applied", false
	case errors.Is(err, catalog.ErrNoLeader):
		return http.StatusServiceUnavailable, "No cluster leader", false
	case errors.Is(err, catalog.ErrNotFound):
		return http.StatusNotFound, err.Error(), false
	case errors.Is(err, catalog.ErrACLNotFound):
		return http.StatusForbidden, "ACL not found", false
	case errors.Is(err, catalog.ErrPermissionDenied):
		return http.StatusForbidden, err.Error(), false
	case errors.Is(err, catalog.ErrRateLimited):
		return http.StatusTooManyRequests, "rate limit exceeded, retry", false
	case errors.Is(err, catalog.ErrUnknownDatacenter):
		// Consul's status and words for a datacenter it cannot reach.
		return http.StatusInternalServerError, "No path to datacenter", false
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, "Timed out waiting for the cluster", true
	case errors.Is(err, context.Canceled):
		// The client went away; nobody reads this.
		return 499, "Client closed request", false
	}
	return http.StatusInternalServerError, err.Error(), true
}

// oneLine keeps error bodies to one line.
var oneLine = strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ")

func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, msg, unexpected := statusOf(err)
	if code == http.StatusRequestEntityTooLarge {
		h.rejections.Inc(limits.HTTPBodySize)
	}
	if unexpected {
		h.log.LogAttrs(r.Context(), slog.LevelError, "request failed",
			slog.String("method", r.Method), slog.String("path", r.Pattern),
			slog.Int("status", code), slog.Any("error", err))
	}
	msg = oneLine.Replace(msg) // whatever the backend said
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
}

// writeJSON encodes body whole before writing, so an encoding failure can
// still become a 500.
func (h *handler) writeJSON(w http.ResponseWriter, r *http.Request, body any) {
	h.writeJSONCode(w, r, http.StatusOK, body)
}

// writeJSONCode is writeJSON with a status other than 200.
func (h *handler) writeJSONCode(w http.ResponseWriter, r *http.Request, code int, body any) {
	b, err := marshalBody(r, body)
	if err != nil {
		h.fail(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// marshalBody is the JSON of an answer: indented by four spaces when the
// request has ?pretty, as Consul does (its docs' examples use it).
func marshalBody(r *http.Request, body any) ([]byte, error) {
	if wantsPretty(r) {
		return json.MarshalIndent(body, "", "    ")
	}
	return json.Marshal(body)
}

func wantsPretty(r *http.Request) bool {
	_, ok := r.URL.Query()["pretty"]
	return ok
}

// decodeJSON reads a JSON body of at most the configured limit
// (Config.MaxBodyBytes, through the request's state) into v. Unknown
// fields are ignored, as Consul does: clients send fields we do not
// implement. Errors name the field when there is one.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	// A declared length over the limit is refused before a byte is read,
	// whatever the body holds; an undeclared one is cut at the limit.
	limit := bodyLimit(r)
	if r.ContentLength > limit {
		return &http.MaxBytesError{Limit: limit}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	err := dec.Decode(v)
	if err == nil {
		// One JSON value and nothing after it; "{}{...}" is a mistake.
		if err = dec.Decode(new(json.RawMessage)); err == io.EOF {
			return nil
		} else if err == nil {
			return badRequest("body: unexpected data after the JSON value")
		}
	}
	return jsonError(err)
}

// jsonError turns a decoding error into a 400 that names the field or the
// place; nil stays nil.
func jsonError(err error) error {
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return badRequest("%s: expected %s, got JSON %s", field, jsonKind(typeErr.Type), typeErr.Value)
	case errors.As(err, &syntaxErr):
		return badRequest("body: malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr)
	case err == io.EOF:
		return badRequest("body: missing, expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("body: malformed JSON: unexpected end of input")
	}
	return err // *http.MaxBytesError, or a read error
}

// jsonKind names what a Go type looks like in JSON, for error messages
// that a client's author can act on without knowing our Go types.
func jsonKind(t reflect.Type) string {
	if t == reflect.TypeFor[api.Duration]() {
		return `a duration such as "10s"`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	}
	return "an object"
}

// statusRecorder remembers the status for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines) through the recorder.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// logRequests logs each request at debug level by its route pattern, never
// its raw URL or headers: tokens travel in both.
func (h *handler) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		pattern := r.Pattern // set by the mux; empty for 404 and 405
		if pattern == "" {
			pattern = "(unmatched)"
		}
		if h.requests != nil {
			h.requests.WithLabelValues(pattern, strconv.Itoa(rec.status)).Inc()
			h.latency.WithLabelValues(pattern).Observe(time.Since(start).Seconds())
		}
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method), slog.String("path", pattern),
			slog.Int("status", rec.status), slog.Duration("duration", time.Since(start)))
	})
}

// emptyIfNil makes a nil slice encode as [] rather than null, as Consul's
// list endpoints do.
func emptyIfNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
