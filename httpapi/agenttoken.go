package httpapi

import (
	"net/http"
	"strings"
)

// tokenKinds are the agent tokens PUT /v1/agent/token/{kind} can set, by
// Consul's names and the legacy ones its older clients send.
var tokenKinds = map[string]string{
	"default": "default", "acl_token": "default",
	"agent": "agent", "acl_agent_token": "agent",
}

// agentSetToken answers PUT /v1/agent/token/{kind} as Consul does with
// its default acl.enable_token_persistence = false: the token is in force
// at once and until the process restarts, when the configured (or
// enrolled) one is back. "default" is the token of requests that carry
// none (HTTP and DNS); "agent" is the one the agent calls the servers
// with. It needs acl:write; without ACLs it is 401, as in Consul.
func (h *handler) agentSetToken(w http.ResponseWriter, r *http.Request) error {
	if h.onTokenUpdate == nil {
		return &httpError{code: http.StatusNotFound, msg: "this process cannot change its tokens"}
	}
	if h.acl == nil {
		return &httpError{code: http.StatusUnauthorized, msg: "ACL support disabled"}
	}
	if !authz(r).ACLWrite() {
		return forbidden("acl:write", "")
	}
	name := r.PathValue("kind")
	kind, ok := tokenKinds[name]
	if !ok {
		return badRequest("token kind %q: Warren's agents take default or agent (recovery, replication and dns tokens are not used here)", name)
	}
	var in struct{ Token string }
	if err := decodeJSON(w, r, &in); err != nil {
		return err
	}
	if strings.ContainsAny(in.Token, "\r\n") {
		return badRequest("Token: contains a line break")
	}
	h.onTokenUpdate(kind, in.Token)
	return nil
}
