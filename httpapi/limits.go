package httpapi

import (
	"context"
	"fmt"
	"net/http"

	"github.com/warren-mesh/warren/internal/limits"
)

// reqState is what the outermost layer puts in every request's context:
// the body limit decodeJSON applies, and the audit identity that code
// inside the audit layer may set (SetAuditAccessor).
type reqState struct {
	maxBody  int64
	accessor string
}

type reqStateKey struct{}

func stateOf(r *http.Request) *reqState {
	if s, ok := r.Context().Value(reqStateKey{}).(*reqState); ok {
		return s
	}
	return nil
}

// maxPathBytes bounds a request's path: no name the API takes comes near
// it, and a longer one is refused before routing (the request line as a
// whole is bounded by the server's MaxHeaderBytes, answered 431).
const maxPathBytes = 8 << 10

// withRequestState is the outermost layer. It replaces the request (a new
// context), so it must run before the mux sets r.Pattern, which the layers
// inside read.
func (h *handler) withRequestState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n := len(r.URL.EscapedPath()); n > maxPathBytes {
			h.fail(w, r, badRequest("path: %d bytes, longer than the limit of %d", n, maxPathBytes))
			return
		}
		st := &reqState{maxBody: h.maxBody}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), reqStateKey{}, st)))
	})
}

// bodyLimit is the request's JSON body limit.
func bodyLimit(r *http.Request) int64 {
	if s := stateOf(r); s != nil && s.maxBody > 0 {
		return s.maxBody
	}
	return maxBodyBytes
}

// acquireBlocking takes one of the client's blocking-query slots. When the
// client holds them all it answers 429 naming the limit, counts the
// rejection and returns false.
func (h *handler) acquireBlocking(w http.ResponseWriter, r *http.Request) (release func(), ok bool) {
	release, ok = h.blocking.Acquire(limits.ClientIP(r.RemoteAddr))
	if !ok {
		h.rejections.Inc(limits.HTTPBlockingQueriesPerClient)
		h.fail(w, r, &httpError{code: http.StatusTooManyRequests,
			msg: fmt.Sprintf("Too many blocking queries from this client: the limit %s is %d", limits.HTTPBlockingQueriesPerClient, h.blocking.Max())})
	}
	return release, ok
}
