package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// Agent benchmark parameters and targets.
const (
	agentServices      = 20               // services of the measured agent, 2 checks each
	agentIdle          = 10 * time.Second // idle time before VmRSS is read
	agentRSSTargetKB   = 25 * 1024        // 25 MiB
	agentDetectRuns    = 3                // kill/detect measurements, fresh agent each
	agentDetectTarget  = 5 * time.Second
	agentDetectPoll    = 20 * time.Millisecond
	agentDetectTimeout = 60 * time.Second // give up on one detection after this
	agentJoinTimeout   = 60 * time.Second // bound on an agent's registration
	serfHealthID       = "serfHealth"
)

// agentProc is one `warren agent` process.
type agentProc struct {
	name      string
	dataDir   string
	configDir string
	logPath   string
	httpAddr  string
	serfAddr  string
	cmd       *exec.Cmd
	exited    chan struct{} // closed when the process has been reaped
	waitErr   error         // valid once exited is closed
}

func (a *agentProc) pid() int { return a.cmd.Process.Pid }

// runAgentBench measures a client agent's idle resident memory with
// agentServices services and two checks each, then how long the servers
// take to mark a SIGKILLed agent's node critical.
func runAgentBench(ctx context.Context, o *options, rep *report) error {
	c, err := startCluster(ctx, o.warren, o.keep)
	if err != nil {
		return err
	}
	defer c.stop()
	hc := newClient(2)
	defer hc.CloseIdleConnections()

	// What the tcp checks connect to: accept and close at once.
	ln, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return fmt.Errorf("listen for tcp checks: %w", err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed
			}
			_ = conn.Close()
		}
	}()
	tcpAddr := ln.Addr().String()

	// --- resident memory of an idle agent with 20 services, 40 checks.
	a1, err := startAgent(c, o.warren, "a1", agentServices, tcpAddr)
	if err != nil {
		return err
	}
	defer a1.stop()
	start := time.Now()
	if err := waitAgentRegistered(ctx, hc, c, a1, agentServices); err != nil {
		return err
	}
	log.Printf("agent: %s registered with %d services and %d checks + serfHealth after %s; idling %s",
		a1.name, agentServices, 2*agentServices, time.Since(start).Round(10*time.Millisecond), agentIdle)
	if err := sleepCtx(ctx, agentIdle); err != nil {
		return err
	}
	if err := a1.checkAlive(); err != nil {
		return err
	}
	rss, err := procStatusKB(a1.pid(), "VmRSS")
	if err != nil {
		return err
	}
	anon, _ := procStatusKB(a1.pid(), "RssAnon")
	file, _ := procStatusKB(a1.pid(), "RssFile")
	hwm, _ := procStatusKB(a1.pid(), "VmHWM")
	rep.check("agent_rss", fmt.Sprintf("%.1f MiB", float64(rss)/1024), fmt.Sprintf("< %d MiB", agentRSSTargetKB/1024), rss > 0 && rss < agentRSSTargetKB)
	rep.info("agent_rss_detail", fmt.Sprintf("anon %.1f MiB, file %.1f MiB, peak %.1f MiB, %d threads; %s",
		float64(anon)/1024, float64(file)/1024, float64(hwm)/1024, threads(a1.pid()), lastGC(a1.logPath)))
	rep.note("agent: one `warren agent` joined to 3 servers, %d services x (ttl 1h + tcp every 10s) from a -config-dir, VmRSS read after %s idle; no GC forced",
		agentServices, agentIdle)

	// --- failure detection: SIGKILL a fresh agent, poll the leader.
	var detect []time.Duration
	for i := range agentDetectRuns {
		d, err := detectOnce(ctx, hc, c, o.warren, fmt.Sprintf("a%d", i+2), tcpAddr)
		if err != nil {
			return err
		}
		log.Printf("agent: run %d: serfHealth critical on the leader %s after the kill", i+1, d.Round(time.Millisecond))
		detect = append(detect, d)
	}
	sorted := slices.Clone(detect)
	slices.Sort(sorted)
	med := sorted[len(sorted)/2]
	each := make([]string, len(detect))
	for i, d := range detect {
		each[i] = fmt.Sprintf("%.2f", d.Seconds())
	}
	rep.check("failure_detection", fmt.Sprintf("%.2f s", med.Seconds()), fmt.Sprintf("<= %.0f s", agentDetectTarget.Seconds()), med <= agentDetectTarget)
	rep.info("failure_detection_runs", strings.Join(each, " / ")+" s")
	rep.note("failure detection: median of %d fresh 1-service agents, SIGKILLed; GET /v1/health/node/<agent> on the leader every %s until serfHealth is critical; default gossip settings",
		agentDetectRuns, agentDetectPoll)
	return c.checkAlive()
}

// detectOnce starts agent name with one service, waits until its node is
// registered with serfHealth passing, SIGKILLs it and returns how long the
// leader took to report serfHealth critical.
func detectOnce(ctx context.Context, hc *httpClient, c *cluster, bin, name, tcpAddr string) (time.Duration, error) {
	a, err := startAgent(c, bin, name, 1, tcpAddr)
	if err != nil {
		return 0, err
	}
	defer a.stop() // a no-op once killed
	if err := waitAgentRegistered(ctx, hc, c, a, 1); err != nil {
		return 0, err
	}
	u := c.leader.baseURL() + "/v1/health/node/" + url.PathEscape(name)
	killed := time.Now()
	if err := a.kill(); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, agentDetectTimeout)
	defer cancel()
	tick := time.NewTicker(agentDetectPoll)
	defer tick.Stop()
	last := "none"
	for {
		var checks []*api.HealthCheck
		if _, err := hc.getJSON(ctx, u, &checks); err == nil {
			last = "absent"
			for _, ch := range checks {
				if ch.CheckID == serfHealthID {
					last = ch.Status
				}
			}
			if last == catalog.HealthCritical {
				return time.Since(killed), nil
			}
		}
		select {
		case <-ctx.Done():
			if err := c.checkAlive(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("%s killed but its serfHealth still %q on the leader after %s: %w", name, last, agentDetectTimeout, ctx.Err())
		case <-tick.C:
		}
	}
}

// startAgent writes a config dir of services services (each a ttl and a
// tcp check on tcpAddr) and starts `warren agent` joined to c's servers,
// its data, config and log under c's dir.
func startAgent(c *cluster, bin, name string, services int, tcpAddr string) (*agentProc, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	a := &agentProc{
		name:      name,
		dataDir:   filepath.Join(c.dir, name),
		configDir: filepath.Join(c.dir, name+"-config"),
		logPath:   filepath.Join(c.dir, name+".log"),
		httpAddr:  net.JoinHostPort(loopback, strconv.Itoa(ports[0])),
		serfAddr:  net.JoinHostPort(loopback, strconv.Itoa(ports[1])),
	}
	for _, d := range []string{a.dataDir, a.configDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.WriteFile(filepath.Join(a.configDir, "services.hcl"), []byte(agentServicesHCL(name, services, tcpAddr)), 0o600); err != nil {
		return nil, fmt.Errorf("write %s config: %w", name, err)
	}
	args := []string{"agent", "-hcl", "acl {\n enabled = false\n}\n",
		"-node", name,
		"-data-dir", a.dataDir,
		"-config-dir", a.configDir,
		"-bind", loopback,
		"-client", loopback,
		"-http-port", strconv.Itoa(ports[0]),
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-server-port", strconv.Itoa(ports[2]),
		"-dns-port", "-1",
		"-grpc-port", "-1",
		"-retry-interval", "1s",
		"-log-level", "warn",
	}
	for _, p := range c.procs {
		args = append(args, "-retry-join", p.serfAddr)
	}
	logf, err := os.Create(a.logPath)
	if err != nil {
		return nil, fmt.Errorf("create agent log: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// gctrace prints a line per collection (it forces none), for the live heap.
	cmd.Env = append(os.Environ(), "GODEBUG=gctrace=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start agent %s: %w", name, err)
	}
	a.cmd = cmd
	a.exited = make(chan struct{})
	go func() {
		a.waitErr = cmd.Wait()
		close(a.exited)
	}()
	log.Printf("agent: %s started (pid %d, http %s, serf %s, %d services)", name, cmd.Process.Pid, a.httpAddr, a.serfAddr, services)
	return a, nil
}

// agentServicesHCL is a config file of n services, each with a ttl check
// and a tcp check against tcpAddr.
func agentServicesHCL(node string, n int, tcpAddr string) string {
	var b strings.Builder
	for i := range n {
		id := fmt.Sprintf("%s-svc-%02d", node, i)
		fmt.Fprintf(&b, `services {
  name = "bench-svc-%02d"
  id   = %q
  port = %d
  checks = [
    { id = "%s-ttl", ttl = "1h" },
    { id = "%s-tcp", tcp = %q, interval = "10s" },
  ]
}
`, i, id, 21000+i, id, id, tcpAddr)
	}
	return b.String()
}

// waitAgentRegistered polls the leader until a's node is in the catalog
// with services services, 2*services+1 checks and serfHealth passing.
func waitAgentRegistered(ctx context.Context, hc *httpClient, c *cluster, a *agentProc, services int) error {
	ctx, cancel := context.WithTimeout(ctx, agentJoinTimeout)
	defer cancel()
	base := c.leader.baseURL()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	state := "not polled"
	for {
		if err := a.checkAlive(); err != nil {
			return err
		}
		if err := c.checkAlive(); err != nil {
			return err
		}
		var node *api.CatalogNode
		var checks []*api.HealthCheck
		_, err1 := hc.getJSON(ctx, base+"/v1/catalog/node/"+url.PathEscape(a.name), &node)
		_, err2 := hc.getJSON(ctx, base+"/v1/health/node/"+url.PathEscape(a.name), &checks)
		switch {
		case err1 != nil || err2 != nil:
			state = fmt.Sprintf("errors: %v; %v", err1, err2)
		case node == nil || node.Node == nil:
			state = "node not in catalog"
		default:
			serf := "absent"
			for _, ch := range checks {
				if ch.CheckID == serfHealthID {
					serf = ch.Status
				}
			}
			state = fmt.Sprintf("%d services, %d checks, serfHealth %s", len(node.Services), len(checks), serf)
			if len(node.Services) == services && len(checks) == 2*services+1 && serf == catalog.HealthPassing {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s not registered on the leader within %s (last: %s); its log %s:\n%s",
				a.name, agentJoinTimeout, state, a.logPath, tail(a.logPath, 2000))
		case <-tick.C:
		}
	}
}

// checkAlive returns an error if the agent has exited.
func (a *agentProc) checkAlive() error {
	select {
	case <-a.exited:
		return fmt.Errorf("agent %s exited (%v); see its log %s:\n%s", a.name, a.waitErr, a.logPath, tail(a.logPath, 2000))
	default:
		return nil
	}
}

// kill SIGKILLs the agent and waits until it has been reaped.
func (a *agentProc) kill() error {
	if err := a.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", a.name, err)
	}
	select {
	case <-a.exited:
	case <-time.After(stopGrace):
		return fmt.Errorf("agent %s not reaped %s after SIGKILL", a.name, stopGrace)
	}
	return nil
}

// stop sends SIGTERM (an agent leaves the pool on it), SIGKILL after
// stopGrace, and waits. Safe after kill and more than once.
func (a *agentProc) stop() {
	select {
	case <-a.exited:
		return
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(stopGrace):
		log.Printf("agent: %s did not stop within %s; killing it", a.name, stopGrace)
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// threads is the process's thread count (-1 when unreadable).
func threads(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err == nil {
				return n
			}
		}
	}
	return -1
}
