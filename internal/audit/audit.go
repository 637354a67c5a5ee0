// Package audit writes Warren's audit log: one JSON line per audited event
// (every HTTP write, refused enrollments, ...) to a file, through one
// goroutine that owns the file. It records who (the token accessor ID,
// never a secret), what (method and route pattern, never the raw URL,
// whose query may hold a token), when, from where, and the result.
//
// Durability: each batch of lines is one write(2) on a file opened
// O_APPEND, so a line reaches the kernel as soon as the writer goroutine
// takes it off the queue; the file is fsynced at most once a second when
// something was written, and at Close. A kill -9 therefore loses at most
// the events still queued (normally none: the writer drains the queue as
// it fills); a machine crash loses at most the last second. A line is
// never cut by a kill -9 of the process (the kernel completes a write it
// started); after a machine crash the last line may be partial, and
// readers should skip a last line that does not parse.
//
// Back-pressure: the queue holds QueueSize events. When it is full, Audit
// waits up to MaxWait for room, then drops the event and counts it in
// warren_audit_dropped_total: an audit log must not become a way to stall
// the API, and the metric makes the loss visible.
//
// Any package may import it; the CLI opens the Log and runs it.
package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/acl"
)

// Anonymous is the accessor recorded when a request carried no identity
// (ACLs off, or the request resolved to no token).
const Anonymous = "anonymous"

// Event is one audited action. Zero fields are left out of the line.
type Event struct {
	// Time defaults to when Audit was called. Written in RFC 3339 with
	// nanoseconds, UTC.
	Time time.Time
	// Type says what kind of event this is: "http" for API writes;
	// others name themselves ("enrollment").
	Type string
	// RequestID ties the line to the X-Request-Id of the response.
	RequestID string
	// AccessorID is the token's public ID. Empty: taken from the context's
	// acl.Identity, else Anonymous.
	AccessorID string
	ClientAddr string
	Method     string
	// Route is the route pattern ("PUT /v1/agent/service/register"),
	// never the raw path and query.
	Route    string
	Status   int
	Duration time.Duration
	// Result is "ok", "refused", or an error class; Detail says more, and
	// must never hold a secret.
	Result string
	Detail string
}

// line is an Event as written.
type line struct {
	Timestamp  string   `json:"timestamp"`
	Type       string   `json:"type"`
	RequestID  string   `json:"request_id,omitempty"`
	AccessorID string   `json:"accessor_id"`
	ClientAddr string   `json:"client_addr,omitempty"`
	Method     string   `json:"method,omitempty"`
	Route      string   `json:"route,omitempty"`
	Status     int      `json:"status,omitempty"`
	DurationMS *float64 `json:"duration_ms,omitempty"`
	Result     string   `json:"result,omitempty"`
	Detail     string   `json:"detail,omitempty"`
}

// Config configures a Log.
type Config struct {
	// Path of the log file; its directory is created 0700 if missing and
	// the file 0600.
	Path string
	// QueueSize is how many events may wait for the writer (default
	// 4096).
	QueueSize int
	// MaxWait is how long Audit waits for room in a full queue before it
	// drops the event (default 50 ms; negative: never wait).
	MaxWait time.Duration
	// SyncInterval is the most time between a write and its fsync
	// (default 1 s).
	SyncInterval time.Duration
	// Registerer gets warren_audit_events_total and
	// warren_audit_dropped_total; nil discards them.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// Log is an open audit log. Audit may be called from any goroutine; Run
// owns the file. A nil *Log audits nothing.
type Log struct {
	cfg     Config
	f       *os.File
	queue   chan []byte
	log     *slog.Logger
	events  prometheus.Counter
	dropped prometheus.Counter
	// nDropped and nWritten mirror the counters, for Dropped and Written.
	nDropped atomic.Int64
	nWritten atomic.Int64

	mu      sync.RWMutex // guards closing against senders
	closing bool
	done    chan struct{}
}

// Open opens (creating it if need be) the log file for appending and
// checks it is writable. Run must then be called to write events.
func Open(cfg Config) (*Log, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: no file path")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 4096
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 50 * time.Millisecond
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(cfg.Path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: create directory of %s: %w", cfg.Path, err)
	}
	f, err := os.OpenFile(cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: open %s: %w", cfg.Path, err)
	}
	l := &Log{cfg: cfg, f: f, queue: make(chan []byte, cfg.QueueSize), log: cfg.Logger, done: make(chan struct{})}
	l.events = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "audit", Name: "events_total",
		Help: "Audit events written to the audit log."})
	l.dropped = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "audit", Name: "dropped_total",
		Help: "Audit events dropped because the writer's queue stayed full, or after shutdown."})
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(l.events); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
		if err := cfg.Registerer.Register(l.dropped); err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("audit: register metrics: %w", err)
		}
	}
	return l, nil
}

// Audit queues e. It never blocks longer than MaxWait.
func (l *Log) Audit(ctx context.Context, e Event) {
	if l == nil {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.AccessorID == "" {
		e.AccessorID = Anonymous
		if id := acl.FromContext(ctx); id != nil && id.AccessorID != "" {
			e.AccessorID = id.AccessorID
		}
	}
	b, err := encode(e)
	if err != nil {
		l.log.Error("audit: encode event", "err", err)
		l.drop()
		return
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closing {
		l.drop()
		return
	}
	select {
	case l.queue <- b:
		return
	default:
	}
	if l.cfg.MaxWait < 0 {
		l.drop()
		return
	}
	t := time.NewTimer(l.cfg.MaxWait)
	defer t.Stop()
	select {
	case l.queue <- b:
	case <-t.C:
		l.drop()
	case <-ctx.Done():
		l.drop()
	}
}

func encode(e Event) ([]byte, error) {
	typ := e.Type
	if typ == "" {
		typ = "http"
	}
	ln := line{
		Timestamp: e.Time.UTC().Format(time.RFC3339Nano), Type: typ, RequestID: e.RequestID,
		AccessorID: e.AccessorID, ClientAddr: e.ClientAddr, Method: e.Method, Route: e.Route,
		Status: e.Status, Result: e.Result, Detail: e.Detail,
	}
	if e.Duration > 0 {
		ms := float64(e.Duration.Microseconds()) / 1000
		ln.DurationMS = &ms
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode appends the newline
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ln); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Run writes queued events until ctx is done, then writes what is left,
// fsyncs and closes the file. It returns a write error (the log is then
// closed and later events are dropped and counted).
func (l *Log) Run(ctx context.Context) error {
	defer close(l.done)
	syncT := time.NewTicker(l.cfg.SyncInterval)
	defer syncT.Stop()
	dirty := false
	var batch []byte
	for {
		select {
		case b := <-l.queue:
			batch = append(batch[:0], b...)
			batch = l.drain(batch)
			if err := l.write(batch); err != nil {
				l.shut()
				_ = l.f.Close()
				return err
			}
			dirty = true
		case <-syncT.C:
			if dirty {
				if err := l.f.Sync(); err != nil {
					l.log.Warn("audit: fsync", "path", l.cfg.Path, "err", err)
				}
				dirty = false
			}
		case <-ctx.Done():
			l.shut()
			batch = l.drain(batch[:0])
			err := l.write(batch)
			if serr := l.f.Sync(); err == nil && serr != nil {
				err = fmt.Errorf("audit: fsync %s: %w", l.cfg.Path, serr)
			}
			if cerr := l.f.Close(); err == nil && cerr != nil {
				err = fmt.Errorf("audit: close %s: %w", l.cfg.Path, cerr)
			}
			return err
		}
	}
}

// drain appends every queued event to batch, up to 1 MiB.
func (l *Log) drain(batch []byte) []byte {
	for len(batch) < 1<<20 {
		select {
		case b := <-l.queue:
			batch = append(batch, b...)
		default:
			return batch
		}
	}
	return batch
}

func (l *Log) write(batch []byte) error {
	if len(batch) == 0 {
		return nil
	}
	if _, err := l.f.Write(batch); err != nil {
		return fmt.Errorf("audit: write %s: %w", l.cfg.Path, err)
	}
	n := bytes.Count(batch, []byte{'\n'})
	l.events.Add(float64(n))
	l.nWritten.Add(int64(n))
	return nil
}

// shut stops Audit from queueing; after it returns no sender is inside
// the queue's critical section.
func (l *Log) shut() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
}

func (l *Log) drop() {
	l.nDropped.Add(1)
	l.dropped.Inc()
}

// Written is the number of events written to the file so far (each in
// the kernel's hands: a kill -9 of the process no longer loses it).
func (l *Log) Written() int64 { return l.nWritten.Load() }

// Dropped is the number of events dropped so far.
func (l *Log) Dropped() int64 { return l.nDropped.Load() }
