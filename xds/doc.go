// Package xds turns Warren's view of the mesh (healthy instances, intentions,
// certificates) into xDS resources and serves them over ADS.
//
// It owns three things:
//
//   - builders: BuildSidecar produces the listeners, clusters, endpoints and
//     SDS secrets of one Envoy sidecar, with the mesh telemetry its proxy
//     config asks for (ParseProxyOptions: stats listener, access logs,
//     tracing); BuildGRPC produces the listeners,
//     routes, clusters and endpoints that grpc-go's xDS resolver needs for
//     xds:///NAME targets. Every resource (and every typed config packed
//     inside one) passes the protos' own ValidateAll before it is returned.
//   - the ADS server (Server): one snapshot per node ID on go-control-plane's
//     SnapshotCache, state-of-the-world and delta, with per-type versions
//     derived from a hash of the resources so that an unchanged set is never
//     pushed again.
//   - bootstrap files: EnvoyBootstrap for sidecars and GRPCBootstrap for
//     proxyless gRPC applications.
//
// The package takes plain inputs (addresses, SPIFFE IDs, PEM strings,
// intentions in precedence order) so that it does not depend on how the
// agent's view or the CA represent them. Only agent (wiring), cli and tests
// may import it; it imports catalog and connect at most.
package xds
