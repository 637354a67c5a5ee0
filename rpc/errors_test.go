package rpc

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/catalog"
)

// TestMaybeSent tells the failures after which a write may have been
// applied (never retried) from those after which it was not.
func TestMaybeSent(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{FromStatus(ToStatus(catalog.ErrNoLeader)), false},
		{FromStatus(ToStatus(errors.Join(catalog.ErrNoLeader, errors.New("node is not the leader")))), false},
		{FromStatus(status.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`)), false},
		{FromStatus(status.Error(codes.Unavailable, "error reading from server: EOF")), true},
		{FromStatus(status.Error(codes.Unavailable, "transport is closing")), true},
		{FromStatus(ToStatus(catalog.ErrMaybeApplied)), true},
		{FromStatus(ToStatus(catalog.ErrInvalid)), false},
		{errors.New("plain"), false},
	} {
		if got := MaybeSent(tc.err); got != tc.want {
			t.Errorf("MaybeSent(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if !errors.Is(FromStatus(ToStatus(catalog.ErrMaybeApplied)), catalog.ErrMaybeApplied) {
		t.Error("ErrMaybeApplied does not survive the wire")
	}
}
