package config

import (
	"net/netip"
	"os"
)

// TLSConfig is Consul's modern tls stanza, the part Warren implements, and
// auto_encrypt. With a CA (ca_file or ca_path) every server RPC
// connection is mutual TLS; without one, a server may only bind RPC to
// loopback (checked when it starts).
type TLSConfig struct {
	// CAFile and CAPath (tls.defaults.ca_file, ca_path) are the operator
	// CA: the issuer of server certificates and of agents' client
	// certificates.
	CAFile, CAPath string
	// CertFile and KeyFile (tls.defaults.cert_file, key_file) are this
	// process's certificate: a server certificate on servers, a client
	// certificate on agents (or none with auto_encrypt.tls).
	CertFile, KeyFile string
	// VerifyIncoming (tls.defaults.verify_incoming) makes the HTTPS API
	// require client certificates of the CA. Server RPC always does.
	VerifyIncoming bool
	// VerifyOutgoing (tls.defaults.verify_outgoing) is accepted for
	// Consul's configs: with a CA, outgoing RPC always uses TLS and
	// verifies the server, so false with a CA is an error.
	VerifyOutgoing bool
	// VerifyServerHostname (tls.internal_rpc.verify_server_hostname) is
	// what the file says; Warren always verifies: a server must present
	// server.<dc>.<domain> (Consul's CVE-2018-19653). false is an error.
	VerifyServerHostname bool
	// HTTPSVerifyIncoming (tls.https.verify_incoming) overrides
	// VerifyIncoming for the HTTPS API; nil if not set.
	HTTPSVerifyIncoming *bool
	// AutoEncrypt (auto_encrypt.tls, agents): get the client certificate
	// from the servers' built-in CA, and renew it.
	AutoEncrypt bool
	// AutoEncryptAllowTLS (auto_encrypt.allow_tls, servers): sign agent
	// certificates (AutoEncrypt.Sign), and accept TLS clients without a
	// certificate for that one call.
	AutoEncryptAllowTLS bool
}

// Enabled reports whether RPC uses TLS (a CA is configured).
func (t TLSConfig) Enabled() bool { return t.CAFile != "" || t.CAPath != "" }

// HTTPSRequireClientCert is the effective verify_incoming of HTTPS.
func (t TLSConfig) HTTPSRequireClientCert() bool {
	if t.HTTPSVerifyIncoming != nil {
		return *t.HTTPSVerifyIncoming
	}
	return t.VerifyIncoming
}

// validateTLS checks the tls and auto_encrypt keys and defaults
// ports.https. The files' content (key matching, expiry, chain) is checked
// when the process starts (internal/tlscfg.Load).
func (b *builder) validateTLS() {
	c := &b.cfg
	t := &c.TLS
	check := func(key string, format string, args ...any) {
		b.errs = append(b.errs, keyErr(b.src[key], key, format, args...))
	}
	for _, f := range []struct{ key, path string }{
		{"tls.defaults.ca_file", t.CAFile}, {"tls.defaults.ca_path", t.CAPath},
		{"tls.defaults.cert_file", t.CertFile}, {"tls.defaults.key_file", t.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			check(f.key, "%v", err)
		}
	}
	if b.src["tls.internal_rpc.verify_server_hostname"] != "" && !t.VerifyServerHostname {
		check("tls.internal_rpc.verify_server_hostname", "cannot be turned off: servers must present server.<dc>.<domain> (Consul's CVE-2018-19653)")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		key := "tls.defaults.cert_file"
		if t.CertFile != "" {
			key = "tls.defaults.key_file"
		}
		check(key, "missing: cert_file and key_file go together")
	}
	if !t.Enabled() {
		for _, k := range []string{"tls.defaults.cert_file", "tls.defaults.verify_outgoing", "auto_encrypt.tls", "auto_encrypt.allow_tls"} {
			if b.src[k] != "" && (k != "tls.defaults.verify_outgoing" || t.VerifyOutgoing) && (k != "auto_encrypt.tls" || t.AutoEncrypt) && (k != "auto_encrypt.allow_tls" || t.AutoEncryptAllowTLS) {
				check(k, "needs the CA: set tls.defaults.ca_file or ca_path")
			}
		}
	} else if b.src["tls.defaults.verify_outgoing"] != "" && !t.VerifyOutgoing {
		check("tls.defaults.verify_outgoing", "false with a CA configured: outgoing RPC always uses TLS and verifies the server; remove the key")
	}
	if t.AutoEncrypt {
		if c.Server {
			check("auto_encrypt.tls", "is for agents; a server uses tls.defaults.cert_file (and auto_encrypt.allow_tls to sign agents' certificates)")
		}
		if t.CertFile != "" {
			check("auto_encrypt.tls", "the servers issue this agent's certificate: remove tls.defaults.cert_file and key_file")
		}
	}
	if t.AutoEncryptAllowTLS && !c.Server {
		check("auto_encrypt.allow_tls", "only servers sign agent certificates; an agent sets auto_encrypt { tls = true }")
	}
	if c.Server && t.Enabled() && t.CertFile == "" {
		check("tls.defaults.cert_file", "a server with a CA needs its server certificate (`warren tls cert create -server`)")
	}
	hasCert := t.CertFile != "" || t.AutoEncrypt
	if b.src["ports.https"] == "" {
		if hasCert && c.Mode != ModeDev {
			c.Ports.HTTPS = 8501
		}
	} else if c.Ports.HTTPS > 0 && !hasCert {
		check("ports.https", "HTTPS needs a certificate: set tls.defaults.cert_file and key_file (or auto_encrypt.tls on an agent)")
	}
	// Plaintext stays on loopback. The listeners check again when they
	// open; here `warren validate` and the start-up error name the file
	// and line.
	if !t.Enabled() && c.Server && !loopbackIP(c.BindAddr) {
		check("bind_addr", "server RPC on %s without TLS: refusing a non-loopback address; configure tls { defaults { ca_file, cert_file, key_file } } (`warren tls ca create`, `warren tls cert create -server`), or bind to 127.0.0.1", c.BindAddr)
	}
	if c.Ports.HTTP > 0 && !loopbackIP(c.ClientAddr) {
		check("client_addr", "plaintext HTTP on %s: refusing a non-loopback address; configure TLS (tls.defaults.cert_file, ports.https) and set ports.http = -1, or keep client_addr on loopback", c.ClientAddr)
	}
	if c.Ports.HTTP == -1 && c.Ports.HTTPS <= 0 {
		check("ports.http", "-1 disables the only HTTP API: enable HTTPS (ports.https with a TLS certificate) first")
	}
}

// loopbackIP reports whether addr is a loopback IP address.
func loopbackIP(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	return err == nil && ip.IsLoopback()
}
