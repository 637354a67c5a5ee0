// Package catalog holds Warren's domain types: nodes, service instances and
// health checks, with their validation. It does no networking and no I/O;
// every other package may import it, and it imports nothing internal.
package catalog

import "strings"

// Health statuses of a check, as Consul spells them.
const (
	HealthPassing  = "passing"
	HealthWarning  = "warning"
	HealthCritical = "critical"
	// HealthAny is a query value only: checks in every state.
	HealthAny = "any"
)

// Rows the servers own on every node; agents never register or remove
// them (anti-entropy leaves them alone).
const (
	// SerfCheckID is the node check that mirrors gossip health.
	SerfCheckID = "serfHealth"
	// ServerServiceID is the service every server registers on its node,
	// as Consul's servers register "consul".
	ServerServiceID = "warren"
)

// Maintenance checks, as Consul names them: a critical check the agent adds
// to take its node, or one service instance, out of rotation.
const (
	NodeMaintenanceCheckID = "_node_maintenance"
	// ServiceMaintenanceCheckPrefix is followed by the service ID.
	ServiceMaintenanceCheckPrefix = "_service_maintenance:"
)

// IsMaintenanceCheck reports whether id is a node or service maintenance
// check.
func IsMaintenanceCheck(id string) bool {
	return id == NodeMaintenanceCheckID || strings.HasPrefix(id, ServiceMaintenanceCheckPrefix)
}

// KindConnectProxy is the Kind of a sidecar proxy instance.
const KindConnectProxy = "connect-proxy"

// SidecarSuffix names a service's sidecar proxies: web's are registered as
// web-sidecar-proxy (Consul's convention for sidecar_service), which is
// where xDS, DNS (web.connect) and /v1/health/connect look for them.
const SidecarSuffix = "-sidecar-proxy"

// IsProxyFor reports whether s is a connect proxy for service.
func (s *Service) IsProxyFor(service string) bool {
	return s != nil && s.Kind == KindConnectProxy && s.Proxy != nil && strings.EqualFold(s.Proxy.DestinationServiceName, service)
}

// RaftIndex records the Raft indexes at which a row was created and last
// modified. The state store sets them; callers never do.
type RaftIndex struct {
	CreateIndex uint64
	ModifyIndex uint64
}

// Node is a host in the catalog.
type Node struct {
	ID              string // UUID, optional
	Name            string
	Address         string
	Datacenter      string
	TaggedAddresses map[string]string
	Meta            map[string]string
	RaftIndex
}

// ServiceAddress is an address and port pair used in tagged addresses.
type ServiceAddress struct {
	Address string
	Port    int
}

// Weights are the DNS SRV weights of an instance by health.
type Weights struct {
	Passing int
	Warning int
}

// Service is one service instance registered on a node.
type Service struct {
	Node              string // name of the node it runs on
	ID                string
	Name              string
	Kind              string // "" for a typical service, "connect-proxy" for a sidecar
	Tags              []string
	Address           string
	TaggedAddresses   map[string]ServiceAddress
	Meta              map[string]string
	Port              int
	Weights           Weights
	EnableTagOverride bool
	// Proxy configures a connect-proxy (sidecar) instance.
	Proxy *ProxyConfig `json:",omitempty"`
	RaftIndex
}

// ProxyConfig is a sidecar proxy's configuration, in Consul's terms.
type ProxyConfig struct {
	DestinationServiceName string
	DestinationServiceID   string
	LocalServiceAddress    string `json:",omitempty"`
	LocalServicePort       int
	Upstreams              []Upstream `json:",omitempty"`
	// Config is Consul's opaque proxy configuration (Proxy.Config): keys
	// the xDS builders read (envoy_prometheus_bind_addr, protocol,
	// opentelemetry) and any others, kept as given.
	Config map[string]any `json:",omitempty"`
	// AccessLogs configures the proxy's access logs (Consul's
	// Proxy.AccessLogs).
	AccessLogs *AccessLogs `json:",omitempty"`
}

// AccessLogs is Consul's AccessLogsConfig: whether a proxy logs the
// connections and requests it handles, where, and in what format.
type AccessLogs struct {
	Enabled             bool   `json:",omitempty"`
	DisableListenerLogs bool   `json:",omitempty"`
	Type                string `json:",omitempty"` // stdout (default), stderr or file
	Path                string `json:",omitempty"` // for type file
	JSONFormat          string `json:",omitempty"`
	TextFormat          string `json:",omitempty"`
}

// Upstream is a service a proxy's application calls through a local port.
type Upstream struct {
	DestinationName  string
	LocalBindAddress string `json:",omitempty"`
	LocalBindPort    int
}

// CheckDefinition is how a check is run; the catalog stores it for display.
type CheckDefinition struct {
	HTTP                           string `json:",omitempty"`
	TCP                            string `json:",omitempty"`
	Interval                       string `json:",omitempty"`
	Timeout                        string `json:",omitempty"`
	DeregisterCriticalServiceAfter string `json:",omitempty"`
}

// Check is a health check on a node, or on one service instance of a node
// when ServiceID is set.
type Check struct {
	Node        string
	CheckID     string
	Name        string
	Status      string
	Notes       string
	Output      string
	ServiceID   string
	ServiceName string   // filled by the state store from the service
	ServiceTags []string // filled by the state store from the service
	Type        string
	Definition  CheckDefinition
	RaftIndex
}

// Registration is a catalog write: a node, optionally one service instance
// and any number of checks, applied atomically.
type Registration struct {
	Node           Node
	Service        *Service
	Checks         []*Check
	SkipNodeUpdate bool
	// KeepAgentNodeFields keeps, on a node that exists when the
	// registration is applied, the fields its own agent owns: ID, tagged
	// addresses and meta; the rest of Node is written. The servers'
	// membership reconciliation sets it, so a member's registration that
	// raced with its agent's first sync cannot wipe what the agent wrote.
	KeepAgentNodeFields bool `json:",omitempty"`
}

// Deregistration removes a whole node (ServiceID and CheckID empty), one
// service instance with its checks, or one check.
type Deregistration struct {
	Node      string
	ServiceID string
	CheckID   string
}

// ServiceNode is a service instance joined with its node, the row shape of
// a catalog service query.
type ServiceNode struct {
	Node    *Node
	Service *Service
}

// CheckServiceNode is a service instance with its node and every check
// that applies to it: its own checks and its node's node-level checks.
type CheckServiceNode struct {
	Node    *Node
	Service *Service
	Checks  []*Check
}

// AggregatedStatus returns the worst status of checks: critical beats
// maintenance beats warning beats passing. No checks means passing.
func AggregatedStatus(checks []*Check) string {
	worst := HealthPassing
	for _, c := range checks {
		switch c.Status {
		case HealthCritical:
			return HealthCritical
		case HealthWarning:
			worst = HealthWarning
		}
	}
	return worst
}
