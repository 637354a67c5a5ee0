package config

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Limits are the per-client limits of the limits { } block. Keys are
// Consul's where Consul has one (http_max_conns_per_client, rpc_rate,
// rpc_max_burst). A zero cap means no cap.
type Limits struct {
	// HTTPMaxConnsPerClient caps the open HTTP connections of one client
	// IP (default 200, Consul's; 0: no cap). Over it a connection gets
	// 429 and is closed.
	HTTPMaxConnsPerClient int
	// HTTPMaxBlockingQueriesPerClient caps the blocking queries
	// (?index=) one client IP has in flight (default 150; 0: no cap);
	// one more is answered 429 at once.
	HTTPMaxBlockingQueriesPerClient int
	// HTTPMaxBodyBytes is the largest JSON request body (default 1 MiB);
	// a larger one gets 413. Snapshot restores have their own limit.
	HTTPMaxBodyBytes int
	// HTTPReadHeaderTimeout is how long a client may take to send a
	// request's headers (default 10s): the slowloris bound.
	HTTPReadHeaderTimeout time.Duration
	// RPCRate is the sustained rate of RPC calls a server accepts from
	// one agent address, per second (0, the default: no limit, Consul's
	// default); RPCMaxBurst the burst above it (default 1000). Over it a
	// call gets ResourceExhausted.
	RPCRate     float64
	RPCMaxBurst int
}

// AuditConfig is the audit { } block, a simple form of Consul
// Enterprise's:
//
//	audit {
//	  enabled = true
//	  sink "file" { path = "/var/log/warren/audit.json" }
//	}
type AuditConfig struct {
	Enabled bool
	// Path is the file sink's path: absolute, opened O_APPEND, mode 0600.
	Path string
}

// Defaults of the limits.
const (
	DefaultHTTPMaxConnsPerClient           = 200
	DefaultHTTPMaxBlockingQueriesPerClient = 150
	DefaultHTTPMaxBodyBytes                = 1 << 20
	DefaultHTTPReadHeaderTimeout           = 10 * time.Second
	DefaultRPCMaxBurst                     = 1000
	// minCheckOutputMaxSize leaves room for output beside the
	// truncation marker.
	minCheckOutputMaxSize = 64
)

func defaultLimits() (Limits, int) {
	return Limits{
		HTTPMaxConnsPerClient:           DefaultHTTPMaxConnsPerClient,
		HTTPMaxBlockingQueriesPerClient: DefaultHTTPMaxBlockingQueriesPerClient,
		HTTPMaxBodyBytes:                DefaultHTTPMaxBodyBytes,
		HTTPReadHeaderTimeout:           DefaultHTTPReadHeaderTimeout,
		RPCMaxBurst:                     DefaultRPCMaxBurst,
	}, catalog.MaxOutputLen
}

func (b *builder) validateLimits() {
	c := &b.cfg
	l := &c.Limits
	check := func(key string, err error) {
		if err != nil {
			b.errs = append(b.errs, keyErr(b.src[key], key, "%v", err))
		}
	}
	atLeast := func(key string, v, least int, what string) {
		if v < least {
			check(key, fmt.Errorf("must be at least %d%s, got %d", least, what, v))
		}
	}
	atLeast("limits.http_max_conns_per_client", l.HTTPMaxConnsPerClient, 0, " (0: no cap)")
	atLeast("limits.http_max_blocking_queries_per_client", l.HTTPMaxBlockingQueriesPerClient, 0, " (0: no cap)")
	atLeast("limits.http_max_body_bytes", l.HTTPMaxBodyBytes, 1024, "")
	atLeast("limits.rpc_max_burst", l.RPCMaxBurst, 1, "")
	if l.HTTPReadHeaderTimeout <= 0 {
		check("limits.http_read_header_timeout", fmt.Errorf("must be positive, got %s", l.HTTPReadHeaderTimeout))
	}
	if l.RPCRate < 0 {
		check("limits.rpc_rate", fmt.Errorf("must be 0 (no limit) or more, got %g", l.RPCRate))
	}
	if n := c.CheckOutputMaxSize; n < minCheckOutputMaxSize || n > catalog.MaxOutputLen {
		check("check_output_max_size", fmt.Errorf("must be between %d and %d bytes (the catalog's limit), got %d", minCheckOutputMaxSize, catalog.MaxOutputLen, n))
	}
	a := &c.Audit
	switch {
	case a.Enabled && a.Path == "":
		check("audit.enabled", fmt.Errorf(`true, but no sink: add sink "file" { path = "/var/log/warren/audit.json" }`))
	case a.Path != "" && !filepath.IsAbs(a.Path):
		check("audit.sink.file.path", fmt.Errorf("%q is not an absolute path", a.Path))
	case a.Path != "" && filepath.Clean(a.Path) != a.Path:
		check("audit.sink.file.path", fmt.Errorf("%q is not a clean path: write %q", a.Path, filepath.Clean(a.Path)))
	}
}
