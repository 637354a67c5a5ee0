package rpc

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/catalog"
)

// ToStatus turns an error into a gRPC status error that FromStatus turns
// back into an error matching the same catalog sentinel.
func ToStatus(err error) error {
	if err == nil {
		return nil
	}
	code := codes.Internal
	switch {
	case errors.Is(err, catalog.ErrInvalid):
		code = codes.InvalidArgument
	case errors.Is(err, catalog.ErrMaybeApplied):
		code = codes.Aborted
	case errors.Is(err, catalog.ErrNoLeader):
		code = codes.Unavailable
	case errors.Is(err, catalog.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, catalog.ErrUnknownDatacenter):
		code = codes.FailedPrecondition
	case errors.Is(err, catalog.ErrRateLimited):
		code = codes.ResourceExhausted
	case errors.Is(err, catalog.ErrACLNotFound):
		code = codes.Unauthenticated
	case errors.Is(err, catalog.ErrPermissionDenied):
		code = codes.PermissionDenied
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	return status.Error(code, err.Error())
}

// remoteError is an error that came over the wire: its text is the remote
// error's, and it matches the sentinel its code stands for.
type remoteError struct {
	msg  string
	kind error
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.kind }

// FromStatus turns a gRPC error back into an error that matches the
// catalog sentinel the remote error matched.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var kind error
	switch st.Code() {
	case codes.InvalidArgument:
		kind = catalog.ErrInvalid
	case codes.Aborted:
		kind = catalog.ErrMaybeApplied
	case codes.Unavailable:
		// Unavailable is also what gRPC says when it cannot reach the peer
		// or loses the connection: either way there is no leader we can
		// reach (whether a lost call was applied: see MaybeSent).
		kind = catalog.ErrNoLeader
	case codes.NotFound:
		kind = catalog.ErrNotFound
	case codes.FailedPrecondition:
		kind = catalog.ErrUnknownDatacenter
	case codes.ResourceExhausted:
		kind = catalog.ErrRateLimited
	case codes.Unauthenticated:
		kind = catalog.ErrACLNotFound
	case codes.PermissionDenied:
		kind = catalog.ErrPermissionDenied
	case codes.DeadlineExceeded:
		kind = context.DeadlineExceeded
	case codes.Canceled:
		kind = context.Canceled
	default:
		return errors.New(st.Message())
	}
	return &remoteError{msg: st.Message(), kind: kind}
}

// MaybeSent reports whether a call that failed with err may have reached
// the server and been applied there: a connection lost mid-call, or the
// leader lost while committing. A server's own "no leader" answer and a
// failure to connect at all were not applied.
func MaybeSent(err error) bool {
	if errors.Is(err, catalog.ErrMaybeApplied) {
		return true
	}
	var re *remoteError
	if !errors.As(err, &re) || re.kind != catalog.ErrNoLeader {
		return false
	}
	// Our servers' own refusals say "no cluster leader"; gRPC says
	// "Error while dialing" when it never connected.
	return !strings.Contains(re.msg, catalog.ErrNoLeader.Error()) && !strings.Contains(re.msg, "Error while dialing") &&
		!strings.Contains(re.msg, "connection refused")
}
