package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// clusterSize is the number of servers every benchmark runs against.
const clusterSize = 3

// Bounds on cluster setup and teardown.
const (
	leaderTimeout = 60 * time.Second
	stopGrace     = 10 * time.Second
)

// proc is one warren server process.
type proc struct {
	name     string
	dataDir  string
	logPath  string
	rpcAddr  string // host:port of server RPC (what /v1/status/leader names)
	httpAddr string // host:port of the HTTP API
	serfAddr string // host:port of serf LAN gossip
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has been reaped
	waitErr  error         // valid once exited is closed
}

// baseURL is the HTTP API's root, e.g. http://127.0.0.1:8500.
func (p *proc) baseURL() string { return "http://" + p.httpAddr }

// pid is the server's process ID.
func (p *proc) pid() int { return p.cmd.Process.Pid }

// cluster is a set of warren server processes sharing one base dir.
type cluster struct {
	dir    string
	keep   bool
	env    []string
	procs  []*proc
	leader *proc // as agreed when the cluster came up
}

// startCluster starts clusterSize servers of the binary bin, each with its
// own data dir under a fresh dir, and waits until they agree on a leader.
// env is added to the servers' environment. On error it has already torn
// down what it started.
func startCluster(ctx context.Context, bin string, keep bool, env ...string) (c *cluster, err error) {
	base, err := dataBase()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "warren-bench-")
	if err != nil {
		return nil, fmt.Errorf("create cluster dir: %w", err)
	}
	c = &cluster{dir: dir, keep: keep, env: env}
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	ports, err := freePorts(3 * clusterSize)
	if err != nil {
		return c, err
	}
	for i := range clusterSize {
		c.procs = append(c.procs, &proc{
			name:     fmt.Sprintf("s%d", i+1),
			dataDir:  filepath.Join(dir, fmt.Sprintf("s%d", i+1)),
			logPath:  filepath.Join(dir, fmt.Sprintf("s%d.log", i+1)),
			rpcAddr:  net.JoinHostPort(loopback, strconv.Itoa(ports[3*i])),
			httpAddr: net.JoinHostPort(loopback, strconv.Itoa(ports[3*i+1])),
			serfAddr: net.JoinHostPort(loopback, strconv.Itoa(ports[3*i+2])),
		})
	}
	for i, p := range c.procs {
		if err := c.startProc(bin, p, ports[3*i+2]); err != nil {
			return c, err
		}
	}
	log.Printf("cluster: %d servers started, data under %s", clusterSize, dir)
	if c.leader, err = c.waitLeader(ctx); err != nil {
		return c, err
	}
	return c, nil
}

// startProc starts one server with the flags of a 3-server bootstrap.
func (c *cluster) startProc(bin string, p *proc, serfPort int) error {
	_, rpcPort, _ := net.SplitHostPort(p.rpcAddr)
	_, httpPort, _ := net.SplitHostPort(p.httpAddr)
	args := []string{"server",
		"-node", p.name,
		"-data-dir", p.dataDir,
		"-bind", loopback,
		"-client", loopback,
		"-server-port", rpcPort,
		"-http-port", httpPort,
		"-dns-port", "-1",
		"-grpc-port", "-1",
		"-serf-lan-port", strconv.Itoa(serfPort),
		"-bootstrap-expect", strconv.Itoa(clusterSize),
		"-retry-interval", "1s",
		"-log-level", "warn",
		// Open, as the figures recorded before ACLs existed.
		"-hcl", "acl {\n enabled = false\n}\n",
	}
	for _, q := range c.procs {
		args = append(args, "-retry-join", q.serfAddr)
	}
	if err := os.MkdirAll(p.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return c.launch(bin, p, args)
}

// launch starts p as `bin args...` with its output in p.logPath and c.env
// added to the environment, and watches for its exit.
func (c *cluster) launch(bin string, p *proc, args []string) error {
	logf, err := os.Create(p.logPath)
	if err != nil {
		return fmt.Errorf("create %s log: %w", p.name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	limits, err := c.limitsFile()
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, append(args, "-config-file", limits)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), c.env...)
	// Own process group (Ctrl-C reaches us, we stop the servers in order),
	// and die with the bench if it is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	p.cmd = cmd
	p.exited = make(chan struct{})
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return nil
}

// benchLimits raises the per-client HTTP caps: the bench drives each
// process from one loopback address with thousands of connections and
// blocking queries (the fan-out's 10,000 watchers), far past the defaults
// (200 and 150). The caps stay on, so their cost is still measured.
const benchLimits = `limits {
  http_max_conns_per_client            = 1000000
  http_max_blocking_queries_per_client = 1000000
}
`

// limitsFile writes benchLimits into the cluster dir (once) and returns
// its path.
func (c *cluster) limitsFile() (string, error) {
	path := filepath.Join(c.dir, "bench-limits.hcl")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.WriteFile(path, []byte(benchLimits), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, nil
}

// stop terminates every server (SIGTERM, then SIGKILL after stopGrace),
// waits for them, and removes the cluster dir unless keep is set. It is
// safe to call more than once.
func (c *cluster) stop() {
	for _, p := range c.procs {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.NewTimer(stopGrace)
	defer deadline.Stop()
	for _, p := range c.procs {
		if p.cmd == nil {
			continue
		}
		select {
		case <-p.exited:
		case <-deadline.C:
			log.Printf("cluster: %s did not stop within %s; killing it", p.name, stopGrace)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if c.keep {
		log.Printf("cluster: kept %s", c.dir)
		return
	}
	if err := os.RemoveAll(c.dir); err != nil {
		log.Printf("cluster: remove %s: %v", c.dir, err)
	}
}

// checkAlive returns an error naming the first server that has exited.
func (c *cluster) checkAlive() error {
	for _, p := range c.procs {
		select {
		case <-p.exited:
			return fmt.Errorf("server %s exited (%v); see its log %s:\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 2000))
		default:
		}
	}
	return nil
}

// waitLeader polls GET /v1/status/leader on every server until all name
// the same leader, and returns that leader.
func (c *cluster) waitLeader(ctx context.Context) (*proc, error) {
	ctx, cancel := context.WithTimeout(ctx, leaderTimeout)
	defer cancel()
	hc := newClient(4)
	defer hc.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	for {
		if err := c.checkAlive(); err != nil {
			return nil, err
		}
		if leader, ok := c.agreedLeader(ctx, hc); ok {
			log.Printf("cluster: leader %s (rpc %s) after %s", leader.name, leader.rpcAddr, time.Since(start).Round(10*time.Millisecond))
			return leader, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no leader agreed by all servers within %s: %w", leaderTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// agreedLeader asks every server for the leader; ok when all answer with
// the same known server.
func (c *cluster) agreedLeader(ctx context.Context, hc *httpClient) (*proc, bool) {
	var leader string
	for _, p := range c.procs {
		var addr string
		if _, err := hc.getJSON(ctx, p.baseURL()+"/v1/status/leader", &addr); err != nil || addr == "" {
			return nil, false
		}
		if leader != "" && addr != leader {
			return nil, false
		}
		leader = addr
	}
	for _, p := range c.procs {
		if p.rpcAddr == leader {
			return p, true
		}
	}
	return nil, false
}

// freePorts reserves n distinct loopback ports free for both TCP and UDP
// (serf gossips on both), then releases them for the servers to bind.
func freePorts(n int) ([]int, error) {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	ports := make([]int, 0, n)
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n {
			return nil, errors.New("could not find free loopback ports")
		}
		l, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("reserve a port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(loopback, strconv.Itoa(port)))
		if err != nil {
			_ = l.Close()
			continue
		}
		closers = append(closers, l.Close, u.Close)
		ports = append(ports, port)
	}
	return ports, nil
}

// tail returns at most the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	buf := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return string(buf)
}
