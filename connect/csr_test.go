package connect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	mrand "math/rand/v2"
	"testing"
	"time"
)

func TestNewCSR(t *testing.T) {
	id := ServiceID(testTD, "", "dc1", "web")
	keyPEM, der, err := NewCSR(id, []string{"web.service.warren"}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Fatal(err)
	}
	if len(csr.URIs) != 1 || csr.URIs[0].String() != id.String() || len(csr.DNSNames) != 1 {
		t.Fatalf("CSR SANs: %v %v", csr.URIs, csr.DNSNames)
	}
	block, _ := pem.Decode([]byte(keyPEM))
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatal("key is not PKCS #8 PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok || ek.Curve != elliptic.P256() || !ek.PublicKey.Equal(csr.PublicKey) {
		t.Fatal("key is not the CSR's P-256 key")
	}
	if _, _, err := NewCSR(ServiceID("", "", "", ""), nil, rand.Reader); err == nil {
		t.Fatal("CSR for the zero ID")
	}
}

func TestRenewAt(t *testing.T) {
	nb := t0
	na := t0.Add(100 * time.Hour)
	r := mrand.New(mrand.NewPCG(1, 2))
	lo, hi := time.Duration(1<<62), time.Duration(0)
	for range 10000 {
		at := RenewAt(nb, na, r).Sub(nb)
		if at < 60*time.Hour || at > 90*time.Hour {
			t.Fatalf("RenewAt at %s of a 100h lifetime", at)
		}
		lo, hi = min(lo, at), max(hi, at)
	}
	// The spread covers the window, not one point.
	if lo > 61*time.Hour || hi < 89*time.Hour {
		t.Fatalf("renewals spread over %s-%s only", lo, hi)
	}
	// Deterministic with a seeded source.
	a := RenewAt(nb, na, mrand.New(mrand.NewPCG(7, 7)))
	b := RenewAt(nb, na, mrand.New(mrand.NewPCG(7, 7)))
	if !a.Equal(b) {
		t.Fatal("same seed, different times")
	}
	if at := RenewAt(nb, na, nil); at.Before(nb.Add(60*time.Hour)) || at.After(nb.Add(90*time.Hour)) {
		t.Fatalf("nil source: %s", at)
	}
	if !RenewAt(na, nb, r).Equal(na) {
		t.Fatal("an empty lifetime renews at once")
	}
}
