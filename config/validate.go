package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// validate checks the merged values, normalizes log_level, retry_join,
// the DNS domains and recursors, fills the IDs of service definitions,
// and appends an error for every bad value, naming where it was set.
func (b *builder) validate() {
	c := &b.cfg
	check := func(key string, err error) {
		if err != nil {
			b.errs = append(b.errs, keyErr(b.src[key], key, "%v", err))
		}
	}

	switch {
	case c.Mode == ModeAgent && c.Server:
		check("server", fmt.Errorf("true, but the mode is agent; run a server in server mode"))
	case c.Mode != ModeAgent && !c.Server:
		check("server", fmt.Errorf("false, but the mode is %s", c.Mode))
	}
	check("node_name", dnsLabel(c.NodeName))
	check("datacenter", dnsLabel(c.Datacenter))
	if c.DataDir == "" && c.Mode != ModeDev {
		check("data_dir", fmt.Errorf("required in %s mode: set data_dir in a config file or use -data-dir", c.Mode))
	}

	level, err := logLevel(c.LogLevel)
	check("log_level", err)
	c.LogLevel = level

	check("bind_addr", ipAddr(c.BindAddr))
	check("client_addr", ipAddr(c.ClientAddr))
	if c.AdvertiseAddr != "" {
		err := ipAddr(c.AdvertiseAddr)
		if ip, perr := netip.ParseAddr(c.AdvertiseAddr); perr == nil && ip.IsUnspecified() {
			err = fmt.Errorf("%s is unspecified; advertise an address other nodes can reach", c.AdvertiseAddr)
		}
		check("advertise_addr", err)
	}

	b.validateTLS() // config/tls.go; defaults ports.https
	b.validatePorts()
	b.validateConnect()

	switch {
	case c.BootstrapExpect < 0:
		check("bootstrap_expect", fmt.Errorf("must be 0 or more, got %d", c.BootstrapExpect))
	case !c.Server && c.BootstrapExpect != 0:
		check("bootstrap_expect", fmt.Errorf("only a server may set it; the mode is %s", c.Mode))
	case c.Mode == ModeDev && c.BootstrapExpect != 1:
		check("bootstrap_expect", fmt.Errorf("dev mode runs one server, so it must be 1, got %d", c.BootstrapExpect))
	}

	for i, entry := range c.RetryJoin {
		key := fmt.Sprintf("retry_join[%d]", i)
		addr, err := joinAddr(entry, c.Ports.SerfLAN)
		if err != nil {
			b.errs = append(b.errs, keyErr(b.where(key, "retry_join"), key, "%v", err))
			continue
		}
		c.RetryJoin[i] = addr
	}

	switch c.ACL.DefaultPolicy {
	case "allow", "deny":
	default:
		check("acl.default_policy", fmt.Errorf("%q is not allow or deny", c.ACL.DefaultPolicy))
	}
	if c.Enroll != "" && c.Mode != ModeAgent {
		check("enroll", fmt.Errorf("only an agent enrolls; the mode is %s", c.Mode))
	}
	if c.ACL.Tokens.InitialManagement != "" && !c.Server {
		check("acl.tokens.initial_management", fmt.Errorf("only a server may set it; the mode is %s", c.Mode))
	}

	if c.RetryInterval <= 0 {
		check("retry_interval", fmt.Errorf("must be positive, got %s", c.RetryInterval))
	}

	if c.MetricsAddr != "" {
		check("metrics_addr", listenAddr(c.MetricsAddr))
	}

	if c.WorkloadSocket != "" {
		check("workload_socket", socketPath(c.WorkloadSocket))
	}

	b.validateAgent()
	b.validateDNS()
	b.validateLimits() // config/limits.go
	b.validateServices()
}

// where returns where entry (a list or map entry such as "recursors[1]")
// was set, else where key was.
func (b *builder) where(entry, key string) string {
	if w := b.src[entry]; w != "" {
		return w
	}
	return b.src[key]
}

// minReconnectTimeout is Consul's lower bound for reconnect_timeout.
const minReconnectTimeout = 8 * time.Hour

func (b *builder) validateAgent() {
	c := &b.cfg
	if c.Encrypt != "" {
		// The key is a secret: no message may quote it.
		key, err := base64.StdEncoding.DecodeString(c.Encrypt)
		switch {
		case err != nil:
			b.errs = append(b.errs, keyErr(b.src["encrypt"], "encrypt", "not valid base64 (the value is not shown)"))
		case len(key) != 32:
			b.errs = append(b.errs, keyErr(b.src["encrypt"], "encrypt", "decodes to %d bytes, want 32 (the value is not shown; make one with `openssl rand -base64 32`)", len(key)))
		}
	}
	if c.ReconnectTimeout < minReconnectTimeout {
		b.errs = append(b.errs, keyErr(b.src["reconnect_timeout"], "reconnect_timeout", "must be at least %s, got %s", minReconnectTimeout, c.ReconnectTimeout))
	}
	for _, e := range metaErrs(c.NodeMeta) {
		key := "node_meta" + e.entry
		b.errs = append(b.errs, keyErr(b.where(key, "node_meta"), key, "%s", e.msg))
	}
}

func (b *builder) validateDNS() {
	d := &b.cfg.DNS
	check := func(key string, err error) {
		if err != nil {
			b.errs = append(b.errs, keyErr(b.src[key], key, "%v", err))
		}
	}
	domain, err := dnsDomain(d.Domain)
	check("domain", err)
	if err == nil {
		d.Domain = domain
	}
	if d.AltDomain != "" {
		alt, err := dnsDomain(d.AltDomain)
		check("alt_domain", err)
		if err == nil {
			if alt == d.Domain {
				check("alt_domain", fmt.Errorf("%q is the same as domain", alt))
			}
			d.AltDomain = alt
		}
	}
	for i, r := range d.Recursors {
		key := fmt.Sprintf("recursors[%d]", i)
		addr, err := recursorAddr(r)
		if err != nil {
			b.errs = append(b.errs, keyErr(b.where(key, "recursors"), key, "%v", err))
			continue
		}
		d.Recursors[i] = addr
	}
	if d.RecursorTimeout <= 0 {
		check("dns_config.recursor_timeout", fmt.Errorf("must be positive, got %s", d.RecursorTimeout))
	}
	if d.NodeTTL < 0 {
		check("dns_config.node_ttl", fmt.Errorf("must be 0 or more, got %s", d.NodeTTL))
	}
	for _, name := range sortedKeys(d.ServiceTTL) {
		key := "dns_config.service_ttl[" + name + "]"
		where := b.where(key, "dns_config.service_ttl")
		if prefix := strings.TrimSuffix(name, "*"); prefix != "" && !catalog.ValidDNSLabel(prefix) && !catalog.ValidDNSLabel(prefix+"a") {
			b.errs = append(b.errs, keyErr(where, key, "want a service name, a prefix ending in '*', or \"*\""))
		}
		if ttl := d.ServiceTTL[name]; ttl < 0 {
			b.errs = append(b.errs, keyErr(where, key, "must be 0 or more, got %s", ttl))
		}
	}
	if d.UDPAnswerLimit < 1 {
		check("dns_config.udp_answer_limit", fmt.Errorf("must be at least 1, got %d", d.UDPAnswerLimit))
	}
}

// dnsDomain checks a domain and returns it in lower case with a trailing
// dot.
func dnsDomain(s string) (string, error) {
	name := strings.ToLower(strings.TrimSuffix(s, "."))
	if name == "" {
		return "", fmt.Errorf("%q is not a domain: want e.g. \"warren.\"", s)
	}
	for _, label := range strings.Split(name, ".") {
		if !catalog.ValidDNSLabel(label) {
			return "", fmt.Errorf("%q: %q is not a valid DNS label", s, label)
		}
	}
	if len(name) > 253 {
		return "", fmt.Errorf("%q is longer than 253 characters", s)
	}
	return name + ".", nil
}

// recursorAddr checks a recursor, "ip" or "ip:port" (IPv6 as "[addr]:port"
// or a bare address), and returns it as ip:port, the port defaulting to 53.
func recursorAddr(s string) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), "53"), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q is not an IP address or ip:port", s)
	}
	return ap.String(), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (b *builder) validatePorts() {
	p := b.cfg.Ports
	ports := []struct {
		key      string
		port     int
		disables bool // -1 turns the listener off
	}{
		{"ports.http", p.HTTP, true},
		{"ports.dns", p.DNS, true},
		{"ports.server", p.Server, false},
		{"ports.serf_lan", p.SerfLAN, false},
		{"ports.grpc", p.GRPC, true},
		{"ports.https", p.HTTPS, true},
	}
	used := map[int]string{} // port -> key
	for _, q := range ports {
		switch {
		case q.disables && q.port == -1:
			continue
		case q.port < 1 || q.port > 65535:
			want := "1..65535"
			if q.disables {
				want += ", or -1 to disable"
			}
			b.errs = append(b.errs, keyErr(b.src[q.key], q.key, "port %d out of range (want %s)", q.port, want))
			continue
		}
		if other, dup := used[q.port]; dup {
			also := other
			if w := b.src[other]; w != "" {
				also += " at " + w
			}
			b.errs = append(b.errs, keyErr(b.src[q.key], q.key, "port %d is also used by %s", q.port, also))
			continue
		}
		used[q.port] = q.key
	}
}

func dnsLabel(s string) error {
	if !catalog.ValidDNSLabel(s) {
		return fmt.Errorf("%q is not a valid DNS label (letters, digits and '-', at most 63, not starting or ending with '-')", s)
	}
	return nil
}

func ipAddr(s string) error {
	if _, err := netip.ParseAddr(s); err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	return nil
}

// logLevel normalizes a log level; it accepts Consul's spellings too.
func logLevel(s string) (string, error) {
	switch l := strings.ToLower(s); l {
	case "debug", "info", "warn", "error":
		return l, nil
	case "trace":
		return "debug", nil
	case "warning":
		return "warn", nil
	}
	return "", fmt.Errorf("unknown level %q (want debug, info, warn or error)", s)
}

// joinAddr checks a retry_join entry, "host" or "host:port" (IPv6 as
// "[addr]:port" or a bare address), and returns it as host:port.
func joinAddr(s string, defaultPort int) (string, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return net.JoinHostPort(ip.String(), strconv.Itoa(defaultPort)), nil
	}
	host, port := s, strconv.Itoa(defaultPort)
	if strings.Contains(s, ":") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			return "", fmt.Errorf("%q is not host or host:port", s)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("%q: port %q is not in 1..65535", s, p)
		}
		host, port = h, p
	}
	if _, err := netip.ParseAddr(host); err != nil && !validHostname(host) {
		return "", fmt.Errorf("%q: %q is neither an IP address nor a host name", s, host)
	}
	return net.JoinHostPort(host, port), nil
}

func validHostname(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !catalog.ValidDNSLabel(label) {
			return false
		}
	}
	return true
}

// listenAddr checks a listener address: ip:port (IPv6 as "[addr]:port")
// with a port in 1..65535.
func listenAddr(s string) error {
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return fmt.Errorf("%q is not ip:port with a port in 1..65535", s)
	}
	return nil
}

// socketPath checks a unix socket path: absolute, clean, and short enough
// for sockaddr_un (107 bytes).
func socketPath(s string) error {
	if !filepath.IsAbs(s) || filepath.Clean(s) != s {
		return fmt.Errorf("%q is not a clean absolute path", s)
	}
	if len(s) > 107 {
		return fmt.Errorf("%q is longer than 107 bytes, the limit of a unix socket path", s)
	}
	return nil
}
