package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func pemCerts(t *testing.T, s string) []*x509.Certificate {
	t.Helper()
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return out
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
}

func caBundle(t *testing.T, cl *consulapi.Client) *x509bundle.Bundle {
	t.Helper()
	roots, _, err := cl.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	td, err := spiffeid.TrustDomainFromString(roots.TrustDomain)
	if err != nil {
		t.Fatalf("trust domain %q: %v", roots.TrustDomain, err)
	}
	var certs []*x509.Certificate
	for _, r := range roots.Roots {
		certs = append(certs, pemCerts(t, r.RootCertPEM)...)
	}
	return x509bundle.FromX509Authorities(td, certs)
}

// TestConnectAgainstDev drives the mesh identity of `warren dev` with the
// official Consul client: CA roots, leaf certificates from the agent
// (verified with go-spiffe and used for an mTLS handshake authorized by
// SPIFFE ID), leaf renewal seen by a blocking query, intentions (allow by
// default in dev, an explicit deny) through the client and the CLI, and
// /v1/agent/connect/authorize.
func TestConnectAgainstDev(t *testing.T) {
	p := startDev(t, "-log-level", "debug")
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	var roots *consulapi.CARootList
	waitFor(t, 10*time.Second, func() error {
		r, _, err := cl.Connect().CARoots(nil)
		if err != nil {
			return err
		}
		if len(r.Roots) == 0 {
			return errors.New("no root yet")
		}
		roots = r
		return nil
	})
	if !strings.HasSuffix(roots.TrustDomain, ".warren") || roots.Roots[0].ID != roots.ActiveRootID {
		t.Fatalf("roots: %+v", roots)
	}
	// Short leaves, so a renewal happens during the test.
	if _, err := cl.Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "4s"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"web", "db"} {
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: svc + "-1", Name: svc, Port: 8080}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := cl.Agent().ConnectCALeaf("nothere", nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("leaf of an unknown service: %v, want 404", err)
	}
	web, wmeta, err := cl.Agent().ConnectCALeaf("web", nil)
	if err != nil {
		t.Fatal(err)
	}
	db, _, err := cl.Agent().ConnectCALeaf("db-1", nil) // by ID works too
	if err != nil {
		t.Fatal(err)
	}
	if web.Service != "web" || !strings.HasSuffix(web.ServiceURI, "/svc/web") || web.PrivateKeyPEM == "" || web.ValidBefore.Sub(web.ValidAfter) > 2*time.Minute {
		t.Fatalf("web leaf: %+v", web)
	}
	bundle := caBundle(t, cl)
	id, _, err := x509svid.Verify(pemCerts(t, web.CertPEM), bundle)
	if err != nil || id.String() != web.ServiceURI {
		t.Fatalf("verify web leaf: %v %v", id, err)
	}
	handshake(t, web, db, bundle)

	// The agent renews before expiry; a blocking query sees the new leaf.
	start := time.Now()
	next, nmeta, err := cl.Agent().ConnectCALeaf("web", &consulapi.QueryOptions{WaitIndex: wmeta.LastIndex, WaitTime: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if next.SerialNumber == web.SerialNumber || nmeta.LastIndex == wmeta.LastIndex {
		t.Fatalf("blocking leaf query returned the same leaf after %s", time.Since(start))
	}
	if time.Now().After(web.ValidBefore) {
		t.Fatalf("renewed only after expiry")
	}
	handshake(t, next, db, caBundle(t, cl))

	// Intentions: allow by default in dev; an explicit deny wins.
	ok, _, err := cl.Connect().IntentionCheck(&consulapi.IntentionCheck{Source: "web", Destination: "db"}, nil)
	if err != nil || !ok {
		t.Fatalf("dev default should allow: %v %v", ok, err)
	}
	if _, err := cl.Connect().IntentionUpsert(&consulapi.Intention{SourceName: "web", DestinationName: "db", Action: consulapi.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := cl.Connect().IntentionCheck(&consulapi.IntentionCheck{Source: "web", Destination: "db"}, nil); err != nil || ok {
		t.Fatalf("deny intention: %v %v", ok, err)
	}
	auth, err := cl.Agent().ConnectAuthorize(&consulapi.AgentAuthorizeParams{Target: "db", ClientCertURI: web.ServiceURI})
	if err != nil || auth.Authorized || !strings.Contains(auth.Reason, "web => db (deny)") {
		t.Fatalf("authorize web -> db: %+v %v", auth, err)
	}
	auth, err = cl.Agent().ConnectAuthorize(&consulapi.AgentAuthorizeParams{Target: "web", ClientCertURI: db.ServiceURI})
	if err != nil || !auth.Authorized {
		t.Fatalf("authorize db -> web: %+v %v", auth, err)
	}
	other := strings.Replace(db.ServiceURI, roots.TrustDomain, "other.warren", 1)
	if auth, err = cl.Agent().ConnectAuthorize(&consulapi.AgentAuthorizeParams{Target: "web", ClientCertURI: other}); err != nil || auth.Authorized {
		t.Fatalf("authorize from a foreign trust domain: %+v %v", auth, err)
	}

	// The CLI.
	cli := func(args ...string) (string, int) {
		cmd := exec.Command(warrenBin, append([]string{"intention"}, args...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return out.String(), code
	}
	addr := "-http-addr=" + p.HTTP
	if out, code := cli("create", addr, "-deny", "api", "*"); code != 0 {
		t.Fatalf("intention create: %d %s", code, out)
	}
	if out, code := cli("check", addr, "api", "db"); code != 2 || !strings.Contains(out, "Denied") {
		t.Fatalf("intention check api db: %d %s", code, out)
	}
	if out, code := cli("check", addr, "db", "web"); code != 0 || !strings.Contains(out, "Allowed") {
		t.Fatalf("intention check db web: %d %s", code, out)
	}
	out, code := cli("list", addr)
	if code != 0 || !strings.Contains(out, "api") || !strings.Contains(out, "web") {
		t.Fatalf("intention list: %d %s", code, out)
	}
	if out, code := cli("delete", addr, "api", "*"); code != 0 {
		t.Fatalf("intention delete: %d %s", code, out)
	}
	if out, code := cli("create", addr, "-allow", "bad name", "db"); code != 1 || !strings.Contains(out, "400") || !strings.Contains(out, "source") {
		t.Fatalf("intention create with a bad name: %d %s", code, out)
	}
	if out, code := cli("create", addr, "web"); code != 2 {
		t.Fatalf("intention create with one name: %d %s", code, out)
	}

	// No key material in the log, at debug level.
	p.stop(t)
	if strings.Contains(p.log.String(), "PRIVATE KEY") {
		t.Fatal("the log holds a private key")
	}
}

// handshake completes mutual TLS between a server holding srv's leaf and
// a client holding cli's, each authorizing the other's SPIFFE ID.
func handshake(t *testing.T, srv, cli *consulapi.LeafCert, b *x509bundle.Bundle) {
	t.Helper()
	parse := func(l *consulapi.LeafCert) (*x509svid.SVID, spiffeid.ID) {
		s, err := x509svid.Parse([]byte(l.CertPEM), []byte(l.PrivateKeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		return s, s.ID
	}
	srvSVID, srvID := parse(srv)
	cliSVID, cliID := parse(cli)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(srvSVID, b, tlsconfig.AuthorizeID(cliID)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		_, err = io.WriteString(c, "hi")
		errc <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(cliSVID, b, tlsconfig.AuthorizeID(srvID)))
	if err != nil {
		t.Fatalf("mTLS %s -> %s: %v", cliID, srvID, err)
	}
	defer c.Close()
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(fmt.Errorf("server side: %w", err))
	}
}
