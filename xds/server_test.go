package xds

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

func testLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func mustSidecar(t *testing.T, in *SidecarInput) map[resource.Type][]types.Resource {
	t.Helper()
	res, err := BuildSidecar(in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestSetSnapshotUnchangedIsNotPushed(t *testing.T) {
	s := NewServer(testLogger())
	ctx := context.Background()
	const node = "web-sidecar-proxy"

	changed, err := s.SetSnapshot(ctx, node, mustSidecar(t, representativeSidecar()))
	if err != nil || !changed {
		t.Fatalf("first SetSnapshot: changed=%v err=%v, want true, nil", changed, err)
	}
	v1 := maps.Clone(s.versions[node])

	// Rebuilt from scratch, with the upstream endpoints in another order:
	// the same resources, so the same versions and no push.
	in := representativeSidecar()
	eps := in.Upstreams[0].Endpoints
	eps[0], eps[1] = eps[1], eps[0]
	changed, err = s.SetSnapshot(ctx, node, mustSidecar(t, in))
	if err != nil || changed {
		t.Fatalf("identical SetSnapshot: changed=%v err=%v, want false, nil", changed, err)
	}

	// A certificate rotation changes the secrets and nothing else, so no
	// listener or cluster is pushed (and none drains).
	in.LeafCertPEM = strings.Replace(testLeafPEM, "TEST-LEAF-web", "TEST-LEAF-web-2", 1)
	changed, err = s.SetSnapshot(ctx, node, mustSidecar(t, in))
	if err != nil || !changed {
		t.Fatalf("rotation: changed=%v err=%v, want true, nil", changed, err)
	}
	v2 := s.versions[node]
	for typ := range v1 {
		if moved := v1[typ] != v2[typ]; moved != (typ == resource.SecretType) {
			t.Errorf("rotation: %s version moved = %v", typeNames[typ], moved)
		}
	}

	// An instance leaving moves only the endpoints.
	in.Upstreams[0].Endpoints = in.Upstreams[0].Endpoints[:1]
	changed, err = s.SetSnapshot(ctx, node, mustSidecar(t, in))
	if err != nil || !changed {
		t.Fatalf("endpoint change: changed=%v err=%v, want true, nil", changed, err)
	}
	v3 := s.versions[node]
	for typ := range v2 {
		if moved := v2[typ] != v3[typ]; moved != (typ == resource.EndpointType) {
			t.Errorf("endpoint change: %s version moved = %v", typeNames[typ], moved)
		}
	}

	// After Clear the same set is new again.
	s.Clear(node)
	if changed, err = s.SetSnapshot(ctx, node, mustSidecar(t, in)); err != nil || !changed {
		t.Fatalf("after Clear: changed=%v err=%v, want true, nil", changed, err)
	}
}

func TestSetSnapshotRefusesInvalid(t *testing.T) {
	s := NewServer(testLogger())
	ctx := context.Background()
	good := mustSidecar(t, representativeSidecar())
	if _, err := s.SetSnapshot(ctx, "n", good); err != nil {
		t.Fatal(err)
	}
	before := maps.Clone(s.versions["n"])

	bad := maps.Clone(good)
	bad[resource.ListenerType] = append([]types.Resource{&listener.Listener{Name: "broken", Address: socketAddress("127.0.0.1", 70000)}}, good[resource.ListenerType]...)
	changed, err := s.SetSnapshot(ctx, "n", bad)
	if err == nil || changed || !strings.Contains(err.Error(), `listener "broken"`) {
		t.Fatalf("SetSnapshot(invalid) = %v, %v; want an error naming listener \"broken\"", changed, err)
	}
	if s.Rejected() != 1 {
		t.Errorf("Rejected() = %d, want 1", s.Rejected())
	}
	if !maps.Equal(before, s.versions["n"]) {
		t.Errorf("a refused snapshot replaced the served one")
	}
	if _, err := s.SetSnapshot(ctx, "", good); err == nil {
		t.Errorf("empty node ID accepted")
	}
}
