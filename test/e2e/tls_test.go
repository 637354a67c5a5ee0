package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/internal/testutil"
)

// TestTLSCluster runs 3 servers and 2 agents with TLS on every
// control-plane link, from certificates made by `warren tls`: agent a1 has
// a client certificate from the operator CA, a2 gets its own from the
// servers (auto-encrypt). The official Consul client talks HTTPS to them;
// the attacks on the RPC and HTTPS ports are refused.
func TestTLSCluster(t *testing.T) {
	pki := t.TempDir()
	warren := func(args ...string) {
		t.Helper()
		if out, errOut, code := run(t, append(args, "-dir", pki)...); code != 0 {
			t.Fatalf("warren %v: exit %d\n%s%s", args, code, out, errOut)
		}
	}
	warren("tls", "ca", "create")
	ca, caKey := filepath.Join(pki, "warren-agent-ca.pem"), filepath.Join(pki, "warren-agent-ca-key.pem")
	warren("tls", "cert", "create", "-server", "-ca", ca, "-key", caKey)
	warren("tls", "cert", "create", "-client", "-ca", ca, "-key", caKey)
	srvCert, srvKey := filepath.Join(pki, "dc1-server-warren-0.pem"), filepath.Join(pki, "dc1-server-warren-0-key.pem")
	cliCert, cliKey := filepath.Join(pki, "dc1-client-warren-0.pem"), filepath.Join(pki, "dc1-client-warren-0-key.pem")

	writeConf := func(name, body string) string {
		p := filepath.Join(pki, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	serverConf := writeConf("server.hcl", fmt.Sprintf(`tls {
  defaults {
    ca_file         = %q
    cert_file       = %q
    key_file        = %q
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
}
auto_encrypt {
  allow_tls = true
}
`, ca, srvCert, srvKey))
	agentConf := writeConf("agent.hcl", fmt.Sprintf(`tls {
  defaults {
    ca_file   = %q
    cert_file = %q
    key_file  = %q
  }
  https {
    verify_incoming = true
  }
}
`, ca, cliCert, cliKey))
	autoConf := writeConf("auto.hcl", fmt.Sprintf(`tls {
  defaults {
    ca_file = %q
  }
}
auto_encrypt {
  tls = true
}
`, ca))

	c := &testCluster{dir: t.TempDir()}
	t.Cleanup(func() { c.cleanup(t) })
	https := map[string]int{}
	opts := func(name, conf string) nodeOpts {
		https[name] = testutil.FreePort(t)
		return nodeOpts{extra: []string{"-config-file", conf, "-https-port", strconv.Itoa(https[name])}}
	}
	for i := 1; i <= 3; i++ {
		name := fmt.Sprintf("s%d", i)
		c.servers = append(c.servers, c.newNode(t, name, true, nil, opts(name, serverConf)))
	}
	for _, s := range c.servers {
		for _, o := range c.servers {
			if o != s {
				s.args = append(s.args, "-retry-join", o.Serf())
			}
		}
		s.start(t)
	}
	c.waitLeader(t, 60*time.Second)
	a1 := c.addAgent(t, "a1", opts("a1", agentConf))
	a2 := c.addAgent(t, "a2", opts("a2", autoConf))
	c.waitNodesHealthy(t, 30*time.Second, "s1", "s2", "s3", "a1", "a2")

	httpsClient := func(name string, withCert bool) *consulapi.Client {
		t.Helper()
		tc := consulapi.TLSConfig{Address: "localhost", CAFile: ca}
		if withCert {
			tc.CertFile, tc.KeyFile = cliCert, cliKey
		}
		cl, err := consulapi.NewClient(&consulapi.Config{Address: fmt.Sprintf("127.0.0.1:%d", https[name]), Scheme: "https", TLSConfig: tc, Token: clusterMgmtToken})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}

	t.Run("register and read over HTTPS", func(t *testing.T) {
		cl := httpsClient("a1", true)
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080}); err != nil {
			t.Fatalf("register on a1 over HTTPS: %v", err)
		}
		// a2's registration travels over RPC with its auto-encrypt
		// certificate.
		if err := a2.client(t).Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "api-1", Name: "api", Port: 9090}); err != nil {
			t.Fatal(err)
		}
		srv := httpsClient("s1", true)
		waitFor(t, 20*time.Second, func() error {
			if err := inCatalog(srv, "a1", "web-1"); err != nil {
				return err
			}
			return inCatalog(srv, "a2", "api-1")
		})
	})

	t.Run("auto-encrypt agent got its certificate", func(t *testing.T) {
		if !strings.Contains(a2.log.String(), "auto-encrypt: client certificate in place") {
			t.Fatalf("a2 log has no auto-encrypt certificate")
		}
		if !strings.Contains(c.servers[0].log.String()+c.servers[1].log.String()+c.servers[2].log.String(), "signed an agent certificate") {
			t.Fatalf("no server signed a2's certificate")
		}
	})

	t.Run("HTTPS without a client certificate", func(t *testing.T) {
		_, err := httpsClient("s1", false).Agent().Self()
		if err == nil || !strings.Contains(err.Error(), "certificate required") {
			t.Fatalf("got %v, want a TLS certificate required error", err)
		}
	})

	t.Run("plaintext to the TLS RPC port", func(t *testing.T) {
		s1 := c.servers[0]
		conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s1.serverPort))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte{0x01, 0, 0, 0})
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(conn).ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("plaintext Raft connection: %v, want EOF", err)
		}
		waitFor(t, 5*time.Second, func() error {
			if !strings.Contains(s1.log.String(), "refused a plaintext connection: the RPC port requires TLS") {
				return errors.New("no refusal in s1's log")
			}
			return nil
		})
	})

	t.Run("plaintext HTTP stays on loopback", func(t *testing.T) {
		resp, err := http.Get("http://" + a1.HTTP() + "/v1/agent/self")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	})
}

// TestPlaintextOffLoopbackRefused: no TLS, no RPC or HTTP off loopback.
func TestPlaintextOffLoopbackRefused(t *testing.T) {
	dir := t.TempDir()
	ports := func() []string {
		return []string{"-http-port", strconv.Itoa(testutil.FreePort(t)), "-dns-port", "-1", "-grpc-port", "-1",
			"-server-port", strconv.Itoa(testutil.FreePort(t)), "-serf-lan-port", strconv.Itoa(testutil.FreePort(t))}
	}
	_, errOut, code := run(t, append([]string{"server", "-data-dir", filepath.Join(dir, "s"), "-bind", "0.0.0.0", "-advertise", "127.0.0.1"}, ports()...)...)
	if code == 0 || !strings.Contains(errOut, "without TLS: refusing a non-loopback address") {
		t.Fatalf("server on 0.0.0.0 without TLS: exit %d\n%s", code, errOut)
	}
	_, errOut, code = run(t, append([]string{"agent", "-data-dir", filepath.Join(dir, "a"), "-bind", "127.0.0.1", "-client", "0.0.0.0"}, ports()...)...)
	if code == 0 || !strings.Contains(errOut, "plaintext HTTP on 0.0.0.0") {
		t.Fatalf("agent HTTP on 0.0.0.0: exit %d\n%s", code, errOut)
	}
}
