package cli

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/agent"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/dns"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/internal/atomicfile"
	"github.com/warren-mesh/warren/internal/audit"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/memtrim"
	"github.com/warren-mesh/warren/internal/metrics"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/xds"
)

func runDev(ctx context.Context, args []string, _, stderr io.Writer) int {
	return runDaemon(ctx, config.ModeDev, args, stderr)
}

func runServer(ctx context.Context, args []string, _, stderr io.Writer) int {
	return runDaemon(ctx, config.ModeServer, args, stderr)
}

func runAgent(ctx context.Context, args []string, _, stderr io.Writer) int {
	return runDaemon(ctx, config.ModeAgent, args, stderr)
}

func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: warren validate DIR")
		return ExitUsage
	}
	cfg, err := config.LoadDir(args[0])
	if err == nil {
		err = proxyDefaults(cfg.ProxyDefaults).Validate() // the xDS builders read these keys
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitError
	}
	fmt.Fprintf(stdout, "configuration in %s is valid\n", args[0])
	return ExitOK
}

// runDaemon loads the config for mode and runs until ctx is done.
func runDaemon(ctx context.Context, mode config.Mode, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet(mode.String(), flag.ContinueOnError)
	fs.SetOutput(stderr)
	flags := config.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "warren %s: unexpected argument %q\n", mode, fs.Arg(0))
		return ExitUsage
	}
	cfg, err := config.Load(mode, flags)
	if err != nil {
		fmt.Fprintf(stderr, "warren %s: config: %v\n", mode, err)
		return ExitUsage
	}
	level, _ := logging.ParseLevel(cfg.LogLevel)
	log := logging.NewDaemon(stderr, logging.Options{Level: level, JSON: cfg.LogJSON})
	log, ctx = keepRecentLogs(ctx, cfg, log, level) // for `warren debug` (cli/telemetry.go)
	log = logging.WithMonitor(log)                  // for /v1/agent/monitor
	if mode == config.ModeDev {
		dir, err := os.MkdirTemp("", "warren-dev-")
		if err != nil {
			log.Error("create dev data dir", "err", err)
			return ExitError
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
		cleanup, err := devWorkloadSocket(cfg) // cli/workload.go
		if err != nil {
			log.Error("create dev workload socket", "err", err)
			return ExitError
		}
		defer cleanup()
	}
	if err := applyEnrollment(ctx, cfg, log); err != nil { // cli/enroll.go
		log.Error("enrollment failed", "err", err)
		return ExitError
	}
	reload := func() ([]agent.ServiceDefinition, error) {
		c, err := config.Load(mode, flags)
		if err != nil {
			return nil, err
		}
		return serviceDefs(c), nil
	}
	if err := runProcess(ctx, cfg, reload, log); err != nil {
		log.Error("warren stopped with an error", "err", err)
		return ExitError
	}
	return ExitOK
}

func serviceDefs(cfg *config.Config) []agent.ServiceDefinition {
	out := make([]agent.ServiceDefinition, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		out = append(out, agent.ServiceDefinition{Registration: s.Registration, Source: s.Source})
	}
	return out
}

// process is everything one warren process runs.
type process struct {
	cfg    *config.Config
	log    *slog.Logger
	pool   *rpc.Pool
	gossip *gossip.Pool
	server *server.Server // nil on a plain agent
	agent  *agent.Agent
	dns    *dns.Server // nil when DNS is disabled
	httpLn net.Listener
	http   http.Handler
	reg    *prometheus.Registry
	// Metrics listener (metrics_addr; cli/telemetry.go), nil if none.
	metricsLn   net.Listener
	metricsHTTP http.Handler
	noMetrics   bool // WARREN_DISABLE_METRICS=1 (bench only)
	// SPIFFE Workload API (cli/workload.go), nil when off.
	workloadLn net.Listener
	workload   *agent.WorkloadAPI
	// xDS for proxyless gRPC clients and Envoy sidecars on ports.grpc.
	grpcLn      net.Listener
	xdsFeed     *xds.GRPCFeed
	sidecarFeed *agent.SidecarFeed

	// TLS (cli/tlsrun.go): nil without a CA. httpLn is nil when
	// ports.http = -1, httpsLn when HTTPS is off.
	tls             *tlscfg.Configurator
	httpsLn         net.Listener
	autoEncrypt     *agent.AutoEncrypt // auto_encrypt.tls, nil otherwise
	autoEncryptPool *rpc.Pool
	// defaultToken is acl.tokens.default, or what PUT
	// /v1/agent/token/default set since (DNS answers what it may read).
	defaultToken atomic.Pointer[string]
	// Limits and audit (cli/limits.go).
	rejections *limits.Rejections
	audit      *audit.Log // nil when off
}

// runProcess builds the process from cfg and runs it under one context.
// Shutdown order: HTTP and DNS stop taking requests, the agent stops, the
// server stops, and gossip leaves last (if configured to) so the servers
// see the node go.
func runProcess(ctx context.Context, cfg *config.Config, reload func() ([]agent.ServiceDefinition, error), log *slog.Logger) error {
	p, err := build(cfg, reload, log)
	if err != nil {
		return err
	}
	defer p.pool.Close()
	log.Info("warren running", "mode", cfg.Mode.String(), "node", cfg.NodeName, "datacenter", cfg.Datacenter,
		"http", p.apiURLs(), "dns", p.dnsAddr(), "gossip", net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(cfg.Ports.SerfLAN)),
		"server", cfg.Server, "data_dir", cfg.DataDir, "workload_socket", p.workloadSocket(), "version", Version)

	// Inner layers (server, gossip) get their own contexts so they stop
	// after the outer ones.
	gossipCtx, stopGossip := context.WithCancel(context.WithoutCancel(ctx))
	defer stopGossip()
	gossipDone := make(chan error, 1)
	go func() { gossipDone <- p.gossip.Run(gossipCtx) }()
	serverCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	serverDone := make(chan error, 1)
	if p.server != nil {
		go func() { serverDone <- p.server.Run(serverCtx) }()
	}

	// systemd notification (cli/notify.go): READY=1 once HTTP and DNS
	// answer and the first join (if any) succeeded.
	notify := newNotifier(log.With("subsystem", "systemd"), len(cfg.RetryJoin) > 0)
	notify.onReady = func() { releaseStartupPages(log) }
	dnsProbe := ""
	if p.dns != nil {
		dnsProbe = dialable(p.dns.Addr())
	}
	loops := []task.Func{
		func(ctx context.Context) error { return serveHTTPWith(ctx, p.httpLn, p.http, p.httpLimits(), log) },
		func(ctx context.Context) error { return serveHTTPWith(ctx, p.httpsLn, p.http, p.httpLimits(), log) },
		p.serveMetrics,
		p.agent.Run,
		func(ctx context.Context) error {
			err := p.gossip.RetryJoin(ctx, cfg.RetryJoin, cfg.RetryInterval)
			if err == nil && ctx.Err() == nil {
				notify.Joined()
			}
			return err
		},
		func(ctx context.Context) error { return reloadOnHUP(ctx, p.agent, log, notify) },
		func(ctx context.Context) error { return notify.Run(ctx, p.apiAddr(), dnsProbe) },
		func(ctx context.Context) error {
			if p.server == nil {
				<-ctx.Done()
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case err := <-serverDone:
				serverDone <- err
				if err == nil {
					return errors.New("server stopped unexpectedly")
				}
				return err
			}
		},
	}
	if p.dns != nil {
		loops = append(loops, p.dns.Run)
	}
	loops = append(loops, p.autoEncryptLoops()...)
	if p.workload != nil {
		loops = append(loops, p.workload.Run)
	}
	if p.grpcLn != nil {
		loops = append(loops, p.xdsFeed.Run, p.sidecarFeed.Run, func(ctx context.Context) error { return serveXDS(ctx, p.grpcLn, p.xdsFeed.Server) })
	}
	stopAudit := p.runAudit() // cli/limits.go
	err = task.Run(ctx, loops...)
	stopAudit()
	if p.server != nil {
		stopServer()
		if serr := <-serverDone; serr != nil && err == nil {
			err = serr
		}
	}
	skipLeaveOnRestart(cfg.LeaveOnTerminate, p.gossip.Close, log) // package upgrade (cli/notify.go)
	stopGossip()
	if gerr := <-gossipDone; gerr != nil && err == nil {
		err = gerr
	}
	return err
}

// releaseStartupPages unmaps the binary's pages that only start-up used
// (internal/memtrim), once the process serves: an idle agent's resident set
// is then what it runs, not what its 500 packages' initialisation touched.
func releaseStartupPages(log *slog.Logger) {
	r, err := memtrim.Release()
	if err != nil {
		log.Warn("release start-up pages", "err", err)
		return
	}
	log.Debug("released start-up pages of the binary", "mappings", r.Mappings, "resident_kib", r.Bytes>>10)
}

func (p *process) dnsAddr() string {
	if p.dns == nil {
		return "disabled"
	}
	return p.dns.Addr()
}

// build creates every component from cfg; on error it releases what it
// made.
func build(cfg *config.Config, reload func() ([]agent.ServiceDefinition, error), log *slog.Logger) (p *process, err error) {
	p = &process{cfg: cfg, log: log, pool: rpc.NewPool(), reg: metrics.NewRegistry()}
	if p.noMetrics = metricsDisabled(); p.noMetrics {
		p.reg = prometheus.NewRegistry() // throwaway: never served
		log.Warn("metrics disabled by " + disableMetricsEnv + "=1")
	}
	p.rejections = limits.NewRejections(p.reg)
	// Every error return below sets p to nil: release what was made
	// through a copy of the pointer.
	made := p
	defer func() {
		if err != nil {
			made.close()
		}
	}()
	if p.tls, err = buildTLS(cfg); err != nil { // cli/tlsrun.go
		return nil, err
	}
	if p.tls != nil {
		p.pool = rpc.NewTLSPool(p.tls.OutgoingRPC())
	}
	if p.httpLn, err = listenHTTP(cfg); err != nil {
		return nil, err
	}
	if p.httpsLn, err = listenHTTPS(cfg, p.tls, p.limitHTTPListener, log); err != nil {
		return nil, err
	}
	p.httpLn = p.limitHTTPListener(p.httpLn) // cli/limits.go
	if err = p.openAudit(); err != nil {
		return nil, err
	}
	if err = p.listenMetrics(); err != nil {
		return nil, err
	}
	nodeID, err := loadNodeID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	var key []byte
	if cfg.Encrypt != "" {
		if key, err = base64.StdEncoding.DecodeString(cfg.Encrypt); err != nil {
			return nil, fmt.Errorf("encrypt: not base64")
		}
	}
	rpcAddr := net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(cfg.Ports.Server))
	tags := map[string]string{gossip.TagRole: gossip.RoleNode, gossip.TagDatacenter: cfg.Datacenter, gossip.TagID: nodeID, gossip.TagVersion: Version}
	if cfg.Server {
		tags[gossip.TagRole] = gossip.RoleServer
		tags[gossip.TagRPCAddr] = rpcAddr
		tags[gossip.TagExpect] = gossip.ExpectTag(cfg.BootstrapExpect)
	}
	p.gossip, err = gossip.New(gossip.Config{
		NodeName: cfg.NodeName, NodeID: nodeID,
		BindAddr: cfg.BindAddr, BindPort: cfg.Ports.SerfLAN, AdvertiseAddr: cfg.AdvertiseAddr,
		Tags: tags, EncryptKey: key, DataDir: cfg.DataDir,
		ReconnectTimeout: cfg.ReconnectTimeout, LeaveOnStop: cfg.LeaveOnTerminate,
		Logger: log.With("subsystem", "gossip"),
	})
	if err != nil {
		return nil, err
	}
	var backend httpapi.Backend
	serverAddr := ""
	if cfg.Server {
		// What enrolling agents receive: the gossip key and the operator
		// CA (cli/enroll.go).
		enrollment := server.EnrollmentConfig{GossipKey: cfg.Encrypt}
		if cfg.TLS.CAFile != "" {
			if enrollment.CAPEM, err = os.ReadFile(cfg.TLS.CAFile); err != nil {
				return nil, fmt.Errorf("tls.defaults.ca_file: %w", err)
			}
		}
		p.server, err = server.New(server.Config{
			NodeName: cfg.NodeName, NodeID: nodeID, Datacenter: cfg.Datacenter, DataDir: cfg.DataDir,
			BindAddr:        net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.Ports.Server)),
			AdvertiseAddr:   rpcAddr,
			BootstrapExpect: cfg.BootstrapExpect,
			RetryInterval:   cfg.RetryInterval,
			Gossip:          p.gossip,
			Version:         Version,
			Metrics:         p.reg,
			Logger:          log.With("subsystem", "server"),

			// default_intention_policy (not a config key yet): allow in
			// dev, deny otherwise.
			DefaultIntentionAllow: cfg.Mode == config.ModeDev,
			ACL: server.ACLConfig{Enabled: cfg.ACL.Enabled, DefaultAllow: cfg.ACL.DefaultPolicy == "allow",
				InitialManagementToken: cfg.ACL.Tokens.InitialManagement},
			TLS:        p.tls,
			Enrollment: enrollment, Audit: p.audit,

			CSRMaxPerSecond: csrMaxPerSecond(cfg.Connect.CSRMaxPerSecond),

			RPCRate: cfg.Limits.RPCRate, RPCMaxBurst: cfg.Limits.RPCMaxBurst, Rejections: p.rejections,
		})
		if err != nil {
			return nil, fmt.Errorf("start server: %w", err)
		}
		backend, serverAddr = p.server, p.server.Addr()
	}
	p.agent, err = agent.New(agent.Config{
		NodeName: cfg.NodeName, NodeID: nodeID, Datacenter: cfg.Datacenter,
		Address: cfg.AdvertiseAddr, NodeMeta: cfg.NodeMeta, DataDir: cfg.DataDir,
		ServerRPCAddr: serverAddr, Services: serviceDefs(cfg), EnableLocalScriptChecks: cfg.EnableLocalScriptChecks,
		Reload: reload, Gossip: p.gossip, Pool: p.pool, Version: Version, NoView: p.server != nil,
		Metrics: p.reg,
		Logger:  log.With("subsystem", "agent"),
		// Mesh telemetry (issue 9): sidecars' stats listener, access logs, tracing.
		ProxyDefaults: proxyDefaults(cfg.ProxyDefaults),

		CheckOutputMaxSize: cfg.CheckOutputMaxSize, Rejections: p.rejections,
	})
	if err != nil {
		return nil, fmt.Errorf("start agent: %w", err)
	}
	if backend == nil {
		backend = p.agent.Backend()
	}
	// The agent calls the servers with its token; the agent inside a
	// server process, without one, with its server's process-local
	// secret.
	switch {
	case cfg.ACL.Tokens.Agent != "":
		p.pool.SetToken(cfg.ACL.Tokens.Agent)
	case p.server != nil:
		p.pool.SetToken(p.server.LocalAgentToken())
	case cfg.ACL.Enabled:
		log.Warn("ACLs are enabled and acl.tokens.agent is not set: this agent calls the servers with the anonymous token, which a default-deny cluster refuses")
	}
	var resolver httpapi.ACLResolver
	switch {
	case !cfg.ACL.Enabled && cfg.Mode == config.ModeDev:
		log.Warn("ACLs are disabled in dev mode: every request is allowed")
	case !cfg.ACL.Enabled:
		log.Warn("ACLs are disabled (acl { enabled = false }): every request is allowed; do not run a production cluster like this")
	case p.server != nil:
		resolver = p.server
	default:
		resolver = p.agent
	}
	p.buildAutoEncrypt(nodeID) // cli/tlsrun.go
	if err = p.listenWorkload(); err != nil {
		return nil, err
	}
	var view dns.View = p.agent.View()
	if p.server != nil {
		view = p.server.LocalView()
	}
	defaultToken := cfg.ACL.Tokens.Default
	p.defaultToken.Store(&defaultToken)
	if cfg.ACL.Enabled && cfg.ACL.EnableTokenForDNS && resolver != nil {
		// DNS answers what the default token may read.
		view = dns.FilteredView(view, func() dns.Filter {
			id, err := resolver.ResolveToken(context.Background(), p.currentDefaultToken())
			if err != nil {
				return acl.DenyAll()
			}
			return id.Authorizer
		})
	}
	if cfg.Ports.DNS > 0 {
		p.dns, err = dns.New(dns.Config{
			Addr:   net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.DNS)),
			Domain: cfg.DNS.Domain, AltDomain: cfg.DNS.AltDomain,
			Datacenter: cfg.Datacenter, NodeName: cfg.NodeName,
			Recursors: cfg.DNS.Recursors, RecursorTimeout: cfg.DNS.RecursorTimeout,
			NodeTTL: cfg.DNS.NodeTTL, ServiceTTL: cfg.DNS.ServiceTTL,
			OnlyPassing: cfg.DNS.OnlyPassing, UDPAnswerLimit: cfg.DNS.UDPAnswerLimit,
			View:    view,
			Metrics: p.httpDNSMetrics(),
			Logger:  log.With("subsystem", "dns"),
		})
		if err != nil {
			return nil, fmt.Errorf("start DNS: %w", err)
		}
	}
	if cfg.Ports.GRPC > 0 {
		addr := net.JoinHostPort(cfg.ClientAddr, strconv.Itoa(cfg.Ports.GRPC))
		if p.grpcLn, err = net.Listen("tcp", addr); err != nil {
			return nil, fmt.Errorf("listen for xDS on %s: %w", addr, err)
		}
		src := xds.Source(p.agent.View())
		if p.server != nil {
			src = p.server.LocalView()
		}
		p.xdsFeed = &xds.GRPCFeed{Source: src, Server: xds.NewServer(log.With("subsystem", "xds")),
			Datacenter: cfg.Datacenter, Logger: log.With("subsystem", "xds")}
		p.reg.MustRegister(p.xdsFeed.Server.Collectors()...)
		if resolver != nil {
			p.xdsFeed.Server.SetAuthorizer(p.agent.XDSAuthorizer(resolver))
		}
		p.sidecarFeed = p.agent.SidecarFeed(src, p.xdsFeed.Server, log.With("subsystem", "xds", "feed", "sidecars"))
	}
	p.http = httpapi.New(httpapi.Config{
		Backend: backend, Agent: p.agent, Datacenter: cfg.Datacenter,
		Registerer: p.httpDNSMetrics(), Gatherer: p.gatherer(), Ready: p.ready,
		ACL: resolver, DefaultToken: p.currentDefaultToken,
		Logger: log.With("subsystem", "http"),

		MaxBodyBytes: int64(cfg.Limits.HTTPMaxBodyBytes), MaxBlockingQueriesPerClient: cfg.Limits.HTTPMaxBlockingQueriesPerClient,
		Rejections: p.rejections, Audit: p.auditor(),
		Stats: p.selfStats, XDS: selfXDS(cfg.Ports.GRPC), Monitor: logging.MonitorOf(log),
		OnTokenUpdate: p.tokenUpdated,
	})
	return p, nil
}

// currentDefaultToken is the default token now, for HTTP and DNS.
func (p *process) currentDefaultToken() string { return *p.defaultToken.Load() }

// tokenUpdated applies a token set through PUT /v1/agent/token/{kind}:
// the default token for HTTP and DNS, the agent token for every call to
// the servers. An empty agent token falls back to
// what the process started with. Never logs the secret.
func (p *process) tokenUpdated(kind, secret string) {
	switch kind {
	case "default":
		p.defaultToken.Store(&secret)
	case "agent":
		switch {
		case secret != "":
		case p.cfg.ACL.Tokens.Agent != "":
			secret = p.cfg.ACL.Tokens.Agent
		case p.server != nil:
			secret = p.server.LocalAgentToken()
		}
		p.pool.SetToken(secret)
		if p.autoEncryptPool != nil {
			p.autoEncryptPool.SetToken(secret)
		}
	}
	p.log.Info("agent token updated through the API", "kind", kind)
}

// selfStats are the Stats sections of /v1/agent/self that Consul's
// monitoring reads: "consul" (server or not, leader, known servers),
// "serf_lan" and, on a server, "raft".
func (p *process) selfStats() map[string]map[string]string {
	out := map[string]map[string]string{"serf_lan": p.gossip.Stats()}
	if p.server == nil {
		known := 0
		for _, m := range p.gossip.Members() {
			if _, ok := gossip.ServerRPCAddr(m, p.cfg.Datacenter); ok && m.Status == serf.StatusAlive {
				known++
			}
		}
		out["consul"] = map[string]string{"server": "false", "known_servers": strconv.Itoa(known)}
		return out
	}
	out["consul"] = map[string]string{"server": "true", "leader": strconv.FormatBool(p.server.IsLeader()),
		"leader_addr": p.server.LeaderAddr(), "bootstrap": "false", "known_datacenters": "1"}
	out["raft"] = p.server.RaftStats()
	return out
}

// selfXDS is /v1/agent/self's xDS section: the gRPC port (plaintext; no
// TLS port) and the Envoy releases the sidecar configuration supports,
// newest first. Nil when the gRPC port is off.
func selfXDS(grpcPort int) *api.AgentXDS {
	if grpcPort <= 0 {
		return nil
	}
	var envoy []string
	for minor := envoyMaxMinor; minor >= envoyMinMinor; minor-- {
		envoy = append(envoy, fmt.Sprintf("1.%d.0", minor))
	}
	return &api.AgentXDS{SupportedProxies: map[string][]string{"envoy": envoy}, Port: grpcPort,
		Ports: api.AgentXDSPorts{Plaintext: grpcPort, TLS: -1}}
}

// ready reports whether the process can do its job, for
// /v1/agent/health/ready: a server needs a known leader, an agent a live
// catalog stream and a joined gossip pool; DNS must be serving if enabled.
func (p *process) ready() (bool, map[string]string) {
	missing := map[string]string{}
	if p.server != nil {
		if p.server.LeaderAddr() == "" {
			missing["leader"] = "no cluster leader known"
		}
	} else {
		if _, connected := p.agent.View().Staleness(); !connected {
			missing["catalog"] = "no catalog stream from a server"
		}
	}
	if p.gossip.NumAlive() < 2 && len(p.cfg.RetryJoin) > 0 {
		missing["gossip"] = "not joined to the gossip pool yet"
	}
	return len(missing) == 0, missing
}

// close releases what build made when the process never ran.
func (p *process) close() {
	if p.httpLn != nil {
		_ = p.httpLn.Close()
	}
	if p.httpsLn != nil {
		_ = p.httpsLn.Close()
	}
	if p.metricsLn != nil {
		_ = p.metricsLn.Close()
	}
	if p.grpcLn != nil {
		_ = p.grpcLn.Close()
	}
	if p.workloadLn != nil {
		_ = p.workloadLn.Close()
	}
	if p.audit != nil {
		p.runAudit()() // flushes nothing, closes the file
	}
	if p.server != nil {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_ = p.server.Run(ctx)
	}
	if p.gossip != nil {
		p.gossip.Close()
	}
	p.pool.Close()
}

// loadNodeID returns the node's persistent ID: a server data dir's own, or
// the node-id file, created on first start.
func loadNodeID(dataDir string) (string, error) {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	path := filepath.Join(dataDir, "node-id")
	b, err := os.ReadFile(path)
	if err == nil {
		id := strings.TrimSpace(string(b))
		if _, perr := uuid.Parse(id); perr != nil {
			return "", fmt.Errorf("%s is corrupt: %q is not a UUID", path, id)
		}
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	id := uuid.NewString()
	if err := atomicfile.Write(path, []byte(id+"\n"), 0o600); err != nil {
		return "", err
	}
	return id, nil
}

// reloadOnHUP re-reads the config files on SIGHUP, telling systemd.
func reloadOnHUP(ctx context.Context, a *agent.Agent, log *slog.Logger, notify *notifier) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			notify.Reloading()
			if err := a.Reload(ctx); err != nil {
				log.Error("reload failed; the running configuration stays", "err", err)
			}
			notify.Reloaded()
		}
	}
}

// serveXDS serves the xDS gRPC API until ctx is done.
func serveXDS(ctx context.Context, ln net.Listener, x *xds.Server) error {
	gs := grpc.NewServer(grpc.MaxRecvMsgSize(4 << 20))
	x.Register(gs)
	errCh := make(chan error, 1)
	go func() { errCh <- gs.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve xDS: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(2 * time.Second):
		gs.Stop() // xDS streams never end on their own
	}
	<-errCh
	return nil
}

// serveHTTP serves until ctx is done, then stops taking connections and
// gives requests in flight a few seconds (blocking queries are cut).
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	return serveHTTPWith(ctx, ln, h, httpLimits{}, log)
}

// serveHTTPWith is serveHTTP with the limits of cli/limits.go.
func serveHTTPWith(ctx context.Context, ln net.Listener, h http.Handler, lim httpLimits, log *slog.Logger) error {
	if ln == nil { // this listener (HTTP or HTTPS) is disabled
		<-ctx.Done()
		return nil
	}
	hs := newHTTPServer(ctx, h, lim, log) // cli/limits.go
	errCh := make(chan error, 1)
	go func() { errCh <- hs.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve HTTP: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
	}
	<-errCh
	return nil
}

// csrMaxPerSecond maps connect.ca_config.csr_max_per_second (0: no limit,
// Consul's) to server.Config's (0: the default; negative: no limit).
func csrMaxPerSecond(perSecond float64) float64 {
	if perSecond == 0 {
		return -1
	}
	return perSecond
}
