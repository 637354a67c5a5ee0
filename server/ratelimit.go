package server

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc/peer"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/limits"
)

// allowCall applies rpc_rate: one token bucket per caller IP (the agent's
// address), in a bounded map. Calls from the IP of a known server (our
// own, or one that joined) are not limited: they are forwarded requests,
// each already counted against its agent at the first server, and a
// co-located agent's own calls. Over the limit the call fails with
// ErrRateLimited, which travels as gRPC ResourceExhausted.
func (s *Server) allowCall(ctx context.Context) error {
	if s.rpcRate == nil || s.cfg.RPCRate <= 0 {
		return nil
	}
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return nil
	}
	ip := limits.ClientIP(p.Addr.String())
	if s.isServerIP(ip) || s.rpcRate.Allow(ip) {
		return nil
	}
	s.cfg.Rejections.Inc(limits.RPCRate)
	return fmt.Errorf("%w: the limit %s is %g calls/s per agent (burst %d)", catalog.ErrRateLimited, limits.RPCRate, s.cfg.RPCRate, s.cfg.RPCMaxBurst)
}

// isServerIP reports whether ip is the host of a known server's RPC
// address.
func (s *Server) isServerIP(ip string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, info := range s.known {
		if host, _, err := net.SplitHostPort(info.Address); err == nil && limits.ClientIP(net.JoinHostPort(host, "0")) == ip {
			return true
		}
	}
	return false
}
