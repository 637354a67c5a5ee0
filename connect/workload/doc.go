// Package workload serves the SPIFFE Workload API on a unix socket, with
// go-spiffe's generated gRPC stubs: FetchX509SVID and FetchX509Bundles
// stream the caller's X.509-SVIDs and the trust bundle, the first response
// at once and a new one on every change. Callers are identified by their
// unix peer credentials (SO_PEERCRED: uid, gid, pid, and the pid's
// executable path), which a Source matches against the selectors of the
// local services. Every call must carry the `workload.spiffe.io: true`
// metadata (InvalidArgument otherwise, as the specification says); a
// caller no service selects gets PermissionDenied. FetchJWTSVID hands out
// JWT-SVIDs the servers sign (the Source caches them), FetchJWTBundles
// streams the JWT bundle as a JWKS document, and ValidateJWTSVID checks a
// token with go-spiffe's jwtsvid.ParseAndValidate against that bundle.
//
// Unlike package connect, this package opens a socket. May import catalog
// and internal/*; imported by agent (and cli for Listen).
package workload
