package httpapi

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// The /v1/agent endpoints talk to the local agent (Config.Agent). Writes are
// PUTs, as in Consul, and answer 200 with an empty body. Every request is
// checked here (body shape, field types, required fields, durations,
// statuses, query flags) before the Agent is called, so bad input never
// reaches it; the Agent does the rest (check kinds, script checks …) and its
// errors map through statusOf.

// errNoAgent answers the agent routes of a process without a local agent.
var errNoAgent = &httpError{code: http.StatusNotFound, msg: "this process runs no local agent"}

// agentPoll is how often a hash-blocked /v1/agent/service/{id} re-reads the
// agent's services: the Agent interface has no change notification.
const agentPoll = 250 * time.Millisecond

// withAgent answers 404 when there is no local agent.
func (h *handler) withAgent(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.agent == nil {
			h.fail(w, r, errNoAgent)
			return
		}
		next(w, r)
	}
}

// agentRead wraps an agent read like info wraps other non-catalog reads.
func (h *handler) agentRead(fn func(w http.ResponseWriter, r *http.Request) (any, error)) http.HandlerFunc {
	return h.withAgent(func(w http.ResponseWriter, r *http.Request) {
		h.info(func(r *http.Request) (any, error) { return fn(w, r) })(w, r)
	})
}

// agentWrite wraps an agent write: ?dc is checked, fn decodes, validates and
// calls the Agent; success is 200 with an empty body, as in Consul.
func (h *handler) agentWrite(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return h.withAgent(func(w http.ResponseWriter, r *http.Request) {
		if err := checkDatacenter(r.URL.Query().Get("dc"), h.dc); err != nil {
			h.fail(w, r, err)
			return
		}
		if err := fn(w, r); err != nil {
			h.fail(w, r, err)
		}
	})
}

// pathID reads a service or check ID from the path; what names the ID in
// the error.
func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if id == "" {
		return "", badRequest("%s ID: missing from the path", what)
	}
	return id, nil
}

// agentServices answers GET /v1/agent/services: service ID -> instance.
func (h *handler) agentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	services, filtered := acl.FilterNodeServices(authz(r), h.agent.Services())
	setFiltered(w, filtered)
	out := make(map[string]*api.AgentService, len(services))
	for _, s := range services {
		out[s.ID] = h.fromLocalService(s)
	}
	return filterMap(filterOf(r), out)
}

// fromLocalService is an instance as the agent endpoints report it: like
// Consul's, it names the datacenter and always has Tags and Meta.
func (h *handler) fromLocalService(s *catalog.Service) *api.AgentService {
	out := fromService(s)
	out.Datacenter = h.dc
	if out.Meta == nil {
		out.Meta = map[string]string{}
	}
	return out
}

// localService finds a local service and its content hash.
func (h *handler) localService(id string) (*api.LocalAgentService, error) {
	for _, s := range h.agent.Services() {
		if s.ID != id {
			continue
		}
		out := &api.LocalAgentService{AgentService: *h.fromLocalService(s)}
		b, err := json.Marshal(&out.AgentService)
		if err != nil {
			return nil, fmt.Errorf("hash service: %w", err)
		}
		sum := sha256.Sum256(b)
		out.ContentHash = hex.EncodeToString(sum[:8])
		return out, nil
	}
	return nil, fmt.Errorf("unknown service ID %q: %w", id, catalog.ErrNotFound)
}

// agentService answers GET /v1/agent/service/{id}. Like Consul it supports
// hash-based blocking: with ?hash equal to the current content hash it
// waits (up to ?wait) for the service to change. The answer carries the
// hash in ContentHash and X-Consul-ContentHash; an unknown ID is 404.
func (h *handler) agentService(w http.ResponseWriter, r *http.Request) {
	q, err := parseQueryOptions(r, h.dc)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	id, err := pathID(r, "service")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	wantHash := r.URL.Query().Get("hash")
	var deadline <-chan time.Time
	if wantHash != "" {
		release, ok := h.acquireBlocking(w, r) // hash-blocking holds a slot too
		if !ok {
			return
		}
		defer release()
		timer := time.NewTimer(q.MaxWait)
		defer timer.Stop()
		deadline = timer.C
	}
	var tick <-chan time.Time
	for {
		s, err := h.localService(id)
		if err == nil && !authz(r).ServiceRead(s.Service) {
			err = forbidden("service:read", s.Service)
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if s.ContentHash != wantHash {
			w.Header().Set("X-Consul-ContentHash", s.ContentHash)
			h.writeJSON(w, r, s)
			return
		}
		if tick == nil {
			t := time.NewTicker(agentPoll)
			defer t.Stop()
			tick = t.C
		}
		select {
		case <-r.Context().Done():
			h.fail(w, r, r.Context().Err())
			return
		case <-deadline:
			w.Header().Set("X-Consul-ContentHash", s.ContentHash)
			h.writeJSON(w, r, s)
			return
		case <-tick:
		}
	}
}

// agentChecks answers GET /v1/agent/checks: check ID -> check.
func (h *handler) agentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	checks, filtered := acl.FilterChecks(authz(r), h.agent.Checks())
	setFiltered(w, filtered)
	out := make(map[string]*api.AgentCheck, len(checks))
	for _, c := range checks {
		out[c.CheckID] = fromCheck(c)
	}
	return filterMap(filterOf(r), out)
}

// agentMembers answers GET /v1/agent/members. Warren has no WAN pool, so
// ?wan lists nobody.
func (h *handler) agentMembers(w http.ResponseWriter, r *http.Request) (any, error) {
	wan, err := boolParam(r.URL.Query(), "wan")
	if err != nil {
		return nil, err
	}
	if wan {
		return []api.AgentMember{}, nil
	}
	a := authz(r)
	members := h.agent.Members()
	out := members[:0:0]
	for _, m := range members {
		if a.NodeRead(m.Name) {
			out = append(out, m)
		}
	}
	setFiltered(w, len(out) < len(members))
	return emptyIfNil(out), nil
}

// agentRegisterService handles PUT /v1/agent/service/register. The body
// goes to the Agent exactly as decoded; defaults (ID from Name, check IDs)
// are the Agent's to fill. ?replace-existing-checks is accepted: the
// Agent's RegisterService always replaces the service's checks with the
// registered ones, which is what the flag asks for.
func (h *handler) agentRegisterService(w http.ResponseWriter, r *http.Request) error {
	if _, err := boolParam(r.URL.Query(), "replace-existing-checks"); err != nil {
		return err
	}
	var in api.AgentServiceRegistration
	if err := decodeSnakeJSON(w, r, &in); err != nil {
		return err
	}
	if err := validateServiceRegistration(&in); err != nil {
		return err
	}
	a := authz(r)
	if !a.ServiceWrite(in.Name) {
		return forbidden("service:write", in.Name)
	}
	if in.Connect != nil && in.Connect.SidecarService != nil {
		name := in.Connect.SidecarService.Name
		if name == "" {
			name = in.Name + "-sidecar-proxy"
		}
		if !a.ServiceWrite(name) {
			return forbidden("service:write", name)
		}
	}
	return h.agent.RegisterService(r.Context(), &in)
}

func (h *handler) agentDeregisterService(_ http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "service")
	if err != nil {
		return err
	}
	if err := h.mayWriteService(r, id); err != nil {
		return err
	}
	return h.agent.DeregisterService(r.Context(), id)
}

// agentRegisterCheck handles PUT /v1/agent/check/register. Name is
// required, as in Consul.
func (h *handler) agentRegisterCheck(w http.ResponseWriter, r *http.Request) error {
	var in api.AgentCheckRegistration
	if err := decodeSnakeJSON(w, r, &in); err != nil {
		// encoding/json names the fields of the embedded definition
		// through its Go type; the body has them at the top level.
		var he *httpError
		if errors.As(err, &he) {
			return &httpError{code: he.code, msg: strings.TrimPrefix(he.msg, "AgentServiceCheck.")}
		}
		return err
	}
	if in.Name == "" {
		return &catalog.FieldError{Field: "Name", Reason: "missing"}
	}
	if err := validateCheckDefinition("", &in.AgentServiceCheck); err != nil {
		return err
	}
	if in.ServiceID != "" {
		if err := h.mayWriteService(r, in.ServiceID); err != nil {
			return err
		}
	} else if node := h.backend.Self().NodeName; !authz(r).NodeWrite(node) {
		return forbidden("node:write", node)
	}
	return h.agent.RegisterCheck(r.Context(), &in)
}

func (h *handler) agentDeregisterCheck(_ http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "check")
	if err != nil {
		return err
	}
	if err := h.mayWriteCheck(r, id); err != nil {
		return err
	}
	return h.agent.DeregisterCheck(r.Context(), id)
}

// agentSetTTL handles the old PUT /v1/agent/check/{pass,warn,fail}/{id}:
// the status is in the path and ?note becomes the check's output, as in
// Consul.
func (h *handler) agentSetTTL(status string) func(http.ResponseWriter, *http.Request) error {
	return func(_ http.ResponseWriter, r *http.Request) error {
		id, err := pathID(r, "check")
		if err != nil {
			return err
		}
		if err := h.mayWriteCheck(r, id); err != nil {
			return err
		}
		return h.agent.UpdateTTL(r.Context(), id, status, r.URL.Query().Get("note"))
	}
}

// agentUpdateTTL handles PUT /v1/agent/check/update/{id} with a CheckUpdate
// body.
func (h *handler) agentUpdateTTL(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "check")
	if err != nil {
		return err
	}
	var in api.CheckUpdate
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.Status == "" {
		return &catalog.FieldError{Field: "Status", Reason: "missing; give passing, warning or critical"}
	}
	if err := catalog.ValidateStatus("Status", in.Status); err != nil {
		return err
	}
	if err := h.mayWriteCheck(r, id); err != nil {
		return err
	}
	return h.agent.UpdateTTL(r.Context(), id, in.Status, in.Output)
}

// enableParam reads maintenance's required ?enable=true|false.
func enableParam(v url.Values) (bool, error) {
	s := v.Get("enable")
	if s == "" {
		return false, badRequest("enable: missing; give ?enable=true or ?enable=false")
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, badRequest("enable: %q is not true or false", s)
	}
	return b, nil
}

func (h *handler) agentNodeMaintenance(_ http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	enable, err := enableParam(v)
	if err != nil {
		return err
	}
	if node := h.backend.Self().NodeName; !authz(r).NodeWrite(node) {
		return forbidden("node:write", node)
	}
	return h.agent.NodeMaintenance(r.Context(), enable, v.Get("reason"))
}

func (h *handler) agentServiceMaintenance(_ http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "service")
	if err != nil {
		return err
	}
	v := r.URL.Query()
	enable, err := enableParam(v)
	if err != nil {
		return err
	}
	if err := h.mayWriteService(r, id); err != nil {
		return err
	}
	return h.agent.ServiceMaintenance(r.Context(), id, enable, v.Get("reason"))
}

func (h *handler) agentReload(_ http.ResponseWriter, r *http.Request) error {
	if err := h.mayAgent(r, true); err != nil {
		return err
	}
	return h.agent.Reload(r.Context())
}

// noWAN refuses ?wan on a gossip write: Warren has no WAN pool, and doing
// the LAN operation instead would not be what the client asked for.
func noWAN(v url.Values) error {
	wan, err := boolParam(v, "wan")
	if err != nil {
		return err
	}
	if wan {
		return badRequest("wan: Warren has no WAN gossip pool")
	}
	return nil
}

func (h *handler) agentJoin(_ http.ResponseWriter, r *http.Request) error {
	if err := noWAN(r.URL.Query()); err != nil {
		return err
	}
	if err := h.mayAgent(r, true); err != nil {
		return err
	}
	return h.agent.Join(r.Context(), r.PathValue("address"))
}

func (h *handler) agentLeave(_ http.ResponseWriter, r *http.Request) error {
	if err := h.mayAgent(r, true); err != nil {
		return err
	}
	return h.agent.Leave(r.Context())
}

// agentForceLeave handles PUT /v1/agent/force-leave/{node}; ?prune also
// removes the node from the member list.
func (h *handler) agentForceLeave(_ http.ResponseWriter, r *http.Request) error {
	v := r.URL.Query()
	if err := noWAN(v); err != nil {
		return err
	}
	prune, err := boolParam(v, "prune")
	if err != nil {
		return err
	}
	if !authz(r).OperatorWrite() {
		return forbidden("operator:write", "")
	}
	return h.agent.ForceLeave(r.Context(), r.PathValue("node"), prune)
}

// agentSelf is /v1/agent/self with a local agent: api.LocalAgentSelf, whose
// Sync section reports the last anti-entropy sync. Member is the Agent's
// when it names one, else derived from Self like the agentless answer.
func (h *handler) agentSelf(*http.Request) (any, error) {
	info := h.agent.SelfInfo()
	config, member := h.selfSections(info.Self)
	if info.Member.Name != "" {
		member = info.Member
	}
	meta := info.Meta
	if meta == nil {
		meta = map[string]string{}
	}
	stats := map[string]map[string]string{
		"agent": {
			"services": strconv.Itoa(len(h.agent.Services())),
			"checks":   strconv.Itoa(len(h.agent.Checks())),
		},
		"build": {"version": config.Version},
		"runtime": {
			"os":         runtime.GOOS,
			"arch":       runtime.GOARCH,
			"version":    runtime.Version(),
			"goroutines": strconv.Itoa(runtime.NumGoroutine()),
			"cpu_count":  strconv.Itoa(runtime.NumCPU()),
		},
	}
	if h.stats != nil {
		maps.Copy(stats, h.stats())
	}
	out := &api.LocalAgentSelf{
		Config: config,
		Member: member,
		Meta:   meta,
		Stats:  stats,
		Sync:   api.AgentSync{LastSync: info.LastSync, LastSyncError: info.LastSyncError},
	}
	out.XDS = h.xds
	return out, nil
}

// validateServiceRegistration checks a service registration with the
// catalog's rules for a service instance, naming the fields as the body
// does (Name, Port, Checks[1].TTL …).
func validateServiceRegistration(in *api.AgentServiceRegistration) error {
	if err := catalog.ValidateName("Name", in.Name); err != nil {
		return err
	}
	s := &catalog.Service{
		ID:              in.ID,
		Name:            in.Name,
		Kind:            in.Kind,
		Tags:            in.Tags,
		Address:         in.Address,
		TaggedAddresses: mapValues(in.TaggedAddresses, func(a api.ServiceAddress) catalog.ServiceAddress { return catalog.ServiceAddress(a) }),
		Meta:            in.Meta,
		Port:            in.Port,
	}
	if in.Weights != nil {
		s.Weights = catalog.Weights(*in.Weights)
	}
	if err := catalog.ValidateService(s); err != nil {
		return renameServiceField(err)
	}
	n := len(in.Checks)
	if in.Check != nil {
		n++
	}
	if n > catalog.MaxChecks {
		return &catalog.FieldError{Field: "Checks", Reason: fmt.Sprintf("more than %d checks", catalog.MaxChecks)}
	}
	if in.Check != nil {
		if err := validateCheckDefinition("Check", in.Check); err != nil {
			return err
		}
	}
	for i, c := range in.Checks {
		field := fmt.Sprintf("Checks[%d]", i)
		if c == nil {
			return &catalog.FieldError{Field: field, Reason: "null"}
		}
		if err := validateCheckDefinition(field, c); err != nil {
			return err
		}
	}
	return nil
}

// renameServiceField turns catalog.ValidateService's field names (those of
// a catalog registration's Service object) into the agent body's.
func renameServiceField(err error) error {
	var fe *catalog.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	field := strings.TrimPrefix(fe.Field, "Service.")
	if field == "Service" {
		field = "Name"
	}
	return &catalog.FieldError{Field: field, Reason: fe.Reason}
}

// validateCheckDefinition checks what can be checked of a check definition
// without knowing its kind: durations parse and are not negative, and an
// initial status is a real one. prefix ("Check", "Checks[0]" or "" for a
// check registration's top level) starts each field name.
func validateCheckDefinition(prefix string, c *api.AgentServiceCheck) error {
	field := func(name string) string {
		if prefix == "" {
			return name
		}
		return prefix + "." + name
	}
	for _, d := range []struct{ name, value string }{
		{"Interval", c.Interval},
		{"Timeout", c.Timeout},
		{"TTL", c.TTL},
		{"DeregisterCriticalServiceAfter", c.DeregisterCriticalServiceAfter},
	} {
		if d.value == "" {
			continue
		}
		if v, err := time.ParseDuration(d.value); err != nil || v < 0 {
			return &catalog.FieldError{Field: field(d.name), Reason: fmt.Sprintf("%q is not a duration such as \"10s\"", d.value)}
		}
	}
	if c.Status != "" {
		return catalog.ValidateStatus(field("Status"), c.Status)
	}
	return nil
}
