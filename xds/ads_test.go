package xds_test

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warren-mesh/warren/xds"
)

func dialXDS(t *testing.T, addr string) discovery.AggregatedDiscoveryServiceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return discovery.NewAggregatedDiscoveryServiceClient(conn)
}

// pump receives every message of a stream into a channel, so that a test
// can wait for one with a timeout without losing it to an abandoned Recv.
func pump[T any](next func() (T, error)) <-chan T {
	ch := make(chan T, 16)
	go func() {
		defer close(ch)
		for {
			v, err := next()
			if err != nil {
				return
			}
			ch <- v
		}
	}()
	return ch
}

// recv returns the next message, or the zero value (nil for the
// responses here) if none arrives within wait.
func recv[T any](t *testing.T, ch <-chan T, wait time.Duration) T {
	t.Helper()
	var zero T
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("stream closed")
		}
		return v
	case <-time.After(wait):
		return zero
	}
}

// TestADSPushesOnlyChanges speaks ADS on the wire, state of the world and
// delta: the first snapshot is pushed, an identical one is not, a changed
// endpoint set is pushed within 100 ms.
func TestADSPushesOnlyChanges(t *testing.T) {
	const node = "greeter-client"
	s, addr := startXDS(t)
	ep1 := xds.Endpoint{Address: "127.0.0.1", Port: 50051}
	ep2 := xds.Endpoint{Address: "127.0.0.1", Port: 50052}
	setGreeters(t, s, node, ep1, ep2)
	ads := dialXDS(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	sotw, err := ads.StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req := &discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.EndpointType, ResourceNames: []string{"greeter"}}
	sotwCh := pump(sotw.Recv)
	if err := sotw.Send(req); err != nil {
		t.Fatal(err)
	}
	first := recv(t, sotwCh, 5*time.Second)
	if first == nil || len(first.GetResources()) != 1 {
		t.Fatalf("first EDS response: %v", first)
	}

	delta, err := ads.DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	deltaCh := pump(delta.Recv)
	if err := delta.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"greeter"}}); err != nil {
		t.Fatal(err)
	}
	dfirst := recv(t, deltaCh, 5*time.Second)
	if dfirst == nil || len(dfirst.GetResources()) != 1 {
		t.Fatalf("first delta EDS response: %v", dfirst)
	}
	if got := s.Connected(); got != 2 {
		t.Errorf("Connected() = %d, want 2", got)
	}

	// ACK both, then set the same resources again.
	if err := sotw.Send(&discovery.DiscoveryRequest{Node: req.Node, TypeUrl: req.TypeUrl, ResourceNames: req.ResourceNames,
		VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	if err := delta.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: dfirst.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	setGreeters(t, s, node, ep2, ep1)
	if r := recv(t, sotwCh, 300*time.Millisecond); r != nil {
		t.Fatalf("identical snapshot pushed (state of the world): version %s", r.GetVersionInfo())
	}
	if r := recv(t, deltaCh, 300*time.Millisecond); r != nil {
		t.Fatalf("identical snapshot pushed (delta): %v", r)
	}

	// One instance leaves: both streams hear of it within 100 ms.
	start := time.Now()
	setGreeters(t, s, node, ep1)
	r := recv(t, sotwCh, time.Second)
	if r == nil || r.GetVersionInfo() == first.GetVersionInfo() {
		t.Fatalf("changed endpoints not pushed (state of the world): %v", r)
	}
	d := recv(t, deltaCh, time.Second)
	if d == nil || len(d.GetResources()) != 1 {
		t.Fatalf("changed endpoints not pushed (delta): %v", d)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("push took %v, want under 100ms", took)
	}

	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for s.Connected() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Connected() = %d after the streams closed", s.Connected())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
