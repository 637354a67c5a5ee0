package catalog

import (
	"maps"
	"slices"
)

// SameAs reports whether two nodes hold the same data, RaftIndex aside.
// Nil and empty maps are the same.
func (n *Node) SameAs(o *Node) bool {
	return n.ID == o.ID && n.Name == o.Name && n.Address == o.Address && n.Datacenter == o.Datacenter &&
		maps.Equal(n.TaggedAddresses, o.TaggedAddresses) && maps.Equal(n.Meta, o.Meta)
}

// SameAs reports whether two service instances hold the same data,
// RaftIndex aside. Nil and empty maps and slices are the same.
func (s *Service) SameAs(o *Service) bool {
	return s.Node == o.Node && s.ID == o.ID && s.Name == o.Name && s.Kind == o.Kind &&
		slices.Equal(s.Tags, o.Tags) && s.Address == o.Address &&
		maps.Equal(s.TaggedAddresses, o.TaggedAddresses) && maps.Equal(s.Meta, o.Meta) &&
		s.Port == o.Port && s.Weights == o.Weights && s.EnableTagOverride == o.EnableTagOverride &&
		s.Proxy.sameAs(o.Proxy)
}

func (p *ProxyConfig) sameAs(o *ProxyConfig) bool {
	if p == nil || o == nil {
		return p == o
	}
	return p.DestinationServiceName == o.DestinationServiceName && p.DestinationServiceID == o.DestinationServiceID &&
		p.LocalServiceAddress == o.LocalServiceAddress && p.LocalServicePort == o.LocalServicePort &&
		slices.Equal(p.Upstreams, o.Upstreams)
}

// Clone returns a deep copy of the node.
func (n *Node) Clone() *Node {
	c := *n
	c.TaggedAddresses = maps.Clone(n.TaggedAddresses)
	c.Meta = maps.Clone(n.Meta)
	return &c
}

// Clone returns a deep copy of the service instance.
func (s *Service) Clone() *Service {
	c := *s
	c.Tags = slices.Clone(s.Tags)
	c.TaggedAddresses = maps.Clone(s.TaggedAddresses)
	c.Meta = maps.Clone(s.Meta)
	if s.Proxy != nil {
		p := *s.Proxy
		p.Upstreams = slices.Clone(s.Proxy.Upstreams)
		c.Proxy = &p
	}
	return &c
}
