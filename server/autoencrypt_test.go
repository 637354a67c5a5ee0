package server_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/agent"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server/servertest"
)

// TestAutoEncrypt: an agent with only the CA gets a client certificate
// from the servers' built-in CA over TLS, uses it for RPC, renews it
// before it expires (4 s leaves here), and that certificate cannot pose as
// a server.
func TestAutoEncrypt(t *testing.T) {
	pki := newPKI(t)
	c := servertest.New(t, 3, withTLS(t, pki))
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	srvCert := pki.server
	admin := rpc.NewTLSPool(pki.configurator(t, &srvCert, false).OutgoingRPC())
	defer admin.Close()
	servertest.WaitFor(t, 10*time.Second, func() error {
		return admin.Call(ctx, leader.Server.Addr(), rpc.MethodCAConfigSet, &rpc.CAConfigSetRequest{Config: rpc.CAConfig{LeafTTL: 4 * time.Second}}, &rpc.Empty{})
	})

	tc := pki.configurator(t, nil, false)
	main := rpc.NewTLSPool(tc.OutgoingRPC())
	defer main.Close()
	if err := register(ctx, main, follower.Server.Addr(), "early"); err == nil || !strings.Contains(err.Error(), "no client certificate yet") {
		t.Fatalf("RPC before auto-encrypt: %v", err)
	}
	anon := rpc.NewTLSPool(tc.OutgoingRPCAnonymous())
	defer anon.Close()
	nodeID := uuid.NewString()
	ae := agent.NewAutoEncrypt(agent.AutoEncryptConfig{TLS: tc, Pool: anon, Servers: func() []string { return []string{follower.Server.Addr()} },
		Datacenter: "dc1", Node: "agent1", NodeID: nodeID, Logger: servertest.Logger("agent1")})
	aeCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ae.Run(aeCtx) }()
	defer func() { stop(); <-done }()
	select {
	case <-ae.Ready():
	case <-ctx.Done():
		t.Fatal("no certificate from auto-encrypt")
	}
	first := tc.Cert().Leaf
	if len(first.URIs) != 1 || !strings.HasPrefix(first.URIs[0].String(), "spiffe://") || !strings.HasSuffix(first.URIs[0].Path, "/agent/client/dc/dc1/id/"+nodeID) {
		t.Fatalf("URI SANs %v", first.URIs)
	}
	if !slices.Contains(first.DNSNames, "client.dc1.warren") {
		t.Fatalf("DNS SANs %v", first.DNSNames)
	}
	// Connections made before auto-encrypt failed; gRPC reconnects with
	// the certificate.
	servertest.WaitFor(t, 10*time.Second, func() error { return register(ctx, main, follower.Server.Addr(), "agent1") })

	// Renewal at 60-90% of 4 s, swapped in without closing the pool.
	servertest.WaitFor(t, 15*time.Second, func() error {
		if tc.Cert().Leaf.SerialNumber.Cmp(first.SerialNumber) == 0 {
			return context.DeadlineExceeded
		}
		return nil
	})
	if err := register(ctx, main, leader.Server.Addr(), "agent1"); err != nil {
		t.Fatalf("RPC on the pool opened with the first certificate: %v", err)
	}
	fresh := rpc.NewTLSPool(tc.OutgoingRPC())
	defer fresh.Close()
	if err := register(ctx, fresh, leader.Server.Addr(), "agent1"); err != nil {
		t.Fatalf("RPC with the renewed certificate: %v", err)
	}
	// The agent certificate is no server's: a server refuses a peer
	// presenting it, and the servers refuse it for Join.
	if _, err := fresh.Join(ctx, leader.Server.Addr(), nil); err == nil || !strings.Contains(err.Error(), "needs a server certificate") {
		t.Fatalf("Join with an auto-encrypt certificate: %v", err)
	}
	fake := fakeServer(t, *tc.Cert())
	cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
	defer ccancel()
	if err := register(cctx, admin, fake, "x"); err == nil || !strings.Contains(err.Error(), "tls: failed to verify certificate") {
		t.Fatalf("a server dialing a peer with an agent certificate: %v", err)
	}
}
