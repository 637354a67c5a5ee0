package logging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestNewDaemon_Formats(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	journal := fmt.Sprintf("%d:%d", st.Dev, st.Ino)

	read := func() string {
		t.Helper()
		b, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	t.Run("journal: text without time", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", journal)
		NewDaemon(f, Options{Level: slog.LevelInfo}).Info("hello", "k", "v")
		if got, want := read(), "level=INFO msg=hello k=v\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Run("another stream: text with time", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", "1:2")
		NewDaemon(f, Options{Level: slog.LevelInfo}).Info("hello")
		if got := read(); !strings.HasPrefix(got, "time=") {
			t.Errorf("got %q, want a time= prefix", got)
		}
	})
	t.Run("not a file", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", journal)
		var buf bytes.Buffer
		NewDaemon(&buf, Options{Level: slog.LevelInfo}).Info("hello")
		if !strings.HasPrefix(buf.String(), "time=") {
			t.Errorf("got %q, want a time= prefix", buf.String())
		}
	})
	t.Run("json, even in the journal", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", journal)
		NewDaemon(f, Options{Level: slog.LevelInfo, JSON: true}).Warn("hello", "k", 1)
		var m map[string]any
		if err := json.Unmarshal([]byte(read()), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] != "hello" || m["level"] != "WARN" || m["k"] != float64(1) || m["time"] == nil {
			t.Errorf("got %v", m)
		}
	})
	t.Run("level", func(t *testing.T) {
		t.Setenv("JOURNAL_STREAM", "")
		NewDaemon(f, Options{Level: slog.LevelWarn}).Info("hidden")
		if got := read(); got != "" {
			t.Errorf("got %q, want nothing below warn", got)
		}
	})
}
