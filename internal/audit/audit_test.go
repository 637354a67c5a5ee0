package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mesh/warren/acl"
)

// TestMain lets TestKill9 run this binary as a process that audits
// events until it is killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("WARREN_AUDIT_CHILD"); path != "" {
		child(path)
		return
	}
	os.Exit(m.Run())
}

// child audits events one by one and prints each sequence number once
// the writer has taken it off the queue (events_total moved), until it is
// killed.
func child(path string) {
	l, err := Open(Config{Path: path})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	go func() { _ = l.Run(context.Background()) }()
	for i := 0; ; i++ {
		l.Audit(context.Background(), Event{Type: "test", Detail: strconv.Itoa(i), Route: strings.Repeat("r", i%300)})
		for l.Written() <= int64(i) {
			time.Sleep(50 * time.Microsecond)
		}
		fmt.Println(i)
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", len(out)+1, err, sc.Text())
		}
		out = append(out, m)
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		t.Fatalf("the file ends in a partial line")
	}
	return out
}

// runLog opens a log at path and runs its writer; stop ends it and fails
// the test on a write error.
func runLog(t *testing.T, path string) (*Log, func()) {
	t.Helper()
	l, err := Open(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	return l, func() {
		t.Helper()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// Events from many goroutines each land as one whole JSON line with the
// fields given, the accessor taken from the context's identity, and the
// file is 0600.
func TestConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.json")
	l, stop := runLog(t, path)

	const writers, each = 16, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			ictx := acl.NewContext(context.Background(), &acl.Identity{AccessorID: fmt.Sprintf("acc-%d", w)})
			for i := range each {
				l.Audit(ictx, Event{Method: "PUT", Route: "PUT /v1/x", Status: 200, Duration: time.Millisecond,
					RequestID: fmt.Sprintf("%d-%d", w, i), ClientAddr: "127.0.0.1:1"})
			}
		})
	}
	wg.Wait()
	stop()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	lines := readLines(t, path)
	if got := len(lines) + int(l.Dropped()); got != writers*each {
		t.Fatalf("%d lines + %d dropped, want %d", len(lines), l.Dropped(), writers*each)
	}
	if l.Dropped() != 0 {
		t.Errorf("%d events dropped with a queue that drains", l.Dropped())
	}
	seen := map[string]bool{}
	for _, m := range lines {
		id := m["request_id"].(string)
		if seen[id] {
			t.Fatalf("request %s twice", id)
		}
		seen[id] = true
		w := strings.SplitN(id, "-", 2)[0]
		if m["accessor_id"] != "acc-"+w || m["type"] != "http" || m["route"] != "PUT /v1/x" || m["status"] != 200.0 || m["duration_ms"] != 1.0 {
			t.Fatalf("line %v", m)
		}
		if _, err := time.Parse(time.RFC3339Nano, m["timestamp"].(string)); err != nil {
			t.Fatalf("timestamp: %v", err)
		}
	}
	// After Close, events are dropped and counted, never written.
	l.Audit(context.Background(), Event{})
	if l.Dropped() != 1 {
		t.Errorf("dropped %d after stop, want 1", l.Dropped())
	}
}

// No identity in the context: the line says anonymous.
func TestAnonymous(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.json")
	l, stop := runLog(t, path)
	l.Audit(context.Background(), Event{Type: "enrollment", Result: "refused", Detail: "token expired"})
	stop()
	lines := readLines(t, path)
	if len(lines) != 1 || lines[0]["accessor_id"] != Anonymous || lines[0]["type"] != "enrollment" || lines[0]["result"] != "refused" {
		t.Fatalf("lines %v", lines)
	}
}

// A full queue (no writer running) drops after MaxWait and counts, never
// blocking the caller longer.
func TestFullQueueDrops(t *testing.T) {
	l, err := Open(Config{Path: filepath.Join(t.TempDir(), "a.json"), QueueSize: 2, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range 5 {
		l.Audit(context.Background(), Event{})
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("5 audits took %v", took)
	}
	if l.Dropped() != 3 {
		t.Fatalf("dropped %d, want 3", l.Dropped())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Run(ctx); err != nil { // drains the 2 queued, closes
		t.Fatal(err)
	}
}

// An unwritable path fails at Open, so a misconfigured audit log stops
// the start rather than losing events.
func TestOpenUnwritable(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere")
	}
	if _, err := Open(Config{Path: filepath.Join(dir, "audit.json")}); err == nil {
		t.Fatal("opened a file in a read-only directory")
	}
}

// A kill -9 loses no event the writer had taken (each printed sequence
// number is in the file), and leaves no partial line.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a child process")
	}
	path := filepath.Join(t.TempDir(), "audit.json")
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "WARREN_AUDIT_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	last := -1
	deadline := time.Now().Add(20 * time.Second)
	for last < 500 && time.Now().Before(deadline) && sc.Scan() {
		n, err := strconv.Atoi(sc.Text())
		if err != nil {
			t.Fatalf("child: %s", sc.Text())
		}
		last = n
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if last < 500 {
		t.Fatalf("child reached only %d", last)
	}
	lines := readLines(t, path)
	if len(lines) < last+1 {
		t.Fatalf("%d lines after kill -9, but %d were written before it", len(lines), last+1)
	}
	for i, m := range lines[:last+1] {
		if m["detail"] != strconv.Itoa(i) {
			t.Fatalf("line %d: %v", i, m)
		}
	}
}
