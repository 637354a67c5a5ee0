package logging

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
)

// Monitor fans the process's log records out to live subscribers (the
// agent's /v1/agent/monitor). Each subscriber gets the records at or above
// its own level, whatever the process's own log level, formatted as text
// or JSON lines. With no subscriber a log call costs one atomic load more.
// A subscriber that does not keep up loses lines, never blocks logging.
type Monitor struct {
	mu   sync.Mutex
	subs map[*Subscription]struct{}
	min  atomic.Int64 // the lowest level any subscriber wants; MaxInt64 if none
}

// NewMonitor returns a monitor with no subscribers.
func NewMonitor() *Monitor {
	m := &Monitor{subs: map[*Subscription]struct{}{}}
	m.min.Store(math.MaxInt64)
	return m
}

// Subscription is one subscriber's stream of formatted lines.
type Subscription struct {
	m       *Monitor
	level   slog.Level
	json    bool
	lines   chan []byte
	dropped atomic.Int64
}

// subscriptionBuffer is how many lines a subscriber may fall behind by.
const subscriptionBuffer = 512

// Subscribe starts a subscription at level, JSON lines if asJSON; the caller
// must Close it.
func (m *Monitor) Subscribe(level slog.Level, asJSON bool) *Subscription {
	s := &Subscription{m: m, level: level, json: asJSON, lines: make(chan []byte, subscriptionBuffer)}
	m.mu.Lock()
	m.subs[s] = struct{}{}
	m.updateMinLocked()
	m.mu.Unlock()
	return s
}

// Lines are the subscription's log lines, each ending in a newline.
func (s *Subscription) Lines() <-chan []byte { return s.lines }

// Dropped is how many lines were lost because the subscriber fell behind.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Close ends the subscription; Lines is not closed (a record being handled
// may still send to it) and is left to the garbage collector.
func (s *Subscription) Close() {
	s.m.mu.Lock()
	delete(s.m.subs, s)
	s.m.updateMinLocked()
	s.m.mu.Unlock()
}

func (m *Monitor) updateMinLocked() {
	lowest := int64(math.MaxInt64)
	for s := range m.subs {
		lowest = min(lowest, int64(s.level))
	}
	m.min.Store(lowest)
}

// Wrap returns h with the monitor's subscribers attached: records go to h
// as before (at h's level) and to every subscriber whose level they meet.
func (m *Monitor) Wrap(h slog.Handler) slog.Handler { return &monitorHandler{inner: h, m: m} }

// monitorHandler is a handler with the attrs and groups its logger was
// given, which each subscriber's formatter gets too.
type monitorHandler struct {
	inner slog.Handler
	m     *Monitor
	ops   []func(slog.Handler) slog.Handler
}

func (h *monitorHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return int64(l) >= h.m.min.Load() || h.inner.Enabled(ctx, l)
}

func (h *monitorHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.inner.Enabled(ctx, r.Level) {
		err = h.inner.Handle(ctx, r)
	}
	if int64(r.Level) < h.m.min.Load() {
		return err
	}
	h.m.mu.Lock()
	subs := make([]*Subscription, 0, len(h.m.subs))
	for s := range h.m.subs {
		if r.Level >= s.level {
			subs = append(subs, s)
		}
	}
	h.m.mu.Unlock()
	for _, s := range subs {
		var buf bytes.Buffer
		var f slog.Handler
		if s.json {
			f = slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: s.level})
		} else {
			f = slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: s.level})
		}
		for _, op := range h.ops {
			f = op(f)
		}
		if f.Handle(ctx, r.Clone()) != nil {
			continue
		}
		select {
		case s.lines <- buf.Bytes():
		default:
			s.dropped.Add(1)
		}
	}
	return err
}

func (h *monitorHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(h.inner.WithAttrs(as), func(f slog.Handler) slog.Handler { return f.WithAttrs(as) })
}

func (h *monitorHandler) WithGroup(name string) slog.Handler {
	return h.with(h.inner.WithGroup(name), func(f slog.Handler) slog.Handler { return f.WithGroup(name) })
}

func (h *monitorHandler) with(inner slog.Handler, op func(slog.Handler) slog.Handler) slog.Handler {
	ops := append(h.ops[:len(h.ops):len(h.ops)], op)
	return &monitorHandler{inner: inner, m: h.m, ops: ops}
}

// WithMonitor returns l with a new Monitor attached; MonitorOf finds it
// again on l and on every logger derived from it.
func WithMonitor(l *slog.Logger) *slog.Logger { return slog.New(NewMonitor().Wrap(l.Handler())) }

// MonitorOf returns the Monitor WithMonitor attached to l, nil if none.
func MonitorOf(l *slog.Logger) *Monitor {
	if h, ok := l.Handler().(*monitorHandler); ok {
		return h.m
	}
	return nil
}
