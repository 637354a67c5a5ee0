package connect

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warren-mesh/warren/catalog"
)

type signedLeaf struct {
	certPEM, keyPEM, serial string
}

// signFor makes a key and CSR for id the way an agent does and signs it.
func signFor(t testing.TB, r *Root, id spiffeid.ID, now time.Time, dnsNames ...string) signedLeaf {
	t.Helper()
	keyPEM, csr, err := NewCSR(id, dnsNames, rand.Reader)
	if err != nil {
		t.Fatalf("NewCSR: %v", err)
	}
	certPEM, serial, err := SignLeaf(r, csr, id, dnsNames, time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatalf("SignLeaf: %v", err)
	}
	return signedLeaf{certPEM, keyPEM, serial}
}

func parseChain(t testing.TB, certPEM string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(certPEM)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// verifyLeaf checks the served chain against exactly the given roots, with
// crypto/x509 and with go-spiffe's X509-SVID verification.
func verifyLeaf(t testing.TB, l signedLeaf, roots []*Root, at time.Time) {
	t.Helper()
	if err := verifyLeafErr(t, l, roots, at); err != nil {
		t.Fatal(err)
	}
}

func verifyLeafErr(t testing.TB, l signedLeaf, roots []*Root, at time.Time) error {
	t.Helper()
	chain := parseChain(t, l.certPEM)
	pool := x509.NewCertPool()
	var auth []*x509.Certificate
	for _, r := range roots {
		c := mustParse(t, r.RootCertPEM)
		pool.AddCert(c)
		auth = append(auth, c)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{
		Roots: pool, Intermediates: inter, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return fmt.Errorf("x509 verify: %w", err)
	}
	b := x509bundle.FromX509Authorities(spiffeid.RequireTrustDomainFromString(testTD), auth)
	if _, _, err := x509svid.Verify(chain, b, x509svid.WithTime(at)); err != nil {
		return fmt.Errorf("x509svid verify: %w", err)
	}
	return nil
}

func TestSignLeafAccepts(t *testing.T) {
	for _, cfg := range []CAConfig{{}, {KeyType: "rsa"}} {
		t.Run(cfg.WithDefaults().KeyType, func(t *testing.T) {
			r := mustRoot(t, cfg, t0)
			id := ServiceID(testTD, "", "dc1", "web")
			now := t0.Add(time.Hour)
			l := signFor(t, r, id, now, "web.service.warren", "web.service.dc1.warren")

			chain := parseChain(t, l.certPEM)
			if len(chain) != 2 {
				t.Fatalf("chain has %d certs, want leaf + signing cert", len(chain))
			}
			leaf := chain[0]
			inter := mustParse(t, r.SigningCertPEM)
			if leaf.IsCA || !leaf.BasicConstraintsValid {
				t.Fatal("leaf is a CA")
			}
			if leaf.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Fatalf("KeyUsage = %v", leaf.KeyUsage)
			}
			if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
				t.Fatalf("ExtKeyUsage = %v", leaf.ExtKeyUsage)
			}
			if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id.String() {
				t.Fatalf("URIs = %v", leaf.URIs)
			}
			if strings.Join(leaf.DNSNames, ",") != "web.service.warren,web.service.dc1.warren" {
				t.Fatalf("DNSNames = %v", leaf.DNSNames)
			}
			if !leaf.NotBefore.Equal(now.Add(-time.Minute)) || !leaf.NotAfter.Equal(now.Add(time.Hour)) {
				t.Fatalf("validity %s - %s", leaf.NotBefore, leaf.NotAfter)
			}
			if len(leaf.SubjectKeyId) != 20 || !bytes.Equal(leaf.AuthorityKeyId, inter.SubjectKeyId) {
				t.Fatalf("SKID %x AKID %x (signing SKID %x)", leaf.SubjectKeyId, leaf.AuthorityKeyId, inter.SubjectKeyId)
			}
			if leaf.Subject.CommonName != "web" {
				t.Fatalf("CN = %q", leaf.Subject.CommonName)
			}
			if l.serial != colonHex(leaf.SerialNumber.Bytes()) || len(leaf.SerialNumber.Bytes()) != 16 {
				t.Fatalf("serial %s vs %x", l.serial, leaf.SerialNumber)
			}
			verifyLeaf(t, l, []*Root{r}, now)

			// go-spiffe reads the chain and the agent's key as an SVID.
			svid, err := x509svid.Parse([]byte(l.certPEM), []byte(l.keyPEM))
			if err != nil {
				t.Fatalf("x509svid.Parse: %v", err)
			}
			if svid.ID != id {
				t.Fatalf("SVID ID %s", svid.ID)
			}
		})
	}
}

func TestSignLeafCapsTTL(t *testing.T) {
	r := mustRoot(t, CAConfig{LeafTTL: time.Hour, IntermediateTTL: 3 * time.Hour, RootTTL: 3 * time.Hour}, t0)
	id := ServiceID(testTD, "", "dc1", "web")
	_, csr, err := NewCSR(id, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := t0.Add(150 * time.Minute)
	certPEM, _, err := SignLeaf(r, csr, id, nil, time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if got := parseChain(t, certPEM)[0].NotAfter; !got.Equal(t0.Add(3 * time.Hour)) {
		t.Fatalf("NotAfter %s, want the signing cert's expiry", got)
	}
	if _, _, err := SignLeaf(r, csr, id, nil, time.Hour, t0.Add(4*time.Hour), rand.Reader); err == nil || ReasonOf(err) != "" {
		t.Fatalf("signing with an expired intermediate: %v (want an internal error)", err)
	}
}

func csrWith(t testing.TB, key crypto.Signer, uris []string, dns []string, ips []net.IP, emails []string) []byte {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}, DNSNames: dns, IPAddresses: ips, EmailAddresses: emails}
	for _, u := range uris {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, p)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSignLeafRefuses(t *testing.T) {
	r := mustRoot(t, CAConfig{}, t0)
	want := ServiceID(testTD, "", "dc1", "web")
	other := ServiceID(testTD, "", "dc1", "db")
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa1024, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	allowedDNS := []string{"web.service.warren"}

	good := csrWith(t, p256, []string{want.String()}, nil, nil, nil)
	badSig := bytes.Clone(good)
	badSig[len(badSig)-1] ^= 0xff

	var many []string
	for i := range 400 {
		many = append(many, fmt.Sprintf("name-%03d.a-rather-long-label.web.service.warren", i))
	}
	oversized := csrWith(t, p256, []string{want.String()}, many, nil, nil)
	if len(oversized) <= MaxCSRSize {
		t.Fatalf("oversized CSR is only %d bytes", len(oversized))
	}

	tests := []struct {
		name string
		csr  []byte
		want spiffeid.ID
		ttl  time.Duration
		err  *SignError
	}{
		{"zero URIs", csrWith(t, p256, nil, nil, nil, nil), want, time.Hour, ErrCSRNoURI},
		{"two URIs", csrWith(t, p256, []string{want.String(), other.String()}, nil, nil, nil), want, time.Hour, ErrCSRMultipleURIs},
		{"two URIs, same ID twice", csrWith(t, p256, []string{want.String(), want.String()}, nil, nil, nil), want, time.Hour, ErrCSRMultipleURIs},
		{"wrong ID", csrWith(t, p256, []string{other.String()}, nil, nil, nil), want, time.Hour, ErrCSRWrongID},
		{"URI not SPIFFE", csrWith(t, p256, []string{"https://web.example.com/"}, nil, nil, nil), want, time.Hour, ErrCSRWrongID},
		{"other trust domain", csrWith(t, p256, []string{"spiffe://evil.warren/ns/default/dc/dc1/svc/web"}, nil, nil, nil), want, time.Hour, ErrCSRWrongID},
		{"extra DNS SAN", csrWith(t, p256, []string{want.String()}, []string{"web.service.warren", "db.service.warren"}, nil, nil), want, time.Hour, ErrCSRDNSName},
		{"IP SAN", csrWith(t, p256, []string{want.String()}, nil, []net.IP{net.IPv4(10, 0, 0, 1)}, nil), want, time.Hour, ErrCSRIPAddress},
		{"email SAN", csrWith(t, p256, []string{want.String()}, nil, nil, []string{"web@example.com"}), want, time.Hour, ErrCSREmail},
		{"garbage bytes", []byte("this is not a certificate request"), want, time.Hour, ErrCSRMalformed},
		{"empty", nil, want, time.Hour, ErrCSRMalformed},
		{"a certificate, not a CSR", parseChain(t, r.RootCertPEM+"")[0].Raw, want, time.Hour, ErrCSRMalformed},
		{"PEM instead of DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: good}), want, time.Hour, ErrCSRMalformed},
		{"oversized", oversized, want, time.Hour, ErrCSRTooLarge},
		{"oversized garbage", make([]byte, MaxCSRSize+1), want, time.Hour, ErrCSRTooLarge},
		{"bad signature", badSig, want, time.Hour, ErrCSRBadSignature},
		{"weak RSA key", csrWith(t, rsa1024, []string{want.String()}, nil, nil, nil), want, time.Hour, ErrCSRWeakKey},
		{"P-384 key", csrWith(t, p384, []string{want.String()}, nil, nil, nil), want, time.Hour, ErrCSRKeyType},
		{"ed25519 key", csrWith(t, ed, []string{want.String()}, nil, nil, nil), want, time.Hour, ErrCSRKeyType},
		{"zero wanted ID", good, spiffeid.ID{}, time.Hour, ErrInvalidRequest},
		{"wanted ID in another trust domain", csrWith(t, p256, []string{"spiffe://evil.warren/ns/default/dc/dc1/svc/web"}, nil, nil, nil), spiffeid.RequireFromString("spiffe://evil.warren/ns/default/dc/dc1/svc/web"), time.Hour, ErrInvalidRequest},
		{"zero TTL", good, want, 0, ErrInvalidRequest},
	}
	signer, err := NewSigner(r)
	if err != nil {
		t.Fatal(err)
	}
	keyBody := strings.Split(string(r.SigningKeyPEM), "\n")[1]
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certPEM, serial, err := signer.Sign(tt.csr, tt.want, allowedDNS, tt.ttl, t0, rand.Reader)
			if err == nil {
				t.Fatalf("signed: serial %s", serial)
			}
			if certPEM != "" || serial != "" {
				t.Fatal("a refusal returned a certificate")
			}
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want reason %s", err, tt.err.Reason)
			}
			if ReasonOf(err) != tt.err.Reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(err))
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Fatal("a refusal is not catalog.ErrInvalid")
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), keyBody) {
				t.Fatalf("error holds key material: %v", err)
			}
		})
	}
	// The good CSR, and a DNS SAN from the allowed list, are signed.
	if _, _, err := signer.Sign(good, want, allowedDNS, time.Hour, t0, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.Sign(csrWith(t, p256, []string{want.String()}, []string{"WEB.service.warren."}, nil, nil), want, allowedDNS, time.Hour, t0, rand.Reader); err != nil {
		t.Fatalf("allowed DNS SAN (other case, trailing dot): %v", err)
	}
	rsa2048, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := signer.Sign(csrWith(t, rsa2048, []string{want.String()}, nil, nil, nil), want, nil, time.Hour, t0, rand.Reader); err != nil {
		t.Fatalf("RSA 2048 CSR: %v", err)
	}
}

func TestNewSignerRefusesMismatchedKey(t *testing.T) {
	a := mustRoot(t, CAConfig{}, t0)
	b := mustRoot(t, CAConfig{}, t0)
	mixed := *a
	mixed.SigningKeyPEM = b.SigningKeyPEM
	if _, err := NewSigner(&mixed); err == nil {
		t.Fatal("a signing key that does not match the signing cert was accepted")
	}
	mixed.SigningKeyPEM = "garbage"
	if _, err := NewSigner(&mixed); err == nil || strings.Contains(err.Error(), "garbage") {
		t.Fatalf("garbage key: %v", err)
	}
}

// TestRotation: after a rotation, leaves signed by the new intermediate
// verify against the old root (through the cross-signed cert) and against
// the new root; leaves of the old root still verify against the bundle.
func TestRotation(t *testing.T) {
	for _, types := range [][2]string{{"ec", "ec"}, {"ec", "rsa"}, {"rsa", "ec"}} {
		t.Run(types[0]+"-to-"+types[1], func(t *testing.T) {
			old := mustRoot(t, CAConfig{KeyType: types[0]}, t0)
			id := ServiceID(testTD, "", "dc1", "web")
			oldLeaf := signFor(t, old, id, t0.Add(90*time.Minute))

			now := t0.Add(2 * time.Hour)
			nw := mustRoot(t, CAConfig{KeyType: types[1]}, now)
			if err := Rotate(old, nw, time.Hour, now, rand.Reader); err != nil {
				t.Fatal(err)
			}
			if len(nw.IntermediateCertPEMs) != 2 {
				t.Fatalf("new root has %d intermediates, want signing + cross-signed", len(nw.IntermediateCertPEMs))
			}
			cross := mustParse(t, nw.IntermediateCertPEMs[1])
			oldCert, newCert := mustParse(t, old.RootCertPEM), mustParse(t, nw.RootCertPEM)
			if !bytes.Equal(cross.RawSubject, newCert.RawSubject) || !bytes.Equal(cross.SubjectKeyId, newCert.SubjectKeyId) ||
				!bytes.Equal(cross.RawIssuer, oldCert.RawSubject) || !cross.IsCA || cross.MaxPathLen != 1 {
				t.Fatal("cross-signed cert is not the new root issued by the old one")
			}
			newLeaf := signFor(t, nw, id, now.Add(time.Minute))
			at := now.Add(2 * time.Minute)
			verifyLeaf(t, newLeaf, []*Root{old}, at) // via the cross-signed cert
			verifyLeaf(t, newLeaf, []*Root{nw}, at)
			verifyLeaf(t, oldLeaf, []*Root{old}, at)
			if err := verifyLeafErr(t, oldLeaf, []*Root{nw}, at); err == nil {
				t.Fatal("an old leaf verified against the new root alone")
			}
			// The bundle holds both while old leaves live.
			b, err := Bundle([]*Root{old, nw}, at)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range []signedLeaf{oldLeaf, newLeaf} {
				if _, _, err := x509svid.Verify(parseChain(t, l.certPEM), b, x509svid.WithTime(at)); err != nil {
					t.Fatalf("leaf does not verify against the bundle: %v", err)
				}
			}
		})
	}
}

// handshake runs a mutual TLS handshake over an in-memory pipe with
// go-spiffe's configs: each side presents its SVID, trusts its bundle and
// authorizes one ID.
func handshake(t *testing.T, client, server signedLeaf, clientBundle, serverBundle *x509bundle.Bundle, clientAuthorizes, serverAuthorizes spiffeid.ID) (clientErr, serverErr error) {
	t.Helper()
	csvid, err := x509svid.Parse([]byte(client.certPEM), []byte(client.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ssvid, err := x509svid.Parse([]byte(server.certPEM), []byte(server.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	srv := tls.Server(sc, tlsconfig.MTLSServerConfig(ssvid, serverBundle, tlsconfig.AuthorizeID(serverAuthorizes)))
	done := make(chan error, 1)
	go func() {
		err := srv.HandshakeContext(ctx)
		if err != nil {
			sc.Close() // unblock the client
		}
		done <- err
	}()
	cli := tls.Client(cc, tlsconfig.MTLSClientConfig(csvid, clientBundle, tlsconfig.AuthorizeID(clientAuthorizes)))
	clientErr = cli.HandshakeContext(ctx)
	if clientErr != nil {
		cc.Close()
	}
	if clientErr == nil {
		// TLS 1.3: the server verifies the client's certificate after the
		// client's handshake returns; exchange a byte to see its verdict.
		go func() { _, _ = srv.Write([]byte{1}) }()
		buf := make([]byte, 1)
		if _, err := cli.Read(buf); err != nil {
			clientErr = err
		}
	}
	serverErr = <-done
	return clientErr, serverErr
}

func TestMTLSHandshake(t *testing.T) {
	now := time.Now() // the TLS stack verifies with the wall clock
	r := mustRoot(t, CAConfig{}, now)
	web, db := ServiceID(testTD, "", "dc1", "web"), ServiceID(testTD, "", "dc1", "db")
	client, server := signFor(t, r, web, now), signFor(t, r, db, now)
	b, err := Bundle([]*Root{r}, now)
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr := handshake(t, client, server, b, b, db, web); cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	// The server authorizes another ID: refused.
	if cerr, serr := handshake(t, client, server, b, b, db, ServiceID(testTD, "", "dc1", "api")); serr == nil || cerr == nil {
		t.Fatalf("server accepted an unauthorized client: client %v, server %v", cerr, serr)
	}
	// The client expects another server: refused.
	if cerr, _ := handshake(t, client, server, b, b, web, web); cerr == nil {
		t.Fatal("client accepted the wrong server")
	}
	// A foreign CA's leaf: refused.
	foreign := mustRoot(t, CAConfig{}, now)
	intruder := signFor(t, foreign, web, now)
	if _, serr := handshake(t, intruder, server, b, b, db, web); serr == nil {
		t.Fatal("server accepted a client from a foreign CA")
	}
}

// TestMTLSAcrossRotation: during a rotation a workload with a new leaf and
// one with an old leaf talk both ways, whether the peer has the new bundle
// or still only the old root.
func TestMTLSAcrossRotation(t *testing.T) {
	now := time.Now()
	old := mustRoot(t, CAConfig{}, now.Add(-time.Hour))
	web, db := ServiceID(testTD, "", "dc1", "web"), ServiceID(testTD, "", "dc1", "db")
	oldDB := signFor(t, old, db, now.Add(-time.Minute))
	oldBundle, err := Bundle([]*Root{old}, now)
	if err != nil {
		t.Fatal(err)
	}

	nw := mustRoot(t, CAConfig{KeyType: "rsa"}, now)
	if err := Rotate(old, nw, time.Hour, now, rand.Reader); err != nil {
		t.Fatal(err)
	}
	newWeb := signFor(t, nw, web, now)
	both, err := Bundle([]*Root{old, nw}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(both.X509Authorities()) != 2 {
		t.Fatal("bundle during rotation lacks a root")
	}
	// New client, old server that has not seen the new root yet.
	if cerr, serr := handshake(t, newWeb, oldDB, both, oldBundle, db, web); cerr != nil || serr != nil {
		t.Fatalf("new leaf to a peer with the old bundle: client %v, server %v", cerr, serr)
	}
	// Old client (with the old bundle only), new server.
	newDB := signFor(t, nw, db, now)
	oldWeb := signFor(t, old, web, now.Add(-time.Minute))
	if cerr, serr := handshake(t, oldWeb, newDB, oldBundle, both, db, web); cerr != nil || serr != nil {
		t.Fatalf("old leaf to a peer with the new bundle: client %v, server %v", cerr, serr)
	}
	// Everyone updated.
	if cerr, serr := handshake(t, newWeb, newDB, both, both, db, web); cerr != nil || serr != nil {
		t.Fatalf("new to new: client %v, server %v", cerr, serr)
	}
}

func BenchmarkSignLeaf(b *testing.B) {
	r := mustRoot(b, CAConfig{}, t0)
	id := ServiceID(testTD, "", "dc1", "web")
	_, csr, err := NewCSR(id, []string{"web.service.warren"}, rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	dns := []string{"web.service.warren"}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signatures/s")
	}
	b.Run("SignLeaf", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := SignLeaf(r, csr, id, dns, time.Hour, t0, rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("Signer", func(b *testing.B) {
		s, err := NewSigner(r)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, _, err := s.Sign(csr, id, dns, time.Hour, t0, rand.Reader); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
	b.Run("SignerParallel", func(b *testing.B) {
		s, err := NewSigner(r)
		if err != nil {
			b.Fatal(err)
		}
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := s.Sign(csr, id, dns, time.Hour, t0, rand.Reader); err != nil {
					b.Error(err)
					return
				}
			}
		})
		report(b)
	})
}
