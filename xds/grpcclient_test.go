package xds_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	grpcxds "google.golang.org/grpc/xds" // registers the xds:/// resolver and balancers

	"github.com/warren-mesh/warren/xds"
)

// greeter is a test backend that answers with its own ID.
type greeter struct {
	testgrpc.UnimplementedTestServiceServer
	id string
}

func (g *greeter) UnaryCall(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	return &testgrpc.SimpleResponse{ServerId: g.id}, nil
}

// startGreeter serves a greeter on 127.0.0.1 and returns its endpoint; the
// server's ID is its address.
func startGreeter(t *testing.T) xds.Endpoint {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &greeter{id: lis.Addr().String()})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	addr := lis.Addr().(*net.TCPAddr)
	return xds.Endpoint{Address: addr.IP.String(), Port: addr.Port, Node: "node-" + strconv.Itoa(addr.Port)}
}

func id(e xds.Endpoint) string { return net.JoinHostPort(e.Address, strconv.Itoa(e.Port)) }

// startXDS serves an xds.Server on 127.0.0.1 and returns it with its address.
func startXDS(t *testing.T) (*xds.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := xds.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	g := grpc.NewServer()
	s.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	return s, lis.Addr().String()
}

func setGreeters(t *testing.T, s *xds.Server, node string, eps ...xds.Endpoint) {
	t.Helper()
	res, err := xds.BuildGRPC(&xds.GRPCInput{Services: map[string][]xds.Endpoint{"greeter": eps}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetSnapshot(context.Background(), node, res); err != nil {
		t.Fatal(err)
	}
}

func writeBootstrap(t *testing.T, serverAddr, node string) string {
	t.Helper()
	b, err := xds.GRPCBootstrap(serverAddr, node)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bootstrap.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// callN makes n calls and counts answers per server ID.
func callN(t *testing.T, client testgrpc.TestServiceClient, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			t.Fatalf("call: %v", err)
		}
		got[resp.GetServerId()]++
	}
	return got
}

// TestProxylessGRPCClient runs grpc-go's own xDS client (resolver, xDS
// client, cds/eds/round-robin balancers) against the Server: calls spread
// over every instance, an instance that leaves the EDS set stops receiving
// calls within a second, and a new one starts receiving them.
func TestProxylessGRPCClient(t *testing.T) {
	const node = "greeter-client"
	s, addr := startXDS(t)
	backends := []xds.Endpoint{startGreeter(t), startGreeter(t), startGreeter(t)}
	setGreeters(t, s, node, backends...)

	// grpc-go reads GRPC_XDS_BOOTSTRAP when the package initialises, so an
	// in-process test hands the same file's content to a resolver built
	// for it. TestProxylessGRPCClientEnvBootstrap covers the env var.
	bootstrap, err := os.ReadFile(writeBootstrap(t, addr, node))
	if err != nil {
		t.Fatal(err)
	}
	builder, err := grpcxds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn := dialGreeter(t, builder)
	client := testgrpc.NewTestServiceClient(conn)

	got := callN(t, client, 30)
	for _, b := range backends {
		if got[id(b)] == 0 {
			t.Errorf("30 calls %v: none reached %s", got, id(b))
		}
	}
	if s.Connected() == 0 {
		t.Errorf("Connected() = 0 with a client attached")
	}

	// backends[0] turns critical: the agent drops it from the EDS set.
	removed := backends[0]
	setGreeters(t, s, node, backends[1:]...)
	start := time.Now()
	lastHit := time.Time{}
	clean := 0
	for clean < 30 {
		if time.Since(start) > time.Second {
			t.Fatalf("calls still reach the removed instance %s after 1s (last at %v)", id(removed), lastHit.Sub(start))
		}
		if callN(t, client, 1)[id(removed)] > 0 {
			lastHit, clean = time.Now(), 0
			continue
		}
		clean++
	}
	t.Logf("removed instance out of rotation after %v", time.Since(start))
	if n := callN(t, client, 30)[id(removed)]; n != 0 {
		t.Fatalf("%d of 30 calls reached the removed instance", n)
	}

	// A fourth instance registers and passes its checks.
	added := startGreeter(t)
	setGreeters(t, s, node, backends[1], backends[2], added)
	deadline := time.Now().Add(time.Second)
	for callN(t, client, 1)[id(added)] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the new instance %s received no call within 1s", id(added))
		}
	}
	got = callN(t, client, 30)
	for _, b := range []xds.Endpoint{backends[1], backends[2], added} {
		if got[id(b)] == 0 {
			t.Errorf("30 calls %v: none reached %s", got, id(b))
		}
	}
	if got[id(removed)] != 0 {
		t.Errorf("30 calls %v reached the removed instance", got)
	}
}

func dialGreeter(t *testing.T, builder resolver.Builder) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if builder != nil {
		opts = append(opts, grpc.WithResolvers(builder))
	}
	conn, err := grpc.NewClient("xds:///greeter", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestProxylessGRPCClientEnvBootstrap checks the way applications use it:
// a process started with GRPC_XDS_BOOTSTRAP pointing at the file that
// GRPCBootstrap wrote dials xds:///greeter with no other setup. The test
// binary runs itself as that process.
func TestProxylessGRPCClientEnvBootstrap(t *testing.T) {
	if os.Getenv("WARREN_XDS_CHILD") == "1" {
		client := testgrpc.NewTestServiceClient(dialGreeter(t, nil))
		for srv, n := range callN(t, client, 30) {
			fmt.Printf("calls %s %d\n", srv, n)
		}
		return
	}
	const node = "greeter-env-client"
	s, addr := startXDS(t)
	backends := []xds.Endpoint{startGreeter(t), startGreeter(t), startGreeter(t)}
	setGreeters(t, s, node, backends...)

	cmd := exec.Command(os.Args[0], "-test.run=^TestProxylessGRPCClientEnvBootstrap$", "-test.v")
	cmd.Env = append(os.Environ(), "WARREN_XDS_CHILD=1", "GRPC_XDS_BOOTSTRAP="+writeBootstrap(t, addr, node))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("client process: %v\n%s", err, out)
	}
	for _, b := range backends {
		if !strings.Contains(string(out), "calls "+id(b)+" ") {
			t.Errorf("no call reached %s:\n%s", id(b), out)
		}
	}
}
