// Package servertest runs in-process clusters of real servers (real Raft
// over loopback TCP, real boltdb files in temp dirs) with fast Raft timings,
// each with the HTTP API in front, for tests. Only tests import it.
package servertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/warren-mesh/warren/httpapi"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/testutil"
	"github.com/warren-mesh/warren/server"
)

// Timings are Raft timings fast enough for tests and slow enough for -race
// on two cores.
var Timings = server.RaftTimings{
	HeartbeatTimeout:   300 * time.Millisecond,
	ElectionTimeout:    300 * time.Millisecond,
	LeaderLeaseTimeout: 150 * time.Millisecond,
	CommitTimeout:      5 * time.Millisecond,
}

// Node is one server of a test cluster.
type Node struct {
	Name   string
	Dir    string
	Config server.Config
	Server *server.Server
	// HTTP is the server's HTTP API; its URL changes across restarts.
	HTTP *httptest.Server

	cancel context.CancelFunc
	done   chan error
}

// Running reports whether the node is up.
func (n *Node) Running() bool { return n.Server != nil }

// Cluster is a set of servers that retry_join each other.
type Cluster struct {
	t     testing.TB
	Nodes []*Node
}

// Option changes every node's config before it starts.
type Option func(*server.Config)

// WithRaft sets the Raft timings.
func WithRaft(t server.RaftTimings) Option { return func(c *server.Config) { c.Raft = t } }

// New starts n servers with bootstrap_expect n and waits for a leader. The
// cluster stops when the test ends.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	addrs := make([]string, n)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	}
	for i := 0; i < n; i++ {
		cfg := server.Config{
			NodeName:        fmt.Sprintf("s%d", i+1),
			Datacenter:      "dc1",
			DataDir:         t.TempDir(),
			BindAddr:        addrs[i],
			AdvertiseAddr:   addrs[i],
			BootstrapExpect: n,
			RetryJoin:       addrs,
			RetryInterval:   100 * time.Millisecond,
			Raft:            Timings,
			Version:         "test",
		}
		for _, o := range opts {
			o(&cfg)
		}
		c.Nodes = append(c.Nodes, &Node{Name: cfg.NodeName, Dir: cfg.DataDir, Config: cfg})
	}
	for _, node := range c.Nodes {
		c.Start(node)
	}
	t.Cleanup(c.StopAll)
	c.WaitLeader()
	return c
}

// Logger is where node logs go: set WARREN_TEST_LOG=1 to see them.
func Logger(name string) *slog.Logger {
	if os.Getenv("WARREN_TEST_LOG") != "" {
		return logging.New(os.Stderr, slog.LevelDebug).With("node", name)
	}
	return logging.Discard()
}

// Start (re)starts a node from its data dir.
func (c *Cluster) Start(n *Node) {
	c.t.Helper()
	cfg := n.Config
	if cfg.Logger == nil { // an Option may set its own
		cfg.Logger = Logger(n.Name)
	}
	var srv *server.Server
	var err error
	// The port may take a moment to be free again after a stop.
	for range 50 {
		if srv, err = server.New(cfg); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("start %s: %v", n.Name, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.Server, n.cancel, n.done = srv, cancel, make(chan error, 1)
	go func() { n.done <- srv.Run(ctx) }()
	hc := httpapi.Config{Backend: srv, Logger: Logger(n.Name), Datacenter: cfg.Datacenter}
	if cfg.ACL.Enabled {
		hc.ACL = srv
	}
	n.HTTP = httptest.NewServer(httpapi.New(hc))
}

// Stop stops a node cleanly; its data dir stays for a restart.
func (c *Cluster) Stop(n *Node) {
	if n.Server == nil {
		return
	}
	n.HTTP.CloseClientConnections()
	n.HTTP.Close()
	n.cancel()
	if err := <-n.done; err != nil {
		c.t.Errorf("%s stopped with error: %v", n.Name, err)
	}
	n.Server = nil
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for _, n := range c.Nodes {
		c.Stop(n)
	}
}

// WaitLeader waits until exactly one running node is the ready leader and
// every running node knows it; it returns the leader.
func (c *Cluster) WaitLeader() *Node {
	c.t.Helper()
	var leader *Node
	WaitFor(c.t, 20*time.Second, func() error {
		leader = nil
		for _, n := range c.Nodes {
			if n.Running() && n.Server.IsLeader() {
				if leader != nil {
					return fmt.Errorf("two leaders: %s and %s", leader.Name, n.Name)
				}
				leader = n
			}
		}
		if leader == nil {
			return fmt.Errorf("no leader")
		}
		for _, n := range c.Nodes {
			if n.Running() && n.Server.LeaderAddr() != leader.Server.Addr() {
				return fmt.Errorf("%s does not know leader %s yet", n.Name, leader.Name)
			}
		}
		return nil
	})
	return leader
}

// Followers returns the running nodes that are not the leader.
func (c *Cluster) Followers() []*Node {
	var out []*Node
	for _, n := range c.Nodes {
		if n.Running() && !n.Server.IsLeader() {
			out = append(out, n)
		}
	}
	return out
}

// WaitFor polls cond until it returns nil or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
