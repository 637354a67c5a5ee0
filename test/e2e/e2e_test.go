// Package e2e runs the built warren binary as separate processes and drives
// it the way users do: the official Consul Go client, the CLI, signals.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"
)

var warrenBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "warren-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrenBin = filepath.Join(dir, "warren")
	build := exec.Command("go", "build", "-tags", "grpcnotrace", "-race", "-o", warrenBin, "../../cmd/warren")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build warren:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running warren process.
type proc struct {
	cmd  *exec.Cmd
	log  *bytes.Buffer
	HTTP string // host:port
	// GRPCPort is the -grpc-port startDev gave (extra args may override).
	GRPCPort int
	done     chan error
}

// startDev runs `warren dev` on free ports and waits until it has a leader.
func startDev(t *testing.T, extra ...string) *proc {
	t.Helper()
	httpPort, grpcPort := testutil.FreePort(t), testutil.FreePort(t)
	args := append([]string{"dev",
		"-http-port", strconv.Itoa(httpPort),
		"-server-port", strconv.Itoa(testutil.FreePort(t)),
		"-serf-lan-port", strconv.Itoa(testutil.FreePort(t)),
		"-dns-port", strconv.Itoa(testutil.FreePort(t)),
		"-grpc-port", strconv.Itoa(grpcPort),
	}, extra...)
	p := &proc{cmd: exec.Command(warrenBin, args...), log: new(bytes.Buffer), HTTP: fmt.Sprintf("127.0.0.1:%d", httpPort),
		GRPCPort: grpcPort, done: make(chan error, 1)}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		// SIGINT first, so warren removes its dev data dir; kill only if
		// it does not stop.
		_ = p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
		}
		<-p.done
		if t.Failed() {
			t.Logf("warren dev log:\n%s", p.log)
		}
	})
	waitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + p.HTTP + "/v1/status/leader")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		if resp.StatusCode != 200 || strings.TrimSpace(b.String()) == `""` {
			return fmt.Errorf("no leader yet: %d %s", resp.StatusCode, b.String())
		}
		// And the leader is ready to serve reads.
		r2, err := http.Get("http://" + p.HTTP + "/v1/catalog/services")
		if err != nil {
			return err
		}
		r2.Body.Close()
		if r2.StatusCode != 200 {
			return fmt.Errorf("catalog not ready: %d", r2.StatusCode)
		}
		return nil
	})
	return p
}

// stop sends SIGINT and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("warren exited with %v after SIGINT; log:\n%s", err, p.log)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("warren did not stop within 15s of SIGINT; log:\n%s", p.log)
	}
}

// run runs the CLI and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, warrenBin, args...)
	// The race detector otherwise sleeps 1 s at every exit.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	// The clusters' management token; processes without ACLs ignore it.
	cmd.Env = append(cmd.Env, "WARREN_HTTP_TOKEN="+clusterMgmtToken)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func waitFor(t *testing.T, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPortInUseIsAnErrorNotACrash starts warren dev with its DNS port
// taken: it must exit 1 with a message naming the port, after releasing
// what it had already started.
func TestPortInUseIsAnErrorNotACrash(t *testing.T) {
	taken, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.LocalAddr().(*net.UDPAddr).Port
	tcp, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Skipf("TCP port %d not free: %v", port, err)
	}
	defer tcp.Close()
	_, errOut, code := run(t, "dev", "-http-port", strconv.Itoa(testutil.FreePort(t)), "-server-port", strconv.Itoa(testutil.FreePort(t)),
		"-serf-lan-port", strconv.Itoa(testutil.FreePort(t)), "-grpc-port", "-1", "-dns-port", strconv.Itoa(port))
	if code != 1 || strings.Contains(errOut, "panic") || !strings.Contains(errOut, strconv.Itoa(port)) {
		t.Fatalf("dev with DNS port %d taken: exit %d, stderr:\n%s", port, code, errOut)
	}
}
