package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Flags holds the command-line flags registered by RegisterFlags. Only
// flags the user gave override the config files.
type Flags struct {
	// sources lists -config-dir and -config-file values in command-line
	// order; they are read in that order.
	sources []configSource
	values  []*flagValue
}

type configSource struct {
	path string
	dir  bool
	// hcl is an inline fragment (-hcl); path is then its name in errors.
	hcl string
}

// flagNames maps Consul's flag names to config keys.
var flagNames = []struct{ flag, key, usage string }{
	{"bind", "bind_addr", "address for cluster traffic (server RPC, serf)"},
	{"advertise", "advertise_addr", "address other nodes use to reach this one"},
	{"client", "client_addr", "address the HTTP and DNS servers bind to"},
	{"http-port", "ports.http", "HTTP API port"},
	{"dns-port", "ports.dns", "DNS port (-1 disables)"},
	{"server-port", "ports.server", "server RPC port"},
	{"serf-lan-port", "ports.serf_lan", "serf LAN gossip port"},
	{"grpc-port", "ports.grpc", "xDS gRPC port (-1 disables)"},
	{"https-port", "ports.https", "HTTPS API port (-1 disables; default 8501 with a TLS certificate)"},
	{"data-dir", "data_dir", "directory for persistent state"},
	{"node", "node_name", "node name (a DNS label)"},
	{"datacenter", "datacenter", "datacenter name (a DNS label)"},
	{"bootstrap-expect", "bootstrap_expect", "number of servers to wait for before bootstrapping"},
	{"retry-join", "retry_join", "serf LAN address of a node to join, host or host:port; the port defaults to the serf LAN port (repeatable)"},
	{"retry-interval", "retry_interval", "time between join attempts, e.g. 30s"},
	{"log-level", "log_level", "debug, info, warn or error"},
	{"log-json", "log_json", "log JSON lines instead of text"},
	{"encrypt", "encrypt", "gossip encryption key: base64 of 32 bytes"},
	{"domain", "domain", "DNS domain to answer for (default warren.)"},
	{"alt-domain", "alt_domain", "second DNS domain to answer for, e.g. consul."},
	{"recursor", "recursors", "upstream DNS resolver, ip or ip:port (repeatable)"},
	{"enable-local-script-checks", "enable_local_script_checks", "allow script checks in config files"},
	{"node-meta", "node_meta", "node metadata as key:value (repeatable)"},
	{"workload-socket", "workload_socket", "path of the SPIFFE Workload API unix socket (default /run/warren/workload.sock; a temporary one in dev mode)"},
	{"metrics-addr", "metrics_addr", "host:port of a separate listener serving only /v1/agent/metrics (and pprof with -enable-debug)"},
	{"enroll", "enroll", "enrollment token (warren acl enrollment-token create) this agent presents once to join a secure cluster"},
	{"enable-debug", "enable_debug", "serve net/http/pprof under /debug/pprof/ on the metrics listener"},
}

// RegisterFlags registers Consul's configuration flags on fs and returns
// the Flags that Load reads after fs.Parse.
func RegisterFlags(fs *flag.FlagSet) *Flags {
	f := &Flags{}
	fs.Var(sourceFlag{f, true}, "config-dir", "directory of *.hcl and *.json config files, read in lexical order (repeatable)")
	fs.Var(sourceFlag{f, false}, "config-file", "config file, .hcl or .json (repeatable)")
	fs.Var(hclFlag{f}, "hcl", "HCL config fragment, read after the config files and dirs before it, e.g. -hcl 'acl { enabled = false }' (repeatable)")
	for _, n := range flagNames {
		v := &flagValue{name: n.flag, key: n.key}
		f.values = append(f.values, v)
		if _, isBool := fieldPtr(&Config{}, n.key).(*bool); isBool {
			fs.Var(boolFlag{v}, n.flag, n.usage)
			continue
		}
		fs.Var(v, n.flag, n.usage)
	}
	return f
}

// sourceFlag appends -config-dir and -config-file values to one list so
// that their command-line order is kept.
type sourceFlag struct {
	f   *Flags
	dir bool
}

func (s sourceFlag) String() string { return "" }

func (s sourceFlag) Set(v string) error {
	s.f.sources = append(s.f.sources, configSource{path: v, dir: s.dir})
	return nil
}

// hclFlag appends an inline HCL fragment to the sources, as Consul's -hcl.
type hclFlag struct{ f *Flags }

func (hclFlag) String() string { return "" }

func (h hclFlag) Set(v string) error {
	n := 0
	for _, s := range h.f.sources {
		if s.hcl != "" {
			n++
		}
	}
	h.f.sources = append(h.f.sources, configSource{path: fmt.Sprintf("flag -hcl #%d", n+1), hcl: v})
	return nil
}

// flagValue records the raw values of one flag; Load parses them so that
// their errors read like those of config files ("flag -bind: bind_addr: ...").
type flagValue struct {
	name, key string
	vals      []string // every value given, in order
}

func (v *flagValue) String() string {
	if v == nil {
		return ""
	}
	return strings.Join(v.vals, ",")
}

func (v *flagValue) Set(s string) error {
	v.vals = append(v.vals, s)
	return nil
}

// boolFlag is a flagValue that may be given without a value: -flag means
// -flag=true, as for the flag package's own bool flags.
type boolFlag struct{ *flagValue }

func (boolFlag) IsBoolFlag() bool { return true }

// apply overrides b's values with the flags the user gave.
func (f *Flags) apply(b *builder) {
	for _, v := range f.values {
		if len(v.vals) == 0 {
			continue
		}
		where := "flag -" + v.name
		ptr := fieldPtr(&b.cfg, v.key)
		entries, err := assignFlag(ptr, v.vals)
		if err != nil {
			b.errs = append(b.errs, keyErr(where, v.key, "%v", err))
			continue
		}
		b.src[v.key] = where
		for _, e := range entries {
			b.src[v.key+e] = where
		}
	}
}

// assignFlag stores a flag's values in ptr: all of them for a list, the
// last one otherwise; map entries ("key:value") are merged into the map.
// It returns the entries set in a list or map ("[0]", "[key]").
func assignFlag(ptr any, vals []string) ([]string, error) {
	s := vals[len(vals)-1]
	var entries []string
	switch p := ptr.(type) {
	case *[]string:
		*p = append([]string(nil), vals...)
		for i := range vals {
			entries = append(entries, fmt.Sprintf("[%d]", i))
		}
	case *map[string]string:
		for _, kv := range vals {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				return nil, fmt.Errorf("%q: want key:value", kv)
			}
			if *p == nil {
				*p = map[string]string{}
			}
			(*p)[k] = v
			entries = append(entries, "["+k+"]")
		}
	case *string:
		*p = s
	case *bool:
		v, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("want true or false, got %q", s)
		}
		*p = v
	case *int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", s)
		}
		*p = n
	case *time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("invalid duration %q: want e.g. \"30s\" or \"1m\"", s)
		}
		*p = d
	default:
		return nil, fmt.Errorf("internal error: no flag parser for %T", ptr)
	}
	return entries, nil
}
