// Package agent wires the host agent: the local registrations and their
// anti-entropy (agent/local), the health check runners (agent/checks), the
// local view of the catalog (agent/view), and the path to the servers over
// gossip and gRPC. The logic lives in those components; Agent only builds
// them, runs them under one context and serves the HTTP API's Agent
// interface. Only cli imports it.
package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/agent/checks"
	"github.com/warren-mesh/warren/agent/local"
	"github.com/warren-mesh/warren/agent/view"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/rpc"
)

// ServiceDefinition is a service from a config file, with where it came
// from for error messages.
type ServiceDefinition struct {
	Registration api.AgentServiceRegistration
	Source       string
}

// Config is what an Agent needs; the CLI builds it from the runtime config.
type Config struct {
	NodeName   string
	NodeID     string
	Datacenter string
	// Address is the node's address in the catalog.
	Address  string
	NodeMeta map[string]string
	DataDir  string
	// ServerRPCAddr is this process's own server's RPC address, "" on a
	// plain agent.
	ServerRPCAddr           string
	Services                []ServiceDefinition
	EnableLocalScriptChecks bool
	// Reload re-reads the config files; nil disables reload.
	Reload       func() ([]ServiceDefinition, error)
	Gossip       *gossip.Pool
	Pool         *rpc.Pool
	SyncInterval time.Duration
	// NoView skips the catalog view and its watch stream, for a process
	// whose server holds the catalog itself.
	NoView bool
	// MinCheckInterval is the floor of check intervals; 0 = 1s.
	MinCheckInterval time.Duration
	Version          string
	Logger           *slog.Logger
	// Metrics gets the agent's metrics; nil discards them.
	Metrics prometheus.Registerer
	// ProxyDefaults is the proxy config every local sidecar starts from.
	ProxyDefaults ProxyDefaults

	// CheckOutputMaxSize is check_output_max_size (0: the catalog's
	// 4096); each cut output is counted in Rejections (nil: not counted).
	CheckOutputMaxSize int
	Rejections         *limits.Rejections
}

// Agent is the host agent.
type Agent struct {
	cfg    Config
	log    *slog.Logger
	router *serverRouter
	local  *local.State
	checks *checks.Manager
	view   *view.View

	mu         sync.Mutex
	fromConfig map[string]bool   // service IDs defined in config files
	sidecars   map[string]string // service ID -> ID of the sidecar its registration defined
	// regMu serializes registrations, so sidecar ports are chosen once.
	regMu   sync.Mutex
	updates chan checks.Update
	metrics *agentMetrics
	leaves  *leafManager
	acls    *aclCache
	// identities are the Workload API selectors of local services, by
	// service ID (guarded by mu); identitiesChanged is closed at their
	// next change (agent/workload.go).
	identities        map[string]workloadSelector
	identitiesChanged chan struct{}
}

var _ httpapi.Agent = (*Agent)(nil)

// New builds the agent and registers the services of its config files and
// those registered through the API before the last restart.
func New(cfg Config) (*Agent, error) {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if err := cfg.ProxyDefaults.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, fromConfig: map[string]bool{}, sidecars: map[string]string{}, updates: make(chan checks.Update, 1024),
		identities: map[string]workloadSelector{}, identitiesChanged: make(chan struct{})}
	// Metrics first: check runners report to them from their first probe.
	// The gauges read a.local and a.view at scrape time, after New.
	a.metrics = newAgentMetrics(cfg.Metrics, a)
	a.router = &serverRouter{pool: cfg.Pool, gsp: cfg.Gossip, dc: cfg.Datacenter, local: cfg.ServerRPCAddr}
	a.acls = &aclCache{a: a, m: map[string]cachedToken{}}
	var err error
	a.local, err = local.New(local.Config{
		Node:         a.node(),
		DataDir:      cfg.DataDir,
		Syncer:       a.router,
		Logger:       a.log.With("component", "anti-entropy"),
		ClusterSize:  cfg.Gossip.NumAlive,
		SyncInterval: cfg.SyncInterval,
		OnSync: func(full bool, err error) {
			a.metrics.onSync(full, err)
			if err == nil {
				a.warmIdentities() // agent/workload.go
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("local state: %w", err)
	}
	a.checks = checks.NewManager(checks.ManagerConfig{
		Logger:                  a.log.With("component", "checks"),
		Notify:                  a.notify,
		OnProbe:                 func(kind, status string) { a.metrics.checkProbes.WithLabelValues(kind, status).Inc() },
		MinInterval:             cfg.MinCheckInterval,
		EnableLocalScriptChecks: cfg.EnableLocalScriptChecks,
		OutputMaxSize:           cfg.CheckOutputMaxSize,
		OnTruncate:              func() { cfg.Rejections.Inc(limits.CheckOutputSize) },
		Reap: func(serviceID, checkID string) {
			a.log.Info("deregistering service: its check stayed critical too long", "service", serviceID, "check", checkID)
			_ = a.DeregisterService(context.Background(), serviceID)
		},
	})
	a.view = view.New(view.Config{Pool: cfg.Pool, Servers: a.router.servers, Logger: a.log.With("component", "view")})
	a.leaves = newLeafManager(cfg.NodeName, cfg.Datacenter, a.signLeaf, a.watchRoots, a.hasService, a.log.With("component", "leaf"))
	if err := a.loadServices(cfg.Services); err != nil {
		return nil, err
	}
	a.replayPersisted()
	return a, nil
}

func (a *Agent) node() catalog.Node {
	return catalog.Node{ID: a.cfg.NodeID, Name: a.cfg.NodeName, Address: a.cfg.Address, Datacenter: a.cfg.Datacenter,
		TaggedAddresses: nodeTaggedAddresses(a.cfg.Address), Meta: a.cfg.NodeMeta}
}

// nodeTaggedAddresses are the tagged addresses a Consul agent gives its
// node: lan and wan with their per-family twins. Warren has no WAN pool, so
// wan is the advertised address, as in a Consul agent without
// advertise_addr_wan. Templates and Prometheus relabelling read them.
func nodeTaggedAddresses(addr string) map[string]string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil
	}
	family := "ipv4"
	if ip.Is6() && !ip.Is4In6() {
		family = "ipv6"
	}
	return map[string]string{"lan": addr, "lan_" + family: addr, "wan": addr, "wan_" + family: addr}
}

// View is the agent's local view of the catalog, for DNS.
func (a *Agent) View() *view.View { return a.view }

// Run runs the agent's loops until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	loops := []task.Func{a.local.Run, a.checks.Run, a.pumpUpdates, a.followServers, a.leaves.Run, a.followAliases}
	if !a.cfg.NoView {
		loops = append(loops, a.view.Run)
	}
	return task.Run(ctx, loops...)
}

// notify receives check results; it must not block the runner.
func (a *Agent) notify(u checks.Update) {
	a.metrics.checkUpdates.WithLabelValues(u.Status).Inc()
	select {
	case a.updates <- u:
	default:
		a.log.Warn("check update queue full; the next full sync will carry the status", "check", u.CheckID)
	}
}

func (a *Agent) pumpUpdates(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case u := <-a.updates:
			if err := a.local.UpdateCheck(u.CheckID, u.Status, u.Output); err != nil {
				a.log.Debug("check update for a removed check", "check", u.CheckID, "err", err)
			}
		}
	}
}

// followServers triggers a full sync when a server (re)appears, so that
// what changed while no server was reachable is pushed at once.
func (a *Agent) followServers(ctx context.Context) error {
	events := a.cfg.Gossip.Subscribe()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-events:
			me, ok := e.(serf.MemberEvent)
			if !ok || me.Type != serf.EventMemberJoin {
				continue
			}
			for _, m := range me.Members {
				if _, ok := gossip.ServerRPCAddr(m, a.cfg.Datacenter); ok {
					a.local.SyncFull()
					break
				}
			}
		}
	}
}

// addService registers a service locally and starts its check runners,
// with the sidecar its Connect block asks for (or without the one an
// earlier registration of the same ID asked for).
func (a *Agent) addService(r *api.AgentServiceRegistration, src checks.Source) error {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	svc, cats, defs, err := serviceFromRegistration(r, src, a.cfg.EnableLocalScriptChecks)
	if err != nil {
		return err
	}
	side, err := a.planSidecar(r, svc, src)
	if err != nil {
		return err
	}
	var blob []byte
	if src == checks.SourceAPI {
		persisted := r
		if side != nil {
			persisted = withSidecarPort(r, side.port)
		}
		if blob, err = json.Marshal(persisted); err != nil {
			return fmt.Errorf("encode registration: %w", err)
		}
	}
	if err := a.addLocal(svc, cats, defs, blob, src); err != nil {
		return err
	}
	a.setIdentity(svc, r.Identity)
	a.mu.Lock()
	oldSidecar := a.sidecars[svc.ID]
	a.mu.Unlock()
	if side == nil {
		if oldSidecar != "" {
			a.mu.Lock()
			delete(a.sidecars, svc.ID)
			a.mu.Unlock()
			_ = a.removeService(oldSidecar)
		}
		return nil
	}
	if oldSidecar != "" && oldSidecar != side.svc.ID {
		_ = a.removeService(oldSidecar)
	}
	// The alias check starts at the service's current status.
	side.cats[len(side.cats)-1].Status, side.cats[len(side.cats)-1].Output = a.aliasStatus(svc.ID, a.local.Services(), a.local.Checks())
	if err := a.addLocal(side.svc, side.cats, side.defs, nil, src); err != nil {
		return fmt.Errorf("sidecar %q: %w", side.svc.ID, err)
	}
	a.mu.Lock()
	a.sidecars[svc.ID] = side.svc.ID
	a.mu.Unlock()
	return nil
}

// addLocal adds one service with its checks to the local state and
// starts or stops check runners to match.
func (a *Agent) addLocal(svc *catalog.Service, cats []*catalog.Check, defs []checks.Definition, blob []byte, src checks.Source) error {
	old := map[string]bool{}
	for _, c := range a.local.Checks() {
		if c.ServiceID == svc.ID {
			old[c.CheckID] = true
		}
	}
	if err := a.local.AddService(svc, cats, blob); err != nil {
		return err
	}
	for _, d := range defs {
		delete(old, d.ID)
		if d.Kind() == checks.KindTTL || d.Interval > 0 {
			if err := a.checks.Add(d); err != nil {
				return fmt.Errorf("start check %q: %w", d.ID, err)
			}
		}
	}
	for id := range old {
		a.checks.Remove(id)
	}
	a.mu.Lock()
	a.fromConfig[svc.ID] = src == checks.SourceConfigFile
	a.mu.Unlock()
	return nil
}

func (a *Agent) loadServices(defs []ServiceDefinition) error {
	for _, d := range defs {
		r := d.Registration
		if err := a.addService(&r, checks.SourceConfigFile); err != nil {
			return fmt.Errorf("%s: service %q: %w", d.Source, r.Name, err)
		}
	}
	return nil
}

// replayPersisted re-registers what the API registered before a restart;
// a config file's service of the same ID wins.
func (a *Agent) replayPersisted() {
	services, standalone, err := a.local.Persisted()
	if err != nil {
		a.log.Error("read persisted registrations", "err", err)
		return
	}
	for id, blob := range services {
		a.mu.Lock()
		cfg := a.fromConfig[id]
		a.mu.Unlock()
		if cfg {
			continue
		}
		var r api.AgentServiceRegistration
		if err := json.Unmarshal(blob, &r); err != nil {
			a.log.Error("persisted service is unreadable; skipped", "service", id, "err", err)
			continue
		}
		if err := a.addService(&r, checks.SourceAPI); err != nil {
			a.log.Error("persisted service no longer valid; skipped", "service", id, "err", err)
		}
	}
	for id, blob := range standalone {
		var r api.AgentCheckRegistration
		if err := json.Unmarshal(blob, &r); err != nil {
			a.log.Error("persisted check is unreadable; skipped", "check", id, "err", err)
			continue
		}
		if err := a.addCheck(&r, true); err != nil {
			a.log.Error("persisted check no longer valid; skipped", "check", id, "err", err)
		}
	}
}
