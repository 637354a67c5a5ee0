package tlscfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Files are the configured TLS files (tls.defaults.*); the Key names are
// used in errors.
type Files struct {
	CAFile, CAPath, CertFile, KeyFile string
}

// Material is the loaded and checked content of Files.
type Material struct {
	CAs *x509.CertPool
	// Cert is nil when no cert_file is configured (an auto-encrypt agent).
	Cert *tls.Certificate
}

// Load reads and checks the files: each exists and parses, the key matches
// the certificate, the certificate is valid now and chains to the CA.
// Errors name the config key and the file.
func Load(f Files, now time.Time) (*Material, error) {
	m := &Material{CAs: x509.NewCertPool()}
	n := 0
	if f.CAFile != "" {
		c, err := addPEMFile(m.CAs, "tls.defaults.ca_file", f.CAFile)
		if err != nil {
			return nil, err
		}
		n += c
	}
	if f.CAPath != "" {
		entries, err := os.ReadDir(f.CAPath)
		if err != nil {
			return nil, fmt.Errorf("tls.defaults.ca_path %s: %w", f.CAPath, err)
		}
		names := []string{}
		for _, e := range entries {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".pem" || ext == ".crt") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, name := range names {
			// Files without certificates (keys kept beside them) are
			// skipped.
			c, err := addPEMFile(m.CAs, "tls.defaults.ca_path", filepath.Join(f.CAPath, name))
			if err != nil && !errors.Is(err, errNoCert) {
				return nil, err
			}
			n += c
		}
	}
	if n == 0 {
		return nil, errors.New("tls.defaults: no CA certificate found in ca_file or ca_path")
	}
	if f.CertFile == "" && f.KeyFile == "" {
		return m, nil
	}
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls.defaults: cert_file and key_file go together: set both or neither")
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tls.defaults.cert_file %s / key_file %s: %w", f.CertFile, f.KeyFile, err)
		}
		if strings.Contains(err.Error(), "does not match") {
			return nil, fmt.Errorf("tls.defaults.key_file %s does not match the certificate in tls.defaults.cert_file %s", f.KeyFile, f.CertFile)
		}
		return nil, fmt.Errorf("tls.defaults.cert_file %s / key_file %s: %w", f.CertFile, f.KeyFile, err)
	}
	leaf := cert.Leaf
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls.defaults.cert_file %s expired at %s", f.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls.defaults.cert_file %s is not valid before %s", f.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.CAs, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("tls.defaults.cert_file %s does not chain to the CA (tls.defaults.ca_file/ca_path): %w", f.CertFile, err)
	}
	m.Cert = &cert
	return m, nil
}

func addPEMFile(pool *x509.CertPool, key, path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", key, path, err)
	}
	n := 0
	for rest := b; ; {
		c, r, err := nextCert(rest)
		if err != nil {
			return 0, fmt.Errorf("%s %s: %w", key, path, err)
		}
		if c == nil {
			break
		}
		pool.AddCert(c)
		n++
		rest = r
	}
	if n == 0 {
		return 0, fmt.Errorf("%s %s: %w", key, path, errNoCert)
	}
	return n, nil
}

var errNoCert = errors.New("no PEM certificate in the file")

// Peer is what a server knows of the other end of an RPC connection.
type Peer int

const (
	// PeerAnonymous presented no certificate (allowed only for
	// AutoEncrypt.Sign, when auto_encrypt.allow_tls is on).
	PeerAnonymous Peer = iota
	// PeerAgent presented a client certificate of the operator CA, or an
	// agent certificate of the built-in CA (auto-encrypt).
	PeerAgent
	// PeerServer presented a server certificate of the operator CA, with
	// server.<dc>.<domain>.
	PeerServer
)

func (p Peer) String() string {
	switch p {
	case PeerAgent:
		return "agent"
	case PeerServer:
		return "server"
	}
	return "anonymous"
}

// Config configures a Configurator.
type Config struct {
	Datacenter string
	Domain     string // "warren" or "warren."
	// CAs is the operator CA: the only issuer of server certificates.
	CAs *x509.CertPool
	// Cert is this process's certificate: a server's, an agent's client
	// certificate, or nil until auto-encrypt gets one.
	Cert *tls.Certificate
	// AllowAnonymous lets a client without a certificate connect, for
	// AutoEncrypt.Sign only (auto_encrypt.allow_tls).
	AllowAnonymous bool
}

// Configurator builds the control plane's tls.Configs from one Config; its
// certificate can be replaced while connections are open.
type Configurator struct {
	cfg   Config
	cert  atomic.Pointer[tls.Certificate]
	roots atomic.Pointer[func() (*x509.CertPool, string)]
}

// SetConnectRoots gives a server the built-in CA's roots and trust domain:
// it then accepts agent certificates they sign (auto-encrypt). f returns a
// nil pool while there are no roots.
func (c *Configurator) SetConnectRoots(f func() (*x509.CertPool, string)) { c.roots.Store(&f) }

// New returns a Configurator for cfg.
func New(cfg Config) *Configurator {
	c := &Configurator{cfg: cfg}
	if cfg.Cert != nil {
		c.cert.Store(cfg.Cert)
	}
	return c
}

// SetCert replaces the certificate presented from the next handshake on.
func (c *Configurator) SetCert(cert *tls.Certificate) { c.cert.Store(cert) }

// Cert is the current certificate, nil if none.
func (c *Configurator) Cert() *tls.Certificate { return c.cert.Load() }

// ServerName is server.<dc>.<domain>.
func (c *Configurator) ServerName() string { return ServerName(c.cfg.Datacenter, c.cfg.Domain) }

// AllowAnonymous reports whether clients without certificates may connect.
func (c *Configurator) AllowAnonymous() bool { return c.cfg.AllowAnonymous }

// CAs is the operator CA pool.
func (c *Configurator) CAs() *x509.CertPool { return c.cfg.CAs }

func (c *Configurator) getCert(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cert.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no TLS certificate yet")
}

// IncomingRPC is the server side of the RPC port: every client is asked
// for a certificate and classified by Classify; one that is neither a
// server nor an agent of this datacenter is refused in the handshake.
func (c *Configurator) IncomingRPC() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.getCert,
		ClientAuth:     tls.RequestClientCert,
		NextProtos:     []string{"h2"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := c.Classify(cs.PeerCertificates)
			return err
		},
	}
}

// OutgoingRPC is the client side of RPC, for agents and servers alike: the
// peer must present a certificate of the operator CA for
// server.<dc>.<domain> (verify_server_hostname, never off), and we present
// our current certificate, read at each handshake (so a renewed one is
// used by new connections while open ones go on). Without a certificate
// (an auto-encrypt agent before its first one) the handshake fails: a
// connection made without one would stay anonymous.
func (c *Configurator) OutgoingRPC() *tls.Config {
	t := c.OutgoingRPCAnonymous()
	t.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if cert := c.cert.Load(); cert != nil {
			return cert, nil
		}
		return nil, errors.New("no client certificate yet (auto-encrypt has not got one from the servers)")
	}
	return t
}

// OutgoingRPCAnonymous is OutgoingRPC without a client certificate, for
// AutoEncrypt.Sign.
func (c *Configurator) OutgoingRPCAnonymous() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: c.cfg.CAs, ServerName: c.ServerName()}
}

// ClientName is client.<dc>.<domain>, the DNS SAN of agent certificates.
func (c *Configurator) ClientName() string { return ClientName(c.cfg.Datacenter, c.cfg.Domain) }

// HTTPS is the HTTPS API's config; with verifyIncoming, clients must
// present a certificate of the operator CA.
func (c *Configurator) HTTPS(verifyIncoming bool) *tls.Config {
	t := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.getCert, NextProtos: []string{"http/1.1"}}
	if verifyIncoming {
		t.ClientAuth = tls.RequireAndVerifyClientCert
		t.ClientCAs = c.cfg.CAs
	}
	return t
}

// Classify verifies a client's certificate chain and says what the client
// is: a server (operator CA, server and client auth, server.<dc>.<domain>),
// an agent (operator CA with client auth, or the built-in CA with an agent
// SPIFFE ID of this datacenter), or anonymous (no certificate, if allowed).
func (c *Configurator) Classify(chain []*x509.Certificate) (Peer, error) {
	if len(chain) == 0 {
		if c.cfg.AllowAnonymous {
			return PeerAnonymous, nil
		}
		return PeerAnonymous, errors.New("no client certificate: the RPC port requires one signed by the CA")
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	opts := x509.VerifyOptions{Roots: c.cfg.CAs, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	_, opErr := leaf.Verify(opts)
	if opErr == nil {
		if slices.Contains(leaf.DNSNames, c.ServerName()) && slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
			return PeerServer, nil
		}
		return PeerAgent, nil
	}
	if f := c.roots.Load(); f != nil {
		if roots, td := (*f)(); roots != nil {
			opts.Roots = roots
			if _, err := leaf.Verify(opts); err == nil {
				want := "/agent/client/dc/" + c.cfg.Datacenter + "/id/"
				if len(leaf.URIs) == 1 && leaf.URIs[0].Scheme == "spiffe" && leaf.URIs[0].Host == td && strings.HasPrefix(leaf.URIs[0].Path, want) {
					return PeerAgent, nil
				}
				return PeerAnonymous, fmt.Errorf("client certificate of the built-in CA is not an agent certificate of datacenter %s", c.cfg.Datacenter)
			}
		}
	}
	return PeerAnonymous, fmt.Errorf("client certificate %q is not signed by the CA: %w", leaf.Subject.CommonName, opErr)
}

// LoadPEM is a CA pool from PEM text (tests, and CA bundles in memory).
func LoadPEM(b []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errNoCert
	}
	return pool, nil
}
