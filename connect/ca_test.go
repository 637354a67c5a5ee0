package connect

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestCAConfigValidate(t *testing.T) {
	tests := []struct {
		name  string
		cfg   CAConfig
		field string // "" means valid
	}{
		{"zero is the defaults", CAConfig{}, ""},
		{"ec 384", CAConfig{KeyType: "ec", KeyBits: 384}, ""},
		{"rsa default bits", CAConfig{KeyType: "rsa"}, ""},
		{"rsa 4096", CAConfig{KeyType: "rsa", KeyBits: 4096}, ""},
		{"short leaf for tests", CAConfig{LeafTTL: 2 * time.Second}, ""},
		{"unknown type", CAConfig{KeyType: "ed25519"}, "PrivateKeyType"},
		{"ec 521", CAConfig{KeyType: "ec", KeyBits: 521}, "PrivateKeyBits"},
		{"ec 2048", CAConfig{KeyType: "ec", KeyBits: 2048}, "PrivateKeyBits"},
		{"rsa 1024", CAConfig{KeyType: "rsa", KeyBits: 1024}, "PrivateKeyBits"},
		{"negative leaf", CAConfig{LeafTTL: -time.Hour}, "LeafCertTTL"},
		{"leaf too short", CAConfig{LeafTTL: time.Millisecond}, "LeafCertTTL"},
		{"leaf too long", CAConfig{LeafTTL: 9000 * time.Hour, IntermediateTTL: 30000 * time.Hour}, "LeafCertTTL"},
		{"intermediate under 3 leaves", CAConfig{LeafTTL: 72 * time.Hour, IntermediateTTL: 200 * time.Hour}, "IntermediateCertTTL"},
		{"root under intermediate", CAConfig{IntermediateTTL: 8760 * time.Hour, RootTTL: 1000 * time.Hour}, "RootCertTTL"},
		{"root too long", CAConfig{RootTTL: 200 * 8760 * time.Hour}, "RootCertTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *catalog.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate = %v, want a *catalog.FieldError", err)
			}
			if fe.Field != tt.field {
				t.Fatalf("field = %q (%v), want %q", fe.Field, err, tt.field)
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Fatal("not an ErrInvalid")
			}
		})
	}
	d := CAConfig{}.WithDefaults()
	if d.KeyType != "ec" || d.KeyBits != 256 || d.LeafTTL != 72*time.Hour || d.IntermediateTTL != 8760*time.Hour || d.RootTTL != 87600*time.Hour {
		t.Fatalf("defaults = %+v", d)
	}
}

func mustParse(t testing.TB, p string) *x509.Certificate {
	t.Helper()
	c, err := parseCertPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustRoot(t testing.TB, cfg CAConfig, now time.Time) *Root {
	t.Helper()
	r, err := NewRoot(cfg, testTD, now, rand.Reader)
	if err != nil {
		t.Fatalf("NewRoot: %v", err)
	}
	return r
}

func TestNewRoot(t *testing.T) {
	for _, cfg := range []CAConfig{{}, {KeyType: "ec", KeyBits: 384}, {KeyType: "rsa", KeyBits: 2048}} {
		t.Run(fmt.Sprintf("%s-%d", cfg.WithDefaults().KeyType, cfg.WithDefaults().KeyBits), func(t *testing.T) {
			r := mustRoot(t, cfg, t0)
			root := mustParse(t, r.RootCertPEM)
			inter := mustParse(t, r.SigningCertPEM)

			if !r.Active || r.TrustDomain != testTD || r.ID != fingerprint(root.Raw) {
				t.Fatalf("root fields: %s", r)
			}
			if r.PrivateKeyType != cfg.WithDefaults().KeyType || r.PrivateKeyBits != cfg.WithDefaults().KeyBits {
				t.Fatalf("key type %s-%d", r.PrivateKeyType, r.PrivateKeyBits)
			}
			if len(r.IntermediateCertPEMs) != 1 || r.IntermediateCertPEMs[0] != r.SigningCertPEM {
				t.Fatal("IntermediateCertPEMs should hold the signing cert")
			}
			for _, c := range []*x509.Certificate{root, inter} {
				if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
					t.Fatalf("%s is not a CA", c.Subject)
				}
				if len(c.URIs) != 1 || c.URIs[0].String() != "spiffe://"+testTD {
					t.Fatalf("%s URIs = %v", c.Subject, c.URIs)
				}
				if len(c.SubjectKeyId) != 20 {
					t.Fatalf("%s SKID = %x", c.Subject, c.SubjectKeyId)
				}
			}
			if root.MaxPathLen != 2 || inter.MaxPathLen != 0 || !inter.MaxPathLenZero {
				t.Fatalf("path lengths: root %d, intermediate %d/%t", root.MaxPathLen, inter.MaxPathLen, inter.MaxPathLenZero)
			}
			if !bytes.Equal(inter.AuthorityKeyId, root.SubjectKeyId) {
				t.Fatal("intermediate AKID is not the root SKID")
			}
			if !root.NotAfter.Equal(t0.Add(DefaultRootTTL)) || !inter.NotAfter.Equal(t0.Add(DefaultIntermediateTTL)) {
				t.Fatalf("validity: root %s, intermediate %s", root.NotAfter, inter.NotAfter)
			}
			if !root.NotBefore.Equal(t0.Add(-time.Minute)) {
				t.Fatalf("root NotBefore %s", root.NotBefore)
			}
			roots := x509.NewCertPool()
			roots.AddCert(root)
			if _, err := inter.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
				t.Fatalf("intermediate does not verify against root: %v", err)
			}
			switch cfg.WithDefaults().KeyType {
			case "ec":
				if k, ok := inter.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().BitSize != cfg.WithDefaults().KeyBits {
					t.Fatalf("intermediate key %T", inter.PublicKey)
				}
			case "rsa":
				if k, ok := inter.PublicKey.(*rsa.PublicKey); !ok || k.N.BitLen() != 2048 {
					t.Fatalf("intermediate key %T", inter.PublicKey)
				}
			}
			// The signer accepts the root: key and cert match.
			if _, err := NewSigner(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNewRootRefuses(t *testing.T) {
	if _, err := NewRoot(CAConfig{KeyType: "dsa"}, testTD, t0, rand.Reader); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("bad config: %v", err)
	}
	if _, err := NewRoot(CAConfig{}, "Bad Domain", t0, rand.Reader); err == nil {
		t.Fatal("bad trust domain accepted")
	}
	if _, err := NewRoot(CAConfig{}, testTD, t0, bytes.NewReader(nil)); err == nil {
		t.Fatal("empty randomness accepted")
	}
}

// TestKeysNeverPrinted: a Root printed any way, logged, or turned into its
// public view shows no key material.
func TestKeysNeverPrinted(t *testing.T) {
	r := mustRoot(t, CAConfig{}, t0)
	keyBody := strings.Split(string(r.SigningKeyPEM), "\n")[1]
	rootKeyBody := strings.Split(string(r.RootKeyPEM), "\n")[1]

	var logged bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logged, nil))
	log.Info("root", "root", r, "key", r.SigningKeyPEM)
	textLog := slog.New(slog.NewTextHandler(&logged, nil))
	textLog.Info("root", "root", r, "key", r.RootKeyPEM)

	pub, err := json.Marshal(r.Public())
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":         fmt.Sprintf("%v", r),
		"%+v":        fmt.Sprintf("%+v", *r),
		"%#v":        fmt.Sprintf("%#v", *r),
		"%s":         fmt.Sprintf("%s", []any{*r}),
		"%s key":     fmt.Sprintf("%s", r.SigningKeyPEM),
		"%q key":     fmt.Sprintf("%q", r.RootKeyPEM),
		"%x key":     fmt.Sprintf("%x", r.RootKeyPEM),
		"slice":      fmt.Sprint([]*Root{r}),
		"slog":       logged.String(),
		"public":     string(pub),
		"public %+v": fmt.Sprintf("%+v", r.Public()),
	}
	for name, out := range outputs {
		if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, keyBody) || strings.Contains(out, rootKeyBody) ||
			strings.Contains(out, fmt.Sprintf("%x", string(r.SigningKeyPEM))[:40]) {
			t.Errorf("%s output holds key material: %.200s", name, out)
		}
	}
	// The public view is in Consul's shape.
	var m map[string]any
	if err := json.Unmarshal(pub, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ID", "Name", "RootCert", "IntermediateCerts", "Active", "NotBefore", "NotAfter", "SigningKeyID", "CreateIndex", "ModifyIndex"} {
		if _, ok := m[k]; !ok {
			t.Errorf("public JSON lacks %q: %s", k, pub)
		}
	}
	// The stored form keeps the keys (Raft replicates them).
	stored, _ := json.Marshal(r)
	var back Root
	if err := json.Unmarshal(stored, &back); err != nil || back.SigningKeyPEM != r.SigningKeyPEM || back.RootKeyPEM != r.RootKeyPEM {
		t.Fatal("a Root does not round-trip its keys through JSON")
	}
}

func TestBundleAndPrune(t *testing.T) {
	old := mustRoot(t, CAConfig{}, t0)
	now := t0.Add(24 * time.Hour)
	nw := mustRoot(t, CAConfig{}, now)
	if err := Rotate(old, nw, 72*time.Hour, now, rand.Reader); err != nil {
		t.Fatal(err)
	}
	if old.Active || !nw.Active || ActiveRoot([]*Root{old, nw}) != nw {
		t.Fatal("active flags after rotation")
	}
	if !old.TrustUntil.Equal(now.Add(72*time.Hour + time.Minute)) {
		t.Fatalf("TrustUntil = %s", old.TrustUntil)
	}
	count := func(at time.Time) int {
		b, err := Bundle([]*Root{old, nw}, at)
		if err != nil {
			t.Fatal(err)
		}
		if b.TrustDomain().Name() != testTD {
			t.Fatalf("bundle trust domain %s", b.TrustDomain())
		}
		return len(b.X509Authorities())
	}
	if n := count(now); n != 2 {
		t.Fatalf("during rotation the bundle has %d roots, want 2", n)
	}
	if n := count(now.Add(72 * time.Hour)); n != 2 {
		t.Fatalf("before the old leaves expire the bundle has %d roots, want 2", n)
	}
	later := now.Add(73 * time.Hour)
	if n := count(later); n != 1 {
		t.Fatalf("after the old leaves expired the bundle has %d roots, want 1", n)
	}
	if p := Prune([]*Root{old, nw}, later); len(p) != 1 || p[0] != nw {
		t.Fatalf("Prune kept %v", p)
	}
	if _, err := Bundle(nil, now); err == nil {
		t.Fatal("empty bundle accepted")
	}
	other, err := NewRoot(CAConfig{}, "other.warren", now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Bundle([]*Root{nw, other}, now); err == nil {
		t.Fatal("bundle of two trust domains accepted")
	}
	if err := Rotate(nw, other, time.Hour, now, rand.Reader); err == nil {
		t.Fatal("rotation to another trust domain accepted")
	}
}

func TestRenewIntermediate(t *testing.T) {
	r := mustRoot(t, CAConfig{IntermediateTTL: 24 * time.Hour, LeafTTL: time.Hour}, t0)
	now := t0.Add(20 * time.Hour)
	r2, err := RenewIntermediate(r, 24*time.Hour, now, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if r2.SigningCertPEM == r.SigningCertPEM || r2.SigningKeyPEM == r.SigningKeyPEM || r2.SigningKeyID == r.SigningKeyID {
		t.Fatal("signing cert not replaced")
	}
	if r2.ID != r.ID || r2.RootCertPEM != r.RootCertPEM || len(r2.IntermediateCertPEMs) != 1 || r2.IntermediateCertPEMs[0] != r2.SigningCertPEM {
		t.Fatal("root changed or chain wrong")
	}
	if r.SigningCertPEM != r.IntermediateCertPEMs[0] {
		t.Fatal("RenewIntermediate changed its input")
	}
	leaf := signFor(t, r2, ServiceID(testTD, "", "dc1", "web"), now)
	verifyLeaf(t, leaf, []*Root{r}, now.Add(time.Minute))
}

func TestColonHex(t *testing.T) {
	if got := colonHex([]byte{0x0a, 0xff, 0x01}); got != "0a:ff:01" {
		t.Fatal(got)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	a, _ := keyID(k.Public())
	b, _ := keyID(k.Public())
	if len(a) != 20 || !bytes.Equal(a, b) {
		t.Fatal("keyID not stable")
	}
}
