package logging

import (
	"bytes"
	"context"
	"log"
	"log/slog"
)

// LibLogger returns a *log.Logger for libraries (serf, memberlist) that
// prefix lines with "[DEBUG]", "[INFO]", "[WARN]" or "[ERR]": each line goes
// to l at that level.
func LibLogger(l *slog.Logger) *log.Logger {
	return log.New(&levelWriter{l: l}, "", 0)
}

type levelWriter struct{ l *slog.Logger }

var levelPrefixes = []struct {
	prefix []byte
	level  slog.Level
}{
	{[]byte("[DEBUG]"), slog.LevelDebug},
	{[]byte("[TRACE]"), slog.LevelDebug},
	{[]byte("[INFO]"), slog.LevelInfo},
	{[]byte("[WARN]"), slog.LevelWarn},
	{[]byte("[ERR]"), slog.LevelError},
	{[]byte("[ERROR]"), slog.LevelError},
}

func (w *levelWriter) Write(p []byte) (int, error) {
	msg := bytes.TrimSpace(p)
	level := slog.LevelInfo
	for _, lp := range levelPrefixes {
		if i := bytes.Index(msg, lp.prefix); i >= 0 {
			level = lp.level
			msg = bytes.TrimSpace(msg[i+len(lp.prefix):])
			break
		}
	}
	if w.l.Enabled(context.Background(), level) {
		w.l.Log(context.Background(), level, string(msg))
	}
	return len(p), nil
}
