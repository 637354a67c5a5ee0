package rpc

import (
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Methods of the mesh identity: the built-in CA, leaf signing and
// intentions.
const (
	MethodCARoots        = "ConnectCA.Roots"
	MethodCAConfigGet    = "ConnectCA.ConfigurationGet"
	MethodCAConfigSet    = "ConnectCA.ConfigurationSet"
	MethodCASign         = "ConnectCA.Sign"
	MethodCASignJWT      = "ConnectCA.SignJWT"
	MethodIntentionApply = "Intention.Apply"
	MethodIntentionQuery = "Intention.Query"
)

// CARoot is a CA root without key material, in the JSON shape of Consul's
// /v1/connect/ca/roots entries.
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

// CARootsReply is the trust bundle: every root still trusted.
type CARootsReply struct {
	Meta         catalog.QueryMeta
	TrustDomain  string
	ActiveRootID string
	Roots        []CARoot
	// JWTKeys is the JWT bundle: the public JWT-SVID keys of the trusted
	// roots, by key ID (Warren's; not in the HTTP API's roots).
	JWTKeys []JWTKey `json:",omitempty"`
}

// JWTKey is a public JWT-SVID signing key (connect.JWTKey).
type JWTKey struct {
	KeyID        string
	PublicKeyPEM string
}

// CAConfig is the CA configuration; its fields are connect.CAConfig's (a
// value converts between the two).
type CAConfig struct {
	KeyType         string
	KeyBits         int
	LeafTTL         time.Duration
	IntermediateTTL time.Duration
	RootTTL         time.Duration
	JWTTTL          time.Duration `json:",omitempty"`
	CSRMaxPerSecond float64       `json:",omitempty"`
}

// CAConfigReply is the CA configuration with the indexes of its writes.
type CAConfigReply struct {
	Meta        catalog.QueryMeta
	Config      CAConfig
	CreateIndex uint64
	ModifyIndex uint64
}

// CAConfigSetRequest changes the CA configuration. A new key type or size,
// or Rotate, makes the leader create a new root and rotate to it.
type CAConfigSetRequest struct {
	Config CAConfig
	Rotate bool `json:",omitempty"`
}

// SignRequest asks the leader to sign a leaf for a service registered on
// Node. CSR is DER.
type SignRequest struct {
	Node    string
	Service string
	CSR     []byte
}

// SignReply is a signed leaf: CertPEM is the leaf and its chain.
type SignReply struct {
	SerialNumber string
	CertPEM      string
	Service      string
	ServiceURI   string
	ValidAfter   time.Time
	ValidBefore  time.Time
	RootID       string
	CreateIndex  uint64
	ModifyIndex  uint64
}

// SignJWTRequest asks the leader for a JWT-SVID of a service registered
// on Node, for the given audiences.
type SignJWTRequest struct {
	Node     string
	Service  string
	Audience []string
}

// SignJWTReply is a signed JWT-SVID.
type SignJWTReply struct {
	Token      string
	ServiceURI string
	IssuedAt   time.Time
	ExpiresAt  time.Time
}

// Intention is connect.Intention on the wire (the fields are the same, so
// a value converts between the two).
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

// Intention operations.
const (
	IntentionOpUpsert = "upsert"
	IntentionOpDelete = "delete"
)

// IntentionApplyRequest upserts or deletes the intention of a
// source/destination pair ("name" or "ns/name").
type IntentionApplyRequest struct {
	Op          string
	Source      string
	Destination string
	Intention   *Intention `json:",omitempty"`
}

// Intention queries.
const (
	IntentionQueryList      = "list"
	IntentionQueryExact     = "exact"
	IntentionQueryCheck     = "check"
	IntentionQueryMatch     = "match"
	IntentionQueryAuthorize = "authorize"
)

// IntentionQuery is every intention read: list, exact (Source and
// Destination), check (Source, Destination), match (By, Names), authorize
// (Destination, ClientCertURI).
type IntentionQuery struct {
	Options       catalog.QueryOptions
	Query         string
	Source        string   `json:",omitempty"`
	Destination   string   `json:",omitempty"`
	By            string   `json:",omitempty"`
	Names         []string `json:",omitempty"`
	ClientCertURI string   `json:",omitempty"`
}

// ReadConsistency is the consistency the query asks for.
func (q *IntentionQuery) ReadConsistency() catalog.Consistency { return q.Options.Consistency }

// IntentionReply answers an IntentionQuery.
type IntentionReply struct {
	Meta       catalog.QueryMeta
	Intentions []*Intention            `json:",omitempty"`
	Match      map[string][]*Intention `json:",omitempty"`
	Allowed    bool
	Reason     string `json:",omitempty"`
	// DefaultAllow is the servers' default_intention_policy: whether a
	// connection no intention matches is allowed.
	DefaultAllow bool `json:",omitempty"`
}
