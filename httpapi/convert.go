package httpapi

import (
	"time"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// Conversions between wire and catalog types. Each shape has exactly one
// function per direction; composite answers are built from them.

func toRegistration(in *api.CatalogRegistration, dc string) *catalog.Registration {
	r := &catalog.Registration{
		Node: catalog.Node{
			ID:              in.ID,
			Name:            in.Node,
			Address:         in.Address,
			Datacenter:      dc,
			TaggedAddresses: in.TaggedAddresses,
			Meta:            in.NodeMeta,
		},
		SkipNodeUpdate: in.SkipNodeUpdate,
	}
	if in.Service != nil {
		r.Service = toService(in.Service)
	}
	checks := in.Checks
	if in.Check != nil {
		// Consul's order: the single Check goes after the list.
		checks = append(checks[:len(checks):len(checks)], in.Check)
	}
	r.Checks = mapSlice(checks, toCheck)
	return r
}

func toService(s *api.AgentService) *catalog.Service {
	return &catalog.Service{
		ID:                s.ID,
		Name:              s.Service,
		Kind:              s.Kind,
		Tags:              s.Tags,
		Address:           s.Address,
		TaggedAddresses:   mapValues(s.TaggedAddresses, func(a api.ServiceAddress) catalog.ServiceAddress { return catalog.ServiceAddress(a) }),
		Meta:              s.Meta,
		Port:              s.Port,
		Weights:           catalog.Weights(s.Weights),
		EnableTagOverride: s.EnableTagOverride,
		Proxy:             ToProxyConfig(s.Proxy),
	}
}

// ToProxyConfig converts a connect-proxy's configuration from the wire;
// nil stays nil.
func ToProxyConfig(p *api.AgentServiceConnectProxyConfig) *catalog.ProxyConfig {
	if p == nil {
		return nil
	}
	out := &catalog.ProxyConfig{
		DestinationServiceName: p.DestinationServiceName,
		DestinationServiceID:   p.DestinationServiceID,
		LocalServiceAddress:    p.LocalServiceAddress,
		LocalServicePort:       p.LocalServicePort,
		Config:                 p.Config,
	}
	if p.AccessLogs != nil {
		l := catalog.AccessLogs(*p.AccessLogs)
		out.AccessLogs = &l
	}
	for _, u := range p.Upstreams {
		out.Upstreams = append(out.Upstreams, catalog.Upstream{
			DestinationName: u.DestinationName, LocalBindAddress: u.LocalBindAddress, LocalBindPort: u.LocalBindPort,
		})
	}
	return out
}

func fromProxyConfig(p *catalog.ProxyConfig) *api.AgentServiceConnectProxyConfig {
	if p == nil {
		return nil
	}
	out := &api.AgentServiceConnectProxyConfig{
		DestinationServiceName: p.DestinationServiceName,
		DestinationServiceID:   p.DestinationServiceID,
		LocalServiceAddress:    p.LocalServiceAddress,
		LocalServicePort:       p.LocalServicePort,
		Config:                 p.Config,
	}
	if p.AccessLogs != nil {
		l := api.AccessLogsConfig(*p.AccessLogs)
		out.AccessLogs = &l
	}
	for _, u := range p.Upstreams {
		out.Upstreams = append(out.Upstreams, api.Upstream{
			DestinationType: "service", DestinationName: u.DestinationName,
			LocalBindAddress: u.LocalBindAddress, LocalBindPort: u.LocalBindPort,
		})
	}
	return out
}

// toCheck keeps a null list entry null, so validation can name it.
func toCheck(c *api.HealthCheck) *catalog.Check {
	if c == nil {
		return nil
	}
	d := c.Definition
	return &catalog.Check{
		Node:      c.Node,
		CheckID:   c.CheckID,
		Name:      c.Name,
		Status:    c.Status,
		Notes:     c.Notes,
		Output:    c.Output,
		ServiceID: c.ServiceID,
		Type:      c.Type,
		Definition: catalog.CheckDefinition{
			HTTP:                           d.HTTP,
			TCP:                            d.TCP,
			Interval:                       durationString(d.Interval),
			Timeout:                        durationString(d.Timeout),
			DeregisterCriticalServiceAfter: durationString(d.DeregisterCriticalServiceAfter),
		},
	}
}

func fromNode(n *catalog.Node) *api.Node {
	if n == nil {
		return nil
	}
	return &api.Node{
		ID:              n.ID,
		Node:            n.Name,
		Address:         n.Address,
		Datacenter:      n.Datacenter,
		TaggedAddresses: n.TaggedAddresses,
		Meta:            n.Meta,
		CreateIndex:     n.CreateIndex,
		ModifyIndex:     n.ModifyIndex,
	}
}

func fromService(s *catalog.Service) *api.AgentService {
	return &api.AgentService{
		Kind:              s.Kind,
		ID:                s.ID,
		Service:           s.Name,
		Tags:              emptyIfNil(s.Tags),
		Meta:              s.Meta,
		Port:              s.Port,
		Address:           s.Address,
		TaggedAddresses:   mapValues(s.TaggedAddresses, func(a catalog.ServiceAddress) api.ServiceAddress { return api.ServiceAddress(a) }),
		Weights:           api.Weights(s.Weights),
		EnableTagOverride: s.EnableTagOverride,
		Proxy:             fromProxyConfig(s.Proxy),
		CreateIndex:       s.CreateIndex,
		ModifyIndex:       s.ModifyIndex,
	}
}

func fromCheck(c *catalog.Check) *api.HealthCheck {
	d := c.Definition
	return &api.HealthCheck{
		Node:        c.Node,
		CheckID:     c.CheckID,
		Name:        c.Name,
		Status:      c.Status,
		Notes:       c.Notes,
		Output:      c.Output,
		ServiceID:   c.ServiceID,
		ServiceName: c.ServiceName,
		ServiceTags: emptyIfNil(c.ServiceTags),
		Type:        c.Type,
		Definition: api.HealthCheckDefinition{
			HTTP:                           d.HTTP,
			TCP:                            d.TCP,
			Interval:                       parseDuration(d.Interval),
			Timeout:                        parseDuration(d.Timeout),
			DeregisterCriticalServiceAfter: parseDuration(d.DeregisterCriticalServiceAfter),
		},
		CreateIndex: c.CreateIndex,
		ModifyIndex: c.ModifyIndex,
	}
}

// fromServiceNode flattens an instance and its node into Consul's catalog
// row; it reuses the node and service conversions rather than repeating them.
func fromServiceNode(sn catalog.ServiceNode) *api.CatalogService {
	n, s := fromNode(sn.Node), fromService(sn.Service)
	return &api.CatalogService{
		ID:                       n.ID,
		Node:                     n.Node,
		Address:                  n.Address,
		Datacenter:               n.Datacenter,
		TaggedAddresses:          n.TaggedAddresses,
		NodeMeta:                 n.Meta,
		ServiceKind:              s.Kind,
		ServiceID:                s.ID,
		ServiceName:              s.Service,
		ServiceTags:              s.Tags,
		ServiceAddress:           s.Address,
		ServiceTaggedAddresses:   s.TaggedAddresses,
		ServiceWeights:           s.Weights,
		ServiceMeta:              s.Meta,
		ServicePort:              s.Port,
		ServiceEnableTagOverride: s.EnableTagOverride,
		ServiceProxy:             s.Proxy,
		CreateIndex:              s.CreateIndex,
		ModifyIndex:              s.ModifyIndex,
	}
}

func fromCheckServiceNode(csn catalog.CheckServiceNode) *api.ServiceEntry {
	return &api.ServiceEntry{
		Node:    fromNode(csn.Node),
		Service: fromService(csn.Service),
		Checks:  mapSlice(csn.Checks, fromCheck),
	}
}

func fromRaftServer(s RaftServer) *api.RaftServer {
	return &api.RaftServer{ID: s.ID, Node: s.Node, Address: s.Address, Leader: s.Leader, Voter: s.Voter}
}

// durationString is the catalog's spelling of a duration: "" for none.
func durationString(d api.Duration) string {
	if d == 0 {
		return ""
	}
	return time.Duration(d).String()
}

// parseDuration reads a duration the catalog stored. Registrations through
// this API only store durations written by durationString; anything else
// (a hand-edited config) shows as unset rather than failing the read.
func parseDuration(s string) api.Duration {
	d, _ := time.ParseDuration(s)
	return api.Duration(d)
}

// mapSlice converts every element; the result is never nil, so an empty
// list encodes as [] as Consul's does.
func mapSlice[A, B any](in []A, f func(A) B) []B {
	out := make([]B, len(in))
	for i, a := range in {
		out[i] = f(a)
	}
	return out
}

// mapValues converts every value; nil stays nil (an absent map is omitted
// or null in Consul's answers too).
func mapValues[K comparable, A, B any](in map[K]A, f func(A) B) map[K]B {
	if in == nil {
		return nil
	}
	out := make(map[K]B, len(in))
	for k, a := range in {
		out[k] = f(a)
	}
	return out
}
