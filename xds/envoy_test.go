package xds_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"
	"github.com/warren-mesh/warren/xds"
)

const (
	envoyTD = "11111111-2222-3333-4444-555555555555.warren"
	envoyDC = "dc1"
)

// TestEnvoySidecars runs two real Envoy sidecars against the Server: web's
// sidecar reaches api's through its upstream listener over mTLS, then a
// deny intention on api cuts the connection. Envoy cannot be installed on
// CI, so it runs only where an envoy binary is on PATH.
func TestEnvoySidecars(t *testing.T) {
	envoyBin, err := exec.LookPath("envoy")
	if err != nil {
		t.Skip("SKIPPED: no envoy binary on PATH; the Envoy end-to-end test needs one (golden files and the grpc-go client test cover the resources without it)")
	}
	s, xdsAddr := startXDS(t)
	ca := newTestCA(t)

	// api's application: a line echo server.
	apiApp := listenLocal(t)
	go serveEcho(apiApp)
	apiPublic, webUpstream := testutil.FreePort(t), testutil.FreePort(t)

	api := &xds.SidecarInput{
		ProxyID: "api-sidecar-proxy", Service: "api",
		PublicAddress: "127.0.0.1", PublicPort: apiPublic,
		LocalServicePort: apiApp.Addr().(*net.TCPAddr).Port,
		TrustDomain:      envoyTD, Datacenter: envoyDC,
		RootsPEM:   []string{ca.rootPEM},
		Intentions: []xds.Intention{{Source: "web", Allow: true}},
	}
	api.LeafCertPEM, api.LeafKeyPEM = ca.leaf(t, "api")
	web := &xds.SidecarInput{
		ProxyID: "web-sidecar-proxy", Service: "web",
		PublicAddress: "127.0.0.1", PublicPort: testutil.FreePort(t),
		LocalServicePort: testutil.FreePort(t), // web's own app is not needed here
		TrustDomain:      envoyTD, Datacenter: envoyDC,
		RootsPEM: []string{ca.rootPEM},
		Upstreams: []xds.Upstream{{
			Name: "api", LocalBindPort: webUpstream,
			SpiffeID:  xds.SpiffeID(envoyTD, envoyDC, "api"),
			Endpoints: []xds.Endpoint{{Address: "127.0.0.1", Port: apiPublic, Node: "node1"}},
		}},
	}
	web.LeafCertPEM, web.LeafKeyPEM = ca.leaf(t, "web")
	setSidecar(t, s, api)
	setSidecar(t, s, web)
	waitListeners(t, startEnvoy(t, envoyBin, xdsAddr, api), xds.PublicListener("127.0.0.1", apiPublic))
	waitListeners(t, startEnvoy(t, envoyBin, xdsAddr, web),
		xds.PublicListener("127.0.0.1", web.PublicPort), xds.UpstreamListener("api", "127.0.0.1", webUpstream))

	upstream := fmt.Sprintf("127.0.0.1:%d", webUpstream)
	eventually(t, 15*time.Second, "web reaches api through both sidecars", func() error { return echo(upstream) })

	api.Intentions = []xds.Intention{{Source: "web", Allow: false}}
	setSidecar(t, s, api)
	eventually(t, 5*time.Second, "a deny intention cuts web off", func() error {
		if echo(upstream) == nil {
			return fmt.Errorf("web still reaches api")
		}
		return nil
	})
}

func setSidecar(t *testing.T, s *xds.Server, in *xds.SidecarInput) {
	t.Helper()
	res, err := xds.BuildSidecar(in)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetSnapshot(context.Background(), in.ProxyID, res); err != nil {
		t.Fatal(err)
	}
}

// startEnvoy runs envoy with the bootstrap EnvoyBootstrap writes and
// returns its admin base URL.
func startEnvoy(t *testing.T, bin, xdsAddr string, in *xds.SidecarInput) string {
	t.Helper()
	adminPort := testutil.FreePort(t)
	b, err := xds.EnvoyBootstrap(xdsAddr, in.ProxyID, in.Service, adminPort, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "bootstrap.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "envoy.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path, "--use-dynamic-base-id", "--log-level", "info")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logFile.Name())
			t.Logf("envoy %s log:\n%s", in.ProxyID, out)
		}
	})
	return fmt.Sprintf("http://127.0.0.1:%d", adminPort)
}

// waitListeners polls /config_dump until the named listeners are active.
func waitListeners(t *testing.T, admin string, names ...string) {
	t.Helper()
	eventually(t, 15*time.Second, "listeners "+strings.Join(names, ", ")+" in "+admin+"/config_dump", func() error {
		resp, err := http.Get(admin + "/config_dump?resource=dynamic_listeners")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		for _, n := range names {
			if !strings.Contains(string(body), `"name": "`+n+`"`) || !strings.Contains(string(body), "active_state") {
				return fmt.Errorf("listener %q not active yet", n)
			}
		}
		return nil
	})
}

func eventually(t *testing.T, within time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// echo sends a line through addr and expects it back.
func echo(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return fmt.Errorf("echo returned %q", line)
	}
	return nil
}

func serveEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func listenLocal(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// testCA is a throwaway mesh CA issuing SPIFFE leaf certificates, standing
// in for connect's CA.
type testCA struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	rootPEM string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Warren Test CA"},
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: envoyTD}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, rootPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))}
}

func (ca *testCA) leaf(t *testing.T, service string) (certPEM, keyPEM string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := url.Parse(xds.SpiffeID(envoyTD, envoyDC, service))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: service},
		URIs:         []*url.URL{id},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}
