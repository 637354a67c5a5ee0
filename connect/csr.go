package connect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// NewCSR makes an ECDSA P-256 key and a CSR for id (its only URI SAN) and
// dnsNames. The agent keeps the key; only the CSR goes to the servers.
// keyPEM is PKCS #8 ("PRIVATE KEY"), the form go-spiffe's x509svid.Parse
// reads.
func NewCSR(id spiffeid.ID, dnsNames []string, rand io.Reader) (keyPEM string, csrDER []byte, err error) {
	if id.IsZero() {
		return "", nil, fmt.Errorf("new CSR: no SPIFFE ID")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return "", nil, fmt.Errorf("new CSR for %s: generate key: %w", id, err)
	}
	tmpl := &x509.CertificateRequest{
		Subject:  pkix.Name{CommonName: commonName(id)},
		URIs:     []*url.URL{id.URL()},
		DNSNames: dnsNames,
	}
	csrDER, err = x509.CreateCertificateRequest(rand, tmpl, key)
	if err != nil {
		return "", nil, fmt.Errorf("new CSR for %s: %w", id, err)
	}
	k, err := encodeKey(key)
	if err != nil {
		return "", nil, fmt.Errorf("new CSR for %s: %w", id, err)
	}
	return string(k), csrDER, nil
}

// RenewAt picks when to renew a certificate valid from notBefore to
// notAfter: a uniformly random point between 60% and 90% of its lifetime,
// so that renewals of leaves signed together spread out and each finishes
// well before expiry. A nil r uses the global source (the agent is not
// deterministic; tests pass a seeded one).
func RenewAt(notBefore, notAfter time.Time, r *rand.Rand) time.Time {
	life := notAfter.Sub(notBefore)
	if life <= 0 {
		return notBefore
	}
	var f float64
	if r != nil {
		f = r.Float64()
	} else {
		f = rand.Float64()
	}
	return notBefore.Add(time.Duration(float64(life) * (0.6 + 0.3*f)))
}
