package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/warren-mesh/warren/agent"
	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
)

// buildTLS loads the TLS material of cfg into a Configurator; nil when no
// CA is configured (a loopback-only cluster: the server refuses anything
// else).
func buildTLS(cfg *config.Config) (*tlscfg.Configurator, error) {
	t := cfg.TLS
	if !t.Enabled() {
		return nil, nil
	}
	m, err := tlscfg.Load(tlscfg.Files{CAFile: t.CAFile, CAPath: t.CAPath, CertFile: t.CertFile, KeyFile: t.KeyFile}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tlscfg.New(tlscfg.Config{
		Datacenter: cfg.Datacenter, Domain: cfg.DNS.Domain, CAs: m.CAs, Cert: m.Cert,
		AllowAnonymous: cfg.Server && t.AutoEncryptAllowTLS,
	}), nil
}

// listenHTTP opens the plaintext HTTP listener, on loopback only: a client
// address other than loopback needs HTTPS.
func listenHTTP(cfg *config.Config) (net.Listener, error) {
	if cfg.Ports.HTTP <= 0 {
		return nil, nil
	}
	addr := net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTP))
	if ip := net.ParseIP(cfg.ClientAddr); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("plaintext HTTP on %s: refusing a non-loopback address; configure TLS (tls.defaults.cert_file, ports.https) and set ports.http = -1, or bind HTTP to loopback (client_addr = \"127.0.0.1\")", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTP on %s: %w", addr, err)
	}
	return ln, nil
}

// listenHTTPS opens the HTTPS listener on ports.https, nil when disabled.
// limit wraps the TCP listener (connections per client IP) under TLS.
func listenHTTPS(cfg *config.Config, tc *tlscfg.Configurator, limit func(net.Listener) net.Listener, log *slog.Logger) (net.Listener, error) {
	if cfg.Ports.HTTPS <= 0 || tc == nil {
		return nil, nil
	}
	addr := net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.HTTPS))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for HTTPS on %s: %w", addr, err)
	}
	verify := cfg.TLS.HTTPSRequireClientCert()
	conf := tc.HTTPS(verify)
	log.Info("HTTPS API", "addr", ln.Addr().String(), "verify_incoming", verify)
	return tls.NewListener(limit(ln), conf), nil
}

// apiAddr is the address the readiness probe dials: HTTP, else HTTPS (a
// plaintext request to it still gets an answer).
func (p *process) apiAddr() string {
	if p.httpLn != nil {
		return dialable(p.httpLn.Addr().String())
	}
	if p.httpsLn != nil {
		return dialable(p.httpsLn.Addr().String())
	}
	return ""
}

func (p *process) apiURLs() string {
	s := ""
	if p.httpLn != nil {
		s = "http://" + p.httpLn.Addr().String()
	}
	if p.httpsLn != nil {
		if s != "" {
			s += " "
		}
		s += "https://" + p.httpsLn.Addr().String()
	}
	return s
}

// buildAutoEncrypt makes the agent's auto-encrypt loop when
// auto_encrypt.tls is set; it asks the servers over an anonymous TLS pool.
func (p *process) buildAutoEncrypt(nodeID string) {
	if !p.cfg.TLS.AutoEncrypt || p.tls == nil {
		return
	}
	p.autoEncryptPool = rpc.NewTLSPool(p.tls.OutgoingRPCAnonymous())
	// The servers check the agent token: node:write on this node.
	p.autoEncryptPool.SetToken(p.cfg.ACL.Tokens.Agent)
	p.autoEncrypt = agent.NewAutoEncrypt(agent.AutoEncryptConfig{
		TLS: p.tls, Pool: p.autoEncryptPool, Servers: p.agent.Servers,
		Datacenter: p.cfg.Datacenter, Node: p.cfg.NodeName, NodeID: nodeID,
		Logger: p.log.With("subsystem", "auto-encrypt"),
	})
}

// autoEncryptLoops are the loops of auto-encrypt, none when it is off.
func (p *process) autoEncryptLoops() []task.Func {
	if p.autoEncrypt == nil {
		return nil
	}
	return []task.Func{func(ctx context.Context) error {
		defer p.autoEncryptPool.Close()
		return p.autoEncrypt.Run(ctx)
	}}
}
