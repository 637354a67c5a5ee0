package api

// Answers of the /v1/agent endpoints that have no counterpart among the
// catalog's wire types. The request bodies are in agent.go.

// LocalAgentService is the answer of /v1/agent/service/{id}: the instance as
// /v1/agent/services reports it, plus the ContentHash that hash-based
// blocking compares (?hash=…, also sent as X-Consul-ContentHash). The hash
// is opaque: clients only ever send it back.
type LocalAgentService struct {
	AgentService
	ContentHash string `json:",omitempty"`
}

// LocalAgentSelf is the answer of /v1/agent/self on a process that runs a
// local agent. Consul's client decodes the answer as
// map[string]map[string]any, so every section is a JSON object.
//
//   - Config and Member are AgentSelf's sections.
//   - Meta is the node meta ({} when there is none).
//   - Stats is Consul's string-valued statistics by subsystem: "agent"
//     (services, checks), "build" (version) and "runtime" (os, arch,
//     version, goroutines, cpu_count).
//   - Sync is Warren's own section: the outcome of the agent's anti-entropy
//     sync of its local services and checks to the servers. Consul has no
//     such section; its clients ignore sections they do not know.
type LocalAgentSelf struct {
	Config AgentConfig
	Member AgentMember
	Meta   map[string]string
	Stats  map[string]map[string]string
	Sync   AgentSync
	// XDS is where Envoy and proxyless gRPC clients reach xDS (Consul's
	// "xDS" section, which `consul connect envoy` reads); absent when the
	// gRPC port is off.
	XDS *AgentXDS `json:"xDS,omitempty"`
}

// AgentXDS is the xDS section of /v1/agent/self.
type AgentXDS struct {
	SupportedProxies map[string][]string
	Port             int
	Ports            AgentXDSPorts
}

// AgentXDSPorts are the xDS ports by transport; -1 is off.
type AgentXDSPorts struct {
	Plaintext int
	TLS       int
}

// AgentSync is the Sync section of /v1/agent/self. Both keys are always
// present.
type AgentSync struct {
	// LastSync is the RFC 3339 time of the last successful anti-entropy
	// sync, "" when none has succeeded yet.
	LastSync string
	// LastSyncError is the error of the last failed sync, "" when none
	// has failed.
	LastSyncError string
}
