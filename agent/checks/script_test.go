//go:build unix

package checks

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

func TestScript(t *testing.T) {
	m, _ := startManager(t, ManagerConfig{EnableLocalScriptChecks: true})
	sh := func(id, script string) Definition {
		return Definition{ID: id, Args: []string{"sh", "-c", script}, Interval: 20 * time.Millisecond, Timeout: 5 * time.Second}
	}
	mustAdd(t, m, sh("ok", "echo hello; echo oops >&2; exit 0"))
	mustAdd(t, m, sh("warn", "echo degraded; exit 1"))
	crit := sh("crit", "exit 2")
	crit.Status = catalog.HealthPassing
	mustAdd(t, m, crit)
	mustAdd(t, m, sh("big", `i=0; while [ $i -lt 2000 ]; do echo "line $i"; i=$((i+1)); done; echo last line`))
	mustAdd(t, m, Definition{ID: "missing", Args: []string{"/nonexistent/check"}, Interval: 20 * time.Millisecond, Status: catalog.HealthPassing})

	if out := waitStatus(t, m, "ok", catalog.HealthPassing); out != "hello\noops\n" {
		t.Errorf("output %q", out)
	}
	if out := waitStatus(t, m, "warn", catalog.HealthWarning); out != "degraded\n" {
		t.Errorf("output %q", out)
	}
	waitStatus(t, m, "crit", catalog.HealthCritical)
	out := waitStatus(t, m, "big", catalog.HealthPassing)
	if len(out) > MaxOutputLen || !strings.HasPrefix(out, truncatedPrefix) || !strings.HasSuffix(out, "last line\n") {
		t.Errorf("capped output: %d bytes, starts %q, ends %q", len(out), out[:30], out[len(out)-30:])
	}
	if out := waitStatus(t, m, "missing", catalog.HealthCritical); !strings.Contains(out, "no such file") {
		t.Errorf("output %q", out)
	}
}

// A script that outlives its timeout is killed with everything it started.
func TestScriptTimeoutKillsProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	m, _ := startManager(t, ManagerConfig{EnableLocalScriptChecks: true})
	mustAdd(t, m, Definition{
		ID:       "slow",
		Args:     []string{"sh", "-c", `sleep 30 & echo $! > "$0"; wait`, pidFile},
		Interval: time.Hour, // one run
		Timeout:  200 * time.Millisecond,
		Status:   catalog.HealthPassing,
	})
	out := waitStatus(t, m, "slow", catalog.HealthCritical)
	if !strings.Contains(out, "Timed out (200ms) running check") {
		t.Errorf("output %q", out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the script's child to be dead", func() bool { return processDead(pid) })
}

// processDead reports whether pid has exited: gone, or a zombie waiting for
// init (which may be slow in a container) to reap it.
func processDead(pid int) bool {
	if errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
		return true
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := strings.LastIndexByte(string(stat), ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

func TestScriptRefusedUnlessEnabled(t *testing.T) {
	m := NewManager(ManagerConfig{})
	err := m.Add(Definition{ID: "s", Args: []string{"true"}, Interval: time.Second})
	var fe *catalog.FieldError
	if !errors.As(err, &fe) || fe.Field != "Args" {
		t.Fatalf("Add of a script check with scripts disabled: %v", err)
	}
	if _, _, ok := m.Status("s"); ok {
		t.Fatal("refused check was registered")
	}
}
