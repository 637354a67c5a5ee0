package tlscfg

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"
)

// leaf signs a certificate for the given SANs with a CA made by NewCA.
func leaf(t *testing.T, caPEM, caKeyPEM []byte, dns []string, uri string, eku ...x509.ExtKeyUsage) *x509.Certificate {
	t.Helper()
	ca, err := ParseCertPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	caKey, err := ParseKeyPEM(caKeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "x"},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour), DNSNames: dns, ExtKeyUsage: eku,
		KeyUsage: x509.KeyUsageDigitalSignature}
	if uri != "" {
		u, _ := url.Parse(uri)
		tmpl.URIs = []*url.URL{u}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClassify pins who a server takes a client for.
func TestClassify(t *testing.T) {
	opPEM, opKey, err := NewCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	connPEM, connKey, err := NewCA(CAOptions{CommonName: "built-in"})
	if err != nil {
		t.Fatal(err)
	}
	otherPEM, otherKey, err := NewCA(CAOptions{CommonName: "other"})
	if err != nil {
		t.Fatal(err)
	}
	ops, _ := LoadPEM(opPEM)
	conn, _ := LoadPEM(connPEM)
	c := New(Config{Datacenter: "dc1", Domain: "warren.", CAs: ops})
	c.SetConnectRoots(func() (*x509.CertPool, string) { return conn, "11111111-2222-3333-4444-555555555555.warren" })
	both := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	agentURI := "spiffe://11111111-2222-3333-4444-555555555555.warren/agent/client/dc/dc1/id/abc"
	tests := []struct {
		name string
		cert *x509.Certificate
		want Peer
		err  string
	}{
		{"server", leaf(t, opPEM, opKey, []string{"server.dc1.warren"}, "", both...), PeerServer, ""},
		{"server of another datacenter is an agent", leaf(t, opPEM, opKey, []string{"server.dc2.warren"}, "", both...), PeerAgent, ""},
		{"server name without server auth is an agent", leaf(t, opPEM, opKey, []string{"server.dc1.warren"}, "", x509.ExtKeyUsageClientAuth), PeerAgent, ""},
		{"operator client", leaf(t, opPEM, opKey, []string{"client.dc1.warren"}, "", both...), PeerAgent, ""},
		{"no client auth", leaf(t, opPEM, opKey, []string{"server.dc1.warren"}, "", x509.ExtKeyUsageServerAuth), PeerAnonymous, "not signed by the CA"},
		{"auto-encrypt agent", leaf(t, connPEM, connKey, []string{"client.dc1.warren"}, agentURI, both...), PeerAgent, ""},
		{"built-in CA with server name stays an agent", leaf(t, connPEM, connKey, []string{"server.dc1.warren"}, agentURI, both...), PeerAgent, ""},
		{"workload leaf", leaf(t, connPEM, connKey, nil, "spiffe://11111111-2222-3333-4444-555555555555.warren/ns/default/dc/dc1/svc/web", both...), PeerAnonymous, "not an agent certificate"},
		{"agent of another datacenter", leaf(t, connPEM, connKey, nil, "spiffe://11111111-2222-3333-4444-555555555555.warren/agent/client/dc/dc2/id/abc", both...), PeerAnonymous, "not an agent certificate"},
		{"another CA", leaf(t, otherPEM, otherKey, []string{"server.dc1.warren"}, "", both...), PeerAnonymous, "not signed by the CA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Classify([]*x509.Certificate{tc.cert})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v %v, want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v %v, want %v", got, err, tc.want)
			}
		})
	}
	if _, err := c.Classify(nil); err == nil || !strings.Contains(err.Error(), "no client certificate") {
		t.Fatalf("anonymous without allow_tls: %v", err)
	}
	anon := New(Config{Datacenter: "dc1", Domain: "warren", CAs: ops, AllowAnonymous: true})
	if p, err := anon.Classify(nil); err != nil || p != PeerAnonymous {
		t.Fatalf("anonymous with allow_tls: %v %v", p, err)
	}
}
