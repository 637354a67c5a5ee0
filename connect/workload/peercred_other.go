//go:build !linux

package workload

import (
	"errors"
	"net"
)

// readPeerCred is implemented on Linux only (SO_PEERCRED).
func readPeerCred(net.Conn) (Caller, error) {
	return Caller{}, errors.New("workload API: peer credentials are supported on Linux only")
}
