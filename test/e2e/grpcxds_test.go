package e2e

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	grpcxds "google.golang.org/grpc/xds"

	"github.com/warren-mesh/warren/internal/testutil"
)

type greeterBackend struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (g *greeterBackend) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: g.id}, nil
}

// startBackend serves a greeter on 127.0.0.1 and returns its port.
func startBackend(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &greeterBackend{id: lis.Addr().String()})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

// TestProxylessGRPCThroughAgent registers three greeter instances in a
// running warren dev and has grpc-go's own xDS client dial xds:///greeter
// against the agent's xDS port, with the bootstrap `warren connect
// grpc-bootstrap` writes: calls spread over the healthy instances, an
// instance whose check turns critical stops receiving calls, and a new one
// starts receiving them.
func TestProxylessGRPCThroughAgent(t *testing.T) {
	xdsPort := testutil.FreePort(t)
	p := startDev(t, "-grpc-port", strconv.Itoa(xdsPort))
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	register := func(i, port int, status string) {
		t.Helper()
		reg := &consulapi.CatalogRegistration{Node: fmt.Sprintf("g%d", i), Address: "127.0.0.1",
			Service: &consulapi.AgentService{ID: "greeter", Service: "greeter", Port: port},
			Check:   &consulapi.AgentCheck{CheckID: "alive", Name: "alive", Status: status, ServiceID: "greeter"}}
		if _, err := cl.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
	}
	ports := []int{startBackend(t), startBackend(t), startBackend(t)}
	for i, port := range ports {
		register(i, port, consulapi.HealthPassing)
	}

	out, errOut, code := run(t, "connect", "grpc-bootstrap", "-service", "e2e", "-xds-addr", fmt.Sprintf("127.0.0.1:%d", xdsPort))
	if code != 0 {
		t.Fatalf("grpc-bootstrap: %d %s", code, errOut)
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting([]byte(out))
	if err != nil {
		t.Fatalf("grpc-go refuses the bootstrap: %v\n%s", err, out)
	}
	conn, err := grpc.NewClient("xds:///greeter", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := testgrpc.NewTestServiceClient(conn)
	call := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatalf("call through xds:///greeter: %v", err)
		}
		return resp.GetServerId()
	}
	hits := map[string]int{}
	for range 30 {
		hits[call()]++
	}
	for _, port := range ports {
		if hits[fmt.Sprintf("127.0.0.1:%d", port)] == 0 {
			t.Fatalf("30 calls %v: none reached 127.0.0.1:%d", hits, port)
		}
	}

	// Instance 0 turns critical: it must stop receiving calls within a second.
	register(0, ports[0], consulapi.HealthCritical)
	bad := fmt.Sprintf("127.0.0.1:%d", ports[0])
	start := time.Now()
	for clean := 0; clean < 30; {
		if time.Since(start) > time.Second {
			t.Fatalf("calls still reach the critical instance %s after 1s", bad)
		}
		if call() == bad {
			clean = 0
			continue
		}
		clean++
	}
	t.Logf("critical instance out of rotation after %v", time.Since(start))

	// A new instance starts receiving calls.
	added := startBackend(t)
	register(3, added, consulapi.HealthPassing)
	want := fmt.Sprintf("127.0.0.1:%d", added)
	deadline := time.Now().Add(2 * time.Second)
	for call() != want {
		if time.Now().After(deadline) {
			t.Fatalf("the new instance %s received no call within 2s", want)
		}
	}
	p.stop(t)
}
