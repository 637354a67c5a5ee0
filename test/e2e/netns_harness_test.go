package e2e

// A multi-host harness: every warren process runs in a network namespace of
// its own ("a host"), wired to a bridge by a veth pair, with an address from
// 10.213.N.0/24, a range that exists only on that bridge and in those
// namespaces. The bridge lives in the root namespace and holds 10.213.N.1,
// so the test process reaches every host's HTTP API and DNS directly (the
// processes bind -client to their own namespace address) without entering a
// namespace; fault rules always let the .1 address through, so the test's
// clients see a partitioned server the way a client on its side would.
//
// Faults: SIGKILL, SIGSTOP/SIGCONT, nftables tables inside one namespace
// (partition: drop all traffic to and from other hosts; loss: drop a random
// share of it), a full disk (a server's data dir on a small tmpfs that
// the test fills), and delay of one server's RPC traffic through delaying
// TCP proxies (netns_delay_test.go: nat rules, no netem).
//
// Everything made here is removed by t.Cleanup, even when the test fails;
// namespaces, links and mounts left by an earlier run that was killed are
// removed at start (their names carry the creating process's pid).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"
)

// requireNetns skips the test unless it can build namespaces.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("multi-host fault tests need root (network namespaces, nftables, tmpfs mounts); run as root or in CI")
	}
	for _, tool := range []string{"ip", "ss", "nft", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("multi-host fault tests need %q on PATH (install iproute2 and nftables; .ci/run does): %v", tool, err)
		}
	}
}

// sh runs a command with a bound and returns its combined output.
func sh(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func shStdin(stdin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func pidAlive(pid int) bool {
	return syscall.Kill(pid, 0) == nil || errors.Is(syscall.Kill(pid, 0), syscall.EPERM)
}

var (
	staleOnce   sync.Once
	staleNSRe   = regexp.MustCompile(`^wr-(\d+)-`)
	staleLinkRe = regexp.MustCompile(`^wr[bv](\d+)[xn]`)
	staleMntRe  = regexp.MustCompile(`/wrdisk-(\d+)-`)
)

// removeStale deletes namespaces, links and mounts made by runs of this
// harness whose process is gone.
func removeStale(t *testing.T) {
	staleOnce.Do(func() {
		if data, err := os.ReadFile("/proc/mounts"); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				f := strings.Fields(line)
				if len(f) < 2 {
					continue
				}
				if m := staleMntRe.FindStringSubmatch(f[1]); m != nil {
					if pid, _ := strconv.Atoi(m[1]); pid != os.Getpid() && !pidAlive(pid) {
						_, _ = sh("umount", "-l", f[1])
						t.Logf("removed stale mount %s", f[1])
					}
				}
			}
		}
		if out, err := sh("ip", "netns", "list"); err == nil {
			for _, line := range strings.Split(out, "\n") {
				f := strings.Fields(line)
				if len(f) == 0 {
					continue
				}
				if m := staleNSRe.FindStringSubmatch(f[0]); m != nil {
					if pid, _ := strconv.Atoi(m[1]); pid != os.Getpid() && !pidAlive(pid) {
						_, _ = sh("ip", "netns", "del", f[0])
						t.Logf("removed stale namespace %s", f[0])
					}
				}
			}
		}
		if ifs, err := net.Interfaces(); err == nil {
			for _, i := range ifs {
				if m := staleLinkRe.FindStringSubmatch(i.Name); m != nil {
					if pid, _ := strconv.Atoi(m[1]); pid != os.Getpid() && !pidAlive(pid) {
						_, _ = sh("ip", "link", "del", i.Name)
						t.Logf("removed stale link %s", i.Name)
					}
				}
			}
		}
	})
}

var nsSeq atomic.Int32

// nsNet is a bridge and the hosts plugged into it.
type nsNet struct {
	id     int    // this net's number within the test process
	subnet string // "10.213.N"
	bridge string
	hosts  []*nsHost
}

// nsHost is one network namespace with one address.
type nsHost struct {
	name string // s1, a1 ...
	ns   string
	veth string // root-side end
	ip   string
}

// gateway is the bridge's address: the test process's address on the net.
func (n *nsNet) gateway() string { return n.subnet + ".1" }

// newNSNet makes the bridge, picking a /24 of 10.213.0.0/16 that no local
// address or route uses.
func newNSNet(t *testing.T) *nsNet {
	t.Helper()
	requireNetns(t)
	removeStale(t)
	id := int(nsSeq.Add(1))
	routes, _ := sh("ip", "-4", "route", "show", "table", "all")
	addrs, _ := sh("ip", "-4", "-o", "addr", "show")
	third := -1
	for i := range 250 {
		c := (os.Getpid()+id*7+i)%250 + 1
		prefix := fmt.Sprintf("10.213.%d.", c)
		if !strings.Contains(routes, prefix) && !strings.Contains(addrs, prefix) {
			third = c
			break
		}
	}
	if third < 0 {
		t.Fatal("no free /24 in 10.213.0.0/16")
	}
	n := &nsNet{id: id, subnet: fmt.Sprintf("10.213.%d", third), bridge: fmt.Sprintf("wrb%dx%d", os.Getpid(), id)}
	t.Cleanup(func() {
		for _, h := range n.hosts {
			if _, err := sh("ip", "netns", "del", h.ns); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			_, _ = sh("ip", "link", "del", h.veth) // gone with the namespace, normally
		}
		if _, err := sh("ip", "link", "del", n.bridge); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	for _, c := range [][]string{
		{"ip", "link", "add", n.bridge, "type", "bridge"},
		{"ip", "addr", "add", n.gateway() + "/24", "dev", n.bridge},
		{"ip", "link", "set", n.bridge, "up"},
	} {
		if _, err := sh(c...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// addHost makes a namespace with address subnet.num.
func (n *nsNet) addHost(t *testing.T, name string, num int) *nsHost {
	t.Helper()
	k := int(nsSeq.Add(1))
	h := &nsHost{
		name: name,
		ns:   fmt.Sprintf("wr-%d-%d-%s", os.Getpid(), n.id, name),
		veth: fmt.Sprintf("wrv%dn%d", os.Getpid(), k),
		ip:   fmt.Sprintf("%s.%d", n.subnet, num),
	}
	if _, err := sh("ip", "netns", "add", h.ns); err != nil {
		t.Fatal(err)
	}
	n.hosts = append(n.hosts, h)
	for _, c := range [][]string{
		{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns},
		{"ip", "link", "set", h.veth, "master", n.bridge},
		{"ip", "link", "set", h.veth, "up"},
		{"ip", "-n", h.ns, "addr", "add", h.ip + "/24", "dev", "eth0"},
		{"ip", "-n", h.ns, "link", "set", "eth0", "up"},
		{"ip", "-n", h.ns, "link", "set", "lo", "up"},
	} {
		if _, err := sh(c...); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// faultTable is the nftables table every fault rule lives in, inside the
// host's namespace; healing deletes it.
const faultTable = "wrfault"

// nftFault replaces the host's fault rules with rule, applied to traffic
// to and from the other hosts (never the gateway, where the test is).
func (n *nsNet) nftFault(h *nsHost, inRule, outRule string) error {
	_ = n.heal(h)
	peers := fmt.Sprintf("ip saddr %s.0/24 ip saddr != %s", n.subnet, n.gateway())
	peersOut := fmt.Sprintf("ip daddr %s.0/24 ip daddr != %s", n.subnet, n.gateway())
	script := fmt.Sprintf(`table inet %s {
  chain in { type filter hook input priority 0; policy accept; %s %s; }
  chain out { type filter hook output priority 0; policy accept; %s %s; }
}
`, faultTable, peers, inRule, peersOut, outRule)
	return shStdin(script, "ip", "netns", "exec", h.ns, "nft", "-f", "-")
}

// partition cuts h off from every other host.
func (n *nsNet) partition(h *nsHost) error { return n.nftFault(h, "drop", "drop") }

// loss drops pct% of the packets h receives from and sends to other hosts.
func (n *nsNet) loss(h *nsHost, pct int) error {
	r := fmt.Sprintf("numgen random mod 100 < %d drop", pct)
	return n.nftFault(h, r, r)
}

// heal removes h's fault rules.
func (n *nsNet) heal(h *nsHost) error {
	out, err := sh("ip", "netns", "exec", h.ns, "nft", "list", "tables")
	if err != nil {
		return err
	}
	if !strings.Contains(out, faultTable) {
		return nil
	}
	_, err = sh("ip", "netns", "exec", h.ns, "nft", "delete", "table", "inet", faultTable)
	return err
}

// nsProc is one warren process on a host; it can be killed and started
// again with the same arguments and data dir.
type nsProc struct {
	name    string
	host    *nsHost
	server  bool
	dataDir string
	logPath string
	args    []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	exit   error
	starts int
	paused bool
}

func (p *nsProc) httpBase() string { return "https://" + net.JoinHostPort(p.host.ip, "8501") }
func (p *nsProc) rpcAddr() string  { return net.JoinHostPort(p.host.ip, "8300") }

func (p *nsProc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s: start while running", p.name)
		}
	}
	p.starts++
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== e2e: start #%d at %s in %s: warren %s\n", p.starts, time.Now().Format(time.RFC3339Nano), p.host.ns, strings.Join(p.args, " "))
	// `ip netns exec` enters the namespace and execs warren: the pid is
	// warren's own, so signals reach it directly.
	cmd := exec.Command("ip", append([]string{"netns", "exec", p.host.ns, warrenBin}, p.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.paused = cmd, done, false
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.exit = err
		p.mu.Unlock()
		if f, ferr := os.OpenFile(p.logPath, os.O_APPEND|os.O_WRONLY, 0o600); ferr == nil {
			fmt.Fprintf(f, "=== e2e: exited at %s: %v\n", time.Now().Format(time.RFC3339Nano), err)
			f.Close()
		}
		close(done)
	}()
	return nil
}

func (p *nsProc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the running incarnation (no-op if none).
func (p *nsProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
		switch sig {
		case syscall.SIGSTOP:
			p.paused = true
		case syscall.SIGCONT:
			p.paused = false
		}
	}
}

// kill9 kills the process and waits until it is reaped.
func (p *nsProc) kill9() error {
	p.signal(syscall.SIGKILL)
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s: not reaped 10s after SIGKILL", p.name)
	}
}

// nsCluster is servers and agents, one per host.
type nsCluster struct {
	t       *testing.T
	net     *nsNet
	dir     string // data dirs
	logDir  string // process logs, kept when the test fails
	servers []*nsProc
	agents  []*nsProc
	all     []*nsProc
	http    *http.Client
	mounts  []string // tmpfs mount points, unmounted after the processes die
	// TLS: every process binds a non-loopback address, so RPC is mutual
	// TLS and the API is HTTPS on 8501 (cli refuses plaintext there).
	serverConf, agentConf string
}

type nsClusterOpts struct {
	servers, agents int
	// tmpfsServer, when > 0, puts server number tmpfsServer's (1-based)
	// data dir on a tmpfs of tmpfsSize bytes for the disk-full fault.
	tmpfsServer int
	tmpfsSize   int64
}

// startNSCluster starts the servers and agents and waits until there is a
// leader every server agrees on and every node is in the catalog.
func startNSCluster(t *testing.T, o nsClusterOpts) *nsCluster {
	t.Helper()
	n := newNSNet(t)
	logDir, err := os.MkdirTemp("", "warren-robust-logs-")
	if err != nil {
		t.Fatal(err)
	}
	c := &nsCluster{t: t, net: n, dir: t.TempDir(), logDir: logDir}
	caPool := c.makePKI()
	c.http = &http.Client{
		Timeout: 4 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 8, IdleConnTimeout: 30 * time.Second, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			TLSClientConfig: &tls.Config{RootCAs: caPool, ServerName: "localhost"}},
	}
	t.Cleanup(c.cleanup)
	var serverIPs []string
	for i := 1; i <= o.servers; i++ {
		h := n.addHost(t, fmt.Sprintf("s%d", i), 10+i)
		serverIPs = append(serverIPs, h.ip)
		p := c.newProc(h, true)
		if i == o.tmpfsServer {
			c.mountTmpfs(p.dataDir, o.tmpfsSize)
		}
		c.servers = append(c.servers, p)
	}
	for i := 1; i <= o.agents; i++ {
		h := n.addHost(t, fmt.Sprintf("a%d", i), 100+i)
		c.agents = append(c.agents, c.newProc(h, false))
	}
	for _, p := range c.all {
		if p.server {
			p.args = append(p.args, "-bootstrap-expect", strconv.Itoa(o.servers))
		}
		for _, ip := range serverIPs {
			if ip != p.host.ip {
				p.args = append(p.args, "-retry-join", ip)
			}
		}
	}
	start := time.Now()
	for _, p := range c.all {
		if err := p.start(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.waitStable(90 * time.Second); err != nil {
		t.Fatalf("cluster did not come up: %v", err)
	}
	var names []string
	for _, p := range c.all {
		names = append(names, p.name)
	}
	if err := poll(60*time.Second, func() error { return c.nodesPassing(names...) }); err != nil {
		t.Fatal(err)
	}
	t.Logf("netns cluster on %s.0/24: %d servers + %d agents up after %s; logs in %s", n.subnet, o.servers, o.agents, time.Since(start).Round(time.Millisecond), logDir)
	return c
}

func (c *nsCluster) newProc(h *nsHost, server bool) *nsProc {
	p := &nsProc{name: h.name, host: h, server: server, dataDir: filepath.Join(c.dir, h.name), logPath: filepath.Join(c.logDir, h.name+".log")}
	mode := "agent"
	if server {
		mode = "server"
	}
	conf := c.agentConf
	if server {
		conf = c.serverConf
	}
	p.args = []string{mode, "-node", h.name, "-data-dir", p.dataDir, "-bind", h.ip, "-client", h.ip, "-retry-interval", "1s", "-config-file", conf,
		"-hcl", clusterACL(server)}
	if err := os.MkdirAll(p.dataDir, 0o700); err != nil {
		c.t.Fatal(err)
	}
	c.all = append(c.all, p)
	return p
}

// makePKI makes a CA, a server and a client certificate with `warren tls`
// and the config files that use them; it returns the CA pool.
func (c *nsCluster) makePKI() *x509.CertPool {
	p, err := testutil.MakePKI(warrenBin, filepath.Join(c.dir, "pki"), "")
	if err != nil {
		c.t.Fatal(err)
	}
	c.serverConf, c.agentConf = p.ServerConf, p.AgentConf
	return p.Pool
}

// mountTmpfs mounts a tmpfs of size bytes on dir; cleanup unmounts it.
// The mount point's name carries our pid so a later run can find a stale
// one.
func (c *nsCluster) mountTmpfs(dir string, size int64) {
	c.t.Helper()
	mnt := filepath.Join(filepath.Dir(dir), fmt.Sprintf("wrdisk-%d-%s", os.Getpid(), filepath.Base(dir)))
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		c.t.Fatal(err)
	}
	if _, err := sh("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", mnt); err != nil {
		c.t.Fatal(err)
	}
	c.mounts = append(c.mounts, mnt)
	_ = os.Remove(dir)
	if err := os.Symlink(mnt, dir); err != nil {
		c.t.Fatal(err)
	}
}

func (c *nsCluster) cleanup() {
	t := c.t
	for _, p := range c.all {
		p.signal(syscall.SIGCONT)
		if err := p.kill9(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	}
	for _, mnt := range c.mounts {
		if _, err := sh("umount", mnt); err != nil {
			if _, err := sh("umount", "-l", mnt); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	}
	races := false
	for _, p := range c.all {
		b, _ := os.ReadFile(p.logPath)
		if bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("%s: the race detector reported a data race (log %s)", p.name, p.logPath)
			races = true
		}
	}
	if t.Failed() || races {
		for _, p := range c.all {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("----- tail of %s's log (%s) -----\n%s", p.name, p.logPath, logTail(string(b), 32<<10))
		}
		t.Logf("process logs kept in %s", c.logDir)
		return
	}
	_ = os.RemoveAll(c.logDir)
}

// poll runs cond every 50ms until it succeeds or timeout passes.
func poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not after %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// getJSON GETs path from p into v; a non-200 answer is an error.
func (c *nsCluster) getJSON(p *nsProc, path string, v any) error {
	req, _ := http.NewRequest(http.MethodGet, p.httpBase()+path, nil)
	req.Header.Set("X-Consul-Token", clusterMgmtToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s GET %s: %d %s", p.name, path, resp.StatusCode, bytes.TrimSpace(body))
	}
	return json.Unmarshal(body, v)
}

// put sends a PUT with a JSON body; it returns the status code.
func (c *nsCluster) put(p *nsProc, path string, body any) (int, []byte, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, nil, err
	}
	req, _ := http.NewRequest(http.MethodPut, p.httpBase()+path, bytes.NewReader(b))
	req.Header.Set("X-Consul-Token", clusterMgmtToken)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out, nil
}

// leader returns the server every running, unpaused server names as leader.
func (c *nsCluster) leader() (*nsProc, error) {
	var addr string
	for _, s := range c.servers {
		if !s.running() || s.paused {
			continue
		}
		var l string
		if err := c.getJSON(s, "/v1/status/leader", &l); err != nil {
			return nil, err
		}
		if l == "" {
			return nil, fmt.Errorf("%s knows no leader", s.name)
		}
		if addr != "" && l != addr {
			return nil, fmt.Errorf("servers disagree on the leader: %s and %s", addr, l)
		}
		addr = l
	}
	for _, s := range c.servers {
		if s.rpcAddr() == addr {
			return s, nil
		}
	}
	return nil, fmt.Errorf("leader %q is no server of ours", addr)
}

// waitStable waits until every server runs, they agree on a leader, and a
// consistent read through every server succeeds.
func (c *nsCluster) waitStable(timeout time.Duration) (*nsProc, error) {
	var leader *nsProc
	err := poll(timeout, func() error {
		for _, s := range c.servers {
			if !s.running() {
				return fmt.Errorf("%s is not running", s.name)
			}
		}
		l, err := c.leader()
		if err != nil {
			return err
		}
		for _, s := range c.servers {
			var v any
			if err := c.getJSON(s, "/v1/catalog/services?consistent", &v); err != nil {
				return err
			}
		}
		leader = l
		return nil
	})
	return leader, err
}

// nodesPassing returns an error unless every named node is in the catalog
// with a passing serfHealth check.
func (c *nsCluster) nodesPassing(names ...string) error {
	var checks []struct {
		Node, CheckID, Status string
	}
	srv := c.anyServer()
	if err := c.getJSON(srv, "/v1/health/state/any", &checks); err != nil {
		return err
	}
	st := map[string]string{}
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" {
			st[ch.Node] = ch.Status
		}
	}
	for _, n := range names {
		if st[n] != "passing" {
			return fmt.Errorf("node %s: serfHealth %q", n, st[n])
		}
	}
	return nil
}

// serfHealth returns node's serfHealth status as a running server sees it.
func (c *nsCluster) serfHealth(node string) (string, error) {
	var checks []struct{ CheckID, Status string }
	if err := c.getJSON(c.anyServer(), "/v1/health/node/"+node, &checks); err != nil {
		return "", err
	}
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" {
			return ch.Status, nil
		}
	}
	return "", fmt.Errorf("node %s has no serfHealth check", node)
}

func (c *nsCluster) anyServer() *nsProc {
	for _, s := range c.servers {
		if s.running() && !s.paused {
			return s
		}
	}
	return c.servers[0]
}

// followers are the servers other than l.
func (c *nsCluster) followers(l *nsProc) []*nsProc {
	var out []*nsProc
	for _, s := range c.servers {
		if s != l {
			out = append(out, s)
		}
	}
	return out
}

// fillDisk writes a file into dir until the file system is full; it
// returns the file's path. The bound keeps a misconfigured mount from
// filling a real disk.
func fillDisk(dir string, limit int64) (string, error) {
	path := filepath.Join(dir, "e2e-filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return path, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	chunk := make([]byte, 64<<10)
	for written := int64(0); written < limit; written += int64(len(chunk)) {
		if _, err := w.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path, nil
			}
			return path, err
		}
	}
	if err := w.Flush(); err != nil && errors.Is(err, syscall.ENOSPC) {
		return path, nil
	}
	return path, fmt.Errorf("wrote %d bytes into %s without filling it", limit, dir)
}
