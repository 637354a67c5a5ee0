package xds_test

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/status"
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

// TestPushLatencyAndNackMetrics: the initial fetch is not a push; a
// changed endpoint set pushed to a stream that had EDS is observed in
// warren_xds_push_duration_seconds; a request carrying error_detail counts
// in warren_xds_nacks_total under its type.
func TestPushLatencyAndNackMetrics(t *testing.T) {
	const node = "greeter-client-metrics"
	s, addr := startXDS(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collectors()...)
	setGreeters(t, s, node, xds.Endpoint{Address: "127.0.0.1", Port: 50051})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sotw, err := dialXDS(t, addr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ch := pump(sotw.Recv)
	req := &discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.EndpointType, ResourceNames: []string{"greeter"}}
	if err := sotw.Send(req); err != nil {
		t.Fatal(err)
	}
	first := recv(t, ch, 5*time.Second)
	if first == nil {
		t.Fatal("no initial EDS response")
	}
	if n := gatherCount(t, reg, "warren_xds_push_duration_seconds"); n != 0 {
		t.Fatalf("initial fetch observed as %v pushes", n)
	}
	// ACK (without the node, as clients may), then change the endpoints.
	if err := sotw.Send(&discovery.DiscoveryRequest{TypeUrl: req.TypeUrl, ResourceNames: req.ResourceNames,
		VersionInfo: first.GetVersionInfo(), ResponseNonce: first.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	setGreeters(t, s, node, xds.Endpoint{Address: "127.0.0.1", Port: 50052})
	second := recv(t, ch, 5*time.Second)
	if second == nil {
		t.Fatal("changed endpoints not pushed")
	}
	if n := gatherCount(t, reg, "warren_xds_push_duration_seconds"); n != 1 {
		t.Fatalf("push observed %v times, want 1", n)
	}
	// NACK the push.
	if err := sotw.Send(&discovery.DiscoveryRequest{TypeUrl: req.TypeUrl, ResourceNames: req.ResourceNames,
		VersionInfo: first.GetVersionInfo(), ResponseNonce: second.GetNonce(),
		ErrorDetail: &status.Status{Code: 3, Message: "bad endpoint"}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for gatherCount(t, reg, "warren_xds_nacks_total") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("NACK not counted")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// gatherCount returns a family's counter value or histogram sample count,
// summed over its series.
func gatherCount(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if h := m.GetHistogram(); h != nil {
				sum += float64(h.GetSampleCount())
			} else {
				sum += m.GetCounter().GetValue()
				for _, l := range m.GetLabel() {
					if l.GetName() == "type" && l.GetValue() != "endpoints" && m.GetCounter().GetValue() != 0 {
						t.Errorf("%s labelled type=%s, want endpoints", name, l.GetValue())
					}
				}
			}
		}
	}
	return sum
}
