package catalog

import (
	"maps"
	"reflect"
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
		slices.Equal(p.Upstreams, o.Upstreams) && sameAccessLogs(p.AccessLogs, o.AccessLogs) &&
		(len(p.Config) == 0 && len(o.Config) == 0 || reflect.DeepEqual(p.Config, o.Config))
}

func sameAccessLogs(a, b *AccessLogs) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// clone returns a deep copy of the proxy configuration; nil stays nil.
func (p *ProxyConfig) clone() *ProxyConfig {
	if p == nil {
		return nil
	}
	c := *p
	c.Upstreams = slices.Clone(p.Upstreams)
	if p.AccessLogs != nil {
		l := *p.AccessLogs
		c.AccessLogs = &l
	}
	if p.Config != nil {
		c.Config = cloneOpaque(p.Config).(map[string]any)
	}
	return &c
}

// cloneOpaque deep-copies a value decoded from JSON (maps, slices and
// scalars).
func cloneOpaque(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = cloneOpaque(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = cloneOpaque(e)
		}
		return l
	}
	return v
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
	c.Proxy = s.Proxy.clone()
	return &c
}
