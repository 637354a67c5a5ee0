package e2e

// A multi-process harness: N `warren server` and M `warren agent`
// processes on 127.0.0.1, each with its own ports and data dir, joined by
// retry_join to the servers' serf LAN ports. Tests kill -9, interrupt and
// restart single processes; every process's output is kept and printed when
// a test fails; everything is stopped and removed at the end.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/internal/testutil"
)

// node is one warren process (server or agent) that can be stopped and
// started again with the same arguments and data dir.
type clusterNode struct {
	name    string
	server  bool
	dataDir string
	args    []string

	httpPort, dnsPort, serverPort, serfPort, grpcPort int

	log *testutil.LockedBuffer // every incarnation's output

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current incarnation exited
	waitErr error
	starts  int
}

// HTTP is the node's HTTP address, host:port.
func (n *clusterNode) HTTP() string { return fmt.Sprintf("127.0.0.1:%d", n.httpPort) }

// Serf is the node's serf LAN address, host:port.
func (n *clusterNode) Serf() string { return fmt.Sprintf("127.0.0.1:%d", n.serfPort) }

// client is a Consul Go client for the node, with a request timeout.
func (n *clusterNode) client(t *testing.T) *consulapi.Client {
	t.Helper()
	cl, err := consulapi.NewClient(&consulapi.Config{
		Address:    n.HTTP(),
		Token:      clusterMgmtToken,
		HttpClient: &http.Client{Timeout: 10 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// start runs a new incarnation of the process.
func (n *clusterNode) start(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			t.Fatalf("%s: start while it is running", n.name)
		}
	}
	n.starts++
	fmt.Fprintf(n.log, "=== e2e: start #%d at %s: warren %s\n", n.starts, time.Now().Format(time.RFC3339Nano), strings.Join(n.args, " "))
	cmd := exec.Command(warrenBin, n.args...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	// If the test binary dies, its children die with it.
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", n.name, err)
	}
	done := make(chan struct{})
	n.cmd, n.done = cmd, done
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		fmt.Fprintf(n.log, "=== e2e: exited at %s: %v\n", time.Now().Format(time.RFC3339Nano), err)
		close(done)
	}()
}

// running reports whether the current incarnation is still running.
func (n *clusterNode) running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to timeout for the exit; it returns the
// process's exit error (nil for exit status 0).
func (n *clusterNode) signal(t *testing.T, sig syscall.Signal, timeout time.Duration) error {
	t.Helper()
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		t.Fatalf("%s: never started", n.name)
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s of %v", n.name, timeout, sig)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.waitErr
}

// kill9 kills the process with SIGKILL: no leave, no cleanup.
func (n *clusterNode) kill9(t *testing.T) {
	t.Helper()
	_ = n.signal(t, syscall.SIGKILL, 10*time.Second)
}

// interrupt sends SIGINT and requires a clean exit.
func (n *clusterNode) interrupt(t *testing.T) {
	t.Helper()
	if err := n.signal(t, syscall.SIGINT, 20*time.Second); err != nil {
		t.Fatalf("%s exited with %v after SIGINT", n.name, err)
	}
}

// restart starts a stopped process again with the same args and data dir.
func (n *clusterNode) restart(t *testing.T) {
	t.Helper()
	if n.running() {
		t.Fatalf("%s: restart while it is running", n.name)
	}
	n.start(t)
}

// waitHTTP waits until the node's HTTP API answers.
func (n *clusterNode) waitHTTP(t *testing.T, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		if !n.running() {
			return fmt.Errorf("%s is not running", n.name)
		}
		_, err := n.client(t).Agent().Self()
		return err
	})
}

// cluster is a set of warren processes on 127.0.0.1.
type testCluster struct {
	dir     string
	servers []*clusterNode
	agents  []*clusterNode
	all     []*clusterNode
}

// nodeOpts adds flags to a node beyond the common ones.
type nodeOpts struct {
	extra []string
}

// newNode prepares (but does not start) a process named name.
func (c *testCluster) newNode(t *testing.T, name string, server bool, join []string, o nodeOpts) *clusterNode {
	t.Helper()
	n := &clusterNode{
		name: name, server: server, dataDir: filepath.Join(c.dir, name), log: new(testutil.LockedBuffer),
		httpPort: testutil.FreePort(t), dnsPort: testutil.FreePort(t), serverPort: testutil.FreePort(t), serfPort: testutil.FreePort(t), grpcPort: testutil.FreePort(t),
	}
	mode := "agent"
	if server {
		mode = "server"
	}
	n.args = []string{mode,
		"-node", name, "-data-dir", n.dataDir,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(n.httpPort),
		"-dns-port", strconv.Itoa(n.dnsPort),
		"-server-port", strconv.Itoa(n.serverPort),
		"-serf-lan-port", strconv.Itoa(n.serfPort),
		"-grpc-port", strconv.Itoa(n.grpcPort),
		"-retry-interval", "1s",
	}
	if server {
		n.args = append(n.args, "-bootstrap-expect", "3")
	}
	// ACLs are on, as in production: the servers make the management
	// token, every node calls the servers with it, and the tests' clients
	// send it (client, run, the raw requests).
	n.args = append(n.args, "-hcl", clusterACL(server))
	for _, j := range join {
		n.args = append(n.args, "-retry-join", j)
	}
	n.args = append(n.args, o.extra...)
	c.all = append(c.all, n)
	return n
}

// clusterMgmtToken is the e2e clusters' management token.
const clusterMgmtToken = "5b3e1f0a-9c2d-4e8f-a7b6-1d2c3e4f5a6b"

func clusterACL(server bool) string {
	initial := ""
	if server {
		initial = fmt.Sprintf("initial_management = %q\n", clusterMgmtToken)
	}
	return fmt.Sprintf("acl {\n enabled = true\n default_policy = \"deny\"\n tokens {\n %sagent = %q\n }\n}\n",
		initial, clusterMgmtToken)
}

// addAgent starts one more agent joined to the servers and waits for its
// HTTP API.
func (c *testCluster) addAgent(t *testing.T, name string, o nodeOpts) *clusterNode {
	t.Helper()
	var join []string
	for _, s := range c.servers {
		join = append(join, s.Serf())
	}
	a := c.newNode(t, name, false, join, o)
	c.agents = append(c.agents, a)
	a.start(t)
	a.waitHTTP(t, 30*time.Second)
	return a
}

func (c *testCluster) node(t *testing.T, name string) *clusterNode {
	t.Helper()
	for _, n := range c.all {
		if n.name == name {
			return n
		}
	}
	t.Fatalf("no node %q", name)
	return nil
}

// startCluster starts nServers servers (bootstrap_expect 3) and nAgents
// agents, waits for a leader and for every node to be in the catalog with a
// passing serfHealth check. Cleanup kills every process, reports data races
// and, if the test failed, prints every process's output.
func startCluster(t *testing.T, nServers, nAgents int) *testCluster {
	t.Helper()
	c := &testCluster{dir: t.TempDir()}
	t.Cleanup(func() { c.cleanup(t) })

	for i := 1; i <= nServers; i++ {
		c.servers = append(c.servers, c.newNode(t, fmt.Sprintf("s%d", i), true, nil, nodeOpts{}))
	}
	// retry_join names the other servers' serf LAN addresses.
	for _, s := range c.servers {
		var join []string
		for _, o := range c.servers {
			if o != s {
				join = append(join, "-retry-join", o.Serf())
			}
		}
		s.args = append(s.args, join...)
	}
	start := time.Now()
	for _, s := range c.servers {
		s.start(t)
	}
	c.waitLeader(t, 60*time.Second)
	t.Logf("cluster: %d servers elected a leader in %s", nServers, time.Since(start).Round(time.Millisecond))

	var join []string
	for _, s := range c.servers {
		join = append(join, s.Serf())
	}
	for i := 1; i <= nAgents; i++ {
		a := c.newNode(t, fmt.Sprintf("a%d", i), false, join, nodeOpts{})
		c.agents = append(c.agents, a)
		a.start(t)
	}
	for _, a := range c.agents {
		a.waitHTTP(t, 30*time.Second)
	}
	var names []string
	for _, n := range c.all {
		names = append(names, n.name)
	}
	c.waitNodesHealthy(t, 30*time.Second, names...)
	t.Logf("cluster: %d servers + %d agents up and in the catalog after %s", nServers, nAgents, time.Since(start).Round(time.Millisecond))
	return c
}

func (c *testCluster) cleanup(t *testing.T) {
	for _, n := range c.all {
		n.mu.Lock()
		cmd, done := n.cmd, n.done
		n.mu.Unlock()
		if cmd == nil {
			continue
		}
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: still running 10s after SIGKILL", n.name)
		}
	}
	for _, n := range c.all {
		if strings.Contains(n.log.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector reported a data race (see its log)", n.name)
		}
	}
	if t.Failed() {
		for _, n := range c.all {
			t.Logf("----- log of %s -----\n%s", n.name, logTail(n.log.String(), 256<<10))
		}
	}
}

// tail keeps the last max bytes of s.
func logTail(s string, max int) string {
	if len(s) <= max {
		return s
	}
	return fmt.Sprintf("[... %d bytes cut ...]\n", len(s)-max) + s[len(s)-max:]
}

// waitLeader waits until every running server reports the same non-empty
// leader and serves catalog reads.
func (c *testCluster) waitLeader(t *testing.T, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, func() error {
		leader := ""
		for _, s := range c.servers {
			if !s.running() {
				return fmt.Errorf("%s is not running", s.name)
			}
			l, err := s.client(t).Status().Leader()
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			if l == "" {
				return fmt.Errorf("%s: no leader yet", s.name)
			}
			if leader != "" && l != leader {
				return fmt.Errorf("servers disagree on the leader: %s and %s", leader, l)
			}
			leader = l
			if _, _, err := s.client(t).Catalog().Services(nil); err != nil {
				return fmt.Errorf("%s: catalog not ready: %w", s.name, err)
			}
		}
		return nil
	})
}

// serfHealth returns the status of node's serfHealth check as a server
// sees it ("" if the node has none).
func serfHealthOf(cl *consulapi.Client, name string) (string, error) {
	checks, _, err := cl.Health().Node(name, nil)
	if err != nil {
		return "", err
	}
	for _, c := range checks {
		if c.CheckID == "serfHealth" {
			return c.Status, nil
		}
	}
	return "", nil
}

// waitNodesHealthy waits until every named node is in the catalog with a
// passing serfHealth check, as the first server sees it.
func (c *testCluster) waitNodesHealthy(t *testing.T, timeout time.Duration, names ...string) {
	t.Helper()
	cl := c.servers[0].client(t)
	waitFor(t, timeout, func() error {
		nodes, _, err := cl.Catalog().Nodes(nil)
		if err != nil {
			return err
		}
		have := map[string]bool{}
		for _, n := range nodes {
			have[n.Node] = true
		}
		for _, name := range names {
			if !have[name] {
				return fmt.Errorf("node %s not in the catalog (have %v)", name, have)
			}
			st, err := serfHealthOf(cl, name)
			if err != nil {
				return err
			}
			if st != consulapi.HealthPassing {
				return fmt.Errorf("node %s: serfHealth %q", name, st)
			}
		}
		return nil
	})
}

// poll calls cond every interval until it returns nil or timeout passes;
// it returns how long that took, or fails the test.
func pollUntil(t *testing.T, timeout, interval time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// passingOn returns an error unless service has a passing instance on node,
// as cl sees it (?passing).
func passingOn(cl *consulapi.Client, service, node string) error {
	entries, _, err := cl.Health().Service(service, "", true, nil)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Node.Node == node {
			return nil
		}
	}
	return fmt.Errorf("%s has no passing instance on %s (%d passing instances)", service, node, len(entries))
}

// notPassingOn is the opposite of passingOn.
func notPassingOn(cl *consulapi.Client, service, node string) error {
	err := passingOn(cl, service, node)
	if err == nil {
		return fmt.Errorf("%s still has a passing instance on %s", service, node)
	}
	if strings.Contains(err.Error(), "no passing instance") {
		return nil
	}
	return err
}

// inCatalog returns an error unless node has a service instance serviceID
// in the catalog.
func inCatalog(cl *consulapi.Client, node, serviceID string) error {
	cn, _, err := cl.Catalog().Node(node, nil)
	if err != nil {
		return err
	}
	if cn == nil || cn.Services[serviceID] == nil {
		return fmt.Errorf("service %s not on node %s in the catalog", serviceID, node)
	}
	return nil
}

// registerTTL registers service id (name) on an agent with a TTL check and
// sets the check passing.
func registerTTL(t *testing.T, cl *consulapi.Client, id, name string, port int, address string) string {
	t.Helper()
	checkID := id + "-ttl"
	err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{
		ID: id, Name: name, Port: port, Address: address, Tags: []string{"e2e"},
		Check: &consulapi.AgentServiceCheck{CheckID: checkID, Name: "ttl", TTL: "10m"},
	})
	if err != nil {
		t.Fatalf("register %s: %v", id, err)
	}
	if err := cl.Agent().UpdateTTL(checkID, "ready", consulapi.HealthPassing); err != nil {
		t.Fatalf("update TTL of %s: %v", checkID, err)
	}
	return checkID
}

// Serf member statuses, as /v1/agent/members reports them.
const (
	memberAlive = 1
	memberLeft  = 3
)

// TestCluster runs three servers and three agents as separate processes
// and shares them across subtests; subtests run in order and each sets up
// what it asserts on.
func TestCluster(t *testing.T) {
	c := startCluster(t, 3, 3)

	t.Run("AgentsJoinAndRegister", func(t *testing.T) { testAgentsJoinAndRegister(t, c) })
	t.Run("AgentKilledTurnsCritical", func(t *testing.T) { testAgentKilledTurnsCritical(t, c) })
	t.Run("GracefulLeaveDeregisters", func(t *testing.T) { testGracefulLeaveDeregisters(t, c) })
	t.Run("AntiEntropyRestores", func(t *testing.T) { testAntiEntropyRestores(t, c) })
	t.Run("RegistrationSurvivesKill9", func(t *testing.T) { testRegistrationSurvivesKill9(t, c) })
	t.Run("ConfigFileService", func(t *testing.T) { testConfigFileService(t, c) })
	t.Run("DNS", func(t *testing.T) { testDNS(t, c) })
	t.Run("ACLs", func(t *testing.T) { testACLs(t, c) })
}

func testAgentsJoinAndRegister(t *testing.T, c *testCluster) {
	srv := c.node(t, "s2").client(t)
	a1 := c.node(t, "a1")

	// Every node is in the catalog with a passing serfHealth check.
	nodes, _, err := srv.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range nodes {
		names = append(names, n.Node)
		if n.Address != "127.0.0.1" {
			t.Errorf("node %s has address %q, want 127.0.0.1", n.Node, n.Address)
		}
	}
	if got := strings.Join(names, ","); got != "a1,a2,a3,s1,s2,s3" {
		t.Fatalf("catalog nodes = %s, want the 3 servers and 3 agents", got)
	}
	for _, n := range names {
		if st, err := serfHealthOf(srv, n); err != nil || st != consulapi.HealthPassing {
			t.Errorf("node %s: serfHealth %q, %v", n, st, err)
		}
	}
	// Each agent gives its node Consul's tagged addresses (its first sync
	// may land a moment after the leader registered the member).
	waitFor(t, 10*time.Second, func() error {
		nodes, _, err := srv.Catalog().Nodes(nil)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			want := map[string]string{"lan": "127.0.0.1", "lan_ipv4": "127.0.0.1", "wan": "127.0.0.1", "wan_ipv4": "127.0.0.1"}
			if !maps.Equal(n.TaggedAddresses, want) {
				return fmt.Errorf("node %s: tagged addresses %v, want %v", n.Node, n.TaggedAddresses, want)
			}
		}
		return nil
	})

	// The CLI lists the six members alive, in text and JSON. Gossip is
	// eventually consistent: a1 may learn of the last joiner a moment after
	// the servers did.
	waitFor(t, 10*time.Second, func() error {
		out, errOut, code := run(t, "members", "-http-addr", a1.HTTP())
		if code != 0 {
			return fmt.Errorf("warren members: code %d, stderr %q", code, errOut)
		}
		alive, types := 0, map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 4 && f[2] == "alive" {
				alive++
				types[f[3]]++
			}
		}
		if alive != 6 || !strings.HasPrefix(out, "Node") || types["server"] != 3 || types["client"] != 3 {
			return fmt.Errorf("warren members lists %d alive members (%v), want 6, 3 servers and 3 clients:\n%s", alive, types, out)
		}
		return nil
	})
	out, _, code := run(t, "members", "-json", "-http-addr", a1.HTTP())
	var members []struct {
		Name   string
		Status int
		Tags   map[string]string
	}
	if code != 0 || json.Unmarshal([]byte(out), &members) != nil || len(members) != 6 {
		t.Fatalf("warren members -json: code %d, out %q", code, out)
	}
	roles := map[string]int{}
	for _, m := range members {
		roles[m.Tags["role"]]++
	}
	if roles["consul"] != 3 || roles["node"] != 3 { // as Consul spells them
		t.Errorf("member roles = %v, want 3 servers and 3 nodes", roles)
	}

	// /v1/agent/self's monitoring sections: an agent knows the 3 servers,
	// a server's serf sees 6 members and its raft 2 peers.
	waitFor(t, 10*time.Second, func() error {
		self, err := a1.client(t).Agent().Self()
		if err != nil {
			return err
		}
		if cs, _ := self["Stats"]["consul"].(map[string]any); cs["server"] != "false" || cs["known_servers"] != "3" {
			return fmt.Errorf("a1 Stats.consul = %v", cs)
		}
		self, err = srv.Agent().Self()
		if err != nil {
			return err
		}
		serfStats, _ := self["Stats"]["serf_lan"].(map[string]any)
		raftStats, _ := self["Stats"]["raft"].(map[string]any)
		if serfStats["members"] != "6" || raftStats["num_peers"] != "2" {
			return fmt.Errorf("s2 Stats.serf_lan = %v, raft = %v", serfStats, raftStats)
		}
		return nil
	})

	// A service with a TTL check registered on a1 reaches the servers.
	cl := a1.client(t)
	registerTTL(t, cl, "web-a1", "web", 8080, "")
	took := pollUntil(t, 10*time.Second, 50*time.Millisecond, "web on a1 passing on s2", func() error { return passingOn(srv, "web", "a1") })
	t.Logf("registration on a1 passing on s2 %s after UpdateTTL returned", took.Round(time.Millisecond))
	entries, _, err := srv.Health().Service("web", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.ID != "web-a1" || entries[0].Service.Port != 8080 || len(entries[0].Checks) != 2 {
		t.Fatalf("health service web on s2 = %+v, %v; want web-a1:8080 with its TTL check and serfHealth", entries, err)
	}

	svcs, err := cl.Agent().Services()
	if err != nil || svcs["web-a1"] == nil || svcs["web-a1"].Service != "web" || svcs["web-a1"].Port != 8080 {
		t.Fatalf("agent services on a1 = %+v, %v", svcs, err)
	}
	ms, err := cl.Agent().Members(false)
	if err != nil {
		t.Fatal(err)
	}
	alive := 0
	for _, m := range ms {
		if m.Status == memberAlive {
			alive++
		}
	}
	if len(ms) != 6 || alive != 6 {
		t.Fatalf("agent members on a1: %d, %d alive; want 6 alive", len(ms), alive)
	}
}

func testAgentKilledTurnsCritical(t *testing.T, c *testCluster) {
	a2 := c.node(t, "a2")
	srv := c.node(t, "s1").client(t)
	registerTTL(t, a2.client(t), "api-a2", "api", 9090, "")
	pollUntil(t, 10*time.Second, 50*time.Millisecond, "api on a2 passing", func() error { return passingOn(srv, "api", "a2") })

	a2.kill9(t)
	killed := time.Now()
	var critAt, goneAt time.Duration
	pollUntil(t, 10*time.Second, 100*time.Millisecond, "a2 critical and api gone from ?passing", func() error {
		if critAt == 0 {
			st, err := serfHealthOf(srv, "a2")
			if err != nil {
				return err
			}
			if st == consulapi.HealthCritical {
				critAt = time.Since(killed)
			}
		}
		if goneAt == 0 {
			if err := notPassingOn(srv, "api", "a2"); err == nil {
				goneAt = time.Since(killed)
			}
		}
		if critAt == 0 || goneAt == 0 {
			return fmt.Errorf("serfHealth critical after %s, api gone after %s (0 = not yet)", critAt, goneAt)
		}
		return nil
	})
	t.Logf("kill -9 of a2: serfHealth critical after %s, api out of ?passing after %s",
		critAt.Round(time.Millisecond), goneAt.Round(time.Millisecond))
	// The instance stays in the catalog (not passing) and so does the node.
	all, _, err := srv.Health().Service("api", "", false, nil)
	if err != nil || len(all) != 1 || all[0].Node.Node != "a2" {
		t.Fatalf("health service api (any state) after the kill = %+v, %v", all, err)
	}
}

func testGracefulLeaveDeregisters(t *testing.T, c *testCluster) {
	a3 := c.node(t, "a3")
	srv := c.node(t, "s3").client(t)
	registerTTL(t, a3.client(t), "cache-a3", "cache", 6379, "")
	pollUntil(t, 10*time.Second, 50*time.Millisecond, "cache on a3 passing", func() error { return passingOn(srv, "cache", "a3") })

	// Agents leave on SIGINT by default (leave_on_terminate).
	a3.interrupt(t)
	took := pollUntil(t, 5*time.Second, 50*time.Millisecond, "a3 out of the catalog", func() error {
		nodes, _, err := srv.Catalog().Nodes(nil)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			if n.Node == "a3" {
				return errors.New("a3 is still in /v1/catalog/nodes")
			}
		}
		return nil
	})
	t.Logf("SIGINT of a3: node gone from the catalog %s after the process exited", took.Round(time.Millisecond))
	if all, _, err := srv.Health().Service("cache", "", false, nil); err != nil || len(all) != 0 {
		t.Fatalf("cache instances after a3 left = %+v, %v", all, err)
	}
	// The others see it as left, once the leave has gossiped to them (it
	// shows as "leaving" for a moment).
	pollUntil(t, 5*time.Second, 50*time.Millisecond, "a3 left on a1", func() error {
		ms, err := c.node(t, "a1").client(t).Agent().Members(false)
		if err != nil {
			return err
		}
		for _, m := range ms {
			if m.Name == "a3" {
				if m.Status != memberLeft {
					return fmt.Errorf("a3's member status on a1 = %d, want left (%d)", m.Status, memberLeft)
				}
				return nil
			}
		}
		return fmt.Errorf("a3 is not in a1's member list at all: %+v", ms)
	})
}

func testAntiEntropyRestores(t *testing.T, c *testCluster) {
	a1 := c.node(t, "a1")
	s1 := c.node(t, "s1")
	srv := s1.client(t)
	registerTTL(t, a1.client(t), "ae-a1", "ae", 7070, "")
	pollUntil(t, 10*time.Second, 50*time.Millisecond, "ae on a1 passing", func() error { return passingOn(srv, "ae", "a1") })

	// Delete the entry behind the agent's back.
	body := strings.NewReader(`{"Node":"a1","ServiceID":"ae-a1"}`)
	req, _ := http.NewRequest("PUT", "http://"+s1.HTTP()+"/v1/catalog/deregister", body)
	req.Header.Set("X-Consul-Token", clusterMgmtToken)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("catalog deregister: %s", resp.Status)
	}
	pollUntil(t, 5*time.Second, 50*time.Millisecond, "ae-a1 gone from the catalog", func() error {
		if err := inCatalog(srv, "a1", "ae-a1"); err == nil {
			return errors.New("ae-a1 still in the catalog")
		}
		return nil
	})
	// The agent still has it.
	if svcs, err := a1.client(t).Agent().Services(); err != nil || svcs["ae-a1"] == nil {
		t.Fatalf("agent services on a1 after the catalog deregistration = %v, %v", svcs, err)
	}
	// Without a reload it would come back at the next full sync, which is
	// DefaultSyncInterval (60s, scaled up in large clusters) away: too long to
	// wait here. A reload runs a full sync at once.
	out, errOut, code := run(t, "reload", "-http-addr", a1.HTTP())
	if code != 0 {
		t.Fatalf("warren reload: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	took := pollUntil(t, 5*time.Second, 50*time.Millisecond, "ae-a1 restored with its check", func() error {
		if err := passingOn(srv, "ae", "a1"); err != nil {
			return err
		}
		// The service's own check must be back too, not just serfHealth.
		checks, _, err := srv.Health().Checks("ae", nil)
		if err != nil {
			return err
		}
		if len(checks) != 1 || checks[0].CheckID != "ae-a1-ttl" || checks[0].Status != consulapi.HealthPassing {
			return fmt.Errorf("checks of ae = %+v, want ae-a1-ttl passing", checks)
		}
		return nil
	})
	t.Logf("anti-entropy restored ae-a1 with its passing check %s after the reload", took.Round(time.Millisecond))
}

func testRegistrationSurvivesKill9(t *testing.T, c *testCluster) {
	a1 := c.node(t, "a1")
	srv := c.node(t, "s2").client(t)
	cl := a1.client(t)
	reg := &consulapi.AgentServiceRegistration{
		ID: "persist-a1", Name: "persist", Port: 5000, Tags: []string{"v1", "durable"}, Meta: map[string]string{"owner": "e2e"},
	}
	before, err := cl.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Agent().ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	// Kill at once: the registration must be on disk when the API answered.
	a1.kill9(t)
	restart := time.Now()
	a1.restart(t)
	a1.waitHTTP(t, 30*time.Second)
	t.Logf("a1 answers HTTP %s after the restart", time.Since(restart).Round(time.Millisecond))

	svcs, err := cl.Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	got := svcs["persist-a1"]
	if got == nil || got.Service != "persist" || got.Port != 5000 || strings.Join(got.Tags, ",") != "v1,durable" || got.Meta["owner"] != "e2e" {
		t.Fatalf("agent services on a1 after kill -9 and restart: persist-a1 = %+v (all: %v)", got, svcs)
	}
	// What earlier subtests registered through the API came back too.
	for id := range before {
		if svcs[id] == nil {
			t.Errorf("%s lost by the restart", id)
		}
	}
	pollUntil(t, 15*time.Second, 100*time.Millisecond, "persist-a1 passing in the catalog", func() error {
		if err := inCatalog(srv, "a1", "persist-a1"); err != nil {
			return err
		}
		return passingOn(srv, "persist", "a1")
	})
	t.Logf("persist-a1 passing in the catalog %s after the restart", (time.Since(restart)).Round(time.Millisecond))
	c.waitNodesHealthy(t, 15*time.Second, "a1")
}

// listenTCP accepts and closes connections until the listener closes.
func acceptAndClose(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return ln
}

func testConfigFileService(t *testing.T, c *testCluster) {
	ln := acceptAndClose(t)
	cfgDir := filepath.Join(c.dir, "a4-config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	hcl := fmt.Sprintf(`service {
  name = "cfgsvc"
  port = 7000
  check {
    tcp      = %q
    interval = "1s"
  }
}
`, ln.Addr().String())
	if err := os.WriteFile(filepath.Join(cfgDir, "cfgsvc.hcl"), []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	a4 := c.addAgent(t, "a4", nodeOpts{extra: []string{"-config-dir", cfgDir}})
	srv := c.node(t, "s1").client(t)
	took := pollUntil(t, 20*time.Second, 100*time.Millisecond, "cfgsvc on a4 passing", func() error { return passingOn(srv, "cfgsvc", "a4") })
	t.Logf("cfgsvc from a4's config dir passing in the catalog %s after a4's HTTP API came up", took.Round(time.Millisecond))
	entries, _, err := srv.Health().Service("cfgsvc", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.Port != 7000 {
		t.Fatalf("cfgsvc entries = %+v, %v", entries, err)
	}

	ln.Close()
	closed := time.Now()
	pollUntil(t, 5*time.Second, 100*time.Millisecond, "cfgsvc critical", func() error {
		checks, _, err := srv.Health().Checks("cfgsvc", nil)
		if err != nil {
			return err
		}
		if len(checks) != 1 || checks[0].Status != consulapi.HealthCritical {
			return fmt.Errorf("cfgsvc checks = %+v", checks)
		}
		return nil
	})
	t.Logf("cfgsvc critical %s after its listener closed", time.Since(closed).Round(time.Millisecond))
	if err := notPassingOn(srv, "cfgsvc", "a4"); err != nil {
		t.Fatal(err)
	}

	// `warren leave` takes a4 out of the cluster while the process runs.
	if out, errOut, code := run(t, "leave", "-http-addr", a4.HTTP()); code != 0 {
		t.Fatalf("warren leave: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	took = pollUntil(t, 5*time.Second, 50*time.Millisecond, "a4 out of the catalog after warren leave", func() error {
		cn, _, err := srv.Catalog().Node("a4", nil)
		if err != nil {
			return err
		}
		if cn != nil {
			return errors.New("a4 is still in the catalog")
		}
		return nil
	})
	t.Logf("warren leave: a4 gone from the catalog %s after the command returned", took.Round(time.Millisecond))
	a4.interrupt(t)
}

// dig asks the DNS server at port for name's A records.
func digA(t *testing.T, port int, name string) ([]string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "dig", "@127.0.0.1", "-p", strconv.Itoa(port), "+short", "+time=1", "+tries=1", name, "A").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dig %s: %v: %s", name, err, out)
	}
	var ips []string
	for _, l := range strings.Fields(string(out)) {
		if net.ParseIP(l) == nil {
			return nil, fmt.Errorf("dig %s: unexpected output %q", name, out)
		}
		ips = append(ips, l)
	}
	return ips, nil
}

func testDNS(t *testing.T, c *testCluster) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig is not on PATH; install dnsutils (bind9-dnsutils) to run the DNS test")
	}
	a1 := c.node(t, "a1")
	cl := a1.client(t)
	checkID := registerTTL(t, cl, "dns-a1", "dnssvc", 5353, "127.0.0.42")
	pollUntil(t, 10*time.Second, 100*time.Millisecond, "dnssvc.service.warren answers 127.0.0.42", func() error {
		ips, err := digA(t, a1.dnsPort, "dnssvc.service.warren")
		if err != nil {
			return err
		}
		if strings.Join(ips, ",") != "127.0.0.42" {
			return fmt.Errorf("A records %v, want 127.0.0.42", ips)
		}
		return nil
	})

	// The agent's own health endpoint answers from its local state.
	if status, info, err := cl.Agent().AgentHealthServiceByID("dns-a1"); err != nil || status != consulapi.HealthPassing ||
		info == nil || info.Service.Service != "dnssvc" || len(info.Checks) != 1 {
		t.Fatalf("a1's health of dns-a1: %q %+v %v", status, info, err)
	}

	// Note: the agent sends at most one status change per check per second
	// (checks.DefaultMinFlapInterval), so this change, made within a second
	// of the passing one, may be held for up to a second; 2 s covers that.
	srv := c.node(t, "s1").client(t)
	if err := cl.Agent().UpdateTTL(checkID, "down", consulapi.HealthCritical); err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	var onServer time.Duration
	took := pollUntil(t, 2*time.Second, 50*time.Millisecond, "dnssvc gone from DNS after its check turned critical", func() error {
		if onServer == 0 && notPassingOn(srv, "dnssvc", "a1") == nil {
			onServer = time.Since(changed)
		}
		ips, err := digA(t, a1.dnsPort, "dnssvc.service.warren")
		if err != nil {
			return err
		}
		if len(ips) != 0 {
			return fmt.Errorf("A records %v (critical on s1 after %s; 0 = not yet)", ips, onServer)
		}
		return nil
	})
	t.Logf("dnssvc out of a1's DNS answers %s after its TTL check turned critical (out of ?passing on s1 after %s)",
		took.Round(time.Millisecond), onServer.Round(time.Millisecond))
	if status, infos, err := cl.Agent().AgentHealthServiceByName("dnssvc"); err != nil || status != consulapi.HealthCritical ||
		len(infos) != 1 || infos[0].AggregatedStatus != consulapi.HealthCritical {
		t.Fatalf("a1's health of dnssvc: %q %+v %v", status, infos, err)
	}
}

// TestBadConfigFileExits: an invalid service definition stops `warren
// agent` at startup with an error naming the file and line.
func TestBadConfigFileExits(t *testing.T) {
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cfgDir, "bad.hcl")
	if err := os.WriteFile(file, []byte("service {\n  name = \"bad\"\n  port = 70000\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{dir: dir}
	n := c.newNode(t, "bad", false, nil, nodeOpts{extra: []string{"-config-dir", cfgDir}})
	_, errOut, code := run(t, n.args...)
	if code != 2 || !strings.Contains(errOut, file+":3") || !strings.Contains(errOut, "70000") {
		t.Fatalf("warren agent with %s: exit code %d, stderr %q; want 2 (bad configuration) and an error naming %s:3", file, code, errOut, file)
	}
}
