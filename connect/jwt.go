package connect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// JWT-SVIDs. Every root carries a JWT signing key (ECDSA P-256, ES256,
// whatever the root's own key type), created with the root and rotated with
// it: a rotated-out root keeps its public key in the JWT bundle as long as
// it stays trusted (Root.TrustedAt), which the leader sets to outlive every
// token and leaf it signed (CAConfig.CredentialTTL). Tokens carry the key's
// ID in their "kid" header; the JWT bundle is the trusted roots' public
// keys by ID.

// Bounds and default of CAConfig.JWTTTL.
const (
	DefaultJWTTTL = 5 * time.Minute
	MinJWTTTL     = time.Second
	MaxJWTTTL     = 24 * time.Hour
)

// Limits on a JWT-SVID request.
const (
	MaxJWTAudiences      = 16
	MaxJWTAudienceLength = 256
)

// JWTKey is a JWT signing key without its private part.
type JWTKey struct {
	// KeyID is the "kid" of the tokens the key signs.
	KeyID string
	// PublicKeyPEM is the PKIX public key ("PUBLIC KEY" PEM).
	PublicKeyPEM string
}

// NewJWTKey creates a JWT signing key and sets it on r (which must not be
// shared yet: the leader calls it on a new root or on a copy).
func NewJWTKey(r *Root, rand io.Reader) error {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return fmt.Errorf("new JWT key: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		return fmt.Errorf("new JWT key: %w", err)
	}
	kid, err := keyID(k.Public())
	if err != nil {
		return fmt.Errorf("new JWT key: %w", err)
	}
	priv, err := encodeKey(k)
	if err != nil {
		return fmt.Errorf("new JWT key: %w", err)
	}
	r.JWTKeyID = base64.RawURLEncoding.EncodeToString(kid)
	r.JWTPublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	r.JWTKeyPEM = priv
	return nil
}

// JWTKeys returns the public JWT keys of the roots trusted at now, sorted
// by key ID: the JWT bundle.
func JWTKeys(roots []*Root, now time.Time) []JWTKey {
	var out []JWTKey
	for _, r := range roots {
		if r.JWTKeyID == "" || r.JWTPublicKeyPEM == "" || !r.TrustedAt(now) {
			continue
		}
		out = append(out, JWTKey{KeyID: r.JWTKeyID, PublicKeyPEM: r.JWTPublicKeyPEM})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].KeyID < out[j].KeyID })
	return out
}

// JWTBundle builds go-spiffe's JWT bundle of trust domain td from keys.
func JWTBundle(td string, keys []JWTKey) (*jwtbundle.Bundle, error) {
	tdID, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("JWT bundle: trust domain %q: %w", td, err)
	}
	auth := make(map[string]crypto.PublicKey, len(keys))
	for _, k := range keys {
		block, _ := pem.Decode([]byte(k.PublicKeyPEM))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("JWT bundle: key %s: not a PUBLIC KEY PEM block", k.KeyID)
		}
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("JWT bundle: key %s: %w", k.KeyID, err)
		}
		auth[k.KeyID] = pub
	}
	return jwtbundle.FromJWTAuthorities(tdID, auth), nil
}

// JWTSigner signs JWT-SVIDs with one root's JWT key. Build one per active
// root and reuse it; it is safe for concurrent use.
type JWTSigner struct {
	rootID string
	keyID  string
	signer jose.Signer
}

// NewJWTSigner parses r's JWT key. Its errors never quote the key.
func NewJWTSigner(r *Root) (*JWTSigner, error) {
	if r.JWTKeyID == "" || r.JWTKeyPEM == "" {
		return nil, fmt.Errorf("JWT signer: root %s has no JWT key", r.ID)
	}
	k, err := parseKey(r.JWTKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("JWT signer: root %s: %w", r.ID, err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() {
		return nil, fmt.Errorf("JWT signer: root %s: the JWT key is not ECDSA P-256", r.ID)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ek, KeyID: r.JWTKeyID}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, fmt.Errorf("JWT signer: root %s: %w", r.ID, err)
	}
	return &JWTSigner{rootID: r.ID, keyID: r.JWTKeyID, signer: s}, nil
}

// KeyID is the "kid" of the tokens s signs.
func (s *JWTSigner) KeyID() string { return s.keyID }

// ValidateAudience checks the audiences of a JWT-SVID request.
func ValidateAudience(audience []string) error {
	if len(audience) == 0 {
		return &SignError{Reason: ReasonInvalidRequest, Detail: "audience must be specified"}
	}
	if len(audience) > MaxJWTAudiences {
		return &SignError{Reason: ReasonInvalidRequest, Detail: fmt.Sprintf("%d audiences, more than %d", len(audience), MaxJWTAudiences)}
	}
	for i, a := range audience {
		if a == "" || len(a) > MaxJWTAudienceLength {
			return &SignError{Reason: ReasonInvalidRequest, Detail: fmt.Sprintf("audience[%d] is empty or longer than %d bytes", i, MaxJWTAudienceLength)}
		}
	}
	return nil
}

// Sign returns a JWT-SVID for id with the given audiences, issued at now
// and valid for ttl, and its expiry.
func (s *JWTSigner) Sign(id spiffeid.ID, audience []string, ttl time.Duration, now time.Time) (string, time.Time, error) {
	if id.IsZero() {
		return "", time.Time{}, errors.New("sign JWT-SVID: no SPIFFE ID")
	}
	if err := ValidateAudience(audience); err != nil {
		return "", time.Time{}, err
	}
	exp := now.Add(ttl).Truncate(time.Second)
	claims := jwt.Claims{
		Subject:  id.String(),
		Audience: jwt.Audience(audience),
		Expiry:   jwt.NewNumericDate(exp),
		IssuedAt: jwt.NewNumericDate(now),
	}
	tok, err := jwt.Signed(s.signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign JWT-SVID for %s: %w", id, err)
	}
	return tok, exp, nil
}
