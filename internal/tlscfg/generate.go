// Package tlscfg is the TLS of Warren's control plane: making an operator
// CA and its server and client certificates (`warren tls`), loading and
// checking the configured files, and the tls.Configs of server RPC (mutual
// TLS, peers classified as server, agent or anonymous) and of the HTTPS
// API. The agent's auto-encrypt certificate is swapped in here without
// dropping connections. It imports only the standard library and
// internal/atomicfile; cli, server, agent and rpc import it.
package tlscfg

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/warren-mesh/warren/internal/atomicfile"
)

// CAOptions describe a new operator CA (`warren tls ca create`).
type CAOptions struct {
	Domain     string // default "warren"
	CommonName string // default "Warren Agent CA <serial>"
	Days       int    // default 1825
	// NameConstraint limits the CA to Domain and localhost (Consul's
	// -name-constraint); IP SANs are then not constrained.
	NameConstraint bool
}

// CertOptions describe a new server or client certificate (`warren tls
// cert create`).
type CertOptions struct {
	Server     bool // else a client certificate
	Datacenter string
	Domain     string
	Days       int // default 365
	ExtraDNS   []string
	ExtraIPs   []net.IP
	CACertPEM  []byte
	CAKeyPEM   []byte
	Now        time.Time // zero means time.Now
	Rand       io.Reader // nil means crypto/rand
}

// ServerName is the DNS name every server certificate carries and every
// client verifies: server.<dc>.<domain> (Consul's verify_server_hostname).
func ServerName(dc, domain string) string { return "server." + dc + "." + trimDot(domain) }

// ClientName is the DNS name of an agent's client certificate.
func ClientName(dc, domain string) string { return "client." + dc + "." + trimDot(domain) }

func trimDot(s string) string {
	for len(s) > 0 && s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

func serial(r io.Reader) (*big.Int, error) {
	return rand.Int(r, new(big.Int).Lsh(big.NewInt(1), 127))
}

func keyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(der)
	return h[:20], nil
}

// NewCA makes a self-signed ECDSA P-256 CA certificate valid for o.Days.
// Like Consul's default it has no name constraints.
func NewCA(o CAOptions) (certPEM, keyPEM []byte, err error) {
	if o.Domain == "" {
		o.Domain = "warren"
	}
	if o.Days <= 0 {
		o.Days = 1825
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	sn, err := serial(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if o.CommonName == "" {
		o.CommonName = fmt.Sprintf("Warren Agent CA %d", sn)
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: o.CommonName, Organization: []string{"Warren"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.AddDate(0, 0, o.Days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          skid,
		AuthorityKeyId:        skid,
	}
	if o.NameConstraint {
		tmpl.PermittedDNSDomainsCritical = true
		tmpl.PermittedDNSDomains = []string{trimDot(o.Domain), "localhost"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	return encodePair(der, key)
}

// encodePair is a certificate's and its key's PEM.
func encodePair(der []byte, key *ecdsa.PrivateKey) (certPEM, keyPEM []byte, err error) {
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// NewCert makes a server or client certificate signed by the CA in o. A
// server certificate carries server.<dc>.<domain>, localhost and
// 127.0.0.1; a client certificate client.<dc>.<domain> and localhost. Both
// may authenticate as TLS server and client (servers dial each other,
// agents serve HTTPS).
func NewCert(o CertOptions) (certPEM, keyPEM []byte, err error) {
	if o.Datacenter == "" {
		o.Datacenter = "dc1"
	}
	if o.Domain == "" {
		o.Domain = "warren"
	}
	if o.Days <= 0 {
		o.Days = 365
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	caCert, err := ParseCertPEM(o.CACertPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	caKey, err := ParseKeyPEM(o.CAKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	if !publicKeysEqual(caCert.PublicKey, caKey.Public()) {
		return nil, nil, errors.New("the CA key does not match the CA certificate")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), o.Rand)
	if err != nil {
		return nil, nil, fmt.Errorf("generate key: %w", err)
	}
	sn, err := serial(o.Rand)
	if err != nil {
		return nil, nil, err
	}
	skid, err := keyID(key.Public())
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		NotBefore:             o.Now.Add(-time.Minute),
		NotAfter:              o.Now.AddDate(0, 0, o.Days),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		SubjectKeyId:          skid,
		AuthorityKeyId:        caCert.SubjectKeyId,
	}
	if o.Server {
		name := ServerName(o.Datacenter, o.Domain)
		tmpl.Subject = pkix.Name{CommonName: name}
		tmpl.DNSNames = []string{name, "localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	} else {
		name := ClientName(o.Datacenter, o.Domain)
		tmpl.Subject = pkix.Name{CommonName: name}
		tmpl.DNSNames = []string{name, "localhost"}
		// Server auth too, as Consul's: an agent serves HTTPS with it. It
		// can never pass as a server's: servers are recognized by the
		// name server.<dc>.<domain>, which it does not carry.
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl.DNSNames = append(tmpl.DNSNames, o.ExtraDNS...)
	tmpl.IPAddresses = append(tmpl.IPAddresses, o.ExtraIPs...)
	der, err := x509.CreateCertificate(o.Rand, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign certificate: %w", err)
	}
	return encodePair(der, key)
}

// ParseCertPEM parses the first certificate of a PEM text.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	c, _, err := nextCert(b)
	if err == nil && c == nil {
		err = errNoCert
	}
	return c, err
}

// ParseKeyPEM parses an EC, PKCS#1 or PKCS#8 private key.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, errors.New("no PEM private key block")
		}
		switch blk.Type {
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(blk.Bytes)
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("%T is not a signing key", k)
			}
			return s, nil
		}
	}
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	pa, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pa.Equal(b)
}

// WriteNew writes data to path atomically with perm, refusing to replace
// an existing file.
func WriteNew(path string, data []byte, perm os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("%s already exists: not overwriting it", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("check %s: %w", path, err)
	}
	return atomicfile.Write(path, data, perm)
}

// nextCert parses the next CERTIFICATE block of b; nil at the end.
func nextCert(b []byte) (*x509.Certificate, []byte, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, nil, nil
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		return c, b, err
	}
}
