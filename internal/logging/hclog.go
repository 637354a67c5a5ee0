package logging

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// HCLog adapts a slog logger to hclog.Logger, for hashicorp/raft.
func HCLog(l *slog.Logger) hclog.Logger { return &hcAdapter{l: l} }

type hcAdapter struct {
	l    *slog.Logger
	name string
}

func toSlog(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Warn:
		return slog.LevelWarn
	case hclog.Error:
		return slog.LevelError
	}
	return slog.LevelInfo
}

func (a *hcAdapter) Log(level hclog.Level, msg string, args ...any) {
	for i, v := range args {
		// hclog.Fmt values carry a format and its arguments.
		if f, ok := v.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	a.l.Log(context.Background(), toSlog(level), msg, args...)
}
func (a *hcAdapter) Trace(msg string, args ...any) { a.Log(hclog.Trace, msg, args...) }
func (a *hcAdapter) Debug(msg string, args ...any) { a.Log(hclog.Debug, msg, args...) }
func (a *hcAdapter) Info(msg string, args ...any)  { a.Log(hclog.Info, msg, args...) }
func (a *hcAdapter) Warn(msg string, args ...any)  { a.Log(hclog.Warn, msg, args...) }
func (a *hcAdapter) Error(msg string, args ...any) { a.Log(hclog.Error, msg, args...) }
func (a *hcAdapter) enabled(l slog.Level) bool     { return a.l.Enabled(context.Background(), l) }
func (a *hcAdapter) IsTrace() bool                 { return false }
func (a *hcAdapter) IsDebug() bool                 { return a.enabled(slog.LevelDebug) }
func (a *hcAdapter) IsInfo() bool                  { return a.enabled(slog.LevelInfo) }
func (a *hcAdapter) IsWarn() bool                  { return a.enabled(slog.LevelWarn) }
func (a *hcAdapter) IsError() bool                 { return a.enabled(slog.LevelError) }
func (a *hcAdapter) ImpliedArgs() []any            { return nil }
func (a *hcAdapter) With(args ...any) hclog.Logger {
	return &hcAdapter{l: a.l.With(args...), name: a.name}
}
func (a *hcAdapter) Name() string { return a.name }
func (a *hcAdapter) Named(name string) hclog.Logger {
	if a.name != "" {
		name = a.name + "." + name
	}
	return &hcAdapter{l: a.l.With("sub", name), name: name}
}
func (a *hcAdapter) ResetNamed(name string) hclog.Logger {
	return &hcAdapter{l: a.l.With("sub", name), name: name}
}
func (a *hcAdapter) SetLevel(hclog.Level) {}
func (a *hcAdapter) GetLevel() hclog.Level {
	switch {
	case a.IsDebug():
		return hclog.Debug
	case a.IsInfo():
		return hclog.Info
	case a.IsWarn():
		return hclog.Warn
	}
	return hclog.Error
}
func (a *hcAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return StdLogger(a.l, slog.LevelInfo)
}
func (a *hcAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return StdLogger(a.l, slog.LevelInfo).Writer()
}
