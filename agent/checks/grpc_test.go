package checks

import (
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/warren-mesh/warren/catalog"
)

func TestGRPC(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	hs.SetServingStatus("billing", healthpb.HealthCheckResponse_SERVING)
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	addr := ln.Addr().String()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "server", GRPC: addr, Interval: 20 * time.Millisecond, Timeout: time.Second})
	mustAdd(t, m, Definition{ID: "billing", GRPC: addr + "/billing", Interval: 20 * time.Millisecond, Timeout: time.Second})
	mustAdd(t, m, Definition{ID: "unknown", GRPC: addr + "/nope", Interval: 20 * time.Millisecond, Timeout: time.Second, Status: catalog.HealthPassing})

	if out := waitStatus(t, m, "server", catalog.HealthPassing); out != "gRPC check "+addr+": success" {
		t.Errorf("output %q", out)
	}
	waitStatus(t, m, "billing", catalog.HealthPassing)
	if out := waitStatus(t, m, "unknown", catalog.HealthCritical); !strings.Contains(out, "NotFound") {
		t.Errorf("output %q", out)
	}

	hs.SetServingStatus("billing", healthpb.HealthCheckResponse_NOT_SERVING)
	if out := waitStatus(t, m, "billing", catalog.HealthCritical); !strings.Contains(out, "NOT_SERVING") {
		t.Errorf("output %q", out)
	}
	hs.SetServingStatus("billing", healthpb.HealthCheckResponse_SERVING)
	waitStatus(t, m, "billing", catalog.HealthPassing)
	waitStatus(t, m, "server", catalog.HealthPassing)

	srv.Stop()
	waitStatus(t, m, "server", catalog.HealthCritical)
}
