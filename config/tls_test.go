package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad_TLSErrors(t *testing.T) {
	ca, _ := filepath.Abs("testdata/tls/warren-agent-ca.pem")
	cert, _ := filepath.Abs("testdata/tls/east-1-server-warren-0.pem")
	tests := []struct {
		name, mode, body, want string
	}{
		{"missing file", "server", `tls {
  defaults { ca_file = "/nonexistent/ca.pem" }
}`,
			"tls.hcl:2: tls.defaults.ca_file: stat /nonexistent/ca.pem: no such file or directory"},
		{"hostname off", "server", `tls {
  internal_rpc { verify_server_hostname = false }
}`, "tls.hcl:2: tls.internal_rpc.verify_server_hostname: cannot be turned off"},
		{"cert without key", "server", `tls {
defaults {
  ca_file = "` + ca + `"
  cert_file = "` + cert + `"
}
}`, "tls.defaults.key_file: missing"},
		{"cert without CA", "agent", `tls {
defaults {
  cert_file = "` + cert + `"
  key_file = "` + cert + `"
}
}`, "tls.hcl:3: tls.defaults.cert_file: needs the CA"},
		{"server without cert", "server", `tls {
  defaults { ca_file = "` + ca + `" }
}`,
			"tls.defaults.cert_file: a server with a CA needs its server certificate"},
		{"auto_encrypt on a server", "server", `auto_encrypt { tls = true }`, "auto_encrypt.tls: is for agents"},
		{"allow_tls on an agent", "agent", `tls {
  defaults { ca_file = "` + ca + `" }
}
auto_encrypt { allow_tls = true }`, "tls.hcl:4: auto_encrypt.allow_tls: only servers sign"},
		{"https without cert", "agent", `ports { https = 8501 }`, "tls.hcl:1: ports.https: HTTPS needs a certificate"},
		{"verify_outgoing false", "agent", `tls {
defaults {
  ca_file = "` + ca + `"
  verify_outgoing = false
}
}`, "tls.hcl:4: tls.defaults.verify_outgoing: false with a CA configured"},
		{"unknown key", "agent", `tls {
  defaults { ca_fiel = "x" }
}`, "tls.hcl:2: tls.defaults.ca_fiel: unknown key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, filepath.Join(dir, "tls.hcl"), tc.body)
			mode := ModeAgent
			if tc.mode == "server" {
				mode = ModeServer
			}
			_, err := load(mode, parseFlags(t, "-data-dir", dir, "-config-file", path), testHost())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, strings.ReplaceAll(tc.want, "tls.hcl", path))
			}
		})
	}
}

func TestLoad_TLSAutoEncryptAgentGetsHTTPS(t *testing.T) {
	ca, _ := filepath.Abs("testdata/tls/warren-agent-ca.pem")
	dir := t.TempDir()
	path := writeFile(t, filepath.Join(dir, "tls.hcl"), `tls {
  defaults { ca_file = "`+ca+`" }
}
auto_encrypt { tls = true }`)
	c, err := load(ModeAgent, parseFlags(t, "-data-dir", dir, "-config-file", path), testHost())
	if err != nil {
		t.Fatal(err)
	}
	if !c.TLS.Enabled() || !c.TLS.AutoEncrypt || c.Ports.HTTPS != 8501 {
		t.Fatalf("got TLS %+v, https port %d", c.TLS, c.Ports.HTTPS)
	}
}
