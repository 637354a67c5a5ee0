package logging

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"syscall"
)

// Options choose the daemon's log format.
type Options struct {
	Level slog.Level
	// JSON writes one JSON object per line (-log-json).
	JSON bool
}

// NewDaemon returns the daemon's logger writing to w: JSON lines if
// o.JSON; else text, without timestamps when w is the systemd journal
// (the journal stamps every line itself).
func NewDaemon(w io.Writer, o Options) *slog.Logger {
	ho := &slog.HandlerOptions{Level: o.Level}
	if o.JSON {
		return slog.New(slog.NewJSONHandler(w, ho))
	}
	if IsJournal(w) {
		ho.ReplaceAttr = dropTime
	}
	return slog.New(slog.NewTextHandler(w, ho))
}

func dropTime(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

// IsJournal reports whether w is the stream systemd connected to the
// journal: JOURNAL_STREAM ("device:inode") names w's file. A child process
// that inherited the variable but writes elsewhere gets false.
func IsJournal(w io.Writer) bool {
	stream := os.Getenv("JOURNAL_STREAM")
	if stream == "" {
		return false
	}
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return false
	}
	return stream == fmt.Sprintf("%d:%d", st.Dev, st.Ino)
}
