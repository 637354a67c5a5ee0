// Package config owns Warren's runtime configuration: built-in defaults,
// HCL and JSON config files, and command-line flags, merged in a fixed
// precedence (defaults < config files < flags) and validated into a typed
// Config. Every error names where the bad value came from: "file:line: key:
// message" for values read from files, "flag -name: key: message" for flags.
//
// Only the CLI imports this package; components take their own small config
// structs built from a Config. Inside the module, config imports only
// catalog (for its name rules and limits) and api (service definitions are
// api.AgentServiceRegistration values, Consul's wire type).
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/warren-mesh/warren/api"
)

// Mode is the role the process runs in; it picks the defaults.
type Mode int

const (
	// ModeDev is a single-node server and agent in one process.
	ModeDev Mode = iota
	// ModeServer is a control-plane server.
	ModeServer
	// ModeAgent is a per-host agent.
	ModeAgent
)

func (m Mode) String() string {
	switch m {
	case ModeDev:
		return "dev"
	case ModeServer:
		return "server"
	case ModeAgent:
		return "agent"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Ports are the listening ports. DNS, GRPC and HTTPS may be -1
// (disabled).
type Ports struct {
	HTTP, DNS, Server, SerfLAN, GRPC int
	// HTTPS is the HTTPS API's port: -1 (disabled) unless this process has
	// a TLS certificate (tls.defaults.cert_file or auto_encrypt.tls), then
	// 8501 unless set.
	HTTPS int
}

// Config is the validated runtime configuration.
type Config struct {
	Mode       Mode
	NodeName   string
	Datacenter string
	DataDir    string
	LogLevel   string // normalized: debug, info, warn or error
	// LogJSON logs JSON lines instead of text (key log_json, flag
	// -log-json).
	LogJSON         bool
	BindAddr        string
	AdvertiseAddr   string
	ClientAddr      string
	Ports           Ports
	Server          bool
	BootstrapExpect int
	// RetryJoin lists serf LAN addresses to join, as in Consul: each is
	// normalized to host:port, the port defaulting to Ports.SerfLAN.
	RetryJoin     []string
	RetryInterval time.Duration

	// Encrypt is the gossip encryption key: base64 of exactly 32 bytes, as
	// given; "" when gossip is not encrypted. Never log it.
	Encrypt string
	// ReconnectTimeout is how long a failed node stays in the member list
	// before it is reaped (at least 8h; default 72h).
	ReconnectTimeout time.Duration
	// EnableLocalScriptChecks allows script checks (args) in config files.
	EnableLocalScriptChecks bool
	// NodeMeta is the node's metadata, validated with the catalog's limits.
	NodeMeta map[string]string
	// LeaveOnTerminate makes SIGTERM leave the cluster gracefully. Unless
	// set, it is false for servers and true for agents (Consul's defaults).
	LeaveOnTerminate bool

	DNS DNSConfig

	// ACL is access control (acl { ... }): on by default for servers and
	// agents, off in dev mode.
	ACL ACLConfig
	// Enroll is a host enrollment token (key enroll, flag -enroll): an
	// agent presents it once to receive its ACL token, the gossip key,
	// the servers and the CA. A secret: never log it.
	Enroll string
	// Connect is the connect block (see connect.go).
	Connect ConnectConfig

	// MetricsAddr is host:port of a separate HTTP listener serving only
	// /v1/agent/metrics (and pprof when EnableDebug is set); "" for none
	// (key metrics_addr, flag -metrics-addr).
	MetricsAddr string
	// EnableDebug serves net/http/pprof under /debug/pprof/ on the
	// metrics listener, never on the main HTTP API (key enable_debug,
	// flag -enable-debug).
	EnableDebug bool

	// WorkloadSocket is the path of the SPIFFE Workload API's unix socket
	// (key workload_socket, flag -workload-socket): DefaultWorkloadSocket
	// in server and agent modes; "" in dev mode, where the CLI makes a
	// temporary one.
	WorkloadSocket string

	// ProxyDefaults is the proxy config every local sidecar starts from
	// (key proxy_defaults).
	ProxyDefaults ProxyDefaults
	// Limits bound what one client may cost this process (limits { }
	// block and check_output_max_size; config/limits.go).
	Limits Limits
	// CheckOutputMaxSize is the most output a check reports, truncation
	// marker included (key check_output_max_size, Consul's; default and
	// maximum catalog.MaxOutputLen, 4096).
	CheckOutputMaxSize int
	// Audit is the audit log (audit { } block; config/limits.go).
	Audit AuditConfig

	// Services are the service definitions of the config files, in the
	// order they were read; every ID (defaulting to the name) is unique.
	Services []ServiceDefinition

	// Files lists the files that were read, in order (for logging).
	Files []string

	// TLS is the tls stanza and auto_encrypt (config/tls.go).
	TLS TLSConfig
}

// ACLConfig is the acl { } block, Consul's keys.
type ACLConfig struct {
	// Enabled turns ACL enforcement on (acl.enabled).
	Enabled bool
	// DefaultPolicy is "allow" or "deny" (acl.default_policy): what a
	// token may do where no rule says.
	DefaultPolicy string
	// EnableTokenForDNS makes DNS answer with the default token's view
	// (acl.enable_token_for_dns); without it DNS answers everything.
	EnableTokenForDNS bool
	// Tokens are secrets: never log them.
	Tokens ACLTokens
}

// ACLTokens are the acl.tokens { } secrets.
type ACLTokens struct {
	// InitialManagement is made a management token at the first
	// leadership (servers only).
	InitialManagement string
	// Agent is the token the agent calls the servers with.
	Agent string
	// Default is the token of HTTP requests that carry none.
	Default string
}

// DNSConfig is the DNS interface's configuration.
type DNSConfig struct {
	// Domain is the domain Warren answers for, normalized to lower case
	// with a trailing dot (default "warren.").
	Domain string
	// AltDomain is a second domain answered like Domain ("" for none), for
	// example "consul." during a migration. Normalized like Domain.
	AltDomain string
	// Recursors are the upstream resolvers for names outside the domains,
	// each normalized to ip:port (port 53 by default).
	Recursors       []string
	RecursorTimeout time.Duration // default 2s
	NodeTTL         time.Duration // TTL of node answers; default 0
	// ServiceTTL maps a service name to the TTL of its answers. The key
	// "*" is the default for every service; a key ending in "*" is a
	// prefix ("web*").
	ServiceTTL     map[string]time.Duration
	OnlyPassing    bool // omit instances whose checks warn
	UDPAnswerLimit int  // records in a UDP answer; default 3, at least 1
}

// ServiceDefinition is one service block of a config file, in Consul's
// service definition format.
type ServiceDefinition struct {
	// Registration is the service as the HTTP API would take it. ID is
	// filled from Name when not given, and each check's CheckID from
	// Consul's rule ("service:<id>", or "service:<id>:<n>" counting from 1
	// when the service has several checks). Check holds the first check of
	// a `check` key, Checks the others in file order. Durations are the
	// strings of the file, checked to parse.
	Registration api.AgentServiceRegistration
	// Source is where the service is defined: "file:line".
	Source string
}

// DefaultWorkloadSocket is the Workload API socket of server and agent
// modes.
const DefaultWorkloadSocket = "/run/warren/workload.sock"

// host is what the defaults read from the machine; tests replace it.
type host struct {
	hostname      func() (string, error)
	interfaceAddr func() ([]net.Addr, error)
}

func systemHost() host { return host{hostname: os.Hostname, interfaceAddr: net.InterfaceAddrs} }

// Load builds the configuration for mode: defaults, then the config dirs and
// files in the order they were given on the command line, then the flags
// the user set; then it validates the result. f may be nil (defaults only).
// All errors found are returned, joined.
func Load(mode Mode, f *Flags) (*Config, error) {
	return load(mode, f, systemHost())
}

func load(mode Mode, f *Flags, h host) (*Config, error) {
	b := newBuilder(mode, h)
	if f != nil {
		for _, s := range f.sources {
			switch {
			case s.hcl != "":
				b.readHCL(s.path, s.hcl)
			case s.dir:
				b.readDir(s.path)
			default:
				b.readFile(s.path)
			}
		}
		f.apply(b)
	}
	return b.finish(mode, h)
}

// LoadDir reads every *.hcl and *.json file in dir, as `warren validate`
// does, and returns every error found, joined. The mode is ModeServer if the
// files set server = true, else ModeAgent.
func LoadDir(dir string) (*Config, error) {
	return loadDir(dir, systemHost())
}

func loadDir(dir string, h host) (*Config, error) {
	b := newBuilder(ModeAgent, h)
	b.readDir(dir)
	mode := ModeAgent
	if b.cfg.Server {
		mode = ModeServer
	}
	return b.finish(mode, h)
}

// builder accumulates the merged configuration, where each value came from,
// and the errors found so far.
type builder struct {
	cfg Config
	// src maps a key ("bind_addr", "ports.http") to where its value was
	// set: "file:line" or "flag -bind". Keys at their default are absent.
	// Entries of lists and maps are also recorded, as "retry_join[0]" or
	// "node_meta[rack]".
	src map[string]string
	// services are the service definitions read so far, in order.
	services []serviceDecl
	errs     []error
}

func newBuilder(mode Mode, h host) *builder {
	return &builder{cfg: defaults(mode, h), src: map[string]string{}}
}

func defaults(mode Mode, h host) Config {
	c := Config{
		Mode:          mode,
		NodeName:      defaultNodeName(h),
		Datacenter:    "dc1",
		LogLevel:      "info",
		BindAddr:      "0.0.0.0",
		ClientAddr:    "127.0.0.1",
		Ports:         Ports{HTTP: 8500, DNS: 8600, Server: 8300, SerfLAN: 8301, GRPC: 8502, HTTPS: -1},
		Server:        mode == ModeServer || mode == ModeDev,
		RetryInterval: 30 * time.Second,

		ReconnectTimeout: 72 * time.Hour,
		LeaveOnTerminate: mode == ModeAgent,
		DNS: DNSConfig{
			Domain:          "warren.",
			RecursorTimeout: 2 * time.Second,
			UDPAnswerLimit:  3,
		},
		Connect: defaultConnect(),
	}
	c.Limits, c.CheckOutputMaxSize = defaultLimits()
	if mode != ModeDev {
		c.WorkloadSocket = DefaultWorkloadSocket
		// Secure by default: ACLs on, deny what no rule allows.
		c.ACL.Enabled = true
	}
	c.ACL.DefaultPolicy = "deny"
	if mode == ModeDev {
		c.BindAddr = "127.0.0.1"
		c.BootstrapExpect = 1
		c.RetryInterval = time.Second
	}
	return c
}

// defaultNodeName makes the host name into a DNS label.
func defaultNodeName(h host) string {
	name, err := h.hostname()
	if err != nil {
		return "warren"
	}
	name = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(name))
	name = strings.Trim(name, "-")
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	if name == "" {
		return "warren"
	}
	return name
}

// finish validates the merged values, fills the defaults that depend on
// other values, and returns the result.
func (b *builder) finish(mode Mode, h host) (*Config, error) {
	b.cfg.Mode = mode
	if _, set := b.src["leave_on_terminate"]; !set {
		// The default follows the final role, which LoadDir learns from
		// the files.
		b.cfg.LeaveOnTerminate = !b.cfg.Server
	}
	b.validate()
	if len(b.errs) > 0 {
		return nil, errors.Join(b.errs...)
	}
	if b.cfg.AdvertiseAddr == "" {
		b.cfg.AdvertiseAddr = defaultAdvertise(b.cfg.BindAddr, h)
	}
	c := b.cfg
	return &c, nil
}

// defaultAdvertise is the bind address if it names one interface, else the
// host's first private IPv4 address, else loopback.
func defaultAdvertise(bind string, h host) string {
	if ip := net.ParseIP(bind); ip != nil && !ip.IsUnspecified() {
		return bind
	}
	if addrs, err := h.interfaceAddr(); err == nil {
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4.IsPrivate() && !ip4.IsLoopback() {
				return ip4.String()
			}
		}
	}
	return "127.0.0.1"
}

// readDir reads every *.hcl and *.json file in dir in lexical order.
func (b *builder) readDir(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.errs = append(b.errs, fmt.Errorf("config dir %s: %w", dir, err))
		return
	}
	for _, e := range entries { // os.ReadDir sorts by name
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".hcl" && ext != ".json") {
			continue
		}
		b.readFile(filepath.Join(dir, e.Name()))
	}
}

// keyErr formats an error about key; where is "file:line", "flag -x" or
// "" for a default.
func keyErr(where, key, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if where == "" {
		return fmt.Errorf("%s: %s", key, msg)
	}
	return fmt.Errorf("%s: %s: %s", where, key, msg)
}
