package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"

	"github.com/miekg/dns"

	"github.com/warren-mesh/warren/internal/logging"
)

// TestMain lets a test run this binary as warren: with WARREN_CLI_TEST_MAIN
// set it behaves like cmd/warren (signals become context cancellation).
func TestMain(m *testing.M) {
	if os.Getenv("WARREN_CLI_TEST_MAIN") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// startDev runs `warren dev` (this test binary as warren) on ports (HTTP,
// DNS, server, serf LAN, gRPC) with more args and environment. done gets
// its exit; whoever reads it must put it back. The process is killed when
// the test ends, and its stderr logged if the test failed.
func startDev(t *testing.T, ports []int, args []string, env ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"dev",
		"-http-port", strconv.Itoa(ports[0]), "-dns-port", strconv.Itoa(ports[1]),
		"-server-port", strconv.Itoa(ports[2]), "-serf-lan-port", strconv.Itoa(ports[3]),
		"-grpc-port", strconv.Itoa(ports[4])}, args...)...)
	cmd.Env = append(append(os.Environ(), "WARREN_CLI_TEST_MAIN=1"), env...)
	stderr := &testutil.LockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		done <- <-done
		if t.Failed() {
			t.Logf("warren's stderr:\n%s", stderr.String())
		}
	})
	return cmd, done
}

// notifySocket listens where NOTIFY_SOCKET points and delivers each
// datagram.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 100)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return path, ch
}

// next returns the next message that is not a watchdog ping or a status.
func next(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				t.Fatalf("notify socket closed waiting for %s", what)
			}
			if m == "WATCHDOG=1" || strings.HasPrefix(m, "STATUS=") {
				continue
			}
			return m
		case <-timeout:
			t.Fatalf("no notification in 30s waiting for %s", what)
		}
	}
}

// TestSdNotify runs warren dev under a fake systemd: READY=1 only once HTTP
// and DNS answer, RELOADING=1 (with MONOTONIC_USEC) then READY=1 around
// SIGHUP, WATCHDOG=1 pings, and STOPPING=1 on SIGTERM.
func TestSdNotify(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a warren process")
	}
	sock, msgs := notifySocket(t)
	ports := testutil.FreePorts(t, 5)
	cmd, done := startDev(t, ports, nil, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=400000", "WATCHDOG_PID=", "JOURNAL_STREAM=")

	httpURL := fmt.Sprintf("http://127.0.0.1:%d/v1/agent/self", ports[0])
	dnsAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])

	if m := next(t, msgs, "READY=1"); m != "READY=1\nSTATUS=serving" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	// Ready means serving: both answer now, with no retry.
	resp, err := http.Get(httpURL)
	if err != nil {
		t.Fatalf("READY=1 sent, but HTTP does not answer: %v", err)
	}
	resp.Body.Close()
	q := new(dns.Msg)
	q.SetQuestion("warren.", dns.TypeSOA)
	if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, dnsAddr); err != nil {
		t.Fatalf("READY=1 sent, but DNS does not answer: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	m := next(t, msgs, "RELOADING=1")
	lines := strings.Split(m, "\n")
	if lines[0] != "RELOADING=1" || len(lines) < 2 || !strings.HasPrefix(lines[1], "MONOTONIC_USEC=") {
		t.Fatalf("after SIGHUP got %q, want RELOADING=1 and MONOTONIC_USEC", m)
	}
	usec, err := strconv.ParseInt(strings.TrimPrefix(lines[1], "MONOTONIC_USEC="), 10, 64)
	if err != nil || usec <= 0 {
		t.Fatalf("bad MONOTONIC_USEC in %q", m)
	}
	if m := next(t, msgs, "READY=1 after reload"); m != "READY=1\nSTATUS=serving" {
		t.Fatalf("after RELOADING=1 got %q, want READY=1", m)
	}

	// WatchdogSec=0.4s: a ping every 0.2s.
	pings := 0
	for deadline := time.After(3 * time.Second); pings < 2; {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				pings++
			}
		case <-deadline:
			t.Fatalf("%d watchdog pings in 3s, want at least 2", pings)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs, "STOPPING=1"); m != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("after SIGTERM got %q, want STOPPING=1", m)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Fatalf("warren exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("warren still running 30s after SIGTERM")
	}
}

// TestNotifier_WaitsForJoin: with retry_join addresses, READY=1 waits for
// the first join even though HTTP and DNS answer.
func TestNotifier_WaitsForJoin(t *testing.T) {
	hs := httptest.NewServer(http.NotFoundHandler())
	defer hs.Close()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ds := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNameError)
		_ = w.WriteMsg(m)
	})}
	go func() { _ = ds.ActivateAndServe() }()
	defer ds.Shutdown()

	sent := make(chan string, 100)
	n := newNotifier(logging.Discard(), true)
	n.watchdog = 0
	n.send = func(s string) error { sent <- s; return nil }
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- n.Run(ctx, strings.TrimPrefix(hs.URL, "http://"), pc.LocalAddr().String()) }()

	// Statuses only, until the join.
	deadline := time.After(500 * time.Millisecond)
wait:
	for {
		select {
		case s := <-sent:
			if !strings.HasPrefix(s, "STATUS=") {
				t.Fatalf("before the join got %q", s)
			}
		case <-deadline:
			break wait
		}
	}
	n.Joined()
	for s := range sent {
		if s == "READY=1\nSTATUS=serving" {
			break
		}
		if !strings.HasPrefix(s, "STATUS=") {
			t.Fatalf("got %q, want READY=1", s)
		}
	}
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
	if s := <-sent; s != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("at shutdown got %q", s)
	}
}

// TestNotifier_NoSocket: without NOTIFY_SOCKET nothing is sent and nothing
// fails.
func TestNotifier_NoSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	var buf testutil.LockedBuffer
	n := newNotifier(slog.New(slog.NewTextHandler(&buf, nil)), false)
	n.Reloading()
	n.Reloaded()
	if buf.String() != "" {
		t.Errorf("logged %q", buf.String())
	}
}

func TestSkipLeaveOnRestart(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "restart-without-leave")
	old := restartMarker
	restartMarker = marker
	defer func() { restartMarker = old }()
	closed := 0
	closeGossip := func() { closed++ }
	skipLeaveOnRestart(true, closeGossip, logging.Discard())
	if closed != 0 {
		t.Fatal("closed gossip without the marker")
	}
	if err := os.WriteFile(marker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	skipLeaveOnRestart(false, closeGossip, logging.Discard())
	if closed != 0 {
		t.Fatal("closed gossip though it would not leave anyway")
	}
	skipLeaveOnRestart(true, closeGossip, logging.Discard())
	if closed != 1 {
		t.Fatal("did not skip the leave with the marker")
	}
}
