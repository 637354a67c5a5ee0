package xds

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tls "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Endpoint is one healthy instance of an upstream: for a sidecar, the
// address and port of the upstream instance's sidecar; for proxyless gRPC,
// the application itself.
type Endpoint struct {
	Address string
	Port    int
	Node    string // catalog node name, carried as endpoint metadata
}

// connectTimeout bounds a proxy's TCP connect to a cluster member.
const connectTimeout = 5 * time.Second

// resourceTypes are the types this package builds, in the order resources
// are validated and written to golden files.
var resourceTypes = []resource.Type{
	resource.ListenerType,
	resource.RouteType,
	resource.ClusterType,
	resource.EndpointType,
	resource.SecretType,
}

// typeNames names each type for errors, golden file names and logs.
var typeNames = map[resource.Type]string{
	resource.ListenerType: "listener",
	resource.RouteType:    "route",
	resource.ClusterType:  "cluster",
	resource.EndpointType: "endpoints",
	resource.SecretType:   "secret",
}

// resourceName returns the xDS name of a resource of a type this package
// builds, or "" for any other message.
func resourceName(r types.Resource) string {
	switch v := r.(type) {
	case *listener.Listener:
		return v.GetName()
	case *route.RouteConfiguration:
		return v.GetName()
	case *cluster.Cluster:
		return v.GetName()
	case *endpoint.ClusterLoadAssignment:
		return v.GetClusterName()
	case *tls.Secret:
		return v.GetName()
	}
	return ""
}

// checkResources validates every resource with its own ValidateAll, checks
// that each has a name, that names are unique within a type and that each
// message is of its type, and sorts each type's resources by name so that
// output (and golden files) are stable. The error names the resource.
func checkResources(res map[resource.Type][]types.Resource) error {
	for typ, list := range res {
		kind, ok := typeNames[typ]
		if !ok {
			return fmt.Errorf("unsupported resource type %q", typ)
		}
		seen := make(map[string]bool, len(list))
		for _, r := range list {
			if r == nil {
				return fmt.Errorf("%s: nil resource", kind)
			}
			if got := resource.APITypePrefix + string(proto.MessageName(r)); got != typ {
				return fmt.Errorf("%s %q: message %s listed under %s", kind, resourceName(r), proto.MessageName(r), typ)
			}
			name := resourceName(r)
			if name == "" {
				return fmt.Errorf("%s: resource without a name", kind)
			}
			if seen[name] {
				return fmt.Errorf("%s %q: duplicate name", kind, name)
			}
			seen[name] = true
			if err := validate(fmt.Sprintf("%s %q", kind, name), r); err != nil {
				return err
			}
		}
		slices.SortFunc(list, func(a, b types.Resource) int { return cmp.Compare(resourceName(a), resourceName(b)) })
	}
	return nil
}

// checkPort rejects ports outside 1..65535; what names the field.
func checkPort(what string, port int) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("%s: port %d out of range 1..65535", what, port)
	}
	return nil
}

func socketAddress(addr string, port int) *core.Address {
	return &core.Address{Address: &core.Address_SocketAddress{SocketAddress: &core.SocketAddress{
		Protocol:      core.SocketAddress_TCP,
		Address:       addr,
		PortSpecifier: &core.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// adsSource points a dynamic resource at the ADS stream the proxy (or gRPC
// client) already has.
func adsSource() *core.ConfigSource {
	return &core.ConfigSource{
		ResourceApiVersion:    core.ApiVersion_V3,
		ConfigSourceSpecifier: &core.ConfigSource_Ads{Ads: &core.AggregatedConfigSource{}},
	}
}

// sortedEndpoints returns endpoints sorted by address, port and node, with
// duplicate address:port pairs dropped (grpc-go rejects an EDS resource
// that lists one address twice). Each is checked.
func sortedEndpoints(what string, eps []Endpoint) ([]Endpoint, error) {
	out := slices.Clone(eps)
	for _, e := range out {
		if net.ParseIP(e.Address) == nil {
			return nil, fmt.Errorf("%s: endpoint address %q is not an IP address", what, e.Address)
		}
		if err := checkPort(what+": endpoint "+e.Address, e.Port); err != nil {
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int {
		return cmp.Or(cmp.Compare(a.Address, b.Address), cmp.Compare(a.Port, b.Port), cmp.Compare(a.Node, b.Node))
	})
	return slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Address == b.Address && a.Port == b.Port }), nil
}

// loadAssignment builds a ClusterLoadAssignment with all endpoints in one
// locality. grpc-go ignores a locality without a weight and rejects one
// without an ID, so both are always set. No endpoints gives no locality at
// all, which both Envoy and grpc-go read as "no healthy hosts".
func loadAssignment(name string, locality *core.Locality, eps []Endpoint) *endpoint.ClusterLoadAssignment {
	cla := &endpoint.ClusterLoadAssignment{ClusterName: name}
	if len(eps) == 0 {
		return cla
	}
	lbs := make([]*endpoint.LbEndpoint, 0, len(eps))
	for _, e := range eps {
		lb := &endpoint.LbEndpoint{
			HostIdentifier: &endpoint.LbEndpoint_Endpoint{Endpoint: &endpoint.Endpoint{
				Address: socketAddress(e.Address, e.Port),
			}},
			HealthStatus:        core.HealthStatus_HEALTHY,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}
		if e.Node != "" {
			lb.Metadata = &core.Metadata{FilterMetadata: map[string]*structpb.Struct{
				"warren": {Fields: map[string]*structpb.Value{"node": structpb.NewStringValue(e.Node)}},
			}}
		}
		lbs = append(lbs, lb)
	}
	cla.Endpoints = []*endpoint.LocalityLbEndpoints{{
		Locality:            locality,
		LbEndpoints:         lbs,
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}}
	return cla
}

// hostPort formats an address for resource names.
func hostPort(addr string, port int) string {
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func duration(d time.Duration) *durationpb.Duration { return durationpb.New(d) }
