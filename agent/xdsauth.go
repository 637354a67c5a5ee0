package agent

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/xds"
)

// TokenResolver resolves ACL token secrets (the agent itself, or the
// server in the same process).
type TokenResolver interface {
	ResolveToken(ctx context.Context, secret string) (*acl.Identity, error)
}

// XDSAuthorizer checks each xDS stream's token (x-consul-token metadata,
// as Consul's Envoy bootstrap sends it): an Envoy sidecar's configuration
// holds its service's certificate and key, so its token needs
// service:write on the service the sidecar fronts, as Consul asks; a
// proxyless gRPC client gets endpoints only, and needs service:read on its
// own service.
func (a *Agent) XDSAuthorizer(r TokenResolver) xds.StreamAuthorizer {
	return func(ctx context.Context, nodeID string) error {
		token := ""
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(xds.TokenMetadataKey); len(v) > 0 {
				token = v[0]
			}
		}
		id, err := r.ResolveToken(ctx, token)
		if err != nil {
			return status.Error(codes.Unauthenticated, "ACL not found")
		}
		if rest, ok := strings.CutPrefix(nodeID, xds.GRPCNodePrefix+"/"); ok {
			name, _, _ := strings.Cut(rest, "/")
			if !id.Authorizer.ServiceRead(name) {
				return status.Errorf(codes.PermissionDenied, "Permission denied: token lacks permission 'service:read' on %q", name)
			}
			return nil
		}
		for _, s := range a.Services() {
			if s.ID != nodeID {
				continue
			}
			dest := s.Name
			if s.Proxy != nil && s.Proxy.DestinationServiceName != "" {
				dest = s.Proxy.DestinationServiceName
			}
			if !id.Authorizer.ServiceWrite(dest) {
				return status.Errorf(codes.PermissionDenied, "Permission denied: token lacks permission 'service:write' on %q", dest)
			}
			return nil
		}
		return status.Errorf(codes.NotFound, "no local service with ID %q: register the sidecar first", nodeID)
	}
}
