package connect

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warren-mesh/warren/catalog"
)

// MaxCSRSize bounds the DER of a CSR. A P-256 CSR with a few SANs is under
// 1 KB; an RSA 4096 one under 2 KB.
const MaxCSRSize = 16 << 10

// Bounds on the public key of a CSR.
const (
	MinRSABits = 2048
	MaxRSABits = 8192 // bounds the cost of checking the CSR's signature
)

// Reason says why a CSR was refused, in a form fit for a metric label.
type Reason string

// Reasons for refusing a CSR.
const (
	ReasonTooLarge       Reason = "csr_too_large"
	ReasonMalformed      Reason = "csr_malformed"
	ReasonBadSignature   Reason = "csr_bad_signature"
	ReasonKeyType        Reason = "csr_key_type"
	ReasonWeakKey        Reason = "csr_weak_key"
	ReasonNoURI          Reason = "csr_no_uri"
	ReasonMultipleURIs   Reason = "csr_multiple_uris"
	ReasonWrongID        Reason = "csr_wrong_id"
	ReasonDNSName        Reason = "csr_dns_name"
	ReasonIPAddress      Reason = "csr_ip_address"
	ReasonEmail          Reason = "csr_email"
	ReasonInvalidRequest Reason = "invalid_request"
)

// SignError is a refused signing request: the CSR or the request breaks a
// rule. It unwraps to catalog.ErrInvalid (a 400) and matches the sentinel
// of its Reason with errors.Is. Detail never holds key material.
type SignError struct {
	Reason Reason
	Detail string
}

func (e *SignError) Error() string {
	if e.Detail == "" {
		return "sign leaf: " + string(e.Reason)
	}
	return "sign leaf: " + string(e.Reason) + ": " + e.Detail
}

// Is matches the sentinel with the same Reason.
func (e *SignError) Is(target error) bool {
	t, ok := target.(*SignError)
	return ok && t.Detail == "" && t.Reason == e.Reason
}

// Unwrap makes every SignError a catalog.ErrInvalid.
func (e *SignError) Unwrap() error { return catalog.ErrInvalid }

// Sentinels for errors.Is, one per Reason.
var (
	ErrCSRTooLarge     = &SignError{Reason: ReasonTooLarge}
	ErrCSRMalformed    = &SignError{Reason: ReasonMalformed}
	ErrCSRBadSignature = &SignError{Reason: ReasonBadSignature}
	ErrCSRKeyType      = &SignError{Reason: ReasonKeyType}
	ErrCSRWeakKey      = &SignError{Reason: ReasonWeakKey}
	ErrCSRNoURI        = &SignError{Reason: ReasonNoURI}
	ErrCSRMultipleURIs = &SignError{Reason: ReasonMultipleURIs}
	ErrCSRWrongID      = &SignError{Reason: ReasonWrongID}
	ErrCSRDNSName      = &SignError{Reason: ReasonDNSName}
	ErrCSRIPAddress    = &SignError{Reason: ReasonIPAddress}
	ErrCSREmail        = &SignError{Reason: ReasonEmail}
	ErrInvalidRequest  = &SignError{Reason: ReasonInvalidRequest}
)

// ReasonOf returns the Reason of a refused request, or "" if err is not a
// SignError (an internal failure, or nil).
func ReasonOf(err error) Reason {
	var se *SignError
	if errors.As(err, &se) {
		return se.Reason
	}
	return ""
}

func refuse(r Reason, format string, args ...any) error {
	return &SignError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// Signer signs leaves with one root's signing intermediate. It holds the
// parsed key and certificate so that each signature costs only the CSR
// check and the signing itself; build one per active root and reuse it. It
// is safe for concurrent use.
type Signer struct {
	rootID string
	td     spiffeid.TrustDomain
	cert   *x509.Certificate
	key    crypto.Signer
	chain  string
}

// NewSigner parses the signing certificate and key of root.
func NewSigner(root *Root) (*Signer, error) {
	td, err := spiffeid.TrustDomainFromString(root.TrustDomain)
	if err != nil {
		return nil, fmt.Errorf("signer for root %s: %w", root.ID, err)
	}
	cert, err := parseCertPEM(root.SigningCertPEM)
	if err != nil {
		return nil, fmt.Errorf("signer for root %s: signing %w", root.ID, err)
	}
	key, err := parseKey(root.SigningKeyPEM)
	if err != nil {
		return nil, fmt.Errorf("signer for root %s: signing %w", root.ID, err)
	}
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("signer for root %s: signing key does not match signing certificate", root.ID)
	}
	var chain strings.Builder
	for _, p := range root.IntermediateCertPEMs {
		chain.WriteString(p)
		if !strings.HasSuffix(p, "\n") {
			chain.WriteByte('\n')
		}
	}
	return &Signer{rootID: root.ID, td: td, cert: cert, key: key, chain: chain.String()}, nil
}

// SignLeaf signs a CSR with root's signing key; see Signer.Sign. It parses
// the root's key on every call: the leader should keep a Signer instead.
func SignLeaf(root *Root, csrDER []byte, want spiffeid.ID, dnsNames []string, ttl time.Duration, now time.Time, rand io.Reader) (certPEM, serial string, err error) {
	s, err := NewSigner(root)
	if err != nil {
		return "", "", err
	}
	return s.Sign(csrDER, want, dnsNames, ttl, now, rand)
}

// Sign checks a CSR and signs a leaf for it. The CSR must be at most
// MaxCSRSize bytes of DER, carry a valid self-signature, an ECDSA P-256 or
// RSA (2048-8192 bit) key, exactly one URI SAN equal to want (several URIs
// are refused: Consul's CVE-2022-40716), only DNS SANs listed in dnsNames,
// and no IP or email SANs. Everything else in the CSR (subject, requested
// extensions) is ignored. The leaf is valid from now-1m to now+ttl, capped
// by the signing certificate's expiry.
//
// certPEM is the leaf followed by the root's intermediates, the chain a TLS
// peer presents (Consul's CertPEM). serial is colon hex. Refusals are
// *SignError; other errors are internal.
func (s *Signer) Sign(csrDER []byte, want spiffeid.ID, dnsNames []string, ttl time.Duration, now time.Time, rand io.Reader) (certPEM, serial string, err error) {
	if want.IsZero() {
		return "", "", refuse(ReasonInvalidRequest, "no SPIFFE ID to sign for")
	}
	if !want.MemberOf(s.td) {
		return "", "", refuse(ReasonInvalidRequest, "%s is not in trust domain %s", want, s.td.Name())
	}
	if ttl <= 0 {
		return "", "", refuse(ReasonInvalidRequest, "TTL %s is not positive", ttl)
	}
	csr, err := checkCSR(csrDER, want, dnsNames)
	if err != nil {
		return "", "", err
	}
	if !now.Before(s.cert.NotAfter) {
		return "", "", fmt.Errorf("sign leaf: signing certificate of root %s expired at %s", s.rootID, s.cert.NotAfter)
	}
	notAfter := now.Add(ttl)
	if notAfter.After(s.cert.NotAfter) {
		notAfter = s.cert.NotAfter
	}
	sn, err := newSerial(rand)
	if err != nil {
		return "", "", fmt.Errorf("sign leaf: %w", err)
	}
	skid, err := keyID(csr.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("sign leaf: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName(want)},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		SubjectKeyId:          skid,
		AuthorityKeyId:        s.cert.SubjectKeyId,
		URIs:                  []*url.URL{want.URL()},
		DNSNames:              csr.DNSNames,
	}
	der, err := x509.CreateCertificate(rand, tmpl, s.cert, csr.PublicKey, s.key)
	if err != nil {
		return "", "", fmt.Errorf("sign leaf for %s: %w", want, err)
	}
	return encodeCert(der) + s.chain, colonHex(sn.Bytes()), nil
}

// checkCSR applies every rule of Sign to the CSR; the order puts the cheap
// checks and the key size before the signature check.
func checkCSR(der []byte, want spiffeid.ID, dnsNames []string) (*x509.CertificateRequest, error) {
	if len(der) > MaxCSRSize {
		return nil, refuse(ReasonTooLarge, "%d bytes, limit %d", len(der), MaxCSRSize)
	}
	if len(der) == 0 {
		return nil, refuse(ReasonMalformed, "empty")
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		// The parser's message names the ASN.1 problem, never the bytes.
		return nil, refuse(ReasonMalformed, "%v", err)
	}
	switch pub := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, refuse(ReasonKeyType, "ECDSA curve %s, want P-256", pub.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if n := pub.N.BitLen(); n < MinRSABits {
			return nil, refuse(ReasonWeakKey, "RSA key of %d bits, want at least %d", n, MinRSABits)
		} else if n > MaxRSABits {
			return nil, refuse(ReasonKeyType, "RSA key of %d bits, at most %d", n, MaxRSABits)
		}
	default:
		return nil, refuse(ReasonKeyType, "%s key, want ECDSA P-256 or RSA", csr.PublicKeyAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, refuse(ReasonBadSignature, "%v", err)
	}
	switch len(csr.URIs) {
	case 0:
		return nil, refuse(ReasonNoURI, "the CSR has no URI SAN, want %s", want)
	case 1:
	default:
		return nil, refuse(ReasonMultipleURIs, "the CSR has %d URI SANs, want exactly one (%s)", len(csr.URIs), want)
	}
	got, err := spiffeid.FromURI(csr.URIs[0])
	if err != nil {
		return nil, refuse(ReasonWrongID, "URI SAN %q is not a SPIFFE ID, want %s", csr.URIs[0].String(), want)
	}
	if got != want {
		return nil, refuse(ReasonWrongID, "URI SAN %s, want %s", got, want)
	}
	for _, n := range csr.DNSNames {
		if !containsFold(dnsNames, n) {
			return nil, refuse(ReasonDNSName, "DNS SAN %q is not one of the service's names", n)
		}
	}
	if len(csr.IPAddresses) > 0 {
		return nil, refuse(ReasonIPAddress, "the CSR has %d IP SANs, none are allowed", len(csr.IPAddresses))
	}
	if len(csr.EmailAddresses) > 0 {
		return nil, refuse(ReasonEmail, "the CSR has %d email SANs, none are allowed", len(csr.EmailAddresses))
	}
	return csr, nil
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(strings.TrimSuffix(l, "."), strings.TrimSuffix(s, ".")) {
			return true
		}
	}
	return false
}

// commonName is the last segment of the ID (the service name or node ID),
// within the 64 characters X.509 allows.
func commonName(id spiffeid.ID) string {
	p := id.Path()
	cn := p[strings.LastIndexByte(p, '/')+1:]
	if len(cn) > 64 {
		cn = cn[:64]
	}
	return cn
}
