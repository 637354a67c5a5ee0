package httpapi

import (
	"net/http"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// The mesh identity endpoints: the built-in CA (roots, configuration),
// leaf certificates (from the local agent) and intentions. Consul's paths
// and shapes; the Backend does the work (validation of names and actions
// included, whose field errors become 400s).

func (h *handler) caRoots(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.backend.CARoots(r.Context(), q)
}

func (h *handler) caConfiguration(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	return h.backend.CAConfiguration(r.Context(), q)
}

// setCAConfiguration handles PUT /v1/connect/ca/configuration. Only the
// built-in provider exists, and it does not import keys.
func (h *handler) setCAConfiguration(w http.ResponseWriter, r *http.Request) {
	if err := checkDatacenter(r.URL.Query().Get("dc"), h.dc); err != nil {
		h.fail(w, r, err)
		return
	}
	var c api.CAConfiguration
	if err := decodeJSON(w, r, &c); err != nil {
		h.fail(w, r, err)
		return
	}
	switch {
	case c.Provider != "" && c.Provider != "consul":
		h.fail(w, r, badRequest("Provider: %q is not supported (consul, the built-in CA)", c.Provider))
		return
	case c.Config.PrivateKey != "" || c.Config.RootCert != "":
		h.fail(w, r, badRequest("Config.PrivateKey: importing a root is not supported; omit PrivateKey and RootCert and set Config.RotateRoot to have a new root generated"))
		return
	case len(c.State) > 0:
		h.fail(w, r, badRequest("State: read-only"))
		return
	}
	if err := h.backend.SetCAConfiguration(r.Context(), &c); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, true)
}

func (h *handler) intentionRead(iq func(r *http.Request) api.IntentionQuery, answer func(*api.IntentionResult) any) queryFunc {
	return func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
		query := iq(r)
		res, meta, err := h.backend.IntentionQuery(r.Context(), q, &query)
		if err != nil {
			return nil, meta, err
		}
		return answer(res), meta, nil
	}
}

func srcDst(query string) func(r *http.Request) api.IntentionQuery {
	return func(r *http.Request) api.IntentionQuery {
		v := r.URL.Query()
		return api.IntentionQuery{Query: query, Source: v.Get("source"), Destination: v.Get("destination")}
	}
}

// intentionList answers GET /v1/connect/intentions, with ?filter on the
// intentions (SourceName, DestinationName, Action …) as in Consul.
func (h *handler) intentionList() queryFunc {
	read := h.intentionRead(func(*http.Request) api.IntentionQuery { return api.IntentionQuery{Query: "list"} },
		func(res *api.IntentionResult) any { return emptyIfNil(res.Intentions) })
	return func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
		body, meta, err := read(r, q)
		if err != nil {
			return body, meta, err
		}
		return filtered(r, body.([]*api.Intention), meta, nil)
	}
}

func (h *handler) intentionExact() queryFunc {
	return h.intentionRead(srcDst("exact"), func(res *api.IntentionResult) any {
		if len(res.Intentions) == 0 {
			return nil
		}
		return res.Intentions[0]
	})
}

func (h *handler) intentionCheck() queryFunc {
	return h.intentionRead(srcDst("check"), func(res *api.IntentionResult) any {
		return &api.IntentionCheckResult{Allowed: res.Allowed}
	})
}

func (h *handler) intentionMatch() queryFunc {
	return h.intentionRead(func(r *http.Request) api.IntentionQuery {
		v := r.URL.Query()
		return api.IntentionQuery{Query: "match", By: v.Get("by"), Names: v["name"]}
	}, func(res *api.IntentionResult) any {
		out := map[string][]*api.Intention{}
		for k, v := range res.Match {
			out[k] = emptyIfNil(v)
		}
		return out
	})
}

// intentionWrite handles PUT and DELETE /v1/connect/intentions/exact;
// like Consul it answers true.
func (h *handler) intentionWrite(op string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		if err := checkDatacenter(v.Get("dc"), h.dc); err != nil {
			h.fail(w, r, err)
			return
		}
		var ixn *api.Intention
		if op == "upsert" {
			ixn = new(api.Intention)
			if err := decodeJSON(w, r, ixn); err != nil {
				h.fail(w, r, err)
				return
			}
		}
		if err := h.backend.IntentionApply(r.Context(), op, v.Get("source"), v.Get("destination"), ixn); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, true)
	}
}

// connectAuthorize handles POST /v1/agent/connect/authorize: may the
// client certificate's service connect to Target?
func (h *handler) connectAuthorize(w http.ResponseWriter, r *http.Request) {
	var p api.AgentAuthorizeParams
	if err := decodeJSON(w, r, &p); err != nil {
		h.fail(w, r, err)
		return
	}
	if p.Target == "" {
		h.fail(w, r, badRequest("Target: missing"))
		return
	}
	if p.ClientCertURI == "" {
		h.fail(w, r, badRequest("ClientCertURI: missing"))
		return
	}
	res, _, err := h.backend.IntentionQuery(r.Context(), catalog.QueryOptions{},
		&api.IntentionQuery{Query: "authorize", Destination: p.Target, ClientCertURI: p.ClientCertURI})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, &api.AgentAuthorize{Authorized: res.Allowed, Reason: res.Reason})
}

// connectCALeaf handles GET /v1/agent/connect/ca/leaf/{service}: the
// local agent's leaf for one of its services (404 for any other).
func (h *handler) connectCALeaf(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	service := r.PathValue("service")
	if service == "" {
		return nil, catalog.QueryMeta{}, badRequest("service: missing from the path")
	}
	if !authz(r).ServiceWrite(service) {
		return nil, catalog.QueryMeta{}, forbidden("service:write", service)
	}
	return h.agent.ConnectCALeaf(r.Context(), service, q)
}
