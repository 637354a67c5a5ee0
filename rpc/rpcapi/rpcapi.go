// Package rpcapi converts between the server protocol's types (package
// rpc) and the HTTP API's wire types (package api), for the two HTTP
// backends that speak to servers: the server's own and the agent's.
// It imports rpc, api and catalog only.
package rpcapi

import (
	"time"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// RootsToAPI converts a roots reply to its HTTP shape.
func RootsToAPI(r *rpc.CARootsReply) *api.CARootList {
	out := &api.CARootList{ActiveRootID: r.ActiveRootID, TrustDomain: r.TrustDomain, Roots: []*api.CARoot{}}
	for _, root := range r.Roots {
		c := api.CARoot(root)
		out.Roots = append(out.Roots, &c)
	}
	return out
}

// CAConfigToAPI converts a CA config reply to its HTTP shape.
func CAConfigToAPI(r *rpc.CAConfigReply) *api.CAConfiguration {
	csr := max(r.Config.CSRMaxPerSecond, 0) // negative (no limit) is Consul's 0
	return &api.CAConfiguration{
		Provider: "consul",
		Config: api.CAProviderConfig{
			LeafCertTTL:         api.Duration(r.Config.LeafTTL),
			IntermediateCertTTL: api.Duration(r.Config.IntermediateTTL),
			RootCertTTL:         api.Duration(r.Config.RootTTL),
			PrivateKeyType:      r.Config.KeyType,
			PrivateKeyBits:      r.Config.KeyBits,
			CSRMaxPerSecond:     &csr,
			JWTTTL:              api.Duration(r.Config.JWTTTL),
		},
		CreateIndex: r.CreateIndex,
		ModifyIndex: r.ModifyIndex,
	}
}

// CAConfigFromAPI converts a PUT body to the request.
func CAConfigFromAPI(c *api.CAConfiguration) *rpc.CAConfigSetRequest {
	return &rpc.CAConfigSetRequest{
		Config: rpc.CAConfig{
			KeyType:         c.Config.PrivateKeyType,
			KeyBits:         c.Config.PrivateKeyBits,
			LeafTTL:         time.Duration(c.Config.LeafCertTTL),
			IntermediateTTL: time.Duration(c.Config.IntermediateCertTTL),
			RootTTL:         time.Duration(c.Config.RootCertTTL),
			JWTTTL:          time.Duration(c.Config.JWTTTL),
			CSRMaxPerSecond: csrRateFromAPI(c.Config.CSRMaxPerSecond),
		},
		Rotate: c.Config.RotateRoot,
	}
}

// csrRateFromAPI maps Consul's CSRMaxPerSecond (absent: the default; 0: no
// limit) to connect.CAConfig's (0: the default; negative: no limit).
func csrRateFromAPI(v *float64) float64 {
	switch {
	case v == nil:
		return 0
	case *v <= 0:
		return -1
	}
	return *v
}

// IntentionApplyFromAPI builds an apply request.
func IntentionApplyFromAPI(op, source, destination string, ixn *api.Intention) *rpc.IntentionApplyRequest {
	return &rpc.IntentionApplyRequest{Op: op, Source: source, Destination: destination, Intention: (*rpc.Intention)(ixn)}
}

// IntentionQueryFromAPI builds an intention query.
func IntentionQueryFromAPI(q catalog.QueryOptions, iq *api.IntentionQuery) *rpc.IntentionQuery {
	return &rpc.IntentionQuery{Options: q, Query: iq.Query, Source: iq.Source, Destination: iq.Destination,
		By: iq.By, Names: iq.Names, ClientCertURI: iq.ClientCertURI}
}

// IntentionResultToAPI converts an intention reply to its HTTP shape.
func IntentionResultToAPI(r *rpc.IntentionReply) *api.IntentionResult {
	conv := func(xs []*rpc.Intention) []*api.Intention {
		out := make([]*api.Intention, len(xs))
		for i, x := range xs {
			out[i] = (*api.Intention)(x)
		}
		return out
	}
	out := &api.IntentionResult{Intentions: conv(r.Intentions), Allowed: r.Allowed, Reason: r.Reason}
	if r.Match != nil {
		out.Match = map[string][]*api.Intention{}
		for k, v := range r.Match {
			out.Match[k] = conv(v)
		}
	}
	return out
}
