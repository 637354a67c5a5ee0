package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/hashicorp/serf/serf"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/rpc"
)

// serverRouter finds the servers of the agent's datacenter in the gossip
// pool and sends requests to them, moving to the next server when one
// cannot be reached.
type serverRouter struct {
	pool *rpc.Pool
	gsp  *gossip.Pool
	dc   string
	// local is this process's own server RPC address, tried first; "" on
	// a plain agent.
	local string
}

// servers lists the alive servers' RPC addresses: the local server first,
// the rest shuffled so agents spread their load.
func (r *serverRouter) servers() []string {
	var out, failed []string
	for _, m := range r.gsp.Members() {
		addr, ok := gossip.ServerRPCAddr(m, r.dc)
		if !ok || addr == r.local {
			continue
		}
		switch m.Status {
		case serf.StatusAlive:
			out = append(out, addr)
		case serf.StatusFailed:
			failed = append(failed, addr)
		}
	}
	// When gossip thinks every server failed (they all restarted, say),
	// try them anyway: RPC may reach them before gossip does.
	if len(out) == 0 {
		out = failed
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	if r.local != "" {
		out = append([]string{r.local}, out...)
	}
	return out
}

// errNoServers means gossip knows no alive server.
var errNoServers = errors.New("no known servers")

func (r *serverRouter) call(ctx context.Context, method string, req, reply any) error {
	servers := r.servers()
	if len(servers) == 0 {
		return errNoServers
	}
	var err error
	for _, addr := range servers {
		err = r.pool.Call(ctx, addr, method, req, reply)
		if err == nil || !errors.Is(err, catalog.ErrNoLeader) {
			return err
		}
		// A write that may have reached a server is not sent again
		// (applied twice, it could undo another client's write made
		// in between); the caller learns its outcome is unknown.
		if userWrite(method) && rpc.MaybeSent(err) {
			return fmt.Errorf("%w: %v", catalog.ErrMaybeApplied, err)
		}
	}
	return err
}

// userWrite reports whether method changes state that other clients also
// write (the catalog, intentions, ACLs), so that repeating it is not safe.
func userWrite(method string) bool {
	switch method {
	case rpc.MethodRegister, rpc.MethodDeregister, rpc.MethodIntentionApply, rpc.MethodCAConfigSet:
		return true
	}
	return strings.HasPrefix(method, "ACL.") && method != acl.MethodResolve && method != acl.MethodEnrollCA &&
		!strings.HasSuffix(method, "Read") && !strings.HasSuffix(method, "List")
}

// NodeServices reads this node's catalog entry from the leader.
func (r *serverRouter) NodeServices(ctx context.Context, node string) (*catalog.Node, []*catalog.Service, error) {
	var reply rpc.ReadReply
	if err := r.call(ctx, rpc.MethodNodeServices, &rpc.ReadRequest{Node: node}, &reply); err != nil {
		return nil, nil, err
	}
	return reply.Node, reply.NodeServices, nil
}

// NodeChecks reads this node's checks from the leader.
func (r *serverRouter) NodeChecks(ctx context.Context, node string) ([]*catalog.Check, error) {
	var reply rpc.ReadReply
	if err := r.call(ctx, rpc.MethodNodeChecks, &rpc.ReadRequest{Node: node}, &reply); err != nil {
		return nil, err
	}
	return reply.Checks, nil
}

// Register sends a registration to the leader.
func (r *serverRouter) Register(ctx context.Context, reg *catalog.Registration) error {
	return r.call(ctx, rpc.MethodRegister, &rpc.RegisterRequest{Registration: *reg}, &rpc.Empty{})
}

// Deregister sends a deregistration to the leader.
func (r *serverRouter) Deregister(ctx context.Context, d *catalog.Deregistration) error {
	return r.call(ctx, rpc.MethodDeregister, &rpc.DeregisterRequest{Deregistration: *d}, &rpc.Empty{})
}
