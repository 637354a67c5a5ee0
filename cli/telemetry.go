package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/agent"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/httpapi"
)

// disableMetricsEnv, set to 1, runs the process without instrumentation:
// components get a throwaway registry, HTTP and DNS record nothing and
// /v1/agent/metrics answers 404. It exists so that `make bench` can
// measure what instrumentation costs; it is not a supported setting.
const disableMetricsEnv = "WARREN_DISABLE_METRICS"

func metricsDisabled() bool { return os.Getenv(disableMetricsEnv) == "1" }

// httpDNSMetrics is the registerer for the HTTP and DNS hot paths: nil
// (no instrumentation at all) when metrics are disabled.
func (p *process) httpDNSMetrics() prometheus.Registerer {
	if p.noMetrics {
		return nil
	}
	return p.reg
}

// gatherer is what /v1/agent/metrics serves; nil when metrics are
// disabled.
func (p *process) gatherer() prometheus.Gatherer {
	if p.noMetrics {
		return nil
	}
	return p.reg
}

// listenMetrics opens the metrics listener (metrics_addr) if configured:
// /v1/agent/metrics only, plus pprof when enable_debug is set. pprof is
// never served on the main HTTP listener.
func (p *process) listenMetrics() error {
	if p.cfg.MetricsAddr == "" {
		if p.cfg.EnableDebug {
			p.log.Warn("enable_debug is set but metrics_addr is not: pprof is served only on the metrics listener, so it is off")
		}
		return nil
	}
	ln, err := net.Listen("tcp", p.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("listen for metrics on %s: %w", p.cfg.MetricsAddr, err)
	}
	p.metricsLn = ln
	p.metricsHTTP = httpapi.NewMetrics(httpapi.MetricsConfig{
		Gatherer: p.gatherer(), EnableDebug: p.cfg.EnableDebug,
		Logger: p.log.With("subsystem", "http", "listener", "metrics"),
	})
	return nil
}

// serveMetrics serves the metrics listener until ctx is done; without
// one it just waits. The recent logs (withLogRing) are served on it too
// when enable_debug is set.
func (p *process) serveMetrics(ctx context.Context) error {
	if p.metricsLn == nil {
		<-ctx.Done()
		return nil
	}
	if ring := logRingFrom(ctx); ring != nil {
		p.metricsHTTP = httpapi.NewMetrics(httpapi.MetricsConfig{
			Gatherer: p.gatherer(), EnableDebug: p.cfg.EnableDebug, Logs: ring.Bytes,
			Logger: p.log.With("subsystem", "http", "listener", "metrics"),
		})
	}
	p.log.Info("metrics listener", "addr", "http://"+p.metricsLn.Addr().String(), "pprof", p.cfg.EnableDebug)
	return serveHTTP(ctx, p.metricsLn, p.metricsHTTP, p.log.With("listener", "metrics"))
}

// logRing keeps the last max bytes of log output, whole lines, for
// /debug/logs on the metrics listener (`warren debug` collects them).
type logRing struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newLogRing(max int) *logRing { return &logRing{max: max} }

func (r *logRing) Write(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf = append(r.buf, b...)
	if over := len(r.buf) - r.max; over > 0 {
		cut := over
		if i := bytes.IndexByte(r.buf[over:], '\n'); i >= 0 {
			cut = over + i + 1
		}
		r.buf = append(r.buf[:0], r.buf[cut:]...)
	}
	return len(b), nil
}

// Bytes returns a copy of the recent log lines.
func (r *logRing) Bytes() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf)
}

type logRingKey struct{}

// withLogRing hands the daemon's log ring to runProcess.
func withLogRing(ctx context.Context, r *logRing) context.Context {
	return context.WithValue(ctx, logRingKey{}, r)
}

func logRingFrom(ctx context.Context) *logRing {
	r, _ := ctx.Value(logRingKey{}).(*logRing)
	return r
}

// recentLogBytes is how much log output /debug/logs keeps.
const recentLogBytes = 512 << 10

// keepRecentLogs tees the daemon's log into a ring served at /debug/logs
// when enable_debug and metrics_addr are both set; otherwise it returns
// log and ctx unchanged.
func keepRecentLogs(ctx context.Context, cfg *config.Config, log *slog.Logger, level slog.Level) (*slog.Logger, context.Context) {
	if !cfg.EnableDebug || cfg.MetricsAddr == "" {
		return log, ctx
	}
	ring := newLogRing(recentLogBytes)
	tee := slog.New(slog.NewMultiHandler(log.Handler(), slog.NewTextHandler(ring, &slog.HandlerOptions{Level: level})))
	return tee, withLogRing(ctx, ring)
}

// proxyDefaults converts the proxy_defaults stanza for the agent.
func proxyDefaults(d config.ProxyDefaults) agent.ProxyDefaults {
	out := agent.ProxyDefaults{Config: d.Config}
	if d.AccessLogs != nil {
		l := catalog.AccessLogs(*d.AccessLogs)
		out.AccessLogs = &l
	}
	return out
}
