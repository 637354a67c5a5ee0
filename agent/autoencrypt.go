package agent

import (
	"context"
	crand "crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
)

// AutoEncryptConfig configures an agent's auto-encrypt loop.
type AutoEncryptConfig struct {
	// TLS gets the certificate; its OutgoingRPC fails until the first one.
	TLS *tlscfg.Configurator
	// Pool is an anonymous TLS pool (OutgoingRPCAnonymous): the agent has
	// no certificate to present when it asks for one.
	Pool *rpc.Pool
	// Servers lists server RPC addresses (Agent.Servers).
	Servers    func() []string
	Datacenter string
	Node       string
	NodeID     string
	Logger     *slog.Logger
}

// AutoEncrypt gets the agent's client certificate from the servers'
// built-in CA and renews it at 60-90% of its life (counted from when it
// was asked for), swapping it into the TLS Configurator: open
// connections go on, new ones present the new certificate.
type AutoEncrypt struct {
	cfg AutoEncryptConfig
	// ready is closed once the first certificate is in place.
	ready chan struct{}
}

// NewAutoEncrypt returns the loop; Run runs it.
func NewAutoEncrypt(cfg AutoEncryptConfig) *AutoEncrypt {
	return &AutoEncrypt{cfg: cfg, ready: make(chan struct{})}
}

// Ready is closed once the agent has its first certificate.
func (a *AutoEncrypt) Ready() <-chan struct{} { return a.ready }

// Run obtains and renews the certificate until ctx is done. Failures are
// retried with jittered exponential backoff (100 ms to 30 s).
func (a *AutoEncrypt) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	first := true
	for {
		asked := time.Now()
		notAfter, err := a.obtain(ctx)
		var wait time.Duration
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.cfg.Logger.Warn("auto-encrypt: could not get a client certificate; retrying", "err", err, "in", backoff)
			wait = backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = 100 * time.Millisecond
			if first {
				close(a.ready)
				first = false
			}
			wait = time.Until(connect.RenewAt(asked, notAfter, nil))
			a.cfg.Logger.Info("auto-encrypt: client certificate in place", "expires", notAfter, "renew_in", wait.Round(time.Millisecond))
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// obtain asks a server for the trust domain, then for a certificate.
func (a *AutoEncrypt) obtain(ctx context.Context) (time.Time, error) {
	servers := a.cfg.Servers()
	if len(servers) == 0 {
		return time.Time{}, errNoServers
	}
	var errs []error
	for _, addr := range servers {
		notAfter, err := a.obtainFrom(ctx, addr)
		if err == nil {
			return notAfter, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return time.Time{}, errors.Join(errs...)
}

func (a *AutoEncrypt) obtainFrom(ctx context.Context, addr string) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req := rpc.AutoEncryptSignRequest{Datacenter: a.cfg.Datacenter, Node: a.cfg.Node, NodeID: a.cfg.NodeID}
	var td rpc.AutoEncryptSignReply
	if err := a.cfg.Pool.Call(ctx, addr, rpc.MethodAutoEncryptSign, &req, &td); err != nil {
		return time.Time{}, err
	}
	id := connect.AgentID(td.TrustDomain, a.cfg.Datacenter, a.cfg.NodeID)
	keyPEM, csr, err := connect.NewCSR(id, []string{a.cfg.TLS.ClientName(), "localhost"}, crand.Reader)
	if err != nil {
		return time.Time{}, err
	}
	req.CSR = csr
	var reply rpc.AutoEncryptSignReply
	if err := a.cfg.Pool.Call(ctx, addr, rpc.MethodAutoEncryptSign, &req, &reply); err != nil {
		return time.Time{}, err
	}
	cert, err := tls.X509KeyPair([]byte(reply.CertPEM), []byte(keyPEM))
	if err != nil {
		return time.Time{}, fmt.Errorf("the signed certificate: %w", err)
	}
	if cert.Leaf == nil {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return time.Time{}, err
		}
	}
	a.cfg.TLS.SetCert(&cert)
	return cert.Leaf.NotAfter, nil
}

// Servers lists the known servers' RPC addresses, the local one first.
func (a *Agent) Servers() []string { return a.router.servers() }
