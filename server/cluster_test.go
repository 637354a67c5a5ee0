package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

func client(t *testing.T, n *servertest.Node) *consulapi.Client {
	t.Helper()
	c, err := consulapi.NewClient(&consulapi.Config{Address: n.HTTP.URL})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func registration(i int) *consulapi.CatalogRegistration {
	return &consulapi.CatalogRegistration{
		Node:    fmt.Sprintf("node-%d", i%7),
		Address: fmt.Sprintf("10.1.0.%d", i%7+1),
		Service: &consulapi.AgentService{ID: fmt.Sprintf("web-%d", i), Service: "web", Port: 8000 + i%1000, Tags: []string{"v1"}},
		Check:   &consulapi.AgentCheck{CheckID: fmt.Sprintf("web-%d-alive", i), Name: "alive", Status: consulapi.HealthPassing, ServiceID: fmt.Sprintf("web-%d", i)},
	}
}

// serviceIDs reads the instances of web from one node, stale, so it sees
// exactly that node's state store.
func serviceIDs(t *testing.T, n *servertest.Node) (map[string]bool, error) {
	svcs, _, err := client(t, n).Catalog().Service("web", "", &consulapi.QueryOptions{AllowStale: true})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, s := range svcs {
		out[s.ServiceID] = true
	}
	return out, nil
}

func waitHasAll(t *testing.T, n *servertest.Node, want map[string]bool) {
	t.Helper()
	servertest.WaitFor(t, 20*time.Second, func() error {
		got, err := serviceIDs(t, n)
		if err != nil {
			return err
		}
		for id := range want {
			if !got[id] {
				return fmt.Errorf("%s misses acknowledged %s (has %d of %d)", n.Name, id, len(got), len(want))
			}
		}
		return nil
	})
}

func TestLeaderKilledWritesSurvive(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		wg    sync.WaitGroup
	)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopWriting := make(chan struct{})
	for w := range 3 {
		n := c.Nodes[w]
		cl := client(t, n)
		wg.Go(func() {
			for i := w; i < 3000; i += 3 {
				select {
				case <-stopWriting:
					return
				case <-ctx.Done():
					return
				default:
				}
				reg := registration(i)
				if _, err := cl.Catalog().Register(reg, (&consulapi.WriteOptions{}).WithContext(ctx)); err == nil {
					mu.Lock()
					acked[reg.Service.ID] = true
					mu.Unlock()
				}
			}
		})
	}
	// Let some writes land, then stop the leader in the middle of them.
	servertest.WaitFor(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 100 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	c.Stop(leader)
	newLeader := c.WaitLeader()
	if newLeader == leader {
		t.Fatal("stopped leader is still the leader")
	}
	// Writes go on against the survivors.
	servertest.WaitFor(t, 10*time.Second, func() error {
		_, err := client(t, newLeader).Catalog().Register(registration(100000), nil)
		return err
	})
	close(stopWriting)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	acked["web-100000"] = true
	for _, n := range c.Nodes {
		if n.Running() {
			waitHasAll(t, n, acked)
		}
	}
	t.Logf("%d acknowledged writes present on both survivors", len(acked))
}

func TestFollowerRestartCatchesUp(t *testing.T) {
	timings := servertest.Timings
	// A low threshold makes the leader compact its log, so the follower
	// must catch up from an installed snapshot, not only from the log.
	timings.SnapshotThreshold = 64
	timings.TrailingLogs = 16
	timings.SnapshotInterval = 100 * time.Millisecond
	c := servertest.New(t, 3, servertest.WithRaft(timings))
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	c.Stop(follower)

	want := map[string]bool{}
	cl := client(t, leader)
	for i := range 300 {
		reg := registration(i)
		if _, err := cl.Catalog().Register(reg, nil); err != nil {
			t.Fatalf("register %d: %v", i, err)
		}
		want[reg.Service.ID] = true
	}
	c.Start(follower)
	waitHasAll(t, follower, want)
	// Its index matches the leader's view of the same query.
	_, lm, err := cl.Catalog().Service("web", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, fm, err := client(t, follower).Catalog().Service("web", "", &consulapi.QueryOptions{AllowStale: true})
	if err != nil {
		t.Fatal(err)
	}
	if lm.LastIndex != fm.LastIndex {
		t.Fatalf("follower index %d, leader index %d", fm.LastIndex, lm.LastIndex)
	}
}

func TestWritesAndReadsThroughFollowers(t *testing.T) {
	c := servertest.New(t, 3)
	follower := c.Followers()[0]
	cl := client(t, follower)
	if _, err := cl.Catalog().Register(registration(1), nil); err != nil {
		t.Fatalf("register through follower: %v", err)
	}
	// A default read on a follower is answered by the leader: it sees the
	// write at once.
	svcs, meta, err := cl.Catalog().Service("web", "", nil)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("default read through follower = %v, %v", svcs, err)
	}
	if !meta.KnownLeader {
		t.Error("KnownLeader false on a default read")
	}
	_, _, err = cl.Catalog().Service("web", "", &consulapi.QueryOptions{RequireConsistent: true})
	if err != nil {
		t.Fatalf("consistent read through follower: %v", err)
	}
	servertest.WaitFor(t, 5*time.Second, func() error {
		_, meta, err := cl.Catalog().Service("web", "", &consulapi.QueryOptions{AllowStale: true})
		if err != nil {
			return err
		}
		if !meta.KnownLeader {
			return errors.New("stale read: KnownLeader false")
		}
		return nil
	})
}

func TestNoLeaderWriteIs503(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()
	survivor := c.Followers()[0]
	for _, n := range c.Nodes {
		if n != survivor {
			c.Stop(n)
		}
	}
	_ = leader
	body := `{"Node":"n1","Address":"10.0.0.1","Service":{"Service":"web"}}`
	req, _ := http.NewRequest(http.MethodPut, survivor.HTTP.URL+"/v1/catalog/register", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg := new(bytes.Buffer)
	_, _ = msg.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(strings.ToLower(msg.String()), "no cluster leader") {
		t.Fatalf("write without quorum: %d %q, want 503 no cluster leader", resp.StatusCode, msg)
	}
	// Nothing was written: stale read on the survivor has no web.
	got, err := serviceIDs(t, survivor)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("survivor holds %v after a refused write", got)
	}
}

func TestSnapshotRestoreIntoFreshCluster(t *testing.T) {
	c := servertest.New(t, 3)
	cl := client(t, c.WaitLeader())
	want := map[string]bool{}
	for i := range 50 {
		reg := registration(i)
		if _, err := cl.Catalog().Register(reg, nil); err != nil {
			t.Fatal(err)
		}
		want[reg.Service.ID] = true
	}
	// Save through a follower (it is taken on the leader).
	rc, _, err := client(t, c.Followers()[0]).Snapshot().Save(nil)
	if err != nil {
		t.Fatalf("save snapshot: %v", err)
	}
	snap := new(bytes.Buffer)
	if _, err := snap.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	rc.Close()
	wantNodes, _, err := cl.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}

	fresh := servertest.New(t, 3)
	fl := client(t, fresh.WaitLeader())
	// Something the restore must replace.
	if _, err := fl.Catalog().Register(registration(9999), nil); err != nil {
		t.Fatal(err)
	}
	if err := fl.Snapshot().Restore(nil, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatalf("restore: %v", err)
	}
	for _, n := range fresh.Nodes {
		waitHasAll(t, n, want)
		got, _ := serviceIDs(t, n)
		if len(got) != len(want) {
			t.Fatalf("%s has %d instances after restore, want %d", n.Name, len(got), len(want))
		}
	}
	gotNodes, _, err := fl.Catalog().Nodes(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(gotNodes) != len(wantNodes) {
		t.Fatalf("restored %d nodes, want %d", len(gotNodes), len(wantNodes))
	}
	// A garbage snapshot is refused and changes nothing.
	if err := fl.Snapshot().Restore(nil, strings.NewReader("not a snapshot")); err == nil {
		t.Fatal("garbage snapshot restored without error")
	}
	waitHasAll(t, fresh.Nodes[0], want)
}

func TestRemovePeer(t *testing.T) {
	c := servertest.New(t, 3)
	leader := c.WaitLeader()
	victim := c.Followers()[0]
	id := victim.Server.NodeID()
	c.Stop(victim)
	cl := client(t, leader)
	if err := cl.Operator().RaftRemovePeerByID(id, nil); err != nil {
		t.Fatalf("remove peer: %v", err)
	}
	cfg, err := cl.Operator().RaftGetConfiguration(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Servers) != 2 {
		t.Fatalf("configuration has %d servers after remove-peer, want 2", len(cfg.Servers))
	}
	if err := cl.Operator().RaftRemovePeerByID("no-such-id", nil); err == nil {
		t.Fatal("removing an unknown peer succeeded")
	}
}

func TestDataDirOfAnotherDatacenterRefused(t *testing.T) {
	c := servertest.New(t, 1)
	n := c.Nodes[0]
	c.Stop(n)
	cfg := n.Config
	cfg.Datacenter = "dc2"
	_, err := server.New(cfg)
	if err == nil || !strings.Contains(err.Error(), `belongs to datacenter "dc1"`) {
		t.Fatalf("New with another datacenter = %v", err)
	}
}

func TestCorruptDataDirRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "raft"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "raft", "raft.db"), bytes.Repeat([]byte("garbage!"), 1024), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := server.New(server.Config{NodeName: "s1", Datacenter: "dc1", DataDir: dir, BindAddr: "127.0.0.1:0", BootstrapExpect: 1})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("New on a corrupt raft.db = %v, want an error saying corrupt", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "server.json"), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = server.New(server.Config{NodeName: "s1", Datacenter: "dc1", DataDir: dir, BindAddr: "127.0.0.1:0", BootstrapExpect: 1})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("New on a corrupt server.json = %v", err)
	}
}

func TestJoiningAnotherClusterRefused(t *testing.T) {
	a := servertest.New(t, 1)
	b := servertest.New(t, 1)
	n := b.Nodes[0]
	servertest.WaitFor(t, 10*time.Second, func() error {
		b, err := os.ReadFile(filepath.Join(n.Dir, "server.json"))
		if err != nil || !strings.Contains(string(b), "cluster_id") {
			return fmt.Errorf("cluster id not recorded yet: %s %v", b, err)
		}
		return nil
	})
	b.Stop(n)
	// Restart b's server from its data dir, told to join a: it must stop
	// with a clear error instead of running beside a as if it had joined.
	cfg := n.Config
	cfg.RetryJoin = []string{a.Nodes[0].Config.AdvertiseAddr}
	cfg.Logger = servertest.Logger("b")
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = srv.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "another cluster") {
		t.Fatalf("Run = %v, want an error about another cluster", err)
	}
	cfgA, err := client(t, a.Nodes[0]).Operator().RaftGetConfiguration(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgA.Servers) != 1 {
		t.Fatalf("cluster a has %d servers after b tried to join", len(cfgA.Servers))
	}
}
