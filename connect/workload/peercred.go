package workload

import (
	"context"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Caller is who called the Workload API, from the unix socket's peer
// credentials, as the kernel recorded them when the caller connected.
type Caller struct {
	UID, GID uint32
	PID      int32
	// Path is the executable of PID when the connection was accepted
	// (/proc/<pid>/exe); "" when it could not be read (the process is
	// gone, or the agent may not look at another user's processes).
	Path string
}

func (c Caller) String() string {
	return fmt.Sprintf("uid %d, gid %d, pid %d, path %q", c.UID, c.GID, c.PID, c.Path)
}

// AuthInfo is the gRPC peer AuthInfo of a Workload API connection.
type AuthInfo struct {
	credentials.CommonAuthInfo
	Caller Caller
}

// AuthType names the credentials.
func (AuthInfo) AuthType() string { return authType }

const authType = "unix-peercred"

// errNoPeerCred is returned for a connection that is not a unix socket.
var errNoPeerCred = errors.New("workload API: not a unix socket connection: no peer credentials")

// PeerCredentials are server-side gRPC transport credentials that do no
// encryption (a unix socket needs none) and put the peer's unix
// credentials into the connection's AuthInfo. They refuse any connection
// whose credentials cannot be read.
func PeerCredentials() credentials.TransportCredentials { return peerCreds{} }

type peerCreds struct{}

func (peerCreds) ClientHandshake(_ context.Context, _ string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("workload API peer credentials are for the server side only")
}

func (peerCreds) ServerHandshake(conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	c, err := readPeerCred(conn)
	if err != nil {
		_ = conn.Close()
		return nil, nil, err
	}
	return conn, AuthInfo{CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.NoSecurity}, Caller: c}, nil
}

func (peerCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: authType}
}

func (p peerCreds) Clone() credentials.TransportCredentials { return p }

func (peerCreds) OverrideServerName(string) error { return nil }

// CallerFrom returns the caller of an RPC served with PeerCredentials.
func CallerFrom(ctx context.Context) (Caller, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Caller{}, false
	}
	ai, ok := p.AuthInfo.(AuthInfo)
	return ai.Caller, ok
}
