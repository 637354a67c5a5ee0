package connect

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultNamespace is the namespace of every service until Warren has
// namespaces of its own; it is also Consul's default.
const DefaultNamespace = "default"

// trustDomainSuffix ends every default trust domain, as ".consul" does in
// Consul.
const trustDomainSuffix = ".warren"

// TrustDomain returns the default trust domain of a cluster:
// "<cluster-uuid>.warren". SPIFFE trust domains are lower case.
func TrustDomain(clusterID string) string {
	return strings.ToLower(clusterID) + trustDomainSuffix
}

// ServiceID returns the SPIFFE ID of a service:
// spiffe://<td>/ns/<ns>/dc/<dc>/svc/<svc>. An empty ns means "default".
// If td or a segment is not valid in a SPIFFE ID, it returns the zero ID,
// which SignLeaf refuses; callers that take names from users should check
// IsZero (or call ServiceIDErr).
func ServiceID(td, ns, dc, svc string) spiffeid.ID {
	id, _ := ServiceIDErr(td, ns, dc, svc)
	return id
}

// ServiceIDErr is ServiceID with the reason an ID could not be built.
func ServiceIDErr(td, ns, dc, svc string) (spiffeid.ID, error) {
	if ns == "" {
		ns = DefaultNamespace
	}
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("trust domain %q: %w", td, err)
	}
	id, err := spiffeid.FromSegments(t, "ns", ns, "dc", dc, "svc", svc)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("service ID for ns %q dc %q svc %q: %w", ns, dc, svc, err)
	}
	return id, nil
}

// AgentID returns the SPIFFE ID of an agent:
// spiffe://<td>/agent/client/dc/<dc>/id/<node-id>, or the zero ID if a part
// is not valid in a SPIFFE ID.
func AgentID(td, dc, nodeID string) spiffeid.ID {
	t, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return spiffeid.ID{}
	}
	id, err := spiffeid.FromSegments(t, "agent", "client", "dc", dc, "id", nodeID)
	if err != nil {
		return spiffeid.ID{}
	}
	return id
}

// ServiceIdentity is a parsed workload SPIFFE ID.
type ServiceIdentity struct {
	TrustDomain string
	Namespace   string
	Datacenter  string
	Service     string
}

// ID returns the SPIFFE ID the identity was parsed from.
func (s ServiceIdentity) ID() spiffeid.ID {
	return ServiceID(s.TrustDomain, s.Namespace, s.Datacenter, s.Service)
}

// ParseServiceID parses a workload SPIFFE ID
// (spiffe://<td>/ns/<ns>/dc/<dc>/svc/<svc>). Anything else, including an
// agent ID, is an error.
func ParseServiceID(uri string) (ServiceIdentity, error) {
	id, err := spiffeid.FromString(uri)
	if err != nil {
		return ServiceIdentity{}, fmt.Errorf("parse SPIFFE ID %q: %w", uri, err)
	}
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) != 6 || seg[0] != "ns" || seg[2] != "dc" || seg[4] != "svc" {
		return ServiceIdentity{}, fmt.Errorf("parse SPIFFE ID %q: not a service ID (want spiffe://<td>/ns/<ns>/dc/<dc>/svc/<svc>)", uri)
	}
	return ServiceIdentity{
		TrustDomain: id.TrustDomain().Name(),
		Namespace:   seg[1],
		Datacenter:  seg[3],
		Service:     seg[5],
	}, nil
}

// AgentIdentity is a parsed agent SPIFFE ID.
type AgentIdentity struct {
	TrustDomain string
	Datacenter  string
	NodeID      string
}

// ParseAgentID parses an agent SPIFFE ID
// (spiffe://<td>/agent/client/dc/<dc>/id/<node-id>).
func ParseAgentID(uri string) (AgentIdentity, error) {
	id, err := spiffeid.FromString(uri)
	if err != nil {
		return AgentIdentity{}, fmt.Errorf("parse SPIFFE ID %q: %w", uri, err)
	}
	seg := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(seg) != 6 || seg[0] != "agent" || seg[1] != "client" || seg[2] != "dc" || seg[4] != "id" {
		return AgentIdentity{}, fmt.Errorf("parse SPIFFE ID %q: not an agent ID (want spiffe://<td>/agent/client/dc/<dc>/id/<node-id>)", uri)
	}
	return AgentIdentity{TrustDomain: id.TrustDomain().Name(), Datacenter: seg[3], NodeID: seg[5]}, nil
}
