package api

// AgentServiceRegistration is the body of PUT /v1/agent/service/register
// and the shape of a service definition in a config file.
type AgentServiceRegistration struct {
	Kind              string                    `json:",omitempty"`
	ID                string                    `json:",omitempty"`
	Name              string                    `json:",omitempty"`
	Tags              []string                  `json:",omitempty"`
	Port              int                       `json:",omitempty"`
	Address           string                    `json:",omitempty"`
	TaggedAddresses   map[string]ServiceAddress `json:",omitempty"`
	EnableTagOverride bool                      `json:",omitempty"`
	Meta              map[string]string         `json:",omitempty"`
	Weights           *Weights                  `json:",omitempty"`
	Check             *AgentServiceCheck        `json:",omitempty"`
	Checks            []*AgentServiceCheck      `json:",omitempty"`
	// Proxy configures a connect-proxy (Kind "connect-proxy") registration.
	Proxy *AgentServiceConnectProxyConfig `json:",omitempty"`
	// Connect asks for a sidecar proxy registered with the service.
	Connect *AgentServiceConnect `json:",omitempty"`
	// Identity (a Warren extension) selects the local processes that the
	// SPIFFE Workload API gives this service's X.509-SVID to.
	Identity *AgentServiceIdentity `json:",omitempty"`
}

// AgentServiceIdentity holds the selectors of a service's workloads: a
// caller of the Workload API matches when its peer credentials satisfy
// every selector given. At least one must be given.
type AgentServiceIdentity struct {
	// UID is the caller's user ID (0 is root).
	UID *int `json:",omitempty"`
	// Path is the absolute path of the caller's executable
	// (/proc/<pid>/exe).
	Path string `json:",omitempty"`
}

// AgentServiceConnect is a registration's Connect block. SidecarService
// registers "<name>-sidecar-proxy" with defaults filled from the service
// (Consul's sidecar_service); Native is accepted and ignored.
type AgentServiceConnect struct {
	Native         bool                      `json:",omitempty"`
	SidecarService *AgentServiceRegistration `json:",omitempty"`
}

// AgentServiceConnectProxyConfig is a connect-proxy's configuration, as
// Consul's wire format spells it.
type AgentServiceConnectProxyConfig struct {
	DestinationServiceName string     `json:",omitempty"`
	DestinationServiceID   string     `json:",omitempty"`
	LocalServiceAddress    string     `json:",omitempty"`
	LocalServicePort       int        `json:",omitempty"`
	Upstreams              []Upstream `json:",omitempty"`
	// Config is the opaque proxy configuration; Warren's xDS reads
	// envoy_prometheus_bind_addr, protocol and opentelemetry from it.
	Config     map[string]any    `json:",omitempty"`
	AccessLogs *AccessLogsConfig `json:",omitempty"`
}

// AccessLogsConfig is Consul's access log configuration of a proxy.
type AccessLogsConfig struct {
	Enabled             bool   `json:",omitempty"`
	DisableListenerLogs bool   `json:",omitempty"`
	Type                string `json:",omitempty"`
	Path                string `json:",omitempty"`
	JSONFormat          string `json:",omitempty"`
	TextFormat          string `json:",omitempty"`
}

// Upstream is a service a proxy's application reaches on a local port.
type Upstream struct {
	DestinationType  string `json:",omitempty"`
	DestinationName  string
	Datacenter       string `json:",omitempty"`
	LocalBindAddress string `json:",omitempty"`
	LocalBindPort    int    `json:",omitempty"`
}

// AgentServiceCheck is a check definition, inside a service registration
// or on its own (PUT /v1/agent/check/register, with ServiceID). Durations
// are Go duration strings ("10s"), as Consul takes them.
type AgentServiceCheck struct {
	CheckID                        string              `json:",omitempty"`
	Name                           string              `json:",omitempty"`
	ServiceID                      string              `json:",omitempty"`
	Args                           []string            `json:"ScriptArgs,omitempty"`
	Interval                       string              `json:",omitempty"`
	Timeout                        string              `json:",omitempty"`
	TTL                            string              `json:",omitempty"`
	HTTP                           string              `json:",omitempty"`
	Header                         map[string][]string `json:",omitempty"`
	Method                         string              `json:",omitempty"`
	Body                           string              `json:",omitempty"`
	DisableRedirects               *bool               `json:",omitempty"`
	TCP                            string              `json:",omitempty"`
	UDP                            string              `json:",omitempty"`
	GRPC                           string              `json:",omitempty"`
	GRPCUseTLS                     bool                `json:",omitempty"`
	TLSServerName                  string              `json:",omitempty"`
	TLSSkipVerify                  bool                `json:",omitempty"`
	Status                         string              `json:",omitempty"`
	Notes                          string              `json:",omitempty"`
	SuccessBeforePassing           int                 `json:",omitempty"`
	FailuresBeforeCritical         int                 `json:",omitempty"`
	DeregisterCriticalServiceAfter string              `json:",omitempty"`
}

// AgentCheckRegistration is the body of PUT /v1/agent/check/register.
type AgentCheckRegistration struct {
	ID        string `json:",omitempty"`
	ServiceID string `json:",omitempty"`
	AgentServiceCheck
}

// CheckUpdate is the body of PUT /v1/agent/check/update/:id.
type CheckUpdate struct {
	Status string
	Output string
}
