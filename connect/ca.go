package connect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/big"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warren-mesh/warren/catalog"
)

// Key types of a CA.
const (
	KeyTypeEC  = "ec"
	KeyTypeRSA = "rsa"
)

// Defaults of a CAConfig, Consul's.
const (
	DefaultLeafTTL         = 72 * time.Hour
	DefaultIntermediateTTL = 8760 * time.Hour
	DefaultRootTTL         = 10 * 8760 * time.Hour
	DefaultECBits          = 256
	DefaultRSABits         = 2048
)

// Bounds on a CAConfig. The minimum leaf TTL is low so that tests can rotate
// leaves every few seconds; production configs should stay at hours.
const (
	MinLeafTTL = time.Second
	MaxLeafTTL = 8760 * time.Hour
	MaxRootTTL = 100 * 8760 * time.Hour
)

// clockSkew backdates NotBefore of every certificate so that a peer whose
// clock is a little behind the leader's still accepts it, and pads how long
// a rotated-out root stays trusted.
const clockSkew = time.Minute

// CAConfig is the configuration of the built-in CA. Zero values mean the
// defaults (see WithDefaults). Field errors name Consul's configuration keys
// (PrivateKeyType, LeafCertTTL …) because that is what API users send.
type CAConfig struct {
	KeyType         string        // "ec" (P-256 by default) or "rsa"
	KeyBits         int           // ec: 256 or 384; rsa: 2048, 3072 or 4096
	LeafTTL         time.Duration // default 72h
	IntermediateTTL time.Duration // default 8760h
	RootTTL         time.Duration // default 87600h (10 years)
	// JWTTTL is the lifetime of JWT-SVIDs (default 5m).
	JWTTTL time.Duration `json:",omitempty"`
	// CSRMaxPerSecond is the leader's signing rate limit set through the
	// API: 0 means not set (the servers' csr_max_per_second applies), a
	// negative value means no limit.
	CSRMaxPerSecond float64 `json:",omitempty"`
}

// CredentialTTL is the longest life of anything a root signs (a leaf or a
// JWT-SVID): a rotated-out root stays in the bundles that long.
func (c CAConfig) CredentialTTL() time.Duration {
	c = c.WithDefaults()
	return max(c.LeafTTL, c.JWTTTL)
}

// WithDefaults returns the config with every zero field set to its default.
func (c CAConfig) WithDefaults() CAConfig {
	if c.KeyType == "" {
		c.KeyType = KeyTypeEC
	}
	if c.KeyBits == 0 {
		switch c.KeyType {
		case KeyTypeEC:
			c.KeyBits = DefaultECBits
		case KeyTypeRSA:
			c.KeyBits = DefaultRSABits
		}
	}
	if c.LeafTTL == 0 {
		c.LeafTTL = DefaultLeafTTL
	}
	if c.IntermediateTTL == 0 {
		c.IntermediateTTL = DefaultIntermediateTTL
	}
	if c.RootTTL == 0 {
		c.RootTTL = DefaultRootTTL
	}
	if c.JWTTTL == 0 {
		c.JWTTTL = DefaultJWTTTL
	}
	return c
}

func caFieldErr(field, format string, args ...any) error {
	return &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the config (zero fields stand for their defaults). The
// error is a *catalog.FieldError, a 400 at the HTTP API.
func (c CAConfig) Validate() error {
	c = c.WithDefaults()
	switch c.KeyType {
	case KeyTypeEC:
		if c.KeyBits != 256 && c.KeyBits != 384 {
			return caFieldErr("PrivateKeyBits", "%d is not valid for ec keys (256 or 384)", c.KeyBits)
		}
	case KeyTypeRSA:
		if c.KeyBits != 2048 && c.KeyBits != 3072 && c.KeyBits != 4096 {
			return caFieldErr("PrivateKeyBits", "%d is not valid for rsa keys (2048, 3072 or 4096)", c.KeyBits)
		}
	default:
		return caFieldErr("PrivateKeyType", "%q is not one of ec, rsa", c.KeyType)
	}
	if c.LeafTTL < MinLeafTTL || c.LeafTTL > MaxLeafTTL {
		return caFieldErr("LeafCertTTL", "%s is outside %s-%s", c.LeafTTL, MinLeafTTL, MaxLeafTTL)
	}
	// Consul's rule: an intermediate outlives at least three leaves, so that
	// a leaf is never capped to a short life by its intermediate.
	if c.IntermediateTTL < 3*c.LeafTTL {
		return caFieldErr("IntermediateCertTTL", "%s is less than three times LeafCertTTL (%s)", c.IntermediateTTL, c.LeafTTL)
	}
	if c.RootTTL < c.IntermediateTTL {
		return caFieldErr("RootCertTTL", "%s is less than IntermediateCertTTL (%s)", c.RootTTL, c.IntermediateTTL)
	}
	if c.RootTTL > MaxRootTTL {
		return caFieldErr("RootCertTTL", "%s is more than %s", c.RootTTL, MaxRootTTL)
	}
	if c.JWTTTL < MinJWTTTL || c.JWTTTL > MaxJWTTTL {
		return caFieldErr("JWTTTL", "%s is outside %s-%s", c.JWTTTL, MinJWTTTL, MaxJWTTTL)
	}
	if math.IsNaN(c.CSRMaxPerSecond) || math.IsInf(c.CSRMaxPerSecond, 0) {
		return caFieldErr("CSRMaxPerSecond", "%v is not a number of requests per second", c.CSRMaxPerSecond)
	}
	return nil
}

// SecretPEM is PEM-encoded private key material. It prints as [redacted]
// with every fmt verb and in slog, so a key cannot reach a log line by
// accident; string(s) gives the PEM. It still marshals to JSON (Raft needs
// it): never encode a value holding one into an API response.
type SecretPEM string

const redacted = "[redacted]"

func (SecretPEM) String() string   { return redacted }
func (SecretPEM) GoString() string { return `"` + redacted + `"` }

// Format redacts the key for every verb, including %x and %q.
func (SecretPEM) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue redacts the key in slog output.
func (SecretPEM) LogValue() slog.Value { return slog.StringValue(redacted) }

// Root is one CA root with its signing intermediate, as the servers store it
// through Raft. It holds private keys: hand out Public() instead.
type Root struct {
	// ID is the colon-hex SHA-256 fingerprint of RootCertPEM.
	ID   string
	Name string
	// TrustDomain is the SPIFFE trust domain the root signs for.
	TrustDomain string
	// SerialNumber of the root certificate, colon hex.
	SerialNumber string
	// SigningKeyID is the colon-hex subject key ID of the signing cert.
	SigningKeyID string
	NotBefore    time.Time
	NotAfter     time.Time

	RootCertPEM string
	// IntermediateCertPEMs are the certificates a leaf's chain carries after
	// the leaf: the signing cert, then (after a rotation) this root
	// cross-signed by the previous one.
	IntermediateCertPEMs []string
	// SigningCertPEM is the intermediate that signs leaves.
	SigningCertPEM string

	RootKeyPEM    SecretPEM
	SigningKeyPEM SecretPEM

	// JWTKeyID, JWTPublicKeyPEM and JWTKeyPEM are the root's JWT-SVID
	// signing key (ES256; see NewJWTKey). Roots made before JWT-SVIDs have
	// none until the leader adds one.
	JWTKeyID        string    `json:",omitempty"`
	JWTPublicKeyPEM string    `json:",omitempty"`
	JWTKeyPEM       SecretPEM `json:",omitempty"`

	PrivateKeyType string
	PrivateKeyBits int

	// Active is true for the one root that signs new leaves.
	Active bool
	// RotatedOutAt is when a newer root replaced this one.
	RotatedOutAt time.Time
	// TrustUntil is how long a rotated-out root stays in the trust bundle:
	// until every leaf it signed has expired.
	TrustUntil time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// PublicRoot is a Root without its keys, in the JSON shape of Consul's
// /v1/connect/ca/roots entries.
type PublicRoot struct {
	ID                   string
	Name                 string
	SigningKeyID         string
	ExternalTrustDomain  string
	NotBefore            time.Time
	NotAfter             time.Time
	RootCertPEM          string   `json:"RootCert"`
	IntermediateCertPEMs []string `json:"IntermediateCerts"`
	Active               bool
	PrivateKeyType       string
	PrivateKeyBits       int
	RotatedOutAt         time.Time
	CreateIndex          uint64
	ModifyIndex          uint64
}

// Public returns the root without key material.
func (r *Root) Public() PublicRoot {
	return PublicRoot{
		ID:                   r.ID,
		Name:                 r.Name,
		SigningKeyID:         r.SigningKeyID,
		ExternalTrustDomain:  r.TrustDomain,
		NotBefore:            r.NotBefore,
		NotAfter:             r.NotAfter,
		RootCertPEM:          r.RootCertPEM,
		IntermediateCertPEMs: append([]string(nil), r.IntermediateCertPEMs...),
		Active:               r.Active,
		PrivateKeyType:       r.PrivateKeyType,
		PrivateKeyBits:       r.PrivateKeyBits,
		RotatedOutAt:         r.RotatedOutAt,
		CreateIndex:          r.CreateIndex,
		ModifyIndex:          r.ModifyIndex,
	}
}

// String names the root without key material.
func (r *Root) String() string {
	return fmt.Sprintf("root %s (%s, %s-%d, active=%t)", r.ID, r.TrustDomain, r.PrivateKeyType, r.PrivateKeyBits, r.Active)
}

// LogValue logs the root's public fields only.
func (r *Root) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", r.ID),
		slog.String("trust_domain", r.TrustDomain),
		slog.String("signing_key_id", r.SigningKeyID),
		slog.Bool("active", r.Active),
		slog.Time("not_after", r.NotAfter),
	)
}

// TrustedAt reports whether the root belongs in the trust bundle at now: it
// is active, or rotated out but some leaf it signed may still be valid; and
// its certificate has not expired.
func (r *Root) TrustedAt(now time.Time) bool {
	if !now.Before(r.NotAfter) {
		return false
	}
	return r.Active || now.Before(r.TrustUntil)
}

// NewRoot creates a self-signed root and a signing intermediate for the
// trust domain td, both with the key type of cfg. The root is Active. now
// and rand come from the caller (the leader), never from inside.
func NewRoot(cfg CAConfig, td string, now time.Time, rand io.Reader) (*Root, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.WithDefaults()
	tdID, err := spiffeid.TrustDomainFromString(td)
	if err != nil {
		return nil, fmt.Errorf("new root: trust domain %q: %w", td, err)
	}
	rootKey, err := generateKey(cfg.KeyType, cfg.KeyBits, rand)
	if err != nil {
		return nil, fmt.Errorf("new root: generate root key: %w", err)
	}
	signKey, err := generateKey(cfg.KeyType, cfg.KeyBits, rand)
	if err != nil {
		return nil, fmt.Errorf("new root: generate signing key: %w", err)
	}
	rootSerial, err := newSerial(rand)
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	rootSKID, err := keyID(rootKey.Public())
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	short := hex.EncodeToString(rootSKID[:4])
	rootTmpl := &x509.Certificate{
		SerialNumber:          rootSerial,
		Subject:               pkix.Name{CommonName: "Warren CA Root " + short, Organization: []string{"Warren"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(cfg.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Two CA certificates may sit below a root: a cross-signed newer
		// root and that root's signing intermediate.
		MaxPathLen:     2,
		SubjectKeyId:   rootSKID,
		AuthorityKeyId: rootSKID,
		URIs:           []*url.URL{tdID.ID().URL()},
	}
	rootDER, err := x509.CreateCertificate(rand, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		return nil, fmt.Errorf("new root: sign root certificate: %w", err)
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return nil, fmt.Errorf("new root: parse root certificate: %w", err)
	}
	signCert, err := signIntermediate(rootCert, rootKey, signKey.Public(), tdID, short, now, now.Add(cfg.IntermediateTTL), rand)
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	rootKeyPEM, err := encodeKey(rootKey)
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	signKeyPEM, err := encodeKey(signKey)
	if err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	signPEM := encodeCert(signCert.Raw)
	r := &Root{
		ID:                   fingerprint(rootDER),
		Name:                 "Warren CA Root Cert",
		TrustDomain:          tdID.Name(),
		SerialNumber:         colonHex(rootSerial.Bytes()),
		SigningKeyID:         colonHex(signCert.SubjectKeyId),
		NotBefore:            rootCert.NotBefore,
		NotAfter:             rootCert.NotAfter,
		RootCertPEM:          encodeCert(rootDER),
		IntermediateCertPEMs: []string{signPEM},
		SigningCertPEM:       signPEM,
		RootKeyPEM:           rootKeyPEM,
		SigningKeyPEM:        signKeyPEM,
		PrivateKeyType:       cfg.KeyType,
		PrivateKeyBits:       cfg.KeyBits,
		Active:               true,
	}
	if err := NewJWTKey(r, rand); err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	return r, nil
}

// signIntermediate issues the signing intermediate of a root: a CA that may
// sign leaves only (path length zero), valid until notAfter or the root's
// expiry, whichever is first.
func signIntermediate(rootCert *x509.Certificate, rootKey crypto.Signer, pub crypto.PublicKey, td spiffeid.TrustDomain, short string, now, notAfter time.Time, rand io.Reader) (*x509.Certificate, error) {
	serial, err := newSerial(rand)
	if err != nil {
		return nil, err
	}
	skid, err := keyID(pub)
	if err != nil {
		return nil, err
	}
	if notAfter.After(rootCert.NotAfter) {
		notAfter = rootCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Warren CA Signing " + short + " " + hex.EncodeToString(skid[:4]), Organization: []string{"Warren"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
		AuthorityKeyId:        rootCert.SubjectKeyId,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand, tmpl, rootCert, pub, rootKey)
	if err != nil {
		return nil, fmt.Errorf("sign intermediate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// RenewIntermediate replaces the signing intermediate of an active root
// before it expires (the intermediate TTL is shorter than the root's): a
// new signing key, a new intermediate signed by the root key. It returns an
// updated copy; r is not changed. Leaves signed by the old intermediate
// still verify, because they chain to the same root, as long as the chain
// they were served with is kept by their holder.
func RenewIntermediate(r *Root, intermediateTTL time.Duration, now time.Time, rand io.Reader) (*Root, error) {
	rootCert, err := parseCertPEM(r.RootCertPEM)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	rootKey, err := parseKey(r.RootKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	td, err := spiffeid.TrustDomainFromString(r.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	signKey, err := generateKey(r.PrivateKeyType, r.PrivateKeyBits, rand)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	rootSKID, err := keyID(rootCert.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	cert, err := signIntermediate(rootCert, rootKey, signKey.Public(), td, hex.EncodeToString(rootSKID[:4]), now, now.Add(intermediateTTL), rand)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	keyPEM, err := encodeKey(signKey)
	if err != nil {
		return nil, fmt.Errorf("renew intermediate of %s: %w", r.ID, err)
	}
	out := *r
	signPEM := encodeCert(cert.Raw)
	// The new signing cert replaces the old one at the head of the chain;
	// cross-signed certs stay.
	out.IntermediateCertPEMs = append([]string{signPEM}, nonSigning(r.IntermediateCertPEMs, r.SigningCertPEM)...)
	out.SigningCertPEM = signPEM
	out.SigningKeyPEM = keyPEM
	out.SigningKeyID = colonHex(cert.SubjectKeyId)
	return &out, nil
}

func nonSigning(pems []string, signing string) []string {
	var out []string
	for _, p := range pems {
		if p != signing {
			out = append(out, p)
		}
	}
	return out
}

// CrossSign returns, as PEM, newRoot's certificate re-issued by oldRoot: the
// same subject and public key, signed by the old root key. A leaf signed by
// newRoot's intermediate then chains leaf -> intermediate -> cross-signed
// cert -> old root, so peers that trust only the old root accept it.
func CrossSign(oldRoot, newRoot *Root, now time.Time, rand io.Reader) (string, error) {
	oldCert, err := parseCertPEM(oldRoot.RootCertPEM)
	if err != nil {
		return "", fmt.Errorf("cross-sign: old root %s: %w", oldRoot.ID, err)
	}
	oldKey, err := parseKey(oldRoot.RootKeyPEM)
	if err != nil {
		return "", fmt.Errorf("cross-sign: old root %s: %w", oldRoot.ID, err)
	}
	newCert, err := parseCertPEM(newRoot.RootCertPEM)
	if err != nil {
		return "", fmt.Errorf("cross-sign: new root %s: %w", newRoot.ID, err)
	}
	if !now.Before(oldCert.NotAfter) {
		return "", fmt.Errorf("cross-sign: old root %s expired at %s", oldRoot.ID, oldCert.NotAfter)
	}
	serial, err := newSerial(rand)
	if err != nil {
		return "", fmt.Errorf("cross-sign: %w", err)
	}
	notAfter := newCert.NotAfter
	if notAfter.After(oldCert.NotAfter) {
		notAfter = oldCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               newCert.Subject,
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              newCert.KeyUsage,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// Below it sits only the new root's signing intermediate.
		MaxPathLen:     1,
		SubjectKeyId:   newCert.SubjectKeyId,
		AuthorityKeyId: oldCert.SubjectKeyId,
		URIs:           newCert.URIs,
	}
	der, err := x509.CreateCertificate(rand, tmpl, oldCert, newCert.PublicKey, oldKey)
	if err != nil {
		return "", fmt.Errorf("cross-sign %s with %s: %w", newRoot.ID, oldRoot.ID, err)
	}
	return encodeCert(der), nil
}

// Rotate makes newRoot the active root in place of oldRoot. It cross-signs
// newRoot with oldRoot and appends the result to newRoot's intermediates,
// marks newRoot active and oldRoot rotated out, and keeps oldRoot trusted
// until every leaf and JWT-SVID it signed has expired: oldLeafTTL after now
// (the CredentialTTL in force while oldRoot signed), capped by oldRoot's
// own expiry. The
// leader calls it on copies and commits both roots in one Raft command.
func Rotate(oldRoot, newRoot *Root, oldLeafTTL time.Duration, now time.Time, rand io.Reader) error {
	if oldRoot.TrustDomain != newRoot.TrustDomain {
		return fmt.Errorf("rotate %s to %s: trust domain changes from %q to %q", oldRoot.ID, newRoot.ID, oldRoot.TrustDomain, newRoot.TrustDomain)
	}
	cross, err := CrossSign(oldRoot, newRoot, now, rand)
	if err != nil {
		return err
	}
	newRoot.IntermediateCertPEMs = append(newRoot.IntermediateCertPEMs, cross)
	newRoot.Active = true
	oldRoot.Active = false
	oldRoot.RotatedOutAt = now
	until := now.Add(oldLeafTTL + clockSkew)
	if until.After(oldRoot.NotAfter) {
		until = oldRoot.NotAfter
	}
	oldRoot.TrustUntil = until
	return nil
}

// Bundle returns the X.509 bundle of every root still trusted at now (see
// Root.TrustedAt): during a rotation, the old and the new root. All roots
// must share one trust domain.
func Bundle(roots []*Root, now time.Time) (*x509bundle.Bundle, error) {
	var td spiffeid.TrustDomain
	var certs []*x509.Certificate
	for _, r := range roots {
		t, err := spiffeid.TrustDomainFromString(r.TrustDomain)
		if err != nil {
			return nil, fmt.Errorf("bundle: root %s: %w", r.ID, err)
		}
		if td.IsZero() {
			td = t
		} else if t != td {
			return nil, fmt.Errorf("bundle: root %s is for trust domain %q, not %q", r.ID, t.Name(), td.Name())
		}
		if !r.TrustedAt(now) {
			continue
		}
		c, err := parseCertPEM(r.RootCertPEM)
		if err != nil {
			return nil, fmt.Errorf("bundle: root %s: %w", r.ID, err)
		}
		certs = append(certs, c)
	}
	if td.IsZero() {
		return nil, errors.New("bundle: no roots")
	}
	return x509bundle.FromX509Authorities(td, certs), nil
}

// Prune returns the roots still needed at now: the trusted ones. The leader
// deletes the others.
func Prune(roots []*Root, now time.Time) []*Root {
	var out []*Root
	for _, r := range roots {
		if r.TrustedAt(now) {
			out = append(out, r)
		}
	}
	return out
}

// ActiveRoot returns the active root of a list, or nil.
func ActiveRoot(roots []*Root) *Root {
	for _, r := range roots {
		if r.Active {
			return r
		}
	}
	return nil
}

func generateKey(keyType string, bits int, rand io.Reader) (crypto.Signer, error) {
	switch keyType {
	case KeyTypeEC:
		var curve elliptic.Curve
		switch bits {
		case 256:
			curve = elliptic.P256()
		case 384:
			curve = elliptic.P384()
		default:
			return nil, fmt.Errorf("ec key size %d not supported", bits)
		}
		return ecdsa.GenerateKey(curve, rand)
	case KeyTypeRSA:
		if bits < 2048 {
			return nil, fmt.Errorf("rsa key size %d too small", bits)
		}
		return rsa.GenerateKey(rand, bits)
	}
	return nil, fmt.Errorf("key type %q not supported", keyType)
}

func encodeKey(k crypto.Signer) (SecretPEM, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return "", fmt.Errorf("encode private key: %w", err)
	}
	return SecretPEM(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// parseKey parses a PKCS #8 key. Its errors never quote the PEM.
func parseKey(s SecretPEM) (crypto.Signer, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("private key: not a PKCS #8 PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("private key: malformed PKCS #8")
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key: %T cannot sign", k)
	}
	return signer, nil
}

func encodeCert(der []byte) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("certificate: not a CERTIFICATE PEM block")
	}
	return x509.ParseCertificate(block.Bytes)
}

// keyID is RFC 7093 method 1: the leftmost 160 bits of the SHA-256 of the
// subjectPublicKey bits. Computing it here rather than leaving it to
// crypto/x509 keeps IDs stable across Go releases and sets it on leaves too.
func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// newSerial draws a positive 128-bit serial number.
func newSerial(rand io.Reader) (*big.Int, error) {
	b := make([]byte, 16)
	if _, err := io.ReadFull(rand, b); err != nil {
		return nil, fmt.Errorf("draw serial number: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x40 // never zero, always 16 bytes long
	return new(big.Int).SetBytes(b), nil
}

func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return colonHex(sum[:])
}

// colonHex formats bytes as Consul does serials and key IDs: "0a:1b:…".
func colonHex(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = hex.EncodeToString([]byte{c})
	}
	return strings.Join(parts, ":")
}
