package api

import "time"

// CARootList is /v1/connect/ca/roots: the trust bundle.
type CARootList struct {
	ActiveRootID string
	TrustDomain  string
	Roots        []*CARoot
}

// CARoot is one trusted CA root without key material, in the JSON of
// Consul's server-side CARoot (the Go client reads a subset of it).
type CARoot struct {
	ID                  string
	Name                string
	SerialNumber        uint64
	SigningKeyID        string
	ExternalTrustDomain string
	NotBefore           time.Time
	NotAfter            time.Time
	RootCert            string
	IntermediateCerts   []string
	Active              bool
	RotatedOutAt        time.Time
	PrivateKeyType      string
	PrivateKeyBits      int
	CreateIndex         uint64
	ModifyIndex         uint64
}

// CAConfiguration is /v1/connect/ca/configuration. Provider is always
// "consul" (the built-in CA).
type CAConfiguration struct {
	Provider                 string
	Config                   CAProviderConfig
	State                    map[string]string `json:",omitempty"`
	ForceWithoutCrossSigning bool
	CreateIndex              uint64
	ModifyIndex              uint64
}

// CAProviderConfig is the Config of the built-in CA. Zero values mean the
// defaults. RotateRoot (Warren's) asks for a new root with the same key
// type; a new PrivateKeyType or PrivateKeyBits makes one too. PrivateKey and
// RootCert (importing a root) are refused.
type CAProviderConfig struct {
	LeafCertTTL         Duration `json:",omitempty"`
	IntermediateCertTTL Duration `json:",omitempty"`
	RootCertTTL         Duration `json:",omitempty"`
	PrivateKeyType      string   `json:",omitempty"`
	PrivateKeyBits      int      `json:",omitempty"`
	RotateRoot          bool     `json:",omitempty"`
	PrivateKey          string   `json:",omitempty"`
	RootCert            string   `json:",omitempty"`
	// CSRMaxPerSecond is Consul's signing rate limit: absent, the servers'
	// csr_max_per_second applies (default 50); 0 means no limit. A GET
	// shows the rate in force.
	CSRMaxPerSecond *float64 `json:",omitempty"`
	// JWTTTL is the lifetime of JWT-SVIDs (Warren's; default 5m).
	JWTTTL Duration `json:",omitempty"`
}

// LeafCert is /v1/agent/connect/ca/leaf/:service.
type LeafCert struct {
	SerialNumber  string
	CertPEM       string
	PrivateKeyPEM string
	Service       string
	ServiceURI    string
	ValidAfter    time.Time
	ValidBefore   time.Time
	CreateIndex   uint64
	ModifyIndex   uint64
}

// Intention is Consul's api.Intention without L7 permissions, partitions,
// peers and sameness groups.
type Intention struct {
	ID          string `json:",omitempty"`
	Description string `json:",omitempty"`

	SourceNS, SourceName           string
	DestinationNS, DestinationName string

	SourceType string

	Action string `json:",omitempty"`

	Meta map[string]string `json:",omitempty"`

	Precedence int

	CreatedAt, UpdatedAt time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// IntentionQuery selects an intention read: Query is list, exact (Source,
// Destination), check (Source, Destination), match (By, Names) or
// authorize (Destination, ClientCertURI).
type IntentionQuery struct {
	Query         string
	Source        string
	Destination   string
	By            string
	Names         []string
	ClientCertURI string
}

// IntentionResult answers an IntentionQuery.
type IntentionResult struct {
	Intentions []*Intention
	Match      map[string][]*Intention
	Allowed    bool
	Reason     string
}

// IntentionCheckResult is /v1/connect/intentions/check.
type IntentionCheckResult struct {
	Allowed bool
}

// AgentAuthorizeParams is the body of /v1/agent/connect/authorize.
type AgentAuthorizeParams struct {
	Target           string
	ClientCertURI    string
	ClientCertSerial string `json:",omitempty"`
}

// AgentAuthorize is the answer of /v1/agent/connect/authorize.
type AgentAuthorize struct {
	Authorized bool
	Reason     string
}
