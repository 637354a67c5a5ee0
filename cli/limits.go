package cli

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/internal/audit"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/internal/logging"
)

// Limits and the audit log (issue 8): what build and runProcess wire.

// limitHTTPListener caps the connections per client IP of the HTTP API
// listener (limits.http_max_conns_per_client). Wrap the raw TCP listener,
// before any TLS.
func (p *process) limitHTTPListener(ln net.Listener) net.Listener {
	return limits.LimitConnsPerIP(ln, p.cfg.Limits.HTTPMaxConnsPerClient, p.rejections)
}

// openAudit opens the audit log file when audit.enabled is set, so that an
// unwritable path stops the start.
func (p *process) openAudit() error {
	if !p.cfg.Audit.Enabled {
		return nil
	}
	l, err := audit.Open(audit.Config{Path: p.cfg.Audit.Path, Registerer: p.reg, Logger: p.log.With("subsystem", "audit")})
	if err != nil {
		return err
	}
	p.audit = l
	return nil
}

// auditor is the audit log as the HTTP API takes it: nil when off.
func (p *process) auditor() httpapi.Auditor {
	if p.audit == nil {
		return nil
	}
	return p.audit
}

// runAudit runs the audit log's writer until stop is called; stop waits
// for it to flush and close the file. The writer outlives the HTTP
// server, so the writes answered during shutdown are recorded.
func (p *process) runAudit() (stop func()) {
	if p.audit == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := p.audit.Run(ctx); err != nil {
			p.log.Error("audit log stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// httpLimits are the http.Server settings that bound slow or greedy
// clients.
type httpLimits struct {
	ReadHeaderTimeout time.Duration
}

func (p *process) httpLimits() httpLimits {
	return httpLimits{ReadHeaderTimeout: p.cfg.Limits.HTTPReadHeaderTimeout}
}

// newHTTPServer is the HTTP API's server. Slowloris protection: a client
// has ReadHeaderTimeout to send its headers (64 KiB at most) and an idle
// keep-alive connection is closed after 2 minutes; there is no read or
// write timeout, which would cut blocking queries (a slow body is bounded
// by the per-IP connection cap instead).
func newHTTPServer(ctx context.Context, h http.Handler, lim httpLimits, log *slog.Logger) *http.Server {
	if lim.ReadHeaderTimeout <= 0 {
		lim.ReadHeaderTimeout = config.DefaultHTTPReadHeaderTimeout
	}
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          logging.StdLogger(log, slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
}
