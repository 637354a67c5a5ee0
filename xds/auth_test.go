package xds_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/xds"
)

// TestStreamAuthorizerSeesTheTokenAndRefuses: the authorizer gets the
// stream's x-consul-token metadata and the node of the first request; a
// refused stream ends with the authorizer's status and receives nothing.
func TestStreamAuthorizerSeesTheTokenAndRefuses(t *testing.T) {
	const node = "greeter-client"
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := xds.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.SetAuthorizer(func(ctx context.Context, nodeID string) error {
		md, _ := metadata.FromIncomingContext(ctx)
		if v := md.Get(xds.TokenMetadataKey); nodeID == node && len(v) == 1 && v[0] == "good" {
			return nil
		}
		return status.Error(codes.PermissionDenied, "no")
	})
	g := grpc.NewServer()
	s.Register(g)
	go g.Serve(lis)
	t.Cleanup(g.Stop)
	setGreeters(t, s, node, xds.Endpoint{Address: "127.0.0.1", Port: 50051})
	ads := dialXDS(t, lis.Addr().String())

	try := func(token string, delta bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, xds.TokenMetadataKey, token)
		}
		if delta {
			st, err := ads.DeltaAggregatedResources(ctx)
			if err != nil {
				return err
			}
			if err := st.Send(&discovery.DeltaDiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"greeter"}}); err != nil {
				return err
			}
			_, err = st.Recv()
			return err
		}
		st, err := ads.StreamAggregatedResources(ctx)
		if err != nil {
			return err
		}
		if err := st.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: node}, TypeUrl: resource.EndpointType, ResourceNames: []string{"greeter"}}); err != nil {
			return err
		}
		_, err = st.Recv()
		return err
	}
	for _, delta := range []bool{false, true} {
		if err := try("good", delta); err != nil {
			t.Errorf("delta=%v good token: %v", delta, err)
		}
		for _, tok := range []string{"", "bad"} {
			if err := try(tok, delta); status.Code(err) != codes.PermissionDenied {
				t.Errorf("delta=%v token %q: %v, want PermissionDenied", delta, tok, err)
			}
		}
	}
}
