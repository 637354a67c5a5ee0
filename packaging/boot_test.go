package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The booted-host test installs the .deb into a minimal Debian booted with
// systemd-nspawn, as a user would on a host. The Debian root is made once
// with debootstrap and cached outside the repository.
const (
	bootRootCache = "/var/cache/warren-test-root"
	// bootRootStamp names what the cached root was made with; a root with
	// another stamp is made again.
	bootRootStamp = "bookworm minbase systemd,systemd-sysv,dbus,procps,adduser v1"
	bootTimeout   = 3 * time.Minute
)

// TestBootedHost: apt-get install starts nothing; warren-agent starts
// (active only after READY=1), answers HTTP and DNS, reloads a new service
// file, logs to the journal without timestamps, restarts once without a
// leave on upgrade, stops cleanly; warren-server runs a single-node
// cluster; apt-get purge removes the user and the data.
func TestBootedHost(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a Debian root (-short)")
	}
	if os.Getenv("WARREN_BOOT_TEST") == "0" {
		t.Skip("WARREN_BOOT_TEST=0")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for debootstrap and systemd-nspawn")
	}
	for _, tool := range []string{"debootstrap", "systemd-nspawn", "nsenter", "curl", "dig"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (.ci/run installs debootstrap, systemd-container, curl and bind9-dnsutils)", tool)
		}
	}
	// Build first: compiling takes long on a cold cache, and the bound
	// is for the host part (debootstrap once, then about 25s).
	v1, _ := buildPackages(t, "v1.2.3-4-gabc1234")
	v2, _ := buildPackages(t, "v1.2.3-5-gdef5678")
	pkgs := filepath.Dir(v1)

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	defer func() { t.Logf("host part took %s", time.Since(start).Round(time.Second)) }()
	if err := ensureBootRoot(ctx, t); err != nil {
		t.Skipf("no Debian root: %v", err)
	}

	root := filepath.Join(t.TempDir(), "root")
	if out, err := exec.CommandContext(ctx, "cp", "-a", bootRootCache, root).CombinedOutput(); err != nil {
		t.Fatalf("copy the root: %v\n%s", err, out)
	}
	h := boot(ctx, t, root, pkgs)

	// Install: the user and dirs exist, nothing runs.
	h.must("apt-get", "install", "-y", "--no-install-recommends", "/pkgs/"+filepath.Base(v1))
	h.expect("warren:x:", "getent", "passwd", "warren")
	h.expect("warren:warren 750", "stat", "-c", "%U:%G %a", "/var/lib/warren")
	h.expect("root:warren 750", "stat", "-c", "%U:%G %a", "/etc/warren.d")
	h.expectExact("inactive", "systemctl", "is-active", "warren-agent", "warren-server")
	h.expectExact("disabled", "systemctl", "is-enabled", "warren-agent")
	h.expect("warren v1.2.3-4-gabc1234 ", "warren", "version")

	// The agent, with the packaged config and one service. ACLs are on by
	// default and an agent resolves tokens through the servers, of which
	// there are none yet: this host runs open until the server part.
	h.write("/etc/warren.d/web.hcl", "service {\n  name = \"web\"\n  port = 8080\n}\n")
	h.write("/etc/warren.d/acl.hcl", "acl {\n  enabled = false\n}\n")
	h.must("systemctl", "start", "warren-agent") // returns once READY=1 came
	h.expectExact("active", "systemctl", "is-active", "warren-agent")
	h.eventually("HTTP lists web", "web", "curl", "-sf", "http://127.0.0.1:8500/v1/agent/services")
	h.eventually("DNS answers", "status: ", "dig", "@127.0.0.1", "-p", "8600", "web.service.warren", "+tries=1", "+time=1")

	// Reload picks up a new service file and stays active.
	h.write("/etc/warren.d/api.hcl", "service {\n  name = \"api\"\n  port = 9090\n}\n")
	h.must("systemctl", "reload", "warren-agent")
	h.expectExact("active", "systemctl", "is-active", "warren-agent")
	h.eventually("HTTP lists api after reload", "api", "curl", "-sf", "http://127.0.0.1:8500/v1/agent/services")

	// The journal has the logs, without our timestamps.
	logs := h.must("journalctl", "-u", "warren-agent", "--no-pager", "-o", "cat")
	if !strings.Contains(logs, "msg=\"warren running\"") {
		t.Errorf("journal lacks the start line:\n%s", logs)
	}
	if strings.Contains(logs, "time=") {
		t.Errorf("journal lines carry timestamps:\n%s", logs)
	}

	// Upgrade: one restart, without a graceful leave.
	pid1 := h.must("systemctl", "show", "-p", "MainPID", "--value", "warren-agent")
	h.must("apt-get", "install", "-y", "--no-install-recommends", "/pkgs/"+filepath.Base(v2))
	h.expect("warren v1.2.3-5-gdef5678 ", "warren", "version")
	h.expectExact("active", "systemctl", "is-active", "warren-agent")
	if pid2 := h.must("systemctl", "show", "-p", "MainPID", "--value", "warren-agent"); pid2 == pid1 {
		t.Errorf("MainPID %s unchanged: the upgrade did not restart the agent", pid1)
	}
	logs = h.must("journalctl", "-u", "warren-agent", "--no-pager", "-o", "cat")
	if n := strings.Count(logs, "msg=\"warren running\""); n != 2 {
		t.Errorf("%d starts in the journal after the upgrade, want 2 (one restart):\n%s", n, logs)
	}
	if !strings.Contains(logs, "restarted by a package upgrade: not leaving the gossip pool") {
		t.Errorf("the upgrade restart left the gossip pool:\n%s", logs)
	}

	// Stop is clean.
	h.must("systemctl", "stop", "warren-agent")
	h.expectExact("success", "systemctl", "show", "-p", "Result", "--value", "warren-agent")
	h.expectExact("0", "systemctl", "show", "-p", "ExecMainStatus", "--value", "warren-agent")

	// A single-node server (which runs the local agent too).
	// ACLs on (the default) with an initial management token.
	const mgmt = "0f6d3c2b-8a1e-4b5c-9d7e-2f3a4b5c6d7e"
	h.write("/etc/warren.d/acl.hcl", "acl {\n  tokens {\n    initial_management = \""+mgmt+"\"\n  }\n}\n")
	// A server without TLS may only bind RPC to loopback.
	h.write("/etc/warren.d/server.hcl", "server = true\nbootstrap_expect = 1\nbind_addr = \"127.0.0.1\"\n")
	h.must("systemctl", "start", "warren-server")
	h.expectExact("active", "systemctl", "is-active", "warren-server")
	h.eventually("the catalog has web", "web", "curl", "-sf", "-H", "X-Consul-Token: "+mgmt, "http://127.0.0.1:8500/v1/catalog/services")
	// Without a token: nothing (default deny filters every service).
	h.expectExact("{}", "curl", "-sf", "http://127.0.0.1:8500/v1/catalog/services")
	h.eventually("DNS answers from the catalog", "8080", "dig", "@127.0.0.1", "-p", "8600", "web.service.warren", "SRV", "+short", "+tries=1", "+time=1")
	h.must("systemctl", "stop", "warren-server")
	h.expectExact("success", "systemctl", "show", "-p", "Result", "--value", "warren-server")

	// A broken config fails fast, with its message in the journal.
	h.write("/etc/warren.d/broken.hcl", "bogus = 1\n")
	if out, err := h.run("systemctl", "start", "warren-server"); err == nil {
		t.Errorf("warren-server started with a broken config:\n%s", out)
	}
	h.eventually("the journal has the validate error", "/etc/warren.d/broken.hcl:1: bogus: unknown key",
		"journalctl", "-u", "warren-server", "--no-pager", "-o", "cat")
	h.must("rm", "/etc/warren.d/broken.hcl")

	// Remove keeps the data and the user; purge deletes them.
	h.must("apt-get", "remove", "-y", "warren")
	h.expect("warren:x:", "getent", "passwd", "warren")
	h.must("test", "-f", "/var/lib/warren/node-id")
	h.must("apt-get", "purge", "-y", "warren")
	if out, err := h.run("getent", "passwd", "warren"); err == nil {
		t.Errorf("the warren user survived the purge: %s", out)
	}
	if out, err := h.run("getent", "group", "warren"); err == nil {
		t.Errorf("the warren group survived the purge: %s", out)
	}
	if _, err := h.run("test", "-e", "/var/lib/warren"); err == nil {
		t.Error("/var/lib/warren survived the purge")
	}
}

// ensureBootRoot makes the cached Debian root if it is missing or stale.
func ensureBootRoot(ctx context.Context, t *testing.T) error {
	stampFile := filepath.Join(bootRootCache, ".warren-test-root")
	if b, err := os.ReadFile(stampFile); err == nil && string(b) == bootRootStamp+"\n" {
		return nil
	}
	mirror := os.Getenv("WARREN_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	tmp := bootRootCache + ".tmp"
	os.RemoveAll(tmp)
	t.Logf("making the Debian root %s with debootstrap from %s (about 40s, once)", bootRootCache, mirror)
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase",
		"--include=systemd,systemd-sysv,dbus,procps,adduser", "bookworm", tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("debootstrap: %v\n%s", err, lastLines(out, 10))
	}
	if err := os.WriteFile(filepath.Join(tmp, ".warren-test-root"), []byte(bootRootStamp+"\n"), 0o644); err != nil {
		return err
	}
	os.RemoveAll(bootRootCache)
	return os.Rename(tmp, bootRootCache)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// host is a booted container: commands run in it with nsenter.
type host struct {
	t   *testing.T
	ctx context.Context
	pid int // the container's init
}

// boot starts systemd in root with its own network namespace (only
// loopback, so its ports never meet the machine's) and pkgs bound at
// /pkgs, and waits until it runs. Cleanup powers it off.
func boot(ctx context.Context, t *testing.T, root, pkgs string) *host {
	t.Helper()
	name := fmt.Sprintf("warren-test-%d", os.Getpid())
	var console bytes.Buffer
	cmd := exec.Command("systemd-nspawn", "-D", root, "--boot", "--register=no", "--keep-unit",
		"--private-network", "-M", name, "--bind-ro="+pkgs+":/pkgs")
	cmd.Stdout, cmd.Stderr = &console, &console
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("systemd-nspawn: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	h := &host{t: t, ctx: ctx}
	t.Cleanup(func() {
		if h.pid != 0 {
			_, _ = h.run("systemctl", "poweroff")
		}
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("container console:\n%s", lastLines(console.Bytes(), 60))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for h.pid == 0 {
		h.pid = findChild(cmd.Process.Pid, "systemd")
		if h.pid != 0 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("systemd-nspawn exited: %v\n%s", err, console.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("no systemd in the container after 30s:\n%s", console.String())
		}
	}
	// The bus may not be up yet: ask until systemd answers.
	var state string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		state, _ = h.run("systemctl", "is-system-running", "--wait")
		if state == "running" || state == "degraded" {
			return h
		}
	}
	t.Fatalf("container state %q after 60s", state)
	return nil
}

// findChild returns the pid of a descendant of pid named comm, or 0.
func findChild(pid int, comm string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(b)) {
		child, _ := strconv.Atoi(f)
		if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(c)) == comm {
			return child
		}
		if p := findChild(child, comm); p != 0 {
			return p
		}
	}
	return 0
}

// run runs a command in the container: in all its namespaces, except that
// curl and dig (not in a minimal root) run from this machine in its network
// namespace only.
func (h *host) run(args ...string) (string, error) {
	ns := []string{"-t", strconv.Itoa(h.pid), "-a"}
	if args[0] == "curl" || args[0] == "dig" {
		ns = []string{"-t", strconv.Itoa(h.pid), "-n"}
	}
	ctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", append(ns, args...)...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "SYSTEMD_PAGER=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = errors.Join(err, ctx.Err())
	}
	return strings.TrimSpace(out.String()), err
}

func (h *host) must(args ...string) string {
	h.t.Helper()
	out, err := h.run(args...)
	if err != nil {
		h.t.Fatalf("%s: %v\n%s%s", strings.Join(args, " "), err, out, h.journal())
	}
	return out
}

// expect checks that the output contains want (the exit code is ignored,
// as for systemctl is-active on a stopped unit).
func (h *host) expect(want string, args ...string) {
	h.t.Helper()
	if out, _ := h.run(args...); !strings.Contains(out, want) {
		h.t.Errorf("%s: got %q, want it to contain %q", strings.Join(args, " "), out, want)
	}
}

// expectExact checks every output line equals want.
func (h *host) expectExact(want string, args ...string) {
	h.t.Helper()
	out, _ := h.run(args...)
	for _, line := range strings.Split(out, "\n") {
		if line != want {
			h.t.Errorf("%s: got %q, want %q on every line%s", strings.Join(args, " "), out, want, h.journal())
			return
		}
	}
}

// eventually retries the command for up to 15s until its output contains
// want.
func (h *host) eventually(what, want string, args ...string) {
	h.t.Helper()
	var out string
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ = h.run(args...)
		if strings.Contains(out, want) {
			return
		}
	}
	h.t.Errorf("%s: %s gave %q, want it to contain %q%s", what, strings.Join(args, " "), out, want, h.journal())
}

func (h *host) write(path, content string) {
	h.t.Helper()
	cmd := exec.CommandContext(h.ctx, "nsenter", "-t", strconv.Itoa(h.pid), "-a", "sh", "-c", "cat > "+path)
	cmd.Stdin = strings.NewReader(content)
	if out, err := cmd.CombinedOutput(); err != nil {
		h.t.Fatalf("write %s: %v\n%s", path, err, out)
	}
}

// journal is the tail of warren's journal, for failure messages.
func (h *host) journal() string {
	out, _ := h.run("journalctl", "-u", "warren-agent", "-u", "warren-server", "--no-pager", "-n", "40")
	return "\njournal:\n" + out
}
