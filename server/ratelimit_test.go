package server_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

// agentClient is a gRPC client of addr whose connections come from the
// loopback address local, as an agent on that host would.
func agentClient(t *testing.T, addr, local string) pb.ServerClient {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	cc, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return pb.NewServerClient(cc)
}

func callStatus(ctx context.Context, c pb.ServerClient) error {
	_, err := c.Call(ctx, &pb.CallRequest{Method: rpc.MethodStatus, Body: []byte("{}")})
	return rpc.FromStatus(err)
}

// rpc_rate: an agent bursting past its bucket gets ErrRateLimited
// (ResourceExhausted on the wire) and the metric moves, while another
// agent is still served; a forwarded flag does not buy an exemption.
func TestRPCRateLimitPerAgent(t *testing.T) {
	rej := limits.NewRejections(nil)
	c := servertest.New(t, 1, func(cfg *server.Config) {
		cfg.RPCRate, cfg.RPCMaxBurst, cfg.Rejections = 5, 10, rej
	})
	addr := c.WaitLeader().Server.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	greedy := agentClient(t, addr, "127.0.0.2")
	ok, limited := 0, 0
	for range 40 {
		err := callStatus(ctx, greedy)
		switch {
		case err == nil:
			ok++
		case errors.Is(err, catalog.ErrRateLimited):
			limited++
		default:
			t.Fatalf("call: %v", err)
		}
	}
	// 10 of burst, plus what refilled at 5/s while the calls ran.
	if limited == 0 || ok < 10 || ok > 20 {
		t.Fatalf("%d served, %d rate limited; want the burst of 10 (and a few refills) served, the rest limited", ok, limited)
	}
	if got := rej.Count(limits.RPCRate); got != float64(limited) {
		t.Fatalf("metric %v, want %d", got, limited)
	}
	_, err := greedy.Call(ctx, &pb.CallRequest{Method: rpc.MethodStatus, Body: []byte("{}"), Forwarded: true})
	if !errors.Is(rpc.FromStatus(err), catalog.ErrRateLimited) {
		t.Fatalf("a forwarded-flagged call from an agent: %v, want rate limited", err)
	}

	other := agentClient(t, addr, "127.0.0.3")
	for i := range 5 {
		if err := callStatus(ctx, other); err != nil {
			t.Fatalf("another agent's call %d: %v", i, err)
		}
	}
	// The server's own address (its agent, forwarding servers) is not
	// limited.
	self := agentClient(t, addr, "127.0.0.1")
	for i := range 30 {
		if err := callStatus(ctx, self); err != nil {
			t.Fatalf("a call from the server's own address %d: %v", i, err)
		}
	}
}
