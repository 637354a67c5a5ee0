// Package gossip is the LAN membership pool (hashicorp/serf over
// memberlist) that every Warren process joins: servers advertise themselves
// in serf tags, so agents find servers and servers find each other by
// gossip, and the leader turns membership into catalog health. It imports
// only internal/*; agent, server and cli import it.
package gossip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"

	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/metrics"
)

// Tags every member carries.
const (
	TagRole       = "role"    // "server" or "node"
	TagDatacenter = "dc"      // datacenter name
	TagID         = "id"      // node ID (UUID)
	TagRPCAddr    = "rpc"     // server RPC host:port (servers only)
	TagExpect     = "expect"  // bootstrap_expect (servers only)
	TagVersion    = "version" // build version
)

// Values of TagRole.
const (
	RoleServer = "server"
	RoleNode   = "node"
)

// Config configures the pool.
type Config struct {
	NodeName string
	NodeID   string
	// BindAddr and BindPort are where gossip listens (TCP and UDP).
	BindAddr string
	BindPort int
	// AdvertiseAddr is the address others reach us at; "" = BindAddr.
	AdvertiseAddr string
	Tags          map[string]string
	// EncryptKey, if set, is the 32-byte AES key for gossip.
	EncryptKey []byte
	// DataDir holds serf's snapshot, for rejoining after a restart; "" =
	// no snapshot.
	DataDir string
	// ReconnectTimeout is how long a failed member is kept before it is
	// reaped (and its node deregistered).
	ReconnectTimeout time.Duration
	// LeaveOnStop makes Run leave the pool gracefully when it ends.
	LeaveOnStop bool
	// Fast shortens probe intervals, for tests on loopback.
	Fast   bool
	Logger *slog.Logger
}

// Pool is this process's membership in the LAN pool.
type Pool struct {
	cfg    Config
	log    *slog.Logger
	serf   *serf.Serf
	events chan serf.Event

	mu   sync.Mutex
	subs []chan<- serf.Event

	// Memberlist's failure-detector counters, bridged from go-metrics.
	suspicions     atomic.Uint64
	degradedProbes atomic.Uint64
	unroute        func()
}

// New creates the serf instance and binds its ports.
func New(cfg Config) (*Pool, error) {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	p := &Pool{cfg: cfg, log: cfg.Logger, events: make(chan serf.Event, 256)}
	ml := memberlist.DefaultLANConfig()
	if cfg.Fast {
		ml = memberlist.DefaultLocalConfig()
		ml.ProbeInterval = 200 * time.Millisecond
		ml.ProbeTimeout = 100 * time.Millisecond
		ml.GossipInterval = 50 * time.Millisecond
		ml.PushPullInterval = 5 * time.Second
	}
	// A member is probed by someone about every ProbeInterval; a failed
	// probe (then indirect probes) makes it suspect, and it is declared
	// failed after SuspicionMult x log10(members) x ProbeInterval, up to
	// SuspicionMaxTimeoutMult times that while few members confirm.
	// Consul's LAN settings (1 s, 4, 6) detect a killed agent in 5-15 s in
	// a small cluster; probing twice as often with a tighter suspicion
	// keeps detection within ~5 s (make bench prints it), for twice the
	// (tiny) probe traffic and less slack for a member that is slow rather
	// than dead.
	if !cfg.Fast {
		ml.ProbeInterval = 500 * time.Millisecond
		ml.ProbeTimeout = 300 * time.Millisecond
	}
	ml.SuspicionMult = 3
	ml.SuspicionMaxTimeoutMult = 2
	ml.BindAddr = cfg.BindAddr
	ml.BindPort = cfg.BindPort
	adv := cfg.AdvertiseAddr
	if adv == "" {
		adv = cfg.BindAddr
	}
	if ip := net.ParseIP(adv); ip != nil && !ip.IsUnspecified() {
		ml.AdvertiseAddr = adv
		ml.AdvertisePort = cfg.BindPort
	}
	ml.SecretKey = cfg.EncryptKey
	ml.Logger = logging.LibLogger(p.log.With("component", "memberlist"))

	sc := serf.DefaultConfig()
	label, unroute := metrics.RouteCounters(p.countMemberlist)
	sc.MetricLabels = []gometrics.Label{label} // serf passes them on to memberlist
	p.unroute = unroute
	sc.NodeName = cfg.NodeName
	sc.Tags = cfg.Tags
	sc.MemberlistConfig = ml
	sc.EventCh = p.events
	sc.Logger = logging.LibLogger(p.log.With("component", "serf"))
	sc.EnableNameConflictResolution = true
	if cfg.ReconnectTimeout > 0 {
		sc.ReconnectTimeout = cfg.ReconnectTimeout
	}
	// Failed members are retried every few seconds (serf's default is
	// 30 s): after all servers restart, agents that marked them failed
	// find them again quickly.
	sc.ReconnectInterval = 5 * time.Second
	if cfg.Fast {
		sc.ReapInterval = time.Second
		sc.ReconnectInterval = time.Second
	}
	if cfg.DataDir != "" {
		dir := filepath.Join(cfg.DataDir, "serf")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			unroute()
			return nil, fmt.Errorf("create serf dir: %w", err)
		}
		sc.SnapshotPath = filepath.Join(dir, "local.snapshot")
		sc.RejoinAfterLeave = true
	}
	s, err := serf.Create(sc)
	if err != nil {
		unroute()
		return nil, fmt.Errorf("start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	p.serf = s
	return p, nil
}

// Subscribe returns a channel of membership events. Slow subscribers miss
// events rather than block gossip; they should reconcile from Members.
func (p *Pool) Subscribe() <-chan serf.Event {
	ch := make(chan serf.Event, 256)
	p.mu.Lock()
	p.subs = append(p.subs, ch)
	p.mu.Unlock()
	return ch
}

// Run dispatches events until ctx ends, then leaves (if configured) and
// shuts serf down.
func (p *Pool) Run(ctx context.Context) error {
	defer p.shutdown()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-p.events:
			p.mu.Lock()
			for _, ch := range p.subs {
				select {
				case ch <- e:
				default:
					p.log.Warn("membership subscriber is slow; dropped an event", "event", e.String())
				}
			}
			p.mu.Unlock()
		}
	}
}

func (p *Pool) shutdown() {
	if p.cfg.LeaveOnStop && p.serf.State() == serf.SerfAlive {
		if err := p.serf.Leave(); err != nil {
			p.log.Warn("leave gossip pool", "err", err)
		}
	}
	if err := p.serf.Shutdown(); err != nil {
		p.log.Warn("shut down gossip", "err", err)
	}
	p.unroute()
}

// Close shuts serf down without leaving, for a pool that never ran.
func (p *Pool) Close() {
	_ = p.serf.Shutdown()
	p.unroute()
}

// ProbeStats are the failure detector's counters and local health.
type ProbeStats struct {
	// Suspicions counts members this node marked suspect: a probe of
	// them failed, here or at a member that told us first (memberlist's
	// memberlist.msg.suspect).
	Suspicions uint64
	// DegradedProbes counts probe rounds run at a slowed interval because
	// this node's own health was degraded (memberlist.degraded.probe).
	DegradedProbes uint64
	// HealthScore is memberlist's local health (Lifeguard): 0 is healthy;
	// it rises when this node's own probes fail or go unanswered.
	HealthScore int
}

// ProbeStats returns the failure detector's counters.
func (p *Pool) ProbeStats() ProbeStats {
	return ProbeStats{Suspicions: p.suspicions.Load(), DegradedProbes: p.degradedProbes.Load(),
		HealthScore: p.serf.Memberlist().GetHealthScore()}
}

// countMemberlist receives the pool's go-metrics counters.
func (p *Pool) countMemberlist(key []string, val float32) {
	if len(key) != 3 || key[0] != "memberlist" {
		return
	}
	switch {
	case key[1] == "msg" && key[2] == "suspect":
		p.suspicions.Add(uint64(val))
	case key[1] == "degraded" && key[2] == "probe":
		p.degradedProbes.Add(uint64(val))
	}
}

// Members is every member serf knows, in any state.
func (p *Pool) Members() []serf.Member { return p.serf.Members() }

// Stats are serf's counters (members, failed, left, health_score, queue
// depths, encrypted), as /v1/agent/self's serf_lan section.
func (p *Pool) Stats() map[string]string { return p.serf.Stats() }

// LocalMember is this process's member.
func (p *Pool) LocalMember() serf.Member { return p.serf.LocalMember() }

// NumAlive is the number of alive members.
func (p *Pool) NumAlive() int {
	n := 0
	for _, m := range p.serf.Members() {
		if m.Status == serf.StatusAlive {
			n++
		}
	}
	return n
}

// Join contacts the given gossip addresses; it succeeds if any answered.
func (p *Pool) Join(addrs []string) (int, error) {
	n, err := p.serf.Join(addrs, true)
	if n > 0 {
		return n, nil
	}
	if err == nil {
		err = errors.New("no member answered")
	}
	return 0, fmt.Errorf("join %v: %w", addrs, err)
}

// RetryJoin joins addrs, retrying every interval until one answers or ctx
// ends. With no addrs it returns at once.
func (p *Pool) RetryJoin(ctx context.Context, addrs []string, interval time.Duration) error {
	if len(addrs) == 0 {
		return nil
	}
	for attempt := 1; ; attempt++ {
		n, err := p.Join(addrs)
		if err == nil {
			p.log.Info("joined gossip pool", "contacted", n)
			return nil
		}
		p.log.Warn("join failed; retrying", "attempt", attempt, "err", err, "retry_in", interval)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// Leave leaves the pool gracefully; the process keeps running.
func (p *Pool) Leave() error { return p.serf.Leave() }

// ForceLeave marks a failed member as left (prune: forget it at once).
func (p *Pool) ForceLeave(node string, prune bool) error {
	if prune {
		return p.serf.RemoveFailedNodePrune(node)
	}
	return p.serf.RemoveFailedNode(node)
}

// ServerRPCAddr returns a member's server RPC address if it is a server of
// datacenter dc.
func ServerRPCAddr(m serf.Member, dc string) (string, bool) {
	if m.Tags[TagRole] != RoleServer || m.Tags[TagDatacenter] != dc || m.Tags[TagRPCAddr] == "" {
		return "", false
	}
	return m.Tags[TagRPCAddr], true
}

// ExpectTag formats bootstrap_expect for TagExpect.
func ExpectTag(n int) string { return strconv.Itoa(n) }
