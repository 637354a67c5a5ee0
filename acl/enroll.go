package acl

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Host enrollment: an operator makes an enrollment token (a secret with a
// TTL, a number of uses, an optional node name prefix and the service
// identities the host may hold); a new agent presents it once and receives
// its agent ACL token, the gossip key, the servers' addresses and the CA
// that signs server certificates. The servers keep only the secret's hash.

// Enrollment methods of Server.Call. ACL.EnrollCA and ACL.Enroll are the
// only calls a client without a token or certificate may make.
const (
	MethodEnrollmentTokenCreate = "ACL.EnrollmentTokenCreate"
	MethodEnrollmentTokenList   = "ACL.EnrollmentTokenList"
	MethodEnrollCA              = "ACL.EnrollCA"
	MethodEnroll                = "ACL.Enroll"
)

// EnrollmentToken is a stored enrollment token (by the hash of its secret).
type EnrollmentToken struct {
	ID                string
	SecretHash        string
	Description       string            `json:",omitempty"`
	NodePrefix        string            `json:",omitempty"`
	ServiceIdentities []ServiceIdentity `json:",omitempty"`
	UsesLeft          int
	ExpirationTime    time.Time
	CreateTime        time.Time
}

// EnrollmentTokenRequest makes an enrollment token.
type EnrollmentTokenRequest struct {
	Description       string            `json:",omitempty"`
	TTL               time.Duration     // > 0
	Uses              int               // >= 1
	NodePrefix        string            `json:",omitempty"`
	ServiceIdentities []ServiceIdentity `json:",omitempty"`
}

// Limits of an enrollment token.
const (
	MaxEnrollmentTTL  = 30 * 24 * time.Hour
	MaxEnrollmentUses = 10000
)

// EnrollmentTokenReply is a new token: Token is the string an agent is
// given (-enroll), shown only here.
type EnrollmentTokenReply struct {
	ID             string
	Token          string
	UsesLeft       int
	ExpirationTime time.Time
}

// EnrollmentTokenList lists the unused, unexpired enrollment tokens
// (without secrets).
type EnrollmentTokenList struct {
	Tokens []*EnrollmentToken
}

// EnrollRequest is an agent presenting an enrollment secret.
type EnrollRequest struct {
	Secret string
	Node   string
	NodeID string
}

// EnrollReply is what an enrolled agent needs. AgentToken is a secret.
type EnrollReply struct {
	AgentToken string
	AccessorID string
	Datacenter string
	// GossipKey is the serf encryption key ("" if gossip is not
	// encrypted). A secret.
	GossipKey string `json:",omitempty"`
	// RetryJoin are the servers' serf LAN addresses.
	RetryJoin []string
	// CAPEM is the operator CA (server certificates chain to it); "" on a
	// cluster without TLS.
	CAPEM string `json:",omitempty"`
}

// EnrollCAReply is the CA an agent checks against the token's pin before
// it sends the secret.
type EnrollCAReply struct {
	CAPEM string `json:",omitempty"`
}

// enrollPrefix starts every enrollment token string.
const enrollPrefix = "wrenroll1."

// EnrollmentBlob is what an enrollment token string carries: the secret,
// the servers' RPC addresses to present it to, the SHA-256 of the CA's
// PEM the agent must find there ("" on a cluster without TLS), and the
// datacenter.
type EnrollmentBlob struct {
	Secret     string   `json:"s"`
	Servers    []string `json:"a"`
	CAPin      string   `json:"p,omitempty"`
	Datacenter string   `json:"d"`
}

// Encode is the token string: one line to paste into an agent's config.
func (b *EnrollmentBlob) Encode() string {
	raw, _ := json.Marshal(b)
	return enrollPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// ErrBadEnrollmentToken is a token string that is not one.
var ErrBadEnrollmentToken = errors.New("not a warren enrollment token")

// DecodeEnrollment parses a token string made by Encode.
func DecodeEnrollment(s string) (*EnrollmentBlob, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), enrollPrefix)
	if !ok || len(rest) > 8192 {
		return nil, fmt.Errorf("%w: it starts with %q", ErrBadEnrollmentToken, enrollPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEnrollmentToken, err)
	}
	var b EnrollmentBlob
	if err := json.Unmarshal(raw, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEnrollmentToken, err)
	}
	if b.Secret == "" || len(b.Servers) == 0 || b.Datacenter == "" {
		return nil, fmt.Errorf("%w: secret, servers or datacenter missing", ErrBadEnrollmentToken)
	}
	return &b, nil
}
