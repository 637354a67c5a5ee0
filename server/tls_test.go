package server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

// testPKI is an operator CA with a server and a client certificate.
type testPKI struct {
	caPEM, caKey   []byte
	server, client tls.Certificate
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	var err error
	if p.caPEM, p.caKey, err = tlscfg.NewCA(tlscfg.CAOptions{}); err != nil {
		t.Fatal(err)
	}
	p.server = p.cert(t, true)
	p.client = p.cert(t, false)
	return p
}

func (p *testPKI) cert(t *testing.T, server bool) tls.Certificate {
	t.Helper()
	c, k, err := tlscfg.NewCert(tlscfg.CertOptions{Server: server, CACertPEM: p.caPEM, CAKeyPEM: p.caKey})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(c, k)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

func (p *testPKI) configurator(t *testing.T, cert *tls.Certificate, allowAnon bool) *tlscfg.Configurator {
	t.Helper()
	cas, err := tlscfg.LoadPEM(p.caPEM)
	if err != nil {
		t.Fatal(err)
	}
	return tlscfg.New(tlscfg.Config{Datacenter: "dc1", Domain: "warren.", CAs: cas, Cert: cert, AllowAnonymous: allowAnon})
}

func withTLS(t *testing.T, p *testPKI) servertest.Option {
	return func(c *server.Config) {
		cert := p.server
		c.TLS = p.configurator(t, &cert, true)
	}
}

func register(ctx context.Context, pool *rpc.Pool, addr, node string) error {
	reg := catalog.Registration{Node: catalog.Node{Name: node, Address: "10.0.0.1"},
		Service: &catalog.Service{ID: "web", Name: "web", Port: 80}}
	return pool.Call(ctx, addr, rpc.MethodRegister, &rpc.RegisterRequest{Registration: reg}, &rpc.Empty{})
}

// TestTLSCluster forms a 3-server cluster whose Raft, Join and forwarding
// all run over mutual TLS, registers through a follower with an agent
// certificate, and tries the attacks the RPC port must refuse.
func TestTLSCluster(t *testing.T) {
	pki := newPKI(t)
	c := servertest.New(t, 3, withTLS(t, pki))
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	agentCert := pki.client
	agent := rpc.NewTLSPool(pki.configurator(t, &agentCert, false).OutgoingRPC())
	defer agent.Close()
	if err := register(ctx, agent, follower.Server.Addr(), "n1"); err != nil {
		t.Fatalf("register through a follower over mTLS: %v", err)
	}
	var reply rpc.ReadReply
	if err := agent.Call(ctx, leader.Server.Addr(), rpc.MethodServiceNodes, &rpc.ReadRequest{Service: "web"}, &reply); err != nil || len(reply.ServiceNodes) != 1 {
		t.Fatalf("read back: %v %+v", err, reply.ServiceNodes)
	}

	t.Run("client certificate of another CA", func(t *testing.T) {
		other := newPKI(t)
		cert := other.client
		// It trusts our CA (so it gets as far as presenting its cert).
		conf := pki.configurator(t, &cert, false).OutgoingRPC()
		pool := rpc.NewTLSPool(conf)
		defer pool.Close()
		if err := register(ctx, pool, leader.Server.Addr(), "evil"); err == nil {
			t.Fatal("a client certificate of another CA was accepted")
		}
		// With TLS 1.3 a gRPC client may see the server's alert or only
		// the closed connection (a broken pipe); a reader sees the alert.
		conn, err := tls.Dial("tcp", leader.Server.Addr(), conf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil || !strings.Contains(err.Error(), "bad certificate") {
			t.Fatalf("got %v, want a TLS bad certificate alert", err)
		}
	})

	t.Run("agent certificate calling server-only RPCs", func(t *testing.T) {
		err := agent.Forward(ctx, leader.Server.Addr(), rpc.MethodRegister, &rpc.RegisterRequest{}, &rpc.Empty{})
		if err == nil || !strings.Contains(err.Error(), "needs a server certificate (server.dc1.warren)") {
			t.Fatalf("forwarded call with an agent certificate: %v", err)
		}
		_, err = agent.Join(ctx, leader.Server.Addr(), nil)
		if err == nil || !strings.Contains(err.Error(), "needs a server certificate") {
			t.Fatalf("Join with an agent certificate: %v", err)
		}
	})

	t.Run("agent certificate opening a Raft connection", func(t *testing.T) {
		conf := pki.configurator(t, &agentCert, false).OutgoingRPC()
		conn, err := tls.Dial("tcp", leader.Server.Addr(), conf)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte{0x01})
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
			t.Fatalf("read on a refused Raft connection: %v, want EOF", err)
		}
	})

	t.Run("no client certificate", func(t *testing.T) {
		pool := rpc.NewTLSPool(pki.configurator(t, nil, false).OutgoingRPCAnonymous())
		defer pool.Close()
		err := register(ctx, pool, leader.Server.Addr(), "anon")
		if err == nil || !strings.Contains(err.Error(), "needs a client certificate of the CA") {
			t.Fatalf("anonymous register: %v", err)
		}
	})

	t.Run("plaintext client", func(t *testing.T) {
		pool := rpc.NewPool()
		defer pool.Close()
		err := register(ctx, pool, leader.Server.Addr(), "plain")
		if err == nil || !strings.Contains(err.Error(), "requires TLS") {
			t.Fatalf("plaintext register: %v", err)
		}
		conn, err := net.Dial("tcp", leader.Server.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, _ = conn.Write([]byte{0x01, 0, 0, 0})
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := bufio.NewReader(conn).ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("plaintext Raft: %v, want EOF", err)
		}
	})

	t.Run("client certificate posing as a server", func(t *testing.T) {
		// A fake server presenting an agent certificate: a server (or an
		// agent) dialing it refuses it, whatever CA signed it.
		fake := fakeServer(t, agentCert)
		srvCert := pki.server
		pool := rpc.NewTLSPool(pki.configurator(t, &srvCert, false).OutgoingRPC())
		defer pool.Close()
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		defer ccancel()
		err := register(cctx, pool, fake, "x")
		if err == nil || !strings.Contains(err.Error(), "server.dc1.warren") {
			t.Fatalf("dial a fake server with a client certificate: %v", err)
		}
	})
}

// fakeServer listens with cert and closes every connection after the
// handshake; it returns its address.
func fakeServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.(*tls.Conn).Handshake()
			_ = conn.Close()
		}
	}()
	return ln.Addr().String()
}

// TestPlaintextServerRefusesNonLoopback: without TLS, only loopback.
func TestPlaintextServerRefusesNonLoopback(t *testing.T) {
	_, err := server.New(server.Config{NodeName: "s1", Datacenter: "dc1", DataDir: t.TempDir(), BindAddr: "0.0.0.0:0", AdvertiseAddr: "192.0.2.1:8300"})
	if err == nil || !strings.Contains(err.Error(), "without TLS: refusing a non-loopback address") {
		t.Fatalf("got %v", err)
	}
}
