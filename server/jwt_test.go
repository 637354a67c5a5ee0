package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"github.com/warren-mesh/warren/internal/testutil"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

// jwtRoots reads the roots over the server RPC, with the JWT bundle.
func jwtRoots(t *testing.T, pool *rpc.Pool, n *servertest.Node) *rpc.CARootsReply {
	t.Helper()
	var r rpc.CARootsReply
	if err := pool.Call(context.Background(), n.Server.Addr(), rpc.MethodCARoots, &rpc.ReadRequest{}, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func jwtBundleOf(t *testing.T, r *rpc.CARootsReply) *jwtbundle.Bundle {
	t.Helper()
	keys := make([]connect.JWTKey, len(r.JWTKeys))
	for i, k := range r.JWTKeys {
		keys[i] = connect.JWTKey(k)
	}
	b, err := connect.JWTBundle(r.TrustDomain, keys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestConnectSignJWT: ConnectCA.SignJWT (through a follower) signs a
// JWT-SVID for a service on the calling node only, valid for the requested
// audience against the JWT bundle in the roots reply; after a root
// rotation the bundle holds the old and the new key, and tokens of both
// validate.
func TestConnectSignJWT(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	roots := waitRoots(t, follower)
	registerService(t, leader, "n1", "web")
	registerService(t, leader, "n2", "api")
	pool := rpc.NewPool()
	defer pool.Close()
	signJWT := func(node, service string, aud ...string) (*rpc.SignJWTReply, error) {
		var r rpc.SignJWTReply
		err := pool.Call(context.Background(), follower.Server.Addr(), rpc.MethodCASignJWT, &rpc.SignJWTRequest{Node: node, Service: service, Audience: aud}, &r)
		return &r, err
	}
	var r0 *rpc.CARootsReply
	servertest.WaitFor(t, 10*time.Second, func() error {
		r0 = jwtRoots(t, pool, follower)
		if len(r0.JWTKeys) != 1 {
			return errors.New("no JWT key yet")
		}
		return nil
	})
	tok, err := signJWT("n1", "web", "A", "C")
	if err != nil {
		t.Fatal(err)
	}
	want := connect.ServiceID(roots.TrustDomain, "default", "dc1", "web")
	if tok.ServiceURI != want.String() || tok.ExpiresAt.Sub(tok.IssuedAt) > connect.DefaultJWTTTL || tok.ExpiresAt.Sub(tok.IssuedAt) < connect.DefaultJWTTTL-time.Second {
		t.Fatalf("reply %+v", tok)
	}
	b0 := jwtBundleOf(t, r0)
	svid, err := jwtsvid.ParseAndValidate(tok.Token, b0, []string{"A"})
	if err != nil || svid.ID != want {
		t.Fatalf("validate for A: %v %v", svid, err)
	}
	if _, err := jwtsvid.ParseAndValidate(tok.Token, b0, []string{"B"}); err == nil {
		t.Fatal("a token for A validated for B")
	}

	// Refusals: a service not on the node, no audience.
	if _, err := signJWT("n2", "web", "A"); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "not registered on node") {
		t.Fatalf("service not on the node: %v", err)
	}
	if _, err := signJWT("n1", "api", "A"); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("a service of another node: %v", err)
	}
	if _, err := signJWT("n3", "web", "A"); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("a node not in the catalog: %v", err)
	}
	if _, err := signJWT("n1", "web"); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("no audience: %v", err)
	}

	// The JWT TTL is in the CA config (Warren's JWTTTL).
	if _, err := client(t, follower).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"JWTTTL": "90s"}}, nil); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, 10*time.Second, func() error {
		r, err := signJWT("n1", "web", "A")
		if err != nil {
			return err
		}
		if d := r.ExpiresAt.Sub(r.IssuedAt); d > 90*time.Second || d < 89*time.Second {
			return errors.New("JWT TTL is " + d.String())
		}
		return nil
	})

	// Rotation.
	if _, err := client(t, follower).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"JWTTTL": "90s", "RotateRoot": true}}, nil); err != nil {
		t.Fatal(err)
	}
	var r1 *rpc.CARootsReply
	servertest.WaitFor(t, 10*time.Second, func() error {
		r1 = jwtRoots(t, pool, follower)
		if r1.ActiveRootID == r0.ActiveRootID || len(r1.JWTKeys) != 2 {
			return errors.New("not rotated yet")
		}
		return nil
	})
	tok2, err := signJWT("n1", "web", "A")
	if err != nil {
		t.Fatal(err)
	}
	b1 := jwtBundleOf(t, r1)
	for name, tk := range map[string]string{"old": tok.Token, "new": tok2.Token} {
		if _, err := jwtsvid.ParseAndValidate(tk, b1, []string{"A"}); err != nil {
			t.Errorf("%s token against the bundle after rotation: %v", name, err)
		}
	}
	if _, err := jwtsvid.ParseAndValidate(tok2.Token, b0, []string{"A"}); err == nil {
		t.Error("a token of the new key validated against the old bundle alone")
	}
	// The HTTP roots answer stays Consul's: no JWT keys.
	resp, err := http.Get(follower.HTTP.URL + "/v1/connect/ca/roots")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if bytes.Contains(body, []byte("JWT")) || bytes.Contains(body, []byte("PUBLIC KEY")) {
		t.Fatalf("roots answer holds JWT keys: %s", body)
	}
}

// TestConnectRefusalsCountedAndLogged: every refused CSR and JWT-SVID
// request is counted by reason and logged with the reason, never with the
// CSR or any key material.
func TestConnectRefusalsCountedAndLogged(t *testing.T) {
	reg := prometheus.NewRegistry()
	var logs testutil.LockedBuffer
	c := servertest.New(t, 1, func(cfg *server.Config) {
		cfg.Metrics = reg
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	leader := c.WaitLeader()
	roots := waitRoots(t, leader)
	registerService(t, leader, "n1", "web")
	registerService(t, leader, "n2", "api")
	pool := rpc.NewPool()
	defer pool.Close()
	sign := func(node, service string, csr []byte) error {
		return pool.Call(context.Background(), leader.Server.Addr(), rpc.MethodCASign, &rpc.SignRequest{Node: node, Service: service, CSR: csr}, &rpc.SignReply{})
	}
	web := connect.ServiceID(roots.TrustDomain, "default", "dc1", "web")
	api := connect.ServiceID(roots.TrustDomain, "default", "dc1", "api")
	_, twoURIs := csrWithURIs(t, web.String(), api.String())
	_, noURI := csrWithURIs(t)
	webKey, webCSR, _ := connect.NewCSR(web, nil, rand.Reader)
	_, apiCSR, _ := connect.NewCSR(api, nil, rand.Reader)
	_, dnsCSR, _ := connect.NewCSR(web, []string{"evil.example.com"}, rand.Reader)
	cases := []struct {
		reason     string
		node, svc  string
		csr        []byte
		wantReject bool
	}{
		{"csr_multiple_uris", "n1", "web", twoURIs, true},
		{"csr_no_uri", "n1", "web", noURI, true},
		{"csr_wrong_id", "n2", "web", webCSR, true}, // web is not on n2
		{"csr_wrong_id", "n1", "web", apiCSR, true}, // a CSR for api
		{"csr_dns_name", "n1", "web", dnsCSR, true},
		{"csr_malformed", "n1", "web", []byte("not a csr"), true},
		{"csr_too_large", "n1", "web", make([]byte, connect.MaxCSRSize+1), true},
	}
	want := map[string]float64{}
	for _, tc := range cases {
		if err := sign(tc.node, tc.svc, tc.csr); !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("%s: %v, want a refusal", tc.reason, err)
		}
		want[tc.reason]++
	}
	got := metricValues(t, reg, "warren_connect_csr_refused_total", "reason")
	for reason, n := range want {
		if got[reason] != n {
			t.Errorf("csr_refused_total{reason=%q} = %v, want %v (all: %v)", reason, got[reason], n, got)
		}
	}
	// JWT refusals have their own counter.
	if err := pool.Call(context.Background(), leader.Server.Addr(), rpc.MethodCASignJWT, &rpc.SignJWTRequest{Node: "n2", Service: "web", Audience: []string{"A"}}, &rpc.SignJWTReply{}); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("JWT for a service not on the node: %v", err)
	}
	found := metricValues(t, reg, "warren_connect_jwt_refused_total", "reason")["csr_wrong_id"] == 1
	if !found {
		t.Error("no warren_connect_jwt_refused_total{reason=csr_wrong_id} 1")
	}

	out := logs.String()
	if n := strings.Count(out, "refused to sign a leaf"); n != len(cases) {
		t.Errorf("%d refusal log lines, want %d", n, len(cases))
	}
	for _, secret := range []string{"PRIVATE KEY", "CERTIFICATE REQUEST", webKey[40:80], b64(webCSR)[20:60], b64(twoURIs)[20:60]} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

func b64(b []byte) string {
	j, _ := json.Marshal(b) // base64, as a CSR would print in JSON
	return string(j)
}

// TestConnectCSRRateFromAPI: CSRMaxPerSecond set through PUT
// /v1/connect/ca/configuration (Consul's key) replaces the servers'
// csr_max_per_second on the leader at once; 0 lifts the limit; GET shows
// the rate in force.
func TestConnectCSRRateFromAPI(t *testing.T) {
	c := servertest.New(t, 1, func(cfg *server.Config) { cfg.CSRMaxPerSecond = -1 })
	leader := c.WaitLeader()
	roots := waitRoots(t, leader)
	registerService(t, leader, "n1", "web")
	pool := rpc.NewPool()
	defer pool.Close()
	id := connect.ServiceID(roots.TrustDomain, "default", "dc1", "web")
	_, csr, _ := connect.NewCSR(id, nil, rand.Reader)
	burst := func(n int) (ok, limited int) {
		for range n {
			err := pool.Call(context.Background(), leader.Server.Addr(), rpc.MethodCASign, &rpc.SignRequest{Node: "n1", Service: "web", CSR: csr}, &rpc.SignReply{})
			switch {
			case err == nil:
				ok++
			case errors.Is(err, catalog.ErrRateLimited):
				limited++
			default:
				t.Fatal(err)
			}
		}
		return ok, limited
	}
	getRate := func() any {
		cfg, _, err := client(t, leader).Connect().CAGetConfig(nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg.Config["CSRMaxPerSecond"]
	}
	if got := getRate(); got != float64(0) {
		t.Fatalf("CSRMaxPerSecond with no limit: %v, want 0", got)
	}
	if ok, limited := burst(20); ok != 20 || limited != 0 {
		t.Fatalf("unlimited: %d signed, %d limited", ok, limited)
	}
	if _, err := client(t, leader).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"CSRMaxPerSecond": 2}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := getRate(); got != float64(2) {
		t.Fatalf("CSRMaxPerSecond after PUT 2: %v", got)
	}
	if ok, limited := burst(20); ok > 4 || limited < 16 {
		t.Fatalf("at 2/s: %d signed, %d limited", ok, limited)
	}
	// 0 is Consul's "no limit".
	if _, err := client(t, leader).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"CSRMaxPerSecond": 0}}, nil); err != nil {
		t.Fatal(err)
	}
	if ok, limited := burst(20); ok != 20 || limited != 0 {
		t.Fatalf("after PUT 0: %d signed, %d limited", ok, limited)
	}
	// Absent: the server's own setting again (here: none).
	if _, err := client(t, leader).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "72h"}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := getRate(); got != float64(0) {
		t.Fatalf("CSRMaxPerSecond after a PUT without it: %v, want the server's (0, no limit)", got)
	}
}

// TestConnectSnapshotHoldsNoKeyPEM: the saved archive holds none of the
// CA's private keys (root, signing, JWT), not even their PEM bodies.
func TestConnectSnapshotHoldsNoKeyPEM(t *testing.T) {
	c := servertest.New(t, 1)
	leader := c.WaitLeader()
	waitRoots(t, leader)
	var roots []*connect.Root
	servertest.WaitFor(t, 10*time.Second, func() error {
		v, ok := leader.Server.Store().Meta("ca_roots")
		if !ok {
			return errors.New("no roots")
		}
		roots = nil
		if err := json.Unmarshal([]byte(v), &roots); err != nil {
			return err
		}
		if len(roots) == 0 || roots[0].JWTKeyPEM == "" {
			return errors.New("no JWT key yet")
		}
		return nil
	})
	var buf bytes.Buffer
	if err := leader.Server.SnapshotSave(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte("PRIVATE KEY")) {
		t.Fatal("the archive holds a PRIVATE KEY")
	}
	for _, r := range roots {
		for name, k := range map[string]connect.SecretPEM{"root": r.RootKeyPEM, "signing": r.SigningKeyPEM, "jwt": r.JWTKeyPEM} {
			body := pemBody(string(k))
			if len(body) < 40 {
				t.Fatalf("%s key: no PEM body", name)
			}
			// JSON escapes newlines: look for every line of the body.
			for _, line := range strings.Split(body, "\n") {
				if len(line) > 16 && bytes.Contains(plain, []byte(line)) {
					t.Fatalf("the archive holds a line of the %s key", name)
				}
			}
		}
	}
	if !bytes.Contains(plain, []byte(roots[0].JWTKeyID)) {
		t.Error("the archive lost the JWT public key")
	}
}

func pemBody(p string) string {
	lines := strings.Split(strings.TrimSpace(p), "\n")
	if len(lines) < 3 {
		return ""
	}
	return strings.Join(lines[1:len(lines)-1], "\n")
}

// TestDataDirIsPrivate: a new data dir and its Raft dir (which hold the CA
// keys) are 0700, and a Raft dir left readable by others is tightened.
func TestDataDirIsPrivate(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "new", "data")
	c := servertest.New(t, 1, func(cfg *server.Config) { cfg.DataDir = dir })
	c.WaitLeader()
	for _, d := range []string{dir, filepath.Join(dir, "raft")} {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s is %v, want 0700", d, fi.Mode().Perm())
		}
	}
	// A Raft dir made readable by others is tightened at the next start.
	n := c.Nodes[0]
	c.Stop(n)
	if err := os.Chmod(filepath.Join(dir, "raft"), 0o755); err != nil {
		t.Fatal(err)
	}
	c.Start(n)
	if fi, err := os.Stat(filepath.Join(dir, "raft")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("raft dir after a restart: %v %v, want 0700", fi.Mode(), err)
	}
}
