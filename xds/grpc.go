package xds

import (
	"fmt"
	"slices"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	router "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
)

// GRPCInput is what BuildGRPC needs for proxyless gRPC clients.
type GRPCInput struct {
	// Services maps a service name (the NAME of xds:///NAME) to its
	// healthy instances.
	Services map[string][]Endpoint
	// Datacenter is the locality region of the endpoints; "warren" if
	// empty. grpc-go requires a locality on every group of endpoints.
	Datacenter string
}

// BuildGRPC builds, for each service NAME, the four resources grpc-go's
// xDS resolver fetches for xds:///NAME: a Listener NAME whose ApiListener is
// an HttpConnectionManager naming RouteConfiguration NAME over ADS (router
// filter last, as grpc-go requires); that RouteConfiguration, with one
// virtual host for domain NAME routing every path to Cluster NAME; the
// Cluster, EDS over ADS with ROUND_ROBIN; and its ClusterLoadAssignment
// with one weighted locality. Every resource passes ValidateAll.
func BuildGRPC(in *GRPCInput) (map[resource.Type][]types.Resource, error) {
	locality := &core.Locality{Region: or(in.Datacenter, "warren")}
	names := make([]string, 0, len(in.Services))
	for name := range in.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	out := map[resource.Type][]types.Resource{}
	for _, name := range names {
		if name == "" {
			return nil, fmt.Errorf("grpc: service with an empty name")
		}
		l, err := grpcListener(name)
		if err != nil {
			return nil, err
		}
		eps, err := sortedEndpoints(fmt.Sprintf("grpc service %q", name), in.Services[name])
		if err != nil {
			return nil, err
		}
		out[resource.ListenerType] = append(out[resource.ListenerType], l)
		out[resource.RouteType] = append(out[resource.RouteType], grpcRoute(name))
		out[resource.ClusterType] = append(out[resource.ClusterType], &cluster.Cluster{
			Name:                 name,
			ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_EDS},
			EdsClusterConfig:     &cluster.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
			LbPolicy:             cluster.Cluster_ROUND_ROBIN,
		})
		out[resource.EndpointType] = append(out[resource.EndpointType], loadAssignment(name, locality, eps))
	}
	if err := checkResources(out); err != nil {
		return nil, fmt.Errorf("grpc: %w", err)
	}
	return out, nil
}

func grpcListener(name string) (*listener.Listener, error) {
	p := &packer{what: fmt.Sprintf("listener %q", name)}
	manager := p.pack(&hcm.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcm.HttpConnectionManager_Rds{Rds: &hcm.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcm.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcm.HttpFilter_TypedConfig{TypedConfig: p.pack(&router.Router{})},
		}},
	})
	if p.err != nil {
		return nil, p.err
	}
	return &listener.Listener{
		Name:        name,
		ApiListener: &listener.ApiListener{ApiListener: manager},
	}, nil
}

func grpcRoute(name string) *route.RouteConfiguration {
	return &route.RouteConfiguration{
		Name: name,
		VirtualHosts: []*route.VirtualHost{{
			Name:    name,
			Domains: []string{name},
			Routes: []*route.Route{{
				Match: &route.RouteMatch{PathSpecifier: &route.RouteMatch_Prefix{Prefix: ""}},
				Action: &route.Route_Route{Route: &route.RouteAction{
					ClusterSpecifier: &route.RouteAction_Cluster{Cluster: name},
				}},
			}},
		}},
	}
}
