package xds

import (
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"time"

	bootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	upstreamhttp "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
)

// ADSCluster is the static cluster in an Envoy bootstrap that points at
// the agent's xDS port.
const ADSCluster = "warren_xds"

// DefaultEnvoyAdminPort is the admin port of a sidecar when none is given.
const DefaultEnvoyAdminPort = 19000

// grpcBootstrap is the subset of grpc-go's xDS bootstrap that Warren
// writes (gRFC A27).
type grpcBootstrap struct {
	XDSServers []grpcXDSServer `json:"xds_servers"`
	Node       grpcNode        `json:"node"`
}

type grpcXDSServer struct {
	ServerURI      string            `json:"server_uri"`
	ChannelCreds   []grpcChannelCred `json:"channel_creds"`
	ServerFeatures []string          `json:"server_features"`
}

type grpcChannelCred struct {
	Type string `json:"type"`
}

type grpcNode struct {
	ID string `json:"id"`
}

// GRPCBootstrap returns the bootstrap JSON for a gRPC application that
// uses grpc-go's xDS resolver (GRPC_XDS_BOOTSTRAP or
// GRPC_XDS_BOOTSTRAP_CONFIG): the agent's xDS server at serverAddr
// ("host:port") over a plaintext channel, which is why the agent binds it
// to loopback, speaking xDS v3, and the node ID the agent keys the
// application's snapshot by.
func GRPCBootstrap(serverAddr, nodeID string) ([]byte, error) {
	if _, _, err := net.SplitHostPort(serverAddr); err != nil {
		return nil, fmt.Errorf("grpc bootstrap: server address %q: %w", serverAddr, err)
	}
	if nodeID == "" {
		return nil, fmt.Errorf("grpc bootstrap: empty node ID")
	}
	b, err := json.MarshalIndent(grpcBootstrap{
		XDSServers: []grpcXDSServer{{
			ServerURI:      serverAddr,
			ChannelCreds:   []grpcChannelCred{{Type: "insecure"}},
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: grpcNode{ID: nodeID},
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("grpc bootstrap: %w", err)
	}
	return append(b, '\n'), nil
}

// EnvoyBootstrap returns the bootstrap JSON for an Envoy sidecar: its node
// ID (the sidecar's service ID, which keys its snapshot) and cluster (the
// service it fronts), a static HTTP/2 cluster to the agent's xDS server at
// adsAddr ("host:port", normally 127.0.0.1:8502), every dynamic resource
// over ADS with API version V3, and the admin interface on
// 127.0.0.1:adminPort (DefaultEnvoyAdminPort if 0). The result is parsed
// back into the bootstrap proto and passes its ValidateAll. A non-empty
// token goes to the agent as x-consul-token metadata on the ADS stream, as
// Consul's bootstrap sends it.
func EnvoyBootstrap(adsAddr string, nodeID, cluster string, adminPort int, token string) ([]byte, error) {
	host, portStr, err := net.SplitHostPort(adsAddr)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: ADS address %q: %w", adsAddr, err)
	}
	if net.ParseIP(host) == nil {
		return nil, fmt.Errorf("envoy bootstrap: ADS address %q: host is not an IP address", adsAddr)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: ADS address %q: %w", adsAddr, err)
	}
	if err := checkPort("envoy bootstrap: ADS address", port); err != nil {
		return nil, err
	}
	if adminPort == 0 {
		adminPort = DefaultEnvoyAdminPort
	}
	if err := checkPort("envoy bootstrap: admin", adminPort); err != nil {
		return nil, err
	}
	if nodeID == "" || cluster == "" {
		return nil, fmt.Errorf("envoy bootstrap: node ID and cluster are required")
	}
	b, err := envoyBootstrap(host, port, nodeID, cluster, adminPort)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: %w", err)
	}
	if token != "" {
		gs := b.DynamicResources.AdsConfig.GrpcServices[0]
		gs.InitialMetadata = append(gs.InitialMetadata, &core.HeaderValue{Key: TokenMetadataKey, Value: token})
	}
	out, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("envoy bootstrap: marshal: %w", err)
	}
	// Check what Envoy will read, not what we meant to write.
	var back bootstrap.Bootstrap
	if err := protojson.Unmarshal(out, &back); err != nil {
		return nil, fmt.Errorf("envoy bootstrap: parse back: %w", err)
	}
	if err := validate("envoy bootstrap", &back); err != nil {
		return nil, err
	}
	return canonicalJSON(out)
}

func envoyBootstrap(adsHost string, adsPort int, nodeID, clusterName string, adminPort int) (*bootstrap.Bootstrap, error) {
	// The ADS cluster speaks gRPC, so HTTP/2 explicitly.
	p := &packer{what: "envoy bootstrap: cluster " + ADSCluster}
	h2 := p.http2()
	if p.err != nil {
		return nil, p.err
	}
	ads := adsSource()
	return &bootstrap.Bootstrap{
		Node: &core.Node{Id: nodeID, Cluster: clusterName},
		Admin: &bootstrap.Admin{
			Address: socketAddress("127.0.0.1", adminPort),
		},
		StaticResources: &bootstrap.Bootstrap_StaticResources{
			Clusters: []*cluster.Cluster{{
				Name:                 ADSCluster,
				ClusterDiscoveryType: &cluster.Cluster_Type{Type: cluster.Cluster_STATIC},
				ConnectTimeout:       duration(time.Second),
				TypedExtensionProtocolOptions: map[string]*anypb.Any{
					httpProtocolOptionsKey: h2,
				},
				LoadAssignment: loadAssignment(ADSCluster, nil, []Endpoint{{Address: adsHost, Port: adsPort}}),
			}},
		},
		DynamicResources: &bootstrap.Bootstrap_DynamicResources{
			AdsConfig: &core.ApiConfigSource{
				ApiType:             core.ApiConfigSource_GRPC,
				TransportApiVersion: core.ApiVersion_V3,
				GrpcServices: []*core.GrpcService{{
					TargetSpecifier: &core.GrpcService_EnvoyGrpc_{EnvoyGrpc: &core.GrpcService_EnvoyGrpc{ClusterName: ADSCluster}},
				}},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
	}, nil
}

// httpProtocolOptionsKey is where a cluster's HTTP protocol options go in
// its TypedExtensionProtocolOptions.
const httpProtocolOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// http2 packs the protocol options of a cluster that speaks gRPC: HTTP/2
// explicitly.
func (p *packer) http2() *anypb.Any {
	return p.pack(&upstreamhttp.HttpProtocolOptions{
		UpstreamProtocolOptions: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_{
			ExplicitHttpConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig{
				ProtocolConfig: &upstreamhttp.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
					Http2ProtocolOptions: &core.Http2ProtocolOptions{},
				},
			},
		},
	})
}

// canonicalJSON re-indents JSON with sorted object keys. protojson's
// output is deliberately unstable in whitespace; files people read and
// diff must not be.
func canonicalJSON(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
