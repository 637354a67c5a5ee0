package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func next(t *testing.T, s *Subscription) string {
	t.Helper()
	select {
	case l := <-s.Lines():
		return string(l)
	default:
		return ""
	}
}

// TestMonitor: a subscriber gets records at its own level, below the
// process's, with the logger's attrs and groups, in its format; the
// process's own output is unchanged; a closed subscription costs nothing.
func TestMonitor(t *testing.T) {
	var out bytes.Buffer
	m := NewMonitor()
	log := slog.New(m.Wrap(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo})))
	sub := log.With("subsystem", "http").WithGroup("req")

	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug enabled with no subscriber")
	}
	debug := m.Subscribe(slog.LevelDebug, false)
	warnJSON := m.Subscribe(slog.LevelWarn, true)
	sub.Debug("probe", "path", "/v1/x")
	if l := next(t, debug); !strings.Contains(l, "level=DEBUG") || !strings.Contains(l, "subsystem=http") ||
		!strings.Contains(l, "req.path=/v1/x") || !strings.HasSuffix(l, "\n") {
		t.Fatalf("debug subscriber got %q", l)
	}
	if l := next(t, warnJSON); l != "" {
		t.Fatalf("warn subscriber got a debug line: %q", l)
	}
	if out.Len() != 0 {
		t.Fatalf("the process logged a debug line at info: %q", out.String())
	}
	sub.Warn("slow", "ms", 250)
	var rec map[string]any
	if l := next(t, warnJSON); json.Unmarshal([]byte(l), &rec) != nil || rec["msg"] != "slow" || rec["subsystem"] != "http" {
		t.Fatalf("JSON subscriber got %q", l)
	}
	if l := next(t, debug); !strings.Contains(l, "msg=slow") {
		t.Fatalf("debug subscriber missed the warning: %q", l)
	}
	if !strings.Contains(out.String(), "msg=slow") {
		t.Fatalf("the process did not log its warning: %q", out.String())
	}

	// A subscriber that does not read loses lines; logging never blocks.
	for range subscriptionBuffer + 10 {
		log.Warn("flood")
	}
	if debug.Dropped() < 10 {
		t.Fatalf("dropped %d lines, want at least 10", debug.Dropped())
	}
	debug.Close()
	warnJSON.Close()
	if log.Enabled(context.Background(), slog.LevelDebug) {
		t.Fatal("debug still enabled after the subscribers left")
	}
}
