package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/tlscfg"
)

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tlscfg.ParseCertPEM(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestTLSCreate runs `warren tls ca create` and `warren tls cert create`
// as a user would and checks the files: names, modes, SANs, key usages,
// the chain (crypto/x509, and openssl when installed), no overwrite.
func TestTLSCreate(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), append(args, "-dir", dir), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run("tls", "ca", "create"); code != 0 {
		t.Fatalf("ca create: %d %s", code, out)
	}
	ca := filepath.Join(dir, "warren-agent-ca.pem")
	caKey := filepath.Join(dir, "warren-agent-ca-key.pem")
	if code, out := run("tls", "ca", "create"); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("second ca create: %d %s", code, out)
	}
	caArgs := []string{"-ca", ca, "-key", caKey}
	if code, out := run(append([]string{"tls", "cert", "create", "-server", "-dc", "east", "-additional-dnsname", "s1.example.com", "-additional-ipaddress", "10.0.0.1"}, caArgs...)...); code != 0 {
		t.Fatalf("server cert: %d %s", code, out)
	}
	if code, out := run(append([]string{"tls", "cert", "create", "-client", "-dc", "east"}, caArgs...)...); code != 0 {
		t.Fatalf("client cert: %d %s", code, out)
	}
	// A second client certificate takes the next index.
	if code, out := run(append([]string{"tls", "cert", "create", "-client", "-dc", "east"}, caArgs...)...); code != 0 || !strings.Contains(out, "east-client-warren-1.pem") {
		t.Fatalf("second client cert: %d %s", code, out)
	}
	if code, _ := run(append([]string{"tls", "cert", "create", "-dc", "east"}, caArgs...)...); code != ExitUsage {
		t.Fatalf("neither -server nor -client: exit %d", code)
	}
	for _, key := range []string{caKey, filepath.Join(dir, "east-server-warren-0-key.pem"), filepath.Join(dir, "east-client-warren-0-key.pem")} {
		st, err := os.Stat(key)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", key, err, st.Mode().Perm())
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(readCert(t, ca))
	srv := readCert(t, filepath.Join(dir, "east-server-warren-0.pem"))
	if _, err := srv.Verify(x509.VerifyOptions{Roots: pool, DNSName: "server.east.warren", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server cert: %v", err)
	}
	if !slices.Contains(srv.DNSNames, "localhost") || !slices.Contains(srv.DNSNames, "s1.example.com") || len(srv.IPAddresses) != 2 || !srv.IPAddresses[0].Equal([]byte{127, 0, 0, 1}) {
		t.Errorf("server SANs: %v %v", srv.DNSNames, srv.IPAddresses)
	}
	if !slices.Contains(srv.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Error("server cert lacks client auth (servers dial each other)")
	}
	cl := readCert(t, filepath.Join(dir, "east-client-warren-0.pem"))
	if _, err := cl.Verify(x509.VerifyOptions{Roots: pool, DNSName: "client.east.warren", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client cert: %v", err)
	}
	if _, err := cl.Verify(x509.VerifyOptions{Roots: pool, DNSName: "server.east.warren"}); err == nil {
		t.Error("a client certificate verifies as a server")
	}
	if openssl, err := exec.LookPath("openssl"); err == nil {
		for _, f := range []string{"east-server-warren-0.pem", "east-client-warren-0.pem"} {
			out, err := exec.Command(openssl, "verify", "-CAfile", ca, filepath.Join(dir, f)).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "OK") {
				t.Errorf("openssl verify %s: %v %s", f, err, out)
			}
		}
	}

	// Load checks what it loads.
	if _, err := tlscfg.Load(tlscfg.Files{CAFile: ca, CertFile: filepath.Join(dir, "east-server-warren-0.pem"), KeyFile: filepath.Join(dir, "east-server-warren-0-key.pem")}, time.Now()); err != nil {
		t.Errorf("load: %v", err)
	}
	_, err := tlscfg.Load(tlscfg.Files{CAFile: ca, CertFile: filepath.Join(dir, "east-server-warren-0.pem"), KeyFile: filepath.Join(dir, "east-client-warren-0-key.pem")}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "does not match the certificate") {
		t.Errorf("mismatched key: %v", err)
	}
	_, err = tlscfg.Load(tlscfg.Files{CAFile: ca, CertFile: filepath.Join(dir, "east-server-warren-0.pem"), KeyFile: filepath.Join(dir, "east-server-warren-0-key.pem")}, time.Now().AddDate(2, 0, 0))
	if err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("expired: %v", err)
	}
	_, err = tlscfg.Load(tlscfg.Files{CAFile: filepath.Join(dir, "nope.pem")}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "tls.defaults.ca_file") {
		t.Errorf("missing CA: %v", err)
	}
	other := t.TempDir()
	var out bytes.Buffer
	if code := Run(context.Background(), []string{"tls", "ca", "create", "-dir", other}, &out, &out); code != 0 {
		t.Fatal(out.String())
	}
	_, err = tlscfg.Load(tlscfg.Files{CAFile: filepath.Join(other, "warren-agent-ca.pem"), CertFile: filepath.Join(dir, "east-server-warren-0.pem"), KeyFile: filepath.Join(dir, "east-server-warren-0-key.pem")}, time.Now())
	if err == nil || !strings.Contains(err.Error(), "does not chain to the CA") {
		t.Errorf("other CA: %v", err)
	}
}

// TestCLIOverHTTPS: the CLI's API client takes Consul's TLS variables.
func TestCLIOverHTTPS(t *testing.T) {
	dir := t.TempDir()
	caPEM, caKey, err := tlscfg.NewCA(tlscfg.CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvPEM, srvKey, _ := tlscfg.NewCert(tlscfg.CertOptions{Server: true, CACertPEM: caPEM, CAKeyPEM: caKey})
	cliPEM, cliKey, _ := tlscfg.NewCert(tlscfg.CertOptions{CACertPEM: caPEM, CAKeyPEM: caKey})
	srvCert, err := tls.X509KeyPair(srvPEM, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := tlscfg.LoadPEM(caPEM)
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"ok":true}`) }))
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{srvCert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	ts.StartTLS()
	defer ts.Close()

	t.Setenv("WARREN_CACERT", write("ca.pem", caPEM))
	var out map[string]bool
	err = newHTTPClient(ts.URL).do(context.Background(), http.MethodGet, "/v1/agent/self", nil, nil, &out)
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("without a client certificate: %v", err)
	}
	t.Setenv("CONSUL_CLIENT_CERT", write("cli.pem", cliPEM))
	t.Setenv("CONSUL_CLIENT_KEY", write("cli-key.pem", cliKey))
	if err := newHTTPClient(ts.URL).do(context.Background(), http.MethodGet, "/v1/agent/self", nil, nil, &out); err != nil || !out["ok"] {
		t.Fatalf("with a client certificate: %v %v", err, out)
	}
	t.Setenv("WARREN_CACERT", filepath.Join(dir, "missing.pem"))
	if err := newHTTPClient(ts.URL).do(context.Background(), http.MethodGet, "/", nil, nil, nil); err == nil || !strings.Contains(err.Error(), "WARREN_CACERT") {
		t.Fatalf("missing CA file: %v", err)
	}
}
