package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/warren-mesh/warren/catalog"
)

// grpcProber calls grpc.health.v1.Health/Check; SERVING is passing,
// anything else (another status, an error) is critical.
type grpcProber struct {
	target  string // as configured, for the output
	addr    string
	service string
	creds   credentials.TransportCredentials
}

func newGRPCProber(d *Definition) *grpcProber {
	addr, service, _ := strings.Cut(d.GRPC, "/")
	creds := insecure.NewCredentials()
	if d.GRPCUseTLS {
		creds = credentials.NewTLS(&tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, //nolint:gosec // the operator asked for it
			ServerName:         d.TLSServerName,
		})
	}
	return &grpcProber{target: d.GRPC, addr: addr, service: service, creds: creds}
}

// probe dials afresh each time, as Consul does: a long-lived client would
// sit in reconnect backoff after an outage and report recovery late.
func (p *grpcProber) probe(ctx context.Context) result {
	conn, err := grpc.NewClient("passthrough:///"+p.addr, grpc.WithTransportCredentials(p.creds))
	if err != nil {
		return result{catalog.HealthCritical, fmt.Sprintf("gRPC %s: %v", p.target, err)}
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: p.service})
	if err != nil {
		return result{catalog.HealthCritical, fmt.Sprintf("gRPC %s: %v", p.target, err)}
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return result{catalog.HealthCritical, fmt.Sprintf("gRPC %s serving status: %s", p.target, s)}
	}
	return result{catalog.HealthPassing, fmt.Sprintf("gRPC check %s: success", p.target)}
}
