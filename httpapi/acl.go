package httpapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// ACLResolver turns a request's token secret into an identity: the servers
// from their state, an agent by asking a server (cached). Errors:
// catalog.ErrACLNotFound for an unknown or expired token.
type ACLResolver interface {
	ResolveToken(ctx context.Context, secret string) (*acl.Identity, error)
}

// ACLBackend runs the ACL API's calls (acl.Method*, with the request and
// reply types of package acl) on the servers.
type ACLBackend interface {
	ACLCall(ctx context.Context, method string, req, reply any) error
}

// requestToken is the token a request carries: X-Consul-Token, else
// "Authorization: Bearer", else the configured default token.
func (h *handler) requestToken(r *http.Request) (string, error) {
	if r.URL.Query().Has("token") {
		// Query strings end up in access logs and browser histories;
		// Consul's ?token is refused here, with the fix.
		return "", badRequest("token: not accepted in the query string; send it in the X-Consul-Token header or as Authorization: Bearer")
	}
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t, nil
	}
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, t, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			return "", badRequest("Authorization: expected \"Bearer <token>\"")
		}
		return strings.TrimSpace(t), nil
	}
	if h.defaultToken == nil {
		return "", nil
	}
	return h.defaultToken(), nil
}

// withIdentity resolves the request's token before the route's handler
// runs: the secret goes on in the context (calls to servers carry it),
// with the identity it resolves to, whose accessor the audit log records.
// An unknown token is 403 "ACL not found" everywhere except the liveness
// and readiness probes. It wraps each route, inside the mux, so that the
// layers outside (request log, metrics, audit) see the matched route of
// every answer, refusals included.
func (h *handler) withIdentity(next http.HandlerFunc) http.HandlerFunc {
	if h.acl == nil {
		return next
	}
	return func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/agent/health/live", "/v1/agent/health/ready":
			next(w, r)
			return
		}
		secret, err := h.requestToken(r)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		ctx := acl.WithSecret(r.Context(), secret)
		id, err := h.acl.ResolveToken(ctx, secret)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		SetAuditAccessor(r, id.AccessorID)
		next(w, r.WithContext(acl.NewContext(ctx, id)))
	}
}

// authz is the request's authorizer; without ACLs, one that allows all.
func authz(r *http.Request) acl.Authorizer {
	if id := acl.FromContext(r.Context()); id != nil {
		return id.Authorizer
	}
	return acl.AllowAll()
}

func forbidden(perm, name string) error {
	if name == "" {
		return fmt.Errorf("%w: token lacks permission '%s'", catalog.ErrPermissionDenied, perm)
	}
	return fmt.Errorf("%w: token lacks permission '%s' on %q", catalog.ErrPermissionDenied, perm, name)
}

// setFiltered sets X-Consul-Results-Filtered-By-ACLs when filtered.
func setFiltered(w http.ResponseWriter, filtered bool) {
	if filtered {
		w.Header().Set("X-Consul-Results-Filtered-By-ACLs", "true")
	}
}

func hashOf(v any) []byte {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return sum[:]
}

// dropNil leaves out the nil elements of a decoded list (JSON nulls).
func dropNil[T any](in []*T) []*T {
	return slices.DeleteFunc(slices.Clone(in), func(x *T) bool { return x == nil })
}

// The conversions between the wire types (api) and the stored ones (acl).
func policyLinkToWire(l acl.PolicyLink) *api.ACLLink { return &api.ACLLink{ID: l.ID, Name: l.Name} }
func roleLinkToWire(l acl.RoleLink) *api.ACLLink     { return &api.ACLLink{ID: l.ID, Name: l.Name} }
func policyLink(l *api.ACLLink) acl.PolicyLink       { return acl.PolicyLink{ID: l.ID, Name: l.Name} }
func roleLink(l *api.ACLLink) acl.RoleLink           { return acl.RoleLink{ID: l.ID, Name: l.Name} }

func serviceIdentityToWire(s acl.ServiceIdentity) *api.ACLServiceIdentity {
	return &api.ACLServiceIdentity{ServiceName: s.ServiceName, Datacenters: s.Datacenters}
}

func serviceIdentity(s *api.ACLServiceIdentity) acl.ServiceIdentity {
	return acl.ServiceIdentity{ServiceName: s.ServiceName, Datacenters: s.Datacenters}
}

func nodeIdentityToWire(n acl.NodeIdentity) *api.ACLNodeIdentity {
	return &api.ACLNodeIdentity{NodeName: n.NodeName, Datacenter: n.Datacenter}
}

func nodeIdentity(n *api.ACLNodeIdentity) acl.NodeIdentity {
	return acl.NodeIdentity{NodeName: n.NodeName, Datacenter: n.Datacenter}
}

func wireToken(t *acl.Token, secret string) *api.ACLToken {
	out := &api.ACLToken{AccessorID: t.AccessorID, SecretID: secret, Description: t.Description,
		Policies: mapSlice(t.Policies, policyLinkToWire), Roles: mapSlice(t.Roles, roleLinkToWire),
		ServiceIdentities: mapSlice(t.ServiceIdentities, serviceIdentityToWire), NodeIdentities: mapSlice(t.NodeIdentities, nodeIdentityToWire),
		Local: t.Local, ExpirationTime: t.ExpirationTime, CreateTime: t.CreateTime,
		CreateIndex: t.CreateIndex, ModifyIndex: t.ModifyIndex}
	out.Hash = hashOf(out)
	return out
}

func wirePolicy(p *acl.Policy) *api.ACLPolicy {
	out := &api.ACLPolicy{ID: p.ID, Name: p.Name, Description: p.Description, Rules: p.Rules,
		Datacenters: p.Datacenters, CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex}
	out.Hash = hashOf(out)
	return out
}

func wireRole(r *acl.Role) *api.ACLRole {
	out := &api.ACLRole{ID: r.ID, Name: r.Name, Description: r.Description, Policies: mapSlice(r.Policies, policyLinkToWire),
		ServiceIdentities: mapSlice(r.ServiceIdentities, serviceIdentityToWire), NodeIdentities: mapSlice(r.NodeIdentities, nodeIdentityToWire),
		CreateIndex: r.CreateIndex, ModifyIndex: r.ModifyIndex}
	out.Hash = hashOf(out)
	return out
}

// aclRoutes are the /v1/acl endpoints.
func (h *handler) aclRoutes() map[string]http.HandlerFunc {
	return map[string]http.HandlerFunc{
		"PUT /v1/acl/bootstrap":          h.aclBootstrap,
		"PUT /v1/acl/token":              h.aclTokenWrite(true),
		"PUT /v1/acl/token/{id}":         h.aclTokenWrite(false),
		"GET /v1/acl/token/self":         h.query(h.aclTokenRead(true)),
		"GET /v1/acl/token/{id}":         h.query(h.aclTokenRead(false)),
		"DELETE /v1/acl/token/{id}":      h.aclDelete(acl.MethodTokenDelete),
		"GET /v1/acl/tokens":             h.query(h.aclTokenList),
		"PUT /v1/acl/policy":             h.aclPolicyWrite(true),
		"PUT /v1/acl/policy/{id}":        h.aclPolicyWrite(false),
		"GET /v1/acl/policy/{id}":        h.query(h.aclPolicyRead("id")),
		"GET /v1/acl/policy/name/{name}": h.query(h.aclPolicyRead("name")),
		"DELETE /v1/acl/policy/{id}":     h.aclDelete(acl.MethodPolicyDelete),
		"GET /v1/acl/policies":           h.query(h.aclPolicyList),
		"PUT /v1/acl/role":               h.aclRoleWrite(true),
		"PUT /v1/acl/role/{id}":          h.aclRoleWrite(false),
		"GET /v1/acl/role/{id}":          h.query(h.aclRoleRead("id")),
		"GET /v1/acl/role/name/{name}":   h.query(h.aclRoleRead("name")),
		"DELETE /v1/acl/role/{id}":       h.aclDelete(acl.MethodRoleDelete),
		"GET /v1/acl/roles":              h.query(h.aclRoleList),

		"PUT /v1/acl/token/{id}/clone":  h.aclTokenClone,
		"GET /v1/acl/replication":       h.info(h.aclReplication),
		"PUT /v1/acl/enrollment-token":  h.enrollmentTokenCreate,
		"GET /v1/acl/enrollment-tokens": h.info(h.enrollmentTokenList),
	}
}

func (h *handler) aclCall(ctx context.Context, method string, req, reply any) error {
	if h.aclBackend == nil {
		return fmt.Errorf("%w: ACL support disabled", catalog.ErrInvalid)
	}
	return h.aclBackend.ACLCall(ctx, method, req, reply)
}

func (h *handler) aclBootstrap(w http.ResponseWriter, r *http.Request) {
	var reply acl.TokenReply
	if err := h.aclCall(r.Context(), acl.MethodBootstrap, struct{}{}, &reply); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, wireToken(reply.Token, reply.SecretID))
}

// pathUUID checks an ID from the path.
func pathUUID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if _, err := uuid.Parse(id); len(id) != 36 || err != nil {
		return "", badRequest("%s ID %q: not a UUID", what, id)
	}
	return id, nil
}

// pathUpdateID is the ID an update names in its path; the body may repeat it
// (its field named field) but not name another.
func pathUpdateID(r *http.Request, what, field, inBody string) (string, error) {
	id, err := pathUUID(r, what)
	if err != nil {
		return "", err
	}
	if inBody != "" && inBody != id {
		return "", badRequest("%s: %q in the body differs from %q in the path", field, inBody, id)
	}
	return id, nil
}

// readByNameOrID is the read request of a policy or role: by the name in
// the path when by is "name", else by the UUID in the path.
func readByNameOrID(r *http.Request, q catalog.QueryOptions, by, what string) (acl.ReadRequest, error) {
	req := acl.ReadRequest{Options: q}
	if by == "name" {
		req.Name = r.PathValue("name")
		return req, nil
	}
	id, err := pathUUID(r, what)
	req.ID = id
	return req, err
}

func (h *handler) aclTokenWrite(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in api.ACLToken
		if err := decodeJSON(w, r, &in); err != nil {
			h.fail(w, r, err)
			return
		}
		if !create {
			id, err := pathUpdateID(r, "token", "AccessorID", in.AccessorID)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			in.AccessorID = id
		}
		req := acl.TokenSetRequest{Create: create, SecretID: in.SecretID, ExpirationTTL: time.Duration(in.ExpirationTTL),
			Token: acl.Token{AccessorID: in.AccessorID, Description: in.Description, Local: in.Local,
				Policies: mapSlice(dropNil(in.Policies), policyLink), Roles: mapSlice(dropNil(in.Roles), roleLink),
				ServiceIdentities: mapSlice(dropNil(in.ServiceIdentities), serviceIdentity), NodeIdentities: mapSlice(dropNil(in.NodeIdentities), nodeIdentity)}}
		if in.ExpirationTime != nil {
			if !create {
				h.fail(w, r, badRequest("ExpirationTime: cannot be changed on an existing token"))
				return
			}
			if in.ExpirationTTL != 0 {
				h.fail(w, r, badRequest("ExpirationTime: give ExpirationTime or ExpirationTTL, not both"))
				return
			}
			if !in.ExpirationTime.After(time.Now()) {
				h.fail(w, r, badRequest("ExpirationTime: %s is in the past", in.ExpirationTime.Format(time.RFC3339)))
				return
			}
			req.ExpirationTTL = time.Until(*in.ExpirationTime)
		}
		if in.ExpirationTTL < 0 {
			h.fail(w, r, badRequest("ExpirationTTL: must not be negative"))
			return
		}
		var reply acl.TokenReply
		if err := h.aclCall(r.Context(), acl.MethodTokenSet, &req, &reply); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, wireToken(reply.Token, reply.SecretID))
	}
}

func (h *handler) aclTokenRead(self bool) queryFunc {
	return func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
		req := acl.ReadRequest{Self: self, Options: q}
		if !self {
			id, err := pathUUID(r, "token")
			if err != nil {
				return nil, catalog.QueryMeta{}, err
			}
			req.ID = id
		}
		var reply acl.TokenReply
		if err := h.aclCall(r.Context(), acl.MethodTokenRead, &req, &reply); err != nil {
			return nil, catalog.QueryMeta{}, err
		}
		return wireToken(reply.Token, ""), reply.Meta, nil
	}
}

func (h *handler) aclTokenList(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	var reply acl.ListReply
	if err := h.aclCall(r.Context(), acl.MethodTokenList, &acl.ReadRequest{Options: q}, &reply); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	// Consul's filters: ?policy=ID, ?role=ID, ?servicename=NAME.
	v := r.URL.Query()
	policy, role, svc := v.Get("policy"), v.Get("role"), v.Get("servicename")
	out := make([]*api.ACLTokenListEntry, 0, len(reply.Tokens))
	for _, t := range reply.Tokens {
		if !tokenMatches(t, policy, role, svc) {
			continue
		}
		w := wireToken(t, "")
		out = append(out, &api.ACLTokenListEntry{CreateIndex: w.CreateIndex, ModifyIndex: w.ModifyIndex,
			AccessorID: w.AccessorID, Description: w.Description, Policies: w.Policies, Roles: w.Roles,
			ServiceIdentities: w.ServiceIdentities, NodeIdentities: w.NodeIdentities, Local: w.Local,
			ExpirationTime: w.ExpirationTime, CreateTime: w.CreateTime, Hash: w.Hash})
	}
	return out, reply.Meta, nil
}

// aclDelete answers DELETE of a token, policy or role: true, as Consul.
func (h *handler) aclDelete(method string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := pathUUID(r, "ACL object")
		if err != nil {
			h.fail(w, r, err)
			return
		}
		var reply struct{}
		if err := h.aclCall(r.Context(), method, &acl.ReadRequest{ID: id}, &reply); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, true)
	}
}

func (h *handler) aclPolicyWrite(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in api.ACLPolicy
		if err := decodeJSON(w, r, &in); err != nil {
			h.fail(w, r, err)
			return
		}
		if !create {
			id, err := pathUpdateID(r, "policy", "ID", in.ID)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			in.ID = id
		}
		req := acl.PolicySetRequest{Create: create, Policy: acl.Policy{ID: in.ID, Name: in.Name,
			Description: in.Description, Rules: in.Rules, Datacenters: in.Datacenters}}
		var reply acl.PolicyReply
		if err := h.aclCall(r.Context(), acl.MethodPolicySet, &req, &reply); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, wirePolicy(reply.Policy))
	}
}

func (h *handler) aclPolicyRead(by string) queryFunc {
	return func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
		req, err := readByNameOrID(r, q, by, "policy")
		if err != nil {
			return nil, catalog.QueryMeta{}, err
		}
		var reply acl.PolicyReply
		if err := h.aclCall(r.Context(), acl.MethodPolicyRead, &req, &reply); err != nil {
			return nil, catalog.QueryMeta{}, err
		}
		return wirePolicy(reply.Policy), reply.Meta, nil
	}
}

func (h *handler) aclPolicyList(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	var reply acl.ListReply
	if err := h.aclCall(r.Context(), acl.MethodPolicyList, &acl.ReadRequest{Options: q}, &reply); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	out := make([]*api.ACLPolicyListEntry, 0, len(reply.Policies))
	for _, p := range reply.Policies {
		w := wirePolicy(p)
		out = append(out, &api.ACLPolicyListEntry{ID: w.ID, Name: w.Name, Description: w.Description,
			Datacenters: w.Datacenters, Hash: w.Hash, CreateIndex: w.CreateIndex, ModifyIndex: w.ModifyIndex})
	}
	return out, reply.Meta, nil
}

func (h *handler) aclRoleWrite(create bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in api.ACLRole
		if err := decodeJSON(w, r, &in); err != nil {
			h.fail(w, r, err)
			return
		}
		if !create {
			id, err := pathUpdateID(r, "role", "ID", in.ID)
			if err != nil {
				h.fail(w, r, err)
				return
			}
			in.ID = id
		}
		req := acl.RoleSetRequest{Create: create, Role: acl.Role{ID: in.ID, Name: in.Name, Description: in.Description,
			Policies: mapSlice(dropNil(in.Policies), policyLink), ServiceIdentities: mapSlice(dropNil(in.ServiceIdentities), serviceIdentity),
			NodeIdentities: mapSlice(dropNil(in.NodeIdentities), nodeIdentity)}}
		var reply acl.RoleReply
		if err := h.aclCall(r.Context(), acl.MethodRoleSet, &req, &reply); err != nil {
			h.fail(w, r, err)
			return
		}
		h.writeJSON(w, r, wireRole(reply.Role))
	}
}

func (h *handler) aclRoleRead(by string) queryFunc {
	return func(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
		req, err := readByNameOrID(r, q, by, "role")
		if err != nil {
			return nil, catalog.QueryMeta{}, err
		}
		var reply acl.RoleReply
		if err := h.aclCall(r.Context(), acl.MethodRoleRead, &req, &reply); err != nil {
			return nil, catalog.QueryMeta{}, err
		}
		return wireRole(reply.Role), reply.Meta, nil
	}
}

func (h *handler) aclRoleList(r *http.Request, q catalog.QueryOptions) (any, catalog.QueryMeta, error) {
	var reply acl.ListReply
	if err := h.aclCall(r.Context(), acl.MethodRoleList, &acl.ReadRequest{Options: q}, &reply); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	out := make([]*api.ACLRole, 0, len(reply.Roles))
	for _, x := range reply.Roles {
		out = append(out, wireRole(x))
	}
	return out, reply.Meta, nil
}

// mayAgent checks agent:read or agent:write on this node.
func (h *handler) mayAgent(r *http.Request, write bool) error {
	if h.acl == nil || h.backend == nil {
		return nil // no ACLs (or the metrics-only listener, which has none)
	}
	node := h.backend.Self().NodeName
	switch a := authz(r); {
	case write && !a.AgentWrite(node):
		return forbidden("agent:write", node)
	case !write && !a.AgentRead(node):
		return forbidden("agent:read", node)
	}
	return nil
}

// mayWriteService checks service:write on the local service instance id
// (by its name; by the ID itself when no such instance exists, so the
// answer to a token without write is 403, not a 404 that confirms it).
func (h *handler) mayWriteService(r *http.Request, id string) error {
	name := id
	for _, s := range h.agent.Services() {
		if s.ID == id {
			name = s.Name
			break
		}
	}
	if !authz(r).ServiceWrite(name) {
		return forbidden("service:write", name)
	}
	return nil
}

// mayWriteCheck checks write on what a local check belongs to: its
// service, or the node.
func (h *handler) mayWriteCheck(r *http.Request, id string) error {
	for _, c := range h.agent.Checks() {
		if c.CheckID == id && c.ServiceID != "" {
			return h.mayWriteService(r, c.ServiceID)
		}
	}
	if node := h.backend.Self().NodeName; !authz(r).NodeWrite(node) {
		return forbidden("node:write", node)
	}
	return nil
}

// enrollmentTokenRequest is the body of PUT /v1/acl/enrollment-token.
type enrollmentTokenRequest struct {
	Description       string
	TTL               api.Duration
	Uses              int
	NodePrefix        string
	ServiceIdentities []*api.ACLServiceIdentity
}

// enrollmentTokenCreate makes a host enrollment token (Warren's own
// endpoint; acl:write). The answer holds the token string, once.
func (h *handler) enrollmentTokenCreate(w http.ResponseWriter, r *http.Request) {
	var in enrollmentTokenRequest
	if err := decodeJSON(w, r, &in); err != nil {
		h.fail(w, r, err)
		return
	}
	if in.Uses == 0 {
		in.Uses = 1
	}
	if in.TTL == 0 {
		in.TTL = api.Duration(time.Hour)
	}
	req := acl.EnrollmentTokenRequest{Description: in.Description, TTL: time.Duration(in.TTL), Uses: in.Uses,
		NodePrefix: in.NodePrefix, ServiceIdentities: mapSlice(dropNil(in.ServiceIdentities), serviceIdentity)}
	var reply acl.EnrollmentTokenReply
	if err := h.aclCall(r.Context(), acl.MethodEnrollmentTokenCreate, &req, &reply); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, &reply)
}

func (h *handler) enrollmentTokenList(r *http.Request) (any, error) {
	var reply acl.EnrollmentTokenList
	if err := h.aclCall(r.Context(), acl.MethodEnrollmentTokenList, &acl.ReadRequest{}, &reply); err != nil {
		return nil, err
	}
	return emptyIfNil(reply.Tokens), nil
}

// tokenMatches applies the token list's filters ("" matches all).
func tokenMatches(t *acl.Token, policy, role, service string) bool {
	if policy != "" && !slices.ContainsFunc(t.Policies, func(l acl.PolicyLink) bool { return l.ID == policy }) {
		return false
	}
	if role != "" && !slices.ContainsFunc(t.Roles, func(l acl.RoleLink) bool { return l.ID == role }) {
		return false
	}
	if service != "" && !slices.ContainsFunc(t.ServiceIdentities, func(s acl.ServiceIdentity) bool { return s.ServiceName == service }) {
		return false
	}
	return true
}

// aclTokenClone answers PUT /v1/acl/token/{id}/clone: a new token with
// the same links and identities (and the body's Description, if any).
func (h *handler) aclTokenClone(w http.ResponseWriter, r *http.Request) {
	id, err := pathUUID(r, "token")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	var in struct{ Description string }
	if r.ContentLength != 0 {
		if err := decodeJSON(w, r, &in); err != nil {
			h.fail(w, r, err)
			return
		}
	}
	var src acl.TokenReply
	if err := h.aclCall(r.Context(), acl.MethodTokenRead, &acl.ReadRequest{ID: id}, &src); err != nil {
		h.fail(w, r, err)
		return
	}
	t := *src.Token
	desc := t.Description
	if in.Description != "" {
		desc = in.Description
	}
	req := acl.TokenSetRequest{Create: true, Token: acl.Token{Description: desc, Local: t.Local,
		Policies: t.Policies, Roles: t.Roles, ServiceIdentities: t.ServiceIdentities, NodeIdentities: t.NodeIdentities}}
	if t.ExpirationTime != nil {
		if req.ExpirationTTL = time.Until(*t.ExpirationTime); req.ExpirationTTL <= 0 {
			h.fail(w, r, badRequest("token %s has expired: nothing to clone", id))
			return
		}
	}
	var reply acl.TokenReply
	if err := h.aclCall(r.Context(), acl.MethodTokenSet, &req, &reply); err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, wireToken(reply.Token, reply.SecretID))
}

// aclReplication answers GET /v1/acl/replication: Warren has one
// datacenter, so no replication runs (Consul's shape).
func (h *handler) aclReplication(r *http.Request) (any, error) {
	if h.acl != nil && !authz(r).ACLRead() {
		return nil, forbidden("acl:read", "")
	}
	return map[string]any{"Enabled": false, "Running": false, "SourceDatacenter": h.dc, "ReplicationType": "",
		"ReplicatedIndex": 0, "ReplicatedRoleIndex": 0, "ReplicatedTokenIndex": 0,
		"LastSuccess": time.Time{}, "LastError": time.Time{}, "LastErrorMessage": ""}, nil
}
