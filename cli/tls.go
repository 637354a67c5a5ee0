package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/warren-mesh/warren/internal/tlscfg"
)

// runTLS is `warren tls ca create` and `warren tls cert create`: an
// operator CA and its server and client certificates, in Consul's file
// names (<domain>-agent-ca.pem, <dc>-server-<domain>-<n>.pem, ...). Keys
// are written 0600; no existing file is ever replaced (a certificate takes
// the next free <n>).
func runTLS(_ context.Context, args []string, stdout, stderr io.Writer) int {
	const usageText = "usage: warren tls ca create [flags] | warren tls cert create -server|-client [flags]"
	if len(args) < 2 || args[1] != "create" {
		fmt.Fprintln(stderr, usageText)
		return ExitUsage
	}
	switch args[0] {
	case "ca":
		return runTLSCACreate(args[2:], stdout, stderr)
	case "cert":
		return runTLSCertCreate(args[2:], stdout, stderr)
	}
	fmt.Fprintln(stderr, usageText)
	return ExitUsage
}

func runTLSCACreate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tls ca create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	days := fs.Int("days", 1825, "days the CA is valid for")
	domain := fs.String("domain", "warren", "the cluster's DNS domain; names the files, and the name constraint with -name-constraint")
	cn := fs.String("common-name", "", "common name of the CA (default \"Warren Agent CA <serial>\")")
	nc := fs.Bool("name-constraint", false, "limit the CA to certificates for -domain and localhost")
	dir := fs.String("dir", ".", "directory to write the files to")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 || *days <= 0 {
		fmt.Fprintln(stderr, "warren tls ca create: takes no arguments; -days must be positive")
		return ExitUsage
	}
	d := strings.TrimSuffix(*domain, ".")
	certPath := filepath.Join(*dir, d+"-agent-ca.pem")
	keyPath := filepath.Join(*dir, d+"-agent-ca-key.pem")
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Lstat(p); err == nil {
			fmt.Fprintf(stderr, "warren tls ca create: %s already exists: not overwriting it\n", p)
			return ExitError
		}
	}
	certPEM, keyPEM, err := tlscfg.NewCA(tlscfg.CAOptions{Domain: d, CommonName: *cn, Days: *days, NameConstraint: *nc})
	if err != nil {
		fmt.Fprintf(stderr, "warren tls ca create: %v\n", err)
		return ExitError
	}
	if err := writePair(certPath, certPEM, keyPath, keyPEM); err != nil {
		fmt.Fprintf(stderr, "warren tls ca create: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stdout, "==> Saved %s\n==> Saved %s\n", certPath, keyPath)
	return ExitOK
}

func runTLSCertCreate(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tls cert create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.Bool("server", false, "create a server certificate (server.<dc>.<domain>)")
	client := fs.Bool("client", false, "create a client certificate (client.<dc>.<domain>)")
	dc := fs.String("dc", "dc1", "datacenter")
	domain := fs.String("domain", "warren", "the cluster's DNS domain")
	caFile := fs.String("ca", "", "CA certificate (default <domain>-agent-ca.pem)")
	keyFile := fs.String("key", "", "CA key (default <domain>-agent-ca-key.pem)")
	days := fs.Int("days", 365, "days the certificate is valid for")
	dir := fs.String("dir", ".", "directory to write the files to")
	var dnsNames, ips stringList
	fs.Var(&dnsNames, "additional-dnsname", "another DNS SAN (repeatable)")
	fs.Var(&ips, "additional-ipaddress", "another IP SAN (repeatable)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *server == *client || fs.NArg() > 0 || *days <= 0 {
		fmt.Fprintln(stderr, "warren tls cert create: give exactly one of -server and -client, no arguments, and a positive -days")
		return ExitUsage
	}
	d := strings.TrimSuffix(*domain, ".")
	if *caFile == "" {
		*caFile = d + "-agent-ca.pem"
	}
	if *keyFile == "" {
		*keyFile = d + "-agent-ca-key.pem"
	}
	var ipList []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			fmt.Fprintf(stderr, "warren tls cert create: -additional-ipaddress %q is not an IP address\n", s)
			return ExitUsage
		}
		ipList = append(ipList, ip)
	}
	caPEM, err := os.ReadFile(*caFile)
	if err != nil {
		fmt.Fprintf(stderr, "warren tls cert create: CA certificate: %v (create one with `warren tls ca create`)\n", err)
		return ExitError
	}
	caKey, err := os.ReadFile(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "warren tls cert create: CA key: %v\n", err)
		return ExitError
	}
	kind := "client"
	if *server {
		kind = "server"
	}
	certPEM, keyPEM, err := tlscfg.NewCert(tlscfg.CertOptions{Server: *server, Datacenter: *dc, Domain: d, Days: *days,
		ExtraDNS: dnsNames, ExtraIPs: ipList, CACertPEM: caPEM, CAKeyPEM: caKey})
	if err != nil {
		fmt.Fprintf(stderr, "warren tls cert create: %v\n", err)
		return ExitError
	}
	// The first <n> whose certificate and key both do not exist.
	for n := 0; n < 10000; n++ {
		base := filepath.Join(*dir, fmt.Sprintf("%s-%s-%s-%d", *dc, kind, d, n))
		certPath, keyPath := base+".pem", base+"-key.pem"
		if exists(certPath) || exists(keyPath) {
			continue
		}
		if *server {
			fmt.Fprintln(stderr, "==> WARNING: a server certificate grants authority to become a server and read all state,\n    CA keys and ACL tokens included. Give it to server hosts only.")
		}
		fmt.Fprintf(stderr, "==> Using %s and %s\n", *caFile, *keyFile)
		if err := writePair(certPath, certPEM, keyPath, keyPEM); err != nil {
			fmt.Fprintf(stderr, "warren tls cert create: %v\n", err)
			return ExitError
		}
		fmt.Fprintf(stdout, "==> Saved %s\n==> Saved %s\n", certPath, keyPath)
		return ExitOK
	}
	fmt.Fprintln(stderr, "warren tls cert create: no free file name")
	return ExitError
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// writePair writes the key (0600) first, then the certificate (0644),
// never replacing a file; a failure removes the key it wrote.
func writePair(certPath string, certPEM []byte, keyPath string, keyPEM []byte) error {
	if err := tlscfg.WriteNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := tlscfg.WriteNew(certPath, certPEM, 0o644); err != nil {
		return errors.Join(err, os.Remove(keyPath))
	}
	return nil
}

// cliTransport is the HTTP transport of the CLI's API client: nil (the
// default transport) unless Consul's TLS variables are set, in their
// WARREN_ or CONSUL_ spelling: *_CACERT (CA file), *_CLIENT_CERT and
// *_CLIENT_KEY (a client certificate, for verify_incoming),
// *_TLS_SERVER_NAME (the name to verify, e.g. localhost when the address
// is an IP the certificate does not carry).
func cliTransport() http.RoundTripper {
	env := func(name string) string {
		for _, p := range []string{"WARREN_", "CONSUL_"} {
			if v := os.Getenv(p + name); v != "" {
				return v
			}
		}
		return ""
	}
	caFile, certFile, keyFile, serverName := env("CACERT"), env("CLIENT_CERT"), env("CLIENT_KEY"), env("TLS_SERVER_NAME")
	if caFile == "" && certFile == "" && serverName == "" {
		return nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return errTransport{fmt.Errorf("CA file (WARREN_CACERT): %w", err)}
		}
		if conf.RootCAs, err = tlscfg.LoadPEM(b); err != nil {
			return errTransport{fmt.Errorf("CA file %s (WARREN_CACERT): %w", caFile, err)}
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return errTransport{fmt.Errorf("client certificate (WARREN_CLIENT_CERT, WARREN_CLIENT_KEY): %w", err)}
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = conf
	return t
}

// errTransport fails every request with the error that made it.
type errTransport struct{ err error }

func (e errTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, e.err }
