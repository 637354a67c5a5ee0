package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/internal/audit"
)

// Auditor records audited events; *audit.Log is one.
type Auditor interface {
	Audit(ctx context.Context, e audit.Event)
}

// SetAuditAccessor records the token accessor ID that the audit line of
// r's request names. Code that resolves the token inside the audit layer
// (a handler, or a middleware wrapped around the mux) calls it; an
// identity in the context of the request the audit layer sees
// (acl.FromContext, set by a layer outside it) is used otherwise. Never
// pass a secret.
func SetAuditAccessor(r *http.Request, accessorID string) {
	if s := stateOf(r); s != nil {
		s.accessor = accessorID
	}
}

// isWrite reports whether a request changes state and is audited.
func isWrite(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodDelete, http.MethodPatch:
		return true
	}
	return false
}

// auditWrites writes one audit event per write request, after it is
// answered: its request ID (also sent as X-Request-Id), accessor, client
// address, method, route pattern (never the raw URL: a query may hold a
// token), status and duration. It wraps the mux directly so that
// r.Pattern is the matched route.
func (h *handler) auditWrites(next http.Handler) http.Handler {
	if h.audit == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !isWrite(r.Method) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		id := newRequestID()
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "(unmatched)"
		}
		accessor := ""
		if s := stateOf(r); s != nil {
			accessor = s.accessor
		}
		if accessor == "" {
			if ident := acl.FromContext(r.Context()); ident != nil {
				accessor = ident.AccessorID
			}
		}
		result := "ok"
		if rec.status >= 400 {
			result = "error"
		}
		// The request's context may be cancelled (the client left): the
		// event is still recorded.
		h.audit.Audit(context.WithoutCancel(r.Context()), audit.Event{
			Time: start, Type: "http", RequestID: id, AccessorID: accessor,
			ClientAddr: r.RemoteAddr, Method: r.Method, Route: route,
			Status: rec.status, Duration: time.Since(start), Result: result,
		})
	})
}

// newRequestID is 16 random bytes in hex.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}
