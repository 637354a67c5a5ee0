// Package api holds the wire types of Warren's HTTP API. They mirror the JSON
// of Consul's v1 API field for field (names, nesting, omitted-when-empty
// rules), so Consul's own clients, github.com/hashicorp/consul/api among
// them, encode requests we decode and decode answers we encode. Fields
// Consul has and Warren does not implement (Namespace, Partition, a proxy's
// Config, mesh gateways …) are left out: decoding ignores them, encoding
// never sends them.
//
// The package imports nothing internal. httpapi converts between these types
// and the catalog's; the CLI may import it to talk to an agent.
package api

import (
	"encoding/json"
	"reflect"
	"strconv"
	"time"
)

// Node is a host in the catalog (/v1/catalog/nodes).
type Node struct {
	ID              string
	Node            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	CreateIndex     uint64
	ModifyIndex     uint64
}

// ServiceAddress is an address and port pair in a service's tagged addresses.
type ServiceAddress struct {
	Address string
	Port    int
}

// Weights are the DNS SRV weights of an instance by health.
type Weights struct {
	Passing int
	Warning int
}

// AgentService is one service instance, as a registration carries it and as
// /v1/catalog/node and /v1/health/service report it.
type AgentService struct {
	Kind              string `json:",omitempty"`
	ID                string
	Service           string
	Tags              []string
	Meta              map[string]string
	Port              int
	Address           string
	TaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	Weights           Weights
	EnableTagOverride bool
	CreateIndex       uint64 `json:",omitempty"`
	ModifyIndex       uint64 `json:",omitempty"`
	// Proxy is a connect-proxy instance's configuration.
	Proxy *AgentServiceConnectProxyConfig `json:",omitempty"`
	// Datacenter is only ever returned; it is ignored in a registration.
	Datacenter string `json:",omitempty"`
}

// Duration is a time.Duration that travels as Consul sends it: a Go duration
// string such as "10s" (omitted when zero). It also accepts a JSON number of
// nanoseconds, which older clients send.
type Duration time.Duration

// MarshalJSON encodes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON accepts a duration string or a number of nanoseconds. A bad
// value is reported as a *json.UnmarshalTypeError so the decoder names the
// field.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return &json.UnmarshalTypeError{Value: "string " + strconv.Quote(s), Type: reflect.TypeFor[Duration]()}
		}
		*d = Duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[Duration]()}
	}
	*d = Duration(n)
	return nil
}

// HealthCheckDefinition is how a check is run, kept for display. Consul
// marshals the durations as strings ("10s") and omits them when zero.
type HealthCheckDefinition struct {
	HTTP                           string   `json:",omitempty"`
	TCP                            string   `json:",omitempty"`
	Interval                       Duration `json:",omitempty"`
	Timeout                        Duration `json:",omitempty"`
	DeregisterCriticalServiceAfter Duration `json:",omitempty"`
}

// HealthCheck is a check on a node, or on one of its service instances when
// ServiceID is set (/v1/health/checks, /v1/health/node, /v1/health/state).
type HealthCheck struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string
	ServiceTags []string
	Type        string
	Definition  HealthCheckDefinition
	CreateIndex uint64
	ModifyIndex uint64
}

// AgentCheck is a check as a registration's single Check field carries it.
// Consul's server decodes that field into the same shape as HealthCheck, and
// so do we; the name is kept so code reads like Consul's client.
type AgentCheck = HealthCheck

// CatalogRegistration is the body of PUT /v1/catalog/register: a node,
// optionally one service instance, and checks. Check and Checks may both be
// given; Check is appended to Checks.
type CatalogRegistration struct {
	ID              string
	Node            string
	Address         string
	TaggedAddresses map[string]string
	NodeMeta        map[string]string
	Datacenter      string
	Service         *AgentService
	Check           *AgentCheck
	Checks          []*HealthCheck
	SkipNodeUpdate  bool
}

// CatalogDeregistration is the body of PUT /v1/catalog/deregister: a whole
// node, one service instance (ServiceID) or one check (CheckID).
type CatalogDeregistration struct {
	Node       string
	Address    string `json:",omitempty"` // obsolete; ignored
	Datacenter string
	ServiceID  string
	CheckID    string
}

// CatalogService is one row of /v1/catalog/service/{name}: a service
// instance flattened together with its node.
type CatalogService struct {
	ID                       string
	Node                     string
	Address                  string
	Datacenter               string
	TaggedAddresses          map[string]string
	NodeMeta                 map[string]string
	ServiceKind              string
	ServiceID                string
	ServiceName              string
	ServiceTags              []string
	ServiceAddress           string
	ServiceTaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	ServiceWeights           Weights
	ServiceMeta              map[string]string
	ServicePort              int
	ServiceEnableTagOverride bool
	ServiceProxy             *AgentServiceConnectProxyConfig `json:",omitempty"`
	CreateIndex              uint64
	ModifyIndex              uint64
}

// CatalogNode is the answer of /v1/catalog/node/{node}: services keyed by ID.
type CatalogNode struct {
	Node     *Node
	Services map[string]*AgentService
}

// CatalogNodeServiceList is the answer of /v1/catalog/node-services/{node}.
type CatalogNodeServiceList struct {
	Node     *Node
	Services []*AgentService
}

// ServiceEntry is one row of /v1/health/service/{name}: an instance, its
// node and every check that applies to it.
type ServiceEntry struct {
	Node    *Node
	Service *AgentService
	Checks  []*HealthCheck
}

// RaftServer is one server in the Raft configuration.
type RaftServer struct {
	ID              string
	Node            string
	Address         string
	Leader          bool
	ProtocolVersion string
	Voter           bool
	LastIndex       uint64
}

// RaftConfiguration is the answer of /v1/operator/raft/configuration.
type RaftConfiguration struct {
	Servers []*RaftServer
	Index   uint64
}

// AgentSelf is the answer of /v1/agent/self. Consul's client decodes it as
// map[string]map[string]any and reads Config.NodeName, so the section and
// key names matter more than the types.
type AgentSelf struct {
	Config AgentConfig
	Member AgentMember
}

// AgentConfig is the Config section of /v1/agent/self.
type AgentConfig struct {
	Datacenter string
	// PrimaryDatacenter is Datacenter: Warren has one datacenter per
	// cluster, and tools read this key to find where ACLs and the CA live.
	PrimaryDatacenter string
	NodeName          string
	NodeID            string
	Server            bool
	Version           string
}

// AgentMember is a node's gossip identity as /v1/agent/self and
// /v1/agent/members report it. Status 1 is alive.
type AgentMember struct {
	Name   string
	Addr   string
	Port   uint16
	Tags   map[string]string
	Status int
}

// MemberAlive is the AgentMember.Status of a live member (serf's StatusAlive).
const MemberAlive = 1
