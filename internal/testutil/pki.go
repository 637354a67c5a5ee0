package testutil

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// PKI is a CA with a server and a client certificate made by `warren tls`,
// and the config files that use them.
type PKI struct {
	Pool       *x509.CertPool // the CA
	ServerConf string         // server.hcl
	AgentConf  string         // agent.hcl
}

// MakePKI runs bin's `tls ca create` and `tls cert create -server|-client`
// in dir, and writes server.hcl and agent.hcl there: TLS on RPC and HTTPS
// with those certificates, no plaintext HTTP, then extraHCL. Multi-host
// clusters need it: off loopback, servers refuse plaintext.
func MakePKI(bin, dir, extraHCL string) (*PKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, caKey := filepath.Join(dir, "warren-agent-ca.pem"), filepath.Join(dir, "warren-agent-ca-key.pem")
	for _, args := range [][]string{{"tls", "ca", "create"}, {"tls", "cert", "create", "-server", "-ca", ca, "-key", caKey},
		{"tls", "cert", "create", "-client", "-ca", ca, "-key", caKey}} {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		cmd := exec.CommandContext(ctx, bin, append(args, "-dir", dir)...)
		cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0") // a -race binary otherwise sleeps 1 s at exit
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			return nil, fmt.Errorf("warren %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	conf := func(name, kind string) (string, error) {
		path := filepath.Join(dir, name)
		body := fmt.Sprintf("tls {\n  defaults {\n    ca_file = %q\n    cert_file = %q\n    key_file = %q\n  }\n}\nports {\n  http = -1\n}\n%s",
			ca, filepath.Join(dir, "dc1-"+kind+"-warren-0.pem"), filepath.Join(dir, "dc1-"+kind+"-warren-0-key.pem"), extraHCL)
		return path, os.WriteFile(path, []byte(body), 0o600)
	}
	p := &PKI{Pool: x509.NewCertPool()}
	var err error
	if p.ServerConf, err = conf("server.hcl", "server"); err != nil {
		return nil, err
	}
	if p.AgentConf, err = conf("agent.hcl", "client"); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	if !p.Pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", ca)
	}
	return p, nil
}
