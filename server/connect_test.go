package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

// waitRoots waits until a node serves a CA bundle and returns it.
func waitRoots(t *testing.T, n *servertest.Node) *consulapi.CARootList {
	t.Helper()
	var roots *consulapi.CARootList
	servertest.WaitFor(t, 10*time.Second, func() error {
		r, _, err := client(t, n).Connect().CARoots(nil)
		if err != nil {
			return err
		}
		if r.ActiveRootID == "" || len(r.Roots) == 0 {
			return errors.New("no CA root yet")
		}
		roots = r
		return nil
	})
	return roots
}

func bundleOf(t *testing.T, roots *consulapi.CARootList) *x509bundle.Bundle {
	t.Helper()
	td, err := spiffeid.TrustDomainFromString(roots.TrustDomain)
	if err != nil {
		t.Fatal(err)
	}
	var certs []*x509.Certificate
	for _, r := range roots.Roots {
		certs = append(certs, parseCerts(t, r.RootCertPEM)...)
	}
	return x509bundle.FromX509Authorities(td, certs)
}

func parseCerts(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

type leaf struct {
	id      spiffeid.ID
	certPEM string
	keyPEM  string
}

// signLeaf registers service on node and has srv's cluster sign a leaf
// for it over the server RPC.
func signLeaf(t *testing.T, pool *rpc.Pool, srv *servertest.Node, td, node, service string) leaf {
	t.Helper()
	id := connect.ServiceID(td, "default", "dc1", service)
	key, csr, err := connect.NewCSR(id, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var reply rpc.SignReply
	if err := pool.Call(context.Background(), srv.Server.Addr(), rpc.MethodCASign, &rpc.SignRequest{Node: node, Service: service, CSR: csr}, &reply); err != nil {
		t.Fatalf("sign %s: %v", service, err)
	}
	if reply.ServiceURI != id.String() {
		t.Fatalf("ServiceURI %q, want %q", reply.ServiceURI, id)
	}
	return leaf{id: id, certPEM: reply.CertPEM, keyPEM: key}
}

func registerService(t *testing.T, n *servertest.Node, node, service string) {
	t.Helper()
	_, err := client(t, n).Catalog().Register(&consulapi.CatalogRegistration{Node: node, Address: "10.0.0.1",
		Service: &consulapi.AgentService{ID: service + "-1", Service: service, Port: 80}}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

func verify(t *testing.T, l leaf, b *x509bundle.Bundle) error {
	t.Helper()
	id, _, err := x509svid.Verify(parseCerts(t, l.certPEM), b)
	if err == nil && id != l.id {
		return errors.New("verified as " + id.String())
	}
	return err
}

// TestConnectCA covers the built-in CA on a 3-server cluster: the root the
// leader creates at first leadership (read with the Consul client from a
// follower), leaf signing through a follower with the CSR checks, an mTLS
// handshake between two leaves authorized by SPIFFE ID, and a root
// rotation by PUT configuration after which old leaves still verify and
// new leaves verify against the old bundle too (cross-signing).
func TestConnectCA(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	roots := waitRoots(t, follower)
	cid, _ := leader.Server.Store().Meta("cluster_id")
	if want := connect.TrustDomain(cid); roots.TrustDomain != want {
		t.Fatalf("TrustDomain %q, want %q", roots.TrustDomain, want)
	}
	if len(roots.Roots) != 1 || !roots.Roots[0].Active || roots.Roots[0].ID != roots.ActiveRootID {
		t.Fatalf("roots: %+v", roots)
	}
	// The raw answer: Consul's fields, an index, and no key material.
	resp, err := http.Get(follower.HTTP.URL + "/v1/connect/ca/roots")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, f := range []string{`"RootCert"`, `"IntermediateCerts"`, `"SigningKeyID"`, `"SerialNumber"`, `"NotAfter"`, `"CreateIndex"`} {
		if !bytes.Contains(body, []byte(f)) {
			t.Errorf("roots answer lacks %s: %s", f, body)
		}
	}
	if bytes.Contains(body, []byte("PRIVATE KEY")) || bytes.Contains(body, []byte("KeyPEM")) {
		t.Fatalf("roots answer holds key material")
	}
	if resp.Header.Get("X-Consul-Index") == "" {
		t.Fatal("no X-Consul-Index")
	}
	// Every server holds the same roots (Raft), so the agent endpoint of
	// another server answers the same.
	resp, err = http.Get(c.Nodes[2].HTTP.URL + "/v1/agent/connect/ca/roots?stale")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("agent roots: %v %v", resp, err)
	}
	resp.Body.Close()

	pool := rpc.NewPool()
	defer pool.Close()
	registerService(t, leader, "n1", "web")
	registerService(t, leader, "n2", "api")
	web := signLeaf(t, pool, follower, roots.TrustDomain, "n1", "web")
	api := signLeaf(t, pool, follower, roots.TrustDomain, "n2", "api")
	b0 := bundleOf(t, roots)
	if err := verify(t, web, b0); err != nil {
		t.Fatalf("web leaf does not verify: %v", err)
	}
	mtls(t, web, api, b0)

	// Refusals.
	sign := func(node, service string, csr []byte) error {
		return pool.Call(context.Background(), follower.Server.Addr(), rpc.MethodCASign, &rpc.SignRequest{Node: node, Service: service, CSR: csr}, &rpc.SignReply{})
	}
	_, twoURIs := csrWithURIs(t, web.id.String(), api.id.String())
	if err := sign("n1", "web", twoURIs); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "csr_multiple_uris") {
		t.Fatalf("CSR with two URI SANs: %v", err)
	}
	_, webCSR, _ := connect.NewCSR(web.id, nil, rand.Reader)
	if err := sign("n2", "web", webCSR); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "not registered on node") {
		t.Fatalf("service not on the node: %v", err)
	}
	_, apiCSR, _ := connect.NewCSR(api.id, nil, rand.Reader)
	if err := sign("n1", "web", apiCSR); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "csr_wrong_id") {
		t.Fatalf("CSR for another service: %v", err)
	}
	if err := sign("n1", "web", []byte("not a csr")); !errors.Is(err, catalog.ErrInvalid) {
		t.Fatalf("garbage CSR: %v", err)
	}
	if err := sign("n1", "web", make([]byte, connect.MaxCSRSize+1)); !errors.Is(err, catalog.ErrInvalid) || !strings.Contains(err.Error(), "csr_too_large") {
		t.Fatalf("oversized CSR: %v", err)
	}

	// Configuration: defaults, then a rotation to RSA through a follower.
	cfg, _, err := client(t, follower).Connect().CAGetConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := consulapi.ParseConsulCAConfig(cfg.Config)
	if err != nil || cfg.Provider != "consul" || parsed.LeafCertTTL != 72*time.Hour || cfg.Config["PrivateKeyType"] != "ec" {
		t.Fatalf("CA config %+v (%+v, %v)", cfg, parsed, err)
	}
	if _, err := client(t, follower).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul",
		Config: map[string]any{"PrivateKeyType": "rsa", "PrivateKeyBits": 2048, "LeafCertTTL": "1h"}}, nil); err != nil {
		t.Fatal(err)
	}
	var roots2 *consulapi.CARootList
	servertest.WaitFor(t, 10*time.Second, func() error {
		r, _, err := client(t, follower).Connect().CARoots(nil)
		if err != nil {
			return err
		}
		if len(r.Roots) != 2 || r.ActiveRootID == roots.ActiveRootID {
			return errors.New("not rotated yet")
		}
		roots2 = r
		return nil
	})
	b2 := bundleOf(t, roots2)
	if err := verify(t, web, b2); err != nil {
		t.Fatalf("old leaf does not verify against the new bundle: %v", err)
	}
	web2 := signLeaf(t, pool, leader, roots.TrustDomain, "n1", "web")
	if err := verify(t, web2, b2); err != nil {
		t.Fatalf("new leaf does not verify against the new bundle: %v", err)
	}
	if err := verify(t, web2, b0); err != nil {
		t.Fatalf("new leaf does not verify against the old bundle (cross-signing): %v", err)
	}
	// A peer still on the old bundle talks to a peer on a new leaf.
	mtls(t, web2, api, b0)
	cfg, _, _ = client(t, leader).Connect().CAGetConfig(nil)
	if cfg.Config["PrivateKeyType"] != "rsa" || cfg.Config["LeafCertTTL"] != "1h0m0s" {
		t.Fatalf("config after PUT: %+v", cfg.Config)
	}

	// Bad configurations are 400s naming the field.
	for body, field := range map[string]string{
		`{"Provider":"vault"}`:                                       "Provider",
		`{"Config":{"PrivateKeyType":"dsa"}}`:                        "PrivateKeyType",
		`{"Config":{"LeafCertTTL":"1h","IntermediateCertTTL":"2h"}}`: "IntermediateCertTTL",
		`{"Config":{"LeafCertTTL":"soon"}}`:                          "LeafCertTTL",
		`{"Config":{"PrivateKey":"-----BEGIN"}}`:                     "PrivateKey",
	} {
		req, _ := http.NewRequest("PUT", leader.HTTP.URL+"/v1/connect/ca/configuration", strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(msg), field) {
			t.Errorf("PUT %s: %d %s, want 400 naming %s", body, resp.StatusCode, msg, field)
		}
	}
}

// csrWithURIs makes a well-formed CSR with every URI as a SAN.
func csrWithURIs(t *testing.T, uris ...string) (string, []byte) {
	t.Helper()
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "x"}}
	for _, u := range uris {
		p, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, p)
	}
	key, err := x509svidKey()
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return "", der
}

// mtls completes a mutual TLS handshake between a server holding srv and
// a client holding cli, each authorizing the other's SPIFFE ID, with
// bundle b on both sides.
func mtls(t *testing.T, srv, cli leaf, b *x509bundle.Bundle) {
	t.Helper()
	srvSVID, err := x509svid.Parse([]byte(srv.certPEM), []byte(srv.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	cliSVID, err := x509svid.Parse([]byte(cli.certPEM), []byte(cli.keyPEM))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(srvSVID, b, tlsconfig.AuthorizeID(cli.id)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		err = conn.(*tls.Conn).Handshake()
		if err == nil {
			_, err = conn.Write([]byte("ok"))
		}
		done <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(cliSVID, b, tlsconfig.AuthorizeID(srv.id)))
	if err != nil {
		t.Fatalf("mTLS dial: %v", err)
	}
	defer conn.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(conn, buf); err != nil {
		t.Fatalf("mTLS read: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("mTLS server side: %v", err)
	}
	// A client that expects another ID refuses the server.
	other := spiffeid.RequireFromPath(srv.id.TrustDomain(), "/ns/default/dc/dc1/svc/other")
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(cliSVID, b, tlsconfig.AuthorizeID(other))); err == nil {
		c.Close()
		t.Fatal("handshake with an unexpected server ID succeeded")
	}
}

// TestConnectSignRateLimit: over the leader's signing rate, a request is
// refused with ErrRateLimited (HTTP 429 at the agent).
func TestConnectSignRateLimit(t *testing.T) {
	c := servertest.New(t, 1, func(cfg *server.Config) { cfg.CSRMaxPerSecond = 1 })
	leader := c.WaitLeader()
	roots := waitRoots(t, leader)
	registerService(t, leader, "n1", "web")
	pool := rpc.NewPool()
	defer pool.Close()
	id := connect.ServiceID(roots.TrustDomain, "default", "dc1", "web")
	var limited error
	for range 5 {
		_, csr, _ := connect.NewCSR(id, nil, rand.Reader)
		if err := pool.Call(context.Background(), leader.Server.Addr(), rpc.MethodCASign, &rpc.SignRequest{Node: "n1", Service: "web", CSR: csr}, &rpc.SignReply{}); err != nil {
			limited = err
			break
		}
	}
	if !errors.Is(limited, catalog.ErrRateLimited) {
		t.Fatalf("want ErrRateLimited, got %v", limited)
	}
}

// TestConnectSnapshotHasNoKeys: the user snapshot archive holds no private
// key; restoring it makes the leader create a fresh root and keep the
// restored one in the bundle, so leaves signed before still verify.
func TestConnectSnapshotHasNoKeys(t *testing.T) {
	c := servertest.New(t, 1)
	leader := c.WaitLeader()
	roots := waitRoots(t, leader)
	registerService(t, leader, "n1", "web")
	pool := rpc.NewPool()
	defer pool.Close()
	web := signLeaf(t, pool, leader, roots.TrustDomain, "n1", "web")

	var buf bytes.Buffer
	if err := leader.Server.SnapshotSave(context.Background(), &buf); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain, []byte("PRIVATE KEY")) || bytes.Contains(buf.Bytes(), []byte("PRIVATE KEY")) {
		t.Fatal("the snapshot archive holds a private key")
	}
	if !bytes.Contains(plain, []byte("BEGIN CERTIFICATE")) {
		t.Fatal("the snapshot archive lost the CA certificates")
	}
	if err := leader.Server.SnapshotRestore(context.Background(), bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	var after *consulapi.CARootList
	servertest.WaitFor(t, 10*time.Second, func() error {
		r, _, err := client(t, leader).Connect().CARoots(nil)
		if err != nil {
			return err
		}
		if r.ActiveRootID == roots.ActiveRootID || len(r.Roots) != 2 {
			return errors.New("no fresh root yet")
		}
		after = r
		return nil
	})
	if err := verify(t, web, bundleOf(t, after)); err != nil {
		t.Fatalf("a leaf from before the restore does not verify: %v", err)
	}
	// And the fresh root signs.
	web2 := signLeaf(t, pool, leader, roots.TrustDomain, "n1", "web")
	if err := verify(t, web2, bundleOf(t, after)); err != nil {
		t.Fatal(err)
	}
}

func x509svidKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }
