package main

// The recovery benchmark (-only recovery) measures how fast a cluster gets
// over faults. Unlike the other benchmarks it needs separate hosts, so it
// builds them: one network namespace per process, veth pairs into a bridge,
// addresses from 10.213.N.0/24 (a range that exists only on that bridge and
// inside those namespaces); the bench reaches every process through the
// bridge's address. Partitions are nftables rules inside a namespace. It
// needs root, `ip` and `nft`; without them it reports itself skipped.
//
// Figures:
//   - kill -9 of the leader -> first successful write through another server
//     (target under 1.5 s), median and worst of recoveryKills runs;
//   - a follower partitioned while the others take writes: time from heal
//     until its own (stale) reads return every write made meanwhile;
//   - kill -9 of an agent -> its node's serfHealth critical on the servers;
//   - DNS on an agent during each leader loss: every query (one per 20 ms)
//     from the kill until a write succeeds again must be answered, from the
//     agent's local view.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/warren-mesh/warren/internal/testutil"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	recoveryKills        = 3
	recoveryWriteTarget  = 1500 * time.Millisecond
	recoveryDetectTarget = 5 * time.Second // as the agent benchmark's
	recoveryPartWrites   = 500
	recoveryPoll         = 10 * time.Millisecond
	recoveryTimeout      = 60 * time.Second // bound on every wait
)

// rcHost is one namespace running one warren process.
type rcHost struct {
	name, ns, veth, ip string
	server             bool
	args               []string
	logPath            string
	cmd                *exec.Cmd
	exited             chan struct{}
}

// base is the host's HTTPS API: off loopback a server or agent serves no
// plaintext HTTP and its RPC needs TLS (rcPKI).
func (h *rcHost) base() string { return "https://" + net.JoinHostPort(h.ip, "8501") }

// rcNet is the bridge, its hosts, and everything to remove at the end.
type rcNet struct {
	bin    string
	dir    string
	subnet string
	bridge string
	hosts  []*rcHost
	hc     *httpClient
}

func rcRun(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func rcNFT(ns, script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft in %s: %w: %s", ns, err, out)
	}
	return nil
}

// recoverySkipReason is why the benchmark cannot run here, or "".
func recoverySkipReason() string {
	if os.Geteuid() != 0 {
		return "needs root for network namespaces"
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Sprintf("needs %q on PATH (iproute2, nftables)", tool)
		}
	}
	return ""
}

// newRCNet makes the bridge and a namespace per host: s1..s3 and a1.
func newRCNet(bin string) (n *rcNet, err error) {
	dir, err := os.MkdirTemp("", "warren-bench-recovery-")
	if err != nil {
		return nil, err
	}
	n = &rcNet{bin: bin, dir: dir, bridge: fmt.Sprintf("wrb%dx90", os.Getpid())}
	defer func() {
		if err != nil {
			n.close(true)
			n = nil
		}
	}()
	// Off loopback, servers refuse plaintext: TLS on RPC and HTTPS, ACLs
	// off as every bench runs.
	pki, err := testutil.MakePKI(bin, filepath.Join(dir, "pki"), "acl {\n  enabled = false\n}\n")
	if err != nil {
		return n, err
	}
	n.hc = newClient(8)
	n.hc.transport.TLSClientConfig = &tls.Config{RootCAs: pki.Pool, ServerName: "localhost"}
	out, _ := exec.Command("ip", "-4", "addr", "show").CombinedOutput()
	routes, _ := exec.Command("ip", "-4", "route", "show", "table", "all").CombinedOutput()
	for i := range 250 {
		c := (os.Getpid()+100+i)%250 + 1
		p := fmt.Sprintf("10.213.%d.", c)
		if !strings.Contains(string(out), p) && !strings.Contains(string(routes), p) {
			n.subnet = fmt.Sprintf("10.213.%d", c)
			break
		}
	}
	if n.subnet == "" {
		return n, errors.New("no free /24 in 10.213.0.0/16")
	}
	for _, c := range [][]string{
		{"ip", "link", "add", n.bridge, "type", "bridge"},
		{"ip", "addr", "add", n.subnet + ".1/24", "dev", n.bridge},
		{"ip", "link", "set", n.bridge, "up"},
	} {
		if err := rcRun(c...); err != nil {
			return n, err
		}
	}
	names := []string{"s1", "s2", "s3", "a1"}
	for i, name := range names {
		h := &rcHost{
			name: name, server: name[0] == 's',
			ns:      fmt.Sprintf("wr-%d-90-%s", os.Getpid(), name),
			veth:    fmt.Sprintf("wrv%dn9%d", os.Getpid(), i),
			ip:      fmt.Sprintf("%s.%d", n.subnet, 10+i+1),
			logPath: filepath.Join(dir, name+".log"),
		}
		if err := rcRun("ip", "netns", "add", h.ns); err != nil {
			return n, err
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
			if err := rcRun(c...); err != nil {
				return n, err
			}
		}
		mode := "agent"
		if h.server {
			mode = "server"
		}
		conf := pki.AgentConf
		if h.server {
			conf = pki.ServerConf
		}
		h.args = []string{mode, "-node", name, "-data-dir", filepath.Join(dir, name), "-bind", h.ip, "-client", h.ip,
			"-retry-interval", "1s", "-log-level", "warn", "-grpc-port", "-1", "-config-file", conf}
		if h.server {
			h.args = append(h.args, "-bootstrap-expect", "3")
		}
		for j := range 3 {
			if j != i {
				h.args = append(h.args, "-retry-join", fmt.Sprintf("%s.%d", n.subnet, 10+j+1))
			}
		}
	}
	return n, nil
}

func (n *rcNet) servers() []*rcHost { return n.hosts[:3] }
func (n *rcNet) agent() *rcHost     { return n.hosts[3] }

func (n *rcNet) start(h *rcHost) error {
	logf, err := os.OpenFile(h.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.ns, n.bin}, h.args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", h.name, err)
	}
	h.cmd, h.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { _ = cmd.Wait(); close(done) }(h.exited)
	return nil
}

func (n *rcNet) kill(h *rcHost) error {
	if h.cmd == nil {
		return nil
	}
	_ = h.cmd.Process.Kill()
	select {
	case <-h.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s not reaped after SIGKILL", h.name)
	}
}

// close kills every process and removes namespaces, links and files.
func (n *rcNet) close(keepLogs bool) {
	for _, h := range n.hosts {
		if err := n.kill(h); err != nil {
			log.Printf("recovery: %v", err)
		}
	}
	for _, h := range n.hosts {
		if err := rcRun("ip", "netns", "del", h.ns); err != nil {
			log.Printf("recovery: cleanup: %v", err)
		}
		_ = rcRun("ip", "link", "del", h.veth) // normally gone with its namespace
	}
	if n.bridge != "" {
		_ = rcRun("ip", "link", "del", n.bridge)
	}
	n.hc.CloseIdleConnections()
	if keepLogs {
		log.Printf("recovery: logs kept in %s", n.dir)
		return
	}
	_ = os.RemoveAll(n.dir)
}

// leader returns the server all running servers name as leader.
func (n *rcNet) leader(ctx context.Context) (*rcHost, error) {
	var agreed string
	for _, s := range n.servers() {
		var l string
		if _, err := n.hc.getJSON(ctx, s.base()+"/v1/status/leader", &l); err != nil {
			return nil, err
		}
		if l == "" || (agreed != "" && l != agreed) {
			return nil, fmt.Errorf("no agreed leader (%q, %q)", agreed, l)
		}
		agreed = l
	}
	for _, s := range n.servers() {
		if net.JoinHostPort(s.ip, "8300") == agreed {
			return s, nil
		}
	}
	return nil, fmt.Errorf("leader %q unknown", agreed)
}

// rcPoll runs cond every recoveryPoll until it succeeds or recoveryTimeout.
func rcPoll(ctx context.Context, what string, cond func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not within %s: %w", what, recoveryTimeout, err)
		case <-time.After(recoveryPoll):
		}
	}
}

// stable waits until the servers agree on a leader and every one serves a
// consistent read.
func (n *rcNet) stable(ctx context.Context) (*rcHost, error) {
	var leader *rcHost
	err := rcPoll(ctx, "stable leader", func(ctx context.Context) error {
		l, err := n.leader(ctx)
		if err != nil {
			return err
		}
		for _, s := range n.servers() {
			var v any
			if _, err := n.hc.getJSON(ctx, s.base()+"/v1/catalog/services?consistent", &v); err != nil {
				return err
			}
		}
		leader = l
		return nil
	})
	return leader, err
}

func (n *rcNet) register(ctx context.Context, h *rcHost, node, id, service, addr string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	body := fmt.Sprintf(`{"Node":%q,"Address":%q,"Service":{"ID":%q,"Service":%q,"Port":80}}`, node, addr, id, service)
	return n.hc.put(ctx, h.base()+"/v1/catalog/register", []byte(body))
}

// dnsProbe asks the agent for name every 20 ms until stop, counting
// queries and correct answers.
type dnsProbe struct {
	asked, answered atomic.Int64
	firstFail       atomic.Value // string
}

func (p *dnsProbe) run(stop <-chan struct{}, server, name, want string) {
	cl := &dns.Client{Timeout: 500 * time.Millisecond}
	for range 100000 {
		select {
		case <-stop:
			return
		default:
		}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		p.asked.Add(1)
		r, _, err := cl.Exchange(m, server)
		ok := err == nil && r.Rcode == dns.RcodeSuccess && len(r.Answer) > 0
		if ok {
			a, isA := r.Answer[0].(*dns.A)
			ok = isA && a.A.String() == want
		}
		if ok {
			p.answered.Add(1)
		} else if p.firstFail.Load() == nil {
			p.firstFail.Store(fmt.Sprintf("%v %v", err, r))
		}
		select {
		case <-stop:
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func runRecovery(ctx context.Context, o *options, rep *report) (err error) {
	if why := recoverySkipReason(); why != "" {
		rep.info("recovery", "skipped: "+why)
		return nil
	}
	n, err := newRCNet(o.warren)
	if err != nil {
		return err
	}
	defer func() { n.close(o.keep || err != nil) }()
	for _, h := range n.servers() {
		if err := n.start(h); err != nil {
			return err
		}
	}
	if _, err := n.stable(ctx); err != nil {
		return err
	}
	if err := n.start(n.agent()); err != nil {
		return err
	}
	a := n.agent()
	rep.note("recovery: 3 servers and 1 agent in network namespaces on %s.0/24, hashicorp/raft default timings", n.subnet)

	// A name for the agent's DNS to answer during leader losses.
	dnsIP := n.subnet + ".200"
	if err := rcPoll(ctx, "register recov-dns", func(ctx context.Context) error {
		return n.register(ctx, n.servers()[0], "recov-ext", "recov-dns", "recov-dns", dnsIP, 5*time.Second)
	}); err != nil {
		return err
	}
	dnsAddr := net.JoinHostPort(a.ip, "8600")
	if err := rcPoll(ctx, "agent DNS answers recov-dns", func(ctx context.Context) error {
		m := new(dns.Msg)
		m.SetQuestion("recov-dns.service.warren.", dns.TypeA)
		r, _, err := (&dns.Client{Timeout: time.Second}).Exchange(m, dnsAddr)
		if err != nil {
			return err
		}
		if len(r.Answer) == 0 {
			return errors.New("no answer yet")
		}
		return nil
	}); err != nil {
		return err
	}

	// 1 + 4: leader kill -> first write via another server; DNS meanwhile.
	var writeTimes []time.Duration
	var dnsAsked, dnsAnswered int64
	dnsFail := ""
	for run := range recoveryKills {
		leader, err := n.stable(ctx)
		if err != nil {
			return err
		}
		stop := make(chan struct{})
		probe := &dnsProbe{}
		var probeWG sync.WaitGroup
		probeWG.Add(1)
		go func() { defer probeWG.Done(); probe.run(stop, dnsAddr, "recov-dns.service.warren.", dnsIP) }()
		if err := n.kill(leader); err != nil {
			close(stop)
			return err
		}
		took, werr := firstWrite(ctx, n, leader, run)
		close(stop)
		probeWG.Wait()
		if werr != nil {
			return werr
		}
		writeTimes = append(writeTimes, took)
		dnsAsked += probe.asked.Load()
		dnsAnswered += probe.answered.Load()
		if f, ok := probe.firstFail.Load().(string); ok && dnsFail == "" {
			dnsFail = f
		}
		log.Printf("recovery: run %d: leader %s killed; first write through another server after %s; DNS %d/%d answered",
			run+1, leader.name, took.Round(time.Millisecond), probe.answered.Load(), probe.asked.Load())
		if err := n.start(leader); err != nil {
			return err
		}
	}
	slices.Sort(writeTimes)
	med, worst := writeTimes[len(writeTimes)/2], writeTimes[len(writeTimes)-1]
	rep.check("recovery: leader kill -9 -> first write via another server (median)", ms(med), "< 1.5s", med < recoveryWriteTarget)
	rep.check("recovery: leader kill -9 -> first write via another server (worst)", ms(worst), "< 1.5s", worst < recoveryWriteTarget)
	rep.check("recovery: agent DNS answers during leader loss", fmt.Sprintf("%d/%d", dnsAnswered, dnsAsked), "all", dnsAnswered == dnsAsked && dnsAsked > 0)
	if dnsFail != "" {
		rep.note("recovery: first failed DNS answer during a leader loss: %s", dnsFail)
	}

	// 2: a partitioned follower rejoins and catches up.
	catchUp, leaderSeen, err := partitionCatchUp(ctx, n)
	if err != nil {
		return err
	}
	rep.info("recovery: partitioned follower knows the leader again after heal", ms(leaderSeen))
	rep.info(fmt.Sprintf("recovery: partitioned follower has all %d writes made meanwhile, after heal", recoveryPartWrites), ms(catchUp))

	// 3: a killed agent's node turns critical.
	if err := rcPoll(ctx, "agent a1 passing", func(ctx context.Context) error { return serfHealthIs(ctx, n, a.name, "passing") }); err != nil {
		return err
	}
	if err := n.kill(a); err != nil {
		return err
	}
	killed := time.Now()
	if err := rcPoll(ctx, "agent a1 critical", func(ctx context.Context) error { return serfHealthIs(ctx, n, a.name, "critical") }); err != nil {
		return err
	}
	crit := time.Since(killed)
	rep.check("recovery: agent kill -9 -> node critical", ms(crit), "< 5s", crit < recoveryDetectTarget)
	return nil
}

// firstWrite writes through every server but the killed one, each writer
// issuing a new request every 10 ms (each may wait for the election), and
// returns the time from now until the first one succeeds.
func firstWrite(ctx context.Context, n *rcNet, killed *rcHost, run int) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	first := make(chan time.Duration, 1)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for _, s := range n.servers() {
		if s == killed {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range int(recoveryTimeout / (10 * time.Millisecond)) {
				if ctx.Err() != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("recov-w%d-%d", run, seq.Add(1))
					if n.register(ctx, s, "recov-writes", id, "recov-writes", n.subnet+".201", 10*time.Second) == nil {
						select {
						case first <- time.Since(start):
							cancel()
						default:
						}
					}
				}()
				select {
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	select {
	case d := <-first:
		return d, nil
	default:
		return 0, fmt.Errorf("no write succeeded within %s of killing leader %s", recoveryTimeout, killed.name)
	}
}

// partitionCatchUp partitions a follower, writes through the leader, heals,
// and measures until the follower knows the leader and has every write.
func partitionCatchUp(ctx context.Context, n *rcNet) (catchUp, leaderSeen time.Duration, err error) {
	leader, err := n.stable(ctx)
	if err != nil {
		return 0, 0, err
	}
	var f *rcHost
	for _, s := range n.servers() {
		if s != leader {
			f = s
			break
		}
	}
	peers := fmt.Sprintf("%s.0/24", n.subnet)
	gw := n.subnet + ".1"
	script := fmt.Sprintf(`table inet wrfault {
  chain in { type filter hook input priority 0; policy accept; ip saddr %s ip saddr != %s drop; }
  chain out { type filter hook output priority 0; policy accept; ip daddr %s ip daddr != %s drop; }
}
`, peers, gw, peers, gw)
	if err := rcNFT(f.ns, script); err != nil {
		return 0, 0, err
	}
	healed := false
	heal := func() error {
		if healed {
			return nil
		}
		healed = true
		return rcRun("ip", "netns", "exec", f.ns, "nft", "delete", "table", "inet", "wrfault")
	}
	defer func() { _ = heal() }()
	// Let the follower notice (it stops hearing heartbeats) before writing.
	if err := rcPoll(ctx, "partitioned follower loses the leader", func(ctx context.Context) error {
		var l string
		if _, err := n.hc.getJSON(ctx, f.base()+"/v1/status/leader", &l); err != nil {
			return err
		}
		if l != "" {
			return fmt.Errorf("%s still names leader %s", f.name, l)
		}
		return nil
	}); err != nil {
		return 0, 0, err
	}
	leader, err = n.leaderOf(ctx, n.others(f))
	if err != nil {
		return 0, 0, err
	}
	for i := range recoveryPartWrites {
		id := fmt.Sprintf("recov-part-%d", i)
		if err := rcPoll(ctx, "write during partition", func(ctx context.Context) error {
			return n.register(ctx, leader, "recov-part", id, "recov-part", n.subnet+".202", 5*time.Second)
		}); err != nil {
			return 0, 0, err
		}
	}
	if err := heal(); err != nil {
		return 0, 0, err
	}
	start := time.Now()
	err = rcPoll(ctx, "partitioned follower catches up", func(ctx context.Context) error {
		if leaderSeen == 0 {
			var l string
			if _, err := n.hc.getJSON(ctx, f.base()+"/v1/status/leader", &l); err == nil && l != "" {
				leaderSeen = time.Since(start)
			}
		}
		var node struct{ Services map[string]any }
		if _, err := n.hc.getJSON(ctx, f.base()+"/v1/catalog/node/recov-part?stale", &node); err != nil {
			return err
		}
		if len(node.Services) < recoveryPartWrites {
			return fmt.Errorf("%s has %d of %d", f.name, len(node.Services), recoveryPartWrites)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return time.Since(start), leaderSeen, nil
}

func (n *rcNet) others(x *rcHost) []*rcHost {
	var out []*rcHost
	for _, s := range n.servers() {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}

// leaderOf waits until the given servers agree on a leader among them.
func (n *rcNet) leaderOf(ctx context.Context, among []*rcHost) (*rcHost, error) {
	var leader *rcHost
	err := rcPoll(ctx, "leader of the majority", func(ctx context.Context) error {
		var agreed string
		for _, s := range among {
			var l string
			if _, err := n.hc.getJSON(ctx, s.base()+"/v1/status/leader", &l); err != nil {
				return err
			}
			if l == "" || (agreed != "" && l != agreed) {
				return errors.New("no agreed leader")
			}
			agreed = l
		}
		for _, s := range among {
			if net.JoinHostPort(s.ip, "8300") == agreed {
				leader = s
				return nil
			}
		}
		return fmt.Errorf("leader %s outside the majority", agreed)
	})
	return leader, err
}

func serfHealthIs(ctx context.Context, n *rcNet, node, want string) error {
	var checks []struct{ CheckID, Status string }
	for _, s := range n.servers() {
		if _, err := n.hc.getJSON(ctx, s.base()+"/v1/health/node/"+node, &checks); err == nil {
			break
		}
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" {
			if c.Status == want {
				return nil
			}
			return fmt.Errorf("serfHealth of %s is %s", node, c.Status)
		}
	}
	return fmt.Errorf("no serfHealth for %s", node)
}
