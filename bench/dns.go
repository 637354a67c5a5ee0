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
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// DNS benchmark parameters and targets. dnsperf (Debian package dnsperf)
// sends one query, NAME.service.warren A, as fast as the server answers,
// first to a `warren dev` process and then to a bare miekg/dns server in
// this process that answers the same ten A records from a constant: the
// ratio is what Warren's DNS path costs over the library's own floor.
const (
	dnsService      = "dnsbench"
	dnsInstances    = 10
	dnsClients      = 4       // dnsperf -c
	dnsThreads      = 2       // dnsperf -T
	dnsOutstanding  = 100     // dnsperf -q
	dnsMaxQPS       = 1000000 // dnsperf -Q: high enough never to limit
	dnsRunSeconds   = 10      // dnsperf -l
	dnsQPSTarget    = 45000
	dnsRatioTarget  = 0.70
	dnsReadyTimeout = 30 * time.Second
)

// dnsName is the name every query asks.
const dnsName = dnsService + ".service.warren."

// dnsperfResult is what we read from dnsperf's statistics.
type dnsperfResult struct {
	qps       float64
	sent      int64
	lost      int64
	avgLat    string // seconds, as dnsperf prints it
	cpu       string // cores the server used during the run
	cores     float64
	rawOutput string
}

// cpuPerQuery is the server's CPU time per answered query, in seconds.
func (r dnsperfResult) cpuPerQuery() float64 {
	if r.qps <= 0 {
		return 0
	}
	return r.cores / r.qps
}

func (r dnsperfResult) String() string {
	return fmt.Sprintf("%.0f qps (sent %d, lost %d, avg latency %ss, server CPU %s cores)", r.qps, r.sent, r.lost, r.avgLat, r.cpu)
}

// runDNS measures DNS queries per second of one `warren dev` against a
// bare miekg/dns server answering the same records.
func runDNS(ctx context.Context, o *options, rep *report) error {
	dnsperf, err := exec.LookPath("dnsperf")
	if err != nil {
		log.Printf("SKIP dns: dnsperf not found on PATH; install it with `apt-get install dnsperf`")
		rep.info("dns_qps", "SKIP: dnsperf not installed (apt-get install dnsperf)")
		return nil
	}
	// Two dev processes with the same data, with metrics (as shipped) and
	// without (WARREN_DISABLE_METRICS=1), both up for the whole benchmark:
	// the headline figure is one run against the first, and the cost of
	// metrics is the median of paired short runs in alternating order, so
	// that the background load of a shared machine, which drifts over
	// tens of seconds, weighs on both sides alike.
	with, err := startDNSBench(ctx, o, "")
	if err != nil {
		return err
	}
	defer with.c.stop()
	without, err := startDNSBench(ctx, o, disableMetricsEnv+"=1")
	if err != nil {
		return err
	}
	defer without.c.stop()
	addrs := with.addrs
	w, err := with.run(ctx, dnsperf, dnsRunSeconds)
	if err != nil {
		return err
	}
	log.Printf("dns: warren: %s", w)
	cost, cpuCost, nmQPS, err := dnsMetricsCost(ctx, dnsperf, with, without)
	if err != nil {
		return err
	}
	queryFile, cleanup, err := dnsQueryFile()
	if err != nil {
		return err
	}
	defer cleanup()

	bare, err := startBareDNS(addrs)
	if err != nil {
		return err
	}
	defer bare.Shutdown()
	bareAddr := bare.PacketConn.LocalAddr().String()
	if err := waitDNSAnswers(ctx, bareAddr, dnsInstances); err != nil {
		return fmt.Errorf("bare server: %w", err)
	}
	log.Printf("dns: dnsperf against the bare miekg/dns server on %s for %ds", bareAddr, dnsRunSeconds)
	b, err := runDNSPerf(ctx, dnsperf, bareAddr, queryFile, os.Getpid(), dnsRunSeconds)
	if err != nil {
		return fmt.Errorf("dnsperf against the bare server: %w", err)
	}
	log.Printf("dns: bare: %s", b)

	ratio := 0.0
	if b.qps > 0 {
		ratio = w.qps / b.qps
	}
	rep.check("dns_qps_warren", fmt.Sprintf("%.0f", w.qps), fmt.Sprintf(">= %d", dnsQPSTarget), w.qps >= dnsQPSTarget)
	rep.check("dns_lost_warren", fmt.Sprint(w.lost), "== 0", w.lost == 0)
	rep.info("dns_qps_warren_no_metrics", fmt.Sprintf("%.0f (median of the paired runs)", nmQPS))
	rep.check("dns_metrics_cost", fmt.Sprintf("%.1f%% (median with/without %.3f)", 100*cost, 1-cost), fmt.Sprintf("<= %.0f%%", 100*metricsCostTarget), cost <= metricsCostTarget)
	rep.info("dns_metrics_cpu_cost", fmt.Sprintf("%.1f%% (median of 1 - server CPU per query without / with)", 100*cpuCost))
	rep.info("dns_qps_bare_miekg", fmt.Sprintf("%.0f", b.qps))
	rep.info("dns_lost_bare_miekg", fmt.Sprint(b.lost))
	rep.check("dns_qps_ratio", fmt.Sprintf("%.1f%%", 100*ratio), fmt.Sprintf(">= %.0f%%", 100*dnsRatioTarget), ratio >= dnsRatioTarget)
	rep.info("dns_warren_detail", w.String())
	rep.info("dns_bare_detail", b.String())
	rep.note("dns: dnsperf -c %d -T %d -q %d -Q %d -l %d over UDP, one query %s A answered with %d A records (warren's udp_answer_limit raised to %d so that both answer the same records); %d CPU cores shared by dnsperf and the server",
		dnsClients, dnsThreads, dnsOutstanding, dnsMaxQPS, dnsRunSeconds, dnsName, dnsInstances, dnsInstances, runtime.NumCPU())
	rep.note("dns metrics cost: 1 - median over %d rounds of (qps with metrics / qps with %s=1), each round one %d s dnsperf run against each of two dev processes up side by side, the order alternating (HTTP and DNS record nothing, components get a throwaway registry)", dnsCostRounds, disableMetricsEnv, dnsCostSeconds)
	return nil
}

// dnsBench is a `warren dev` holding the benchmark's instances.
type dnsBench struct {
	c         *cluster
	dev       *proc
	env       string
	dnsAddr   string
	queryFile string
	addrs     []net.IP // the instances' addresses, for the bare server
}

// startDNSBench starts `warren dev` with env (if any) and registers the
// ten instances. The caller stops b.c.
func startDNSBench(ctx context.Context, o *options, env string) (*dnsBench, error) {
	base, err := dataBase()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "warren-bench-dns-")
	if err != nil {
		return nil, fmt.Errorf("create bench dir: %w", err)
	}
	var envs []string
	if env != "" {
		envs = append(envs, env)
	}
	c, dnsAddr, err := startDNSDev(ctx, o.warren, dir, o.keep, envs...)
	if err != nil {
		return nil, err
	}
	b := &dnsBench{c: c, dev: c.procs[0], env: env, dnsAddr: dnsAddr, queryFile: filepath.Join(dir, "queries.txt")}
	fail := func(err error) (*dnsBench, error) {
		c.stop()
		return nil, err
	}
	// Ten instances, each on its own node and address (data only: nothing
	// is ever sent to them).
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	for i := range dnsInstances {
		in := instance{
			node:      fmt.Sprintf("dnsbench-%02d", i+1),
			nodeAddr:  fmt.Sprintf("192.0.2.%d", i+1),
			service:   dnsService,
			serviceID: fmt.Sprintf("dnsbench-%02d", i+1),
			port:      8080,
		}
		b.addrs = append(b.addrs, net.ParseIP(in.nodeAddr).To4())
		if err := registerRetry(ctx, hc, b.dev.baseURL(), in); err != nil {
			return fail(err)
		}
	}
	if err := waitDNSAnswers(ctx, dnsAddr, dnsInstances); err != nil {
		return fail(fmt.Errorf("warren: %w", err))
	}
	log.Printf("dns: warren dev (%s) answers %d A records for %s on %s", envOrDefault(env), dnsInstances, dnsName, dnsAddr)
	if err := os.WriteFile(b.queryFile, []byte(strings.TrimSuffix(dnsName, ".")+" A\n"), 0o644); err != nil {
		return fail(err)
	}
	return b, nil
}

// run runs dnsperf against the dev process for seconds.
func (b *dnsBench) run(ctx context.Context, dnsperf string, seconds int) (dnsperfResult, error) {
	log.Printf("dns: dnsperf against warren (%s) for %ds", envOrDefault(b.env), seconds)
	r, err := runDNSPerf(ctx, dnsperf, b.dnsAddr, b.queryFile, b.dev.pid(), seconds)
	if err != nil {
		return r, fmt.Errorf("dnsperf against warren (%s): %w", envOrDefault(b.env), err)
	}
	if err := b.c.checkAlive(); err != nil {
		return r, err
	}
	return r, nil
}

// Paired runs for the cost of metrics.
const (
	dnsCostRounds  = 6
	dnsCostSeconds = 3
)

// dnsMetricsCost runs dnsCostRounds pairs of short runs, with metrics
// first in even rounds and last in odd ones, and returns 1 - the median of
// the rounds' with/without QPS ratios, the same for the server's CPU time
// per query (without/with: what throughput metrics cost a CPU-bound
// server, less sensitive to other processes' load than QPS), and the
// median QPS without metrics.
func dnsMetricsCost(ctx context.Context, dnsperf string, with, without *dnsBench) (cost, cpuCost, withoutQPS float64, err error) {
	var ratios, cpuRatios, bare []float64
	for round := range dnsCostRounds {
		pair := []*dnsBench{with, without}
		if round%2 == 1 {
			pair[0], pair[1] = pair[1], pair[0]
		}
		res := map[*dnsBench]dnsperfResult{}
		for _, b := range pair {
			r, err := b.run(ctx, dnsperf, dnsCostSeconds)
			if err != nil {
				return 0, 0, 0, err
			}
			res[b] = r
		}
		ratio := ratioOf(res[with].qps, res[without].qps)
		cpuRatio := ratioOf(res[without].cpuPerQuery(), res[with].cpuPerQuery())
		log.Printf("dns: metrics cost round %d: with %s, without %s: qps ratio %.3f, CPU per query ratio %.3f", round+1, res[with], res[without], ratio, cpuRatio)
		ratios = append(ratios, ratio)
		cpuRatios = append(cpuRatios, cpuRatio)
		bare = append(bare, res[without].qps)
	}
	return 1 - median(ratios), 1 - median(cpuRatios), median(bare), nil
}

// median of a non-empty slice (sorted in place).
func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

// dnsQueryFile writes dnsperf's query file for the bare server.
func dnsQueryFile() (string, func(), error) {
	base, err := dataBase()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(base, "warren-bench-dns-bare-")
	if err != nil {
		return "", nil, err
	}
	path := filepath.Join(dir, "queries.txt")
	if err := os.WriteFile(path, []byte(strings.TrimSuffix(dnsName, ".")+" A\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// startDNSDev starts `warren dev` on free loopback ports with its data and
// log under dir, waits until it takes reads, and returns it as a
// one-process cluster (for stop and checkAlive) with its DNS address.
func startDNSDev(ctx context.Context, bin, dir string, keep bool, env ...string) (c *cluster, dnsAddr string, err error) {
	c = &cluster{dir: dir, keep: keep, env: env}
	defer func() {
		if err != nil {
			c.stop()
			c = nil
		}
	}()
	ports, err := freePorts(4)
	if err != nil {
		return c, "", err
	}
	p := &proc{
		name:     "dev",
		dataDir:  filepath.Join(dir, "dev"),
		logPath:  filepath.Join(dir, "dev.log"),
		rpcAddr:  net.JoinHostPort(loopback, strconv.Itoa(ports[0])),
		httpAddr: net.JoinHostPort(loopback, strconv.Itoa(ports[1])),
	}
	dnsAddr = net.JoinHostPort(loopback, strconv.Itoa(ports[3]))
	cfgFile := filepath.Join(dir, "dns.hcl")
	cfg := fmt.Sprintf("dns_config {\n  udp_answer_limit = %d\n}\n", dnsInstances)
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		return c, "", err
	}
	args := []string{"dev",
		"-node", "dnsbench-dev",
		"-bind", loopback,
		"-client", loopback,
		"-server-port", strconv.Itoa(ports[0]),
		"-http-port", strconv.Itoa(ports[1]),
		"-serf-lan-port", strconv.Itoa(ports[2]),
		"-dns-port", strconv.Itoa(ports[3]),
		"-grpc-port", "-1",
		"-config-file", cfgFile,
		"-log-level", "warn",
	}
	// dev keeps its data in its own temp dir and removes it on exit.
	if err := c.launch(bin, p, args); err != nil {
		return c, "", err
	}
	c.procs = []*proc{p}
	c.leader = p
	log.Printf("dns: warren dev started (http %s, dns %s), log %s", p.httpAddr, dnsAddr, p.logPath)

	if err := waitDevLeader(ctx, c, p); err != nil {
		return c, "", err
	}
	return c, dnsAddr, nil
}

// waitDNSAnswers polls addr over UDP until dnsName A has want records.
func waitDNSAnswers(ctx context.Context, addr string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, dnsReadyTimeout)
	defer cancel()
	cl := &dns.Client{Net: "udp", Timeout: time.Second}
	q := new(dns.Msg)
	q.SetQuestion(dnsName, dns.TypeA)
	var last string
	for {
		r, _, err := cl.ExchangeContext(ctx, q, addr)
		switch {
		case err != nil:
			last = err.Error()
		case r.Rcode != dns.RcodeSuccess || len(r.Answer) != want || r.Truncated:
			last = fmt.Sprintf("rcode %s, %d answers, tc=%v", dns.RcodeToString[r.Rcode], len(r.Answer), r.Truncated)
		default:
			return nil
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("%s A on %s: want %d records within %s; last: %s", dnsName, addr, want, dnsReadyTimeout, last)
		}
	}
}

// startBareDNS serves UDP on a free loopback port, answering dnsName A with
// the given addresses from a constant, anything else NXDOMAIN.
func startBareDNS(addrs []net.IP) (*dns.Server, error) {
	answers := make([]dns.RR, 0, len(addrs))
	for _, ip := range addrs {
		answers = append(answers, &dns.A{Hdr: dns.RR_Header{Name: dnsName, Rrtype: dns.TypeA, Class: dns.ClassINET}, A: ip})
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(loopback, "0"))
	if err != nil {
		return nil, fmt.Errorf("bare dns server: %w", err)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA && strings.EqualFold(r.Question[0].Name, dnsName) {
			m.Answer = answers
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h, UDPSize: dns.DefaultMsgSize}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	errc := make(chan error, 1)
	go func() { errc <- srv.ActivateAndServe() }()
	select {
	case <-started:
		return srv, nil
	case err := <-errc:
		pc.Close()
		return nil, fmt.Errorf("bare dns server: %w", err)
	case <-time.After(5 * time.Second):
		pc.Close()
		return nil, errors.New("bare dns server did not start within 5s")
	}
}

var (
	dnsperfQPS  = regexp.MustCompile(`Queries per second:\s+([0-9.]+)`)
	dnsperfLost = regexp.MustCompile(`Queries lost:\s+([0-9]+)`)
	dnsperfSent = regexp.MustCompile(`Queries sent:\s+([0-9]+)`)
	dnsperfLat  = regexp.MustCompile(`Average Latency \(s\):\s+([0-9.]+)`)
)

// runDNSPerf runs dnsperf against addr for seconds and parses its
// statistics; pid is the server process, whose CPU use over the run is
// reported.
func runDNSPerf(ctx context.Context, bin, addr, queryFile string, pid, seconds int) (dnsperfResult, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return dnsperfResult{}, err
	}
	// dnsperf stops after -l seconds and waits up to its query timeout
	// (-t, 5s by default) for the answers still outstanding.
	ctx, cancel := context.WithTimeout(ctx, time.Duration(seconds)*time.Second+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin,
		"-s", host, "-p", port, "-d", queryFile,
		"-c", strconv.Itoa(dnsClients), "-T", strconv.Itoa(dnsThreads),
		"-q", strconv.Itoa(dnsOutstanding), "-Q", strconv.Itoa(dnsMaxQPS),
		"-l", strconv.Itoa(seconds))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cpu0, t0 := cpuSeconds(pid), time.Now()
	out, err := cmd.CombinedOutput()
	cores := (cpuSeconds(pid) - cpu0) / time.Since(t0).Seconds()
	if err != nil {
		return dnsperfResult{}, fmt.Errorf("%v: %s", err, tail2(out))
	}
	s := string(out)
	r := dnsperfResult{rawOutput: s, cpu: fmt.Sprintf("%.2f", cores), cores: cores}
	m := dnsperfQPS.FindStringSubmatch(s)
	l := dnsperfLost.FindStringSubmatch(s)
	if m == nil || l == nil {
		return r, fmt.Errorf("no \"Queries per second:\" or \"Queries lost:\" in dnsperf's output:\n%s", tail2(out))
	}
	r.qps, _ = strconv.ParseFloat(m[1], 64)
	r.lost, _ = strconv.ParseInt(l[1], 10, 64)
	if m := dnsperfSent.FindStringSubmatch(s); m != nil {
		r.sent, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := dnsperfLat.FindStringSubmatch(s); m != nil {
		r.avgLat = m[1]
	}
	return r, nil
}

// waitDevLeader waits until the one-process cluster c (warren dev p) has a
// leader, failing at once if the process exits.
func waitDevLeader(ctx context.Context, c *cluster, p *proc) error {
	rctx, cancel := context.WithTimeout(ctx, leaderTimeout)
	defer cancel()
	hc := newClient(1)
	defer hc.CloseIdleConnections()
	for {
		if err := c.checkAlive(); err != nil {
			return err
		}
		var leader string
		if _, err := hc.getJSON(rctx, p.baseURL()+"/v1/status/leader", &leader); err == nil && leader != "" {
			return nil
		}
		if err := sleepCtx(rctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("warren dev has no leader after %s: %w", leaderTimeout, err)
		}
	}
}
