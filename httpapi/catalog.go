package httpapi

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/go-bexpr"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// register handles PUT /v1/catalog/register. The registration is normalized
// and validated here, so a bad one is answered 400 without reaching the
// backend.
func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	var in api.CatalogRegistration
	if err := h.decodeWrite(w, r, &in, func() string { return in.Datacenter }); err != nil {
		h.fail(w, r, err)
		return
	}
	reg := toRegistration(&in, h.dc)
	reg.Normalize()
	if err := reg.Validate(); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.backend.Register(r.Context(), reg); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, true)
}

// deregister handles PUT /v1/catalog/deregister.
func (h *handler) deregister(w http.ResponseWriter, r *http.Request) {
	var in api.CatalogDeregistration
	if err := h.decodeWrite(w, r, &in, func() string { return in.Datacenter }); err != nil {
		h.fail(w, r, err)
		return
	}
	d := &catalog.Deregistration{Node: in.Node, ServiceID: in.ServiceID, CheckID: in.CheckID}
	if err := d.Validate(); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.backend.Deregister(r.Context(), d); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, true)
}

// decodeWrite decodes a write's body and checks both places a datacenter
// may be named: ?dc and the body's Datacenter field (read by bodyDC after
// decoding).
func (h *handler) decodeWrite(w http.ResponseWriter, r *http.Request, v any, bodyDC func() string) error {
	if err := checkDatacenter(r.URL.Query().Get("dc"), h.dc); err != nil {
		return err
	}
	if err := decodeJSON(w, r, v); err != nil {
		return err
	}
	return checkDatacenter(bodyDC(), h.dc)
}

func (h *handler) datacenters(*http.Request) (any, error) {
	return []string{h.dc}, nil
}

func (h *handler) nodes(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	nodes, meta, err := h.backend.Nodes(r.Context(), q, nodeMetaFilter(r.URL.Query()))
	return filtered(r, mapSlice(nodes, fromNode), meta, err)
}

// filtered applies the request's ?filter to the rows of a read that
// succeeded.
func filtered[T any](r *http.Request, rows []T, meta catalog.QueryMeta, err error) (any, catalog.QueryMeta, error) {
	if err != nil {
		return rows, meta, err
	}
	rows, err = filterSlice(filterOf(r), rows)
	return rows, meta, err
}

func (h *handler) services(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	ev := filterOf(r)
	services, meta, err := h.backend.Services(r.Context(), q, nodeMetaFilter(r.URL.Query()))
	if err == nil && ev != nil {
		services, err = h.filterServices(r, q, ev, services)
	}
	out := make(map[string][]string, len(services))
	for name, tags := range services {
		out[name] = emptyIfNil(tags)
	}
	return out, meta, err
}

// filterServices answers /v1/catalog/services?filter: as in Consul the
// filter selects instances (the rows of /v1/catalog/service, with their
// ServiceName, ServiceTags, NodeMeta … selectors), and a service is listed
// with the tags of its matching instances when it has any. It reads each
// service's instances, without blocking, after the listing answered: a
// filtered listing costs one read per service.
func (h *handler) filterServices(r *http.Request, q catalog.QueryOptions, ev *bexpr.Evaluator, services map[string][]string) (map[string][]string, error) {
	q.MinIndex = 0
	meta := nodeMetaFilter(r.URL.Query())
	out := make(map[string][]string, len(services))
	for name := range services {
		rows, _, err := h.backend.ServiceNodes(r.Context(), q, name, nil)
		if err != nil {
			return nil, fmt.Errorf("filter instances of %q: %w", name, err)
		}
		rows = slices.DeleteFunc(rows, func(sn catalog.ServiceNode) bool { return !matchesMeta(sn.Node, meta) })
		kept, err := filterSlice(ev, mapSlice(rows, fromServiceNode))
		if err != nil {
			return nil, err
		}
		if len(kept) == 0 {
			continue
		}
		var tags []string
		for _, sn := range kept {
			tags = append(tags, sn.ServiceTags...)
		}
		slices.Sort(tags)
		out[name] = slices.Compact(tags)
	}
	return out, nil
}

func (h *handler) serviceNodes(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.catalogInstances(r, q, false)
}

// connectNodes answers /v1/catalog/connect/{name}: a service's sidecar
// proxies, in the shape of /v1/catalog/service.
func (h *handler) connectNodes(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.catalogInstances(r, q, true)
}

func (h *handler) catalogInstances(r *http.Request, q catalog.QueryOptions, connect bool) (any, catalog.QueryMeta, error) {
	v := r.URL.Query()
	name := r.PathValue("name")
	if connect {
		name += catalog.SidecarSuffix
	}
	rows, meta, err := h.backend.ServiceNodes(r.Context(), q, name, v["tag"])
	filter := nodeMetaFilter(v)
	rows = slices.DeleteFunc(rows, func(sn catalog.ServiceNode) bool {
		return !matchesMeta(sn.Node, filter) || connect && !sn.Service.IsProxyFor(r.PathValue("name"))
	})
	return filtered(r, mapSlice(rows, fromServiceNode), meta, err)
}

// nodeServices answers null for an unknown node, with 200, as Consul does.
func (h *handler) nodeServices(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	node, services, meta, err := h.backend.NodeServices(r.Context(), q, r.PathValue("node"))
	if node == nil {
		return nil, meta, err
	}
	out := &api.CatalogNode{Node: fromNode(node), Services: make(map[string]*api.AgentService, len(services))}
	for _, s := range services {
		out.Services[s.ID] = fromService(s)
	}
	if err != nil {
		return out, meta, err
	}
	out.Services, err = filterMap(filterOf(r), out.Services)
	return out, meta, err
}

// nodeServiceList answers {"Node": null, "Services": []} for an unknown
// node, as Consul does.
func (h *handler) nodeServiceList(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	node, services, meta, err := h.backend.NodeServices(r.Context(), q, r.PathValue("node"))
	rows, meta, err := filtered(r, mapSlice(services, fromService), meta, err)
	return &api.CatalogNodeServiceList{Node: fromNode(node), Services: rows.([]*api.AgentService)}, meta, err
}

func (h *handler) healthService(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.healthInstances(r, q, false)
}

// healthConnect answers /v1/health/connect/{name}: the connect-capable
// endpoints of a service, its sidecar proxies, with their health, in the
// shape of /v1/health/service (Traefik's connect-aware mode reads it).
func (h *handler) healthConnect(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.healthInstances(r, q, true)
}

func (h *handler) healthInstances(r *http.Request, q catalog.QueryOptions, connect bool) (any, catalog.QueryMeta, error) {
	v := r.URL.Query()
	passing, err := boolParam(v, catalog.HealthPassing)
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	name := r.PathValue("name")
	if connect {
		name += catalog.SidecarSuffix
	}
	rows, meta, err := h.backend.CheckServiceNodes(r.Context(), q, name, v["tag"], passing)
	filter := nodeMetaFilter(v)
	rows = slices.DeleteFunc(rows, func(csn catalog.CheckServiceNode) bool {
		return !matchesMeta(csn.Node, filter) || connect && !csn.Service.IsProxyFor(r.PathValue("name"))
	})
	return filtered(r, mapSlice(rows, fromCheckServiceNode), meta, err)
}

func (h *handler) serviceChecks(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	cs, meta, err := h.backend.ServiceChecks(r.Context(), q, r.PathValue("service"))
	return filtered(r, mapSlice(cs, fromCheck), meta, err)
}

func (h *handler) nodeChecks(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	cs, meta, err := h.backend.NodeChecks(r.Context(), q, r.PathValue("node"))
	return filtered(r, mapSlice(cs, fromCheck), meta, err)
}

func (h *handler) checksInState(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	state := r.PathValue("state")
	switch state {
	case catalog.HealthAny, catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical:
	default:
		return nil, catalog.QueryMeta{}, badRequest("state: %q is not one of any, passing, warning, critical", state)
	}
	cs, meta, err := h.backend.ChecksInState(r.Context(), q, state)
	return filtered(r, mapSlice(cs, fromCheck), meta, err)
}
