package gossip

import (
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"
)

func freeUDPPort(t *testing.T) int {
	t.Helper()
	// memberlist binds the port for TCP and UDP; take one free for both.
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			pc.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// TestProbeStatsCountFailures kills one of three members without leaving:
// the survivors' failure detectors suspect it, and the suspicion reaches
// their ProbeStats through the go-metrics bridge; a fourth pool in the
// same process, which never knew the dead member, counts nothing.
func TestProbeStatsCountFailures(t *testing.T) {
	var pools []*Pool
	var addrs []string
	for i := range 4 {
		port := freeUDPPort(t)
		p, err := New(Config{NodeName: fmt.Sprintf("n%d", i), NodeID: fmt.Sprintf("id-%d", i), BindAddr: "127.0.0.1", BindPort: port, Fast: true})
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, p)
		addrs = append(addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	}
	alone := pools[3]
	defer alone.Close()
	for _, p := range pools[1:3] {
		defer p.Close()
		if _, err := p.Join(addrs[:1]); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for pools[1].NumAlive() != 3 || pools[2].NumAlive() != 3 {
		if time.Now().After(deadline) {
			t.Fatal("pool did not form")
		}
		time.Sleep(20 * time.Millisecond)
	}
	before := pools[1].ProbeStats().Suspicions + pools[2].ProbeStats().Suspicions
	pools[0].Close() // dies without leaving

	deadline = time.Now().Add(15 * time.Second)
	for pools[1].ProbeStats().Suspicions+pools[2].ProbeStats().Suspicions <= before {
		if time.Now().After(deadline) {
			t.Fatalf("no suspicion counted after a member died: %+v %+v", pools[1].ProbeStats(), pools[2].ProbeStats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := alone.ProbeStats(); s.Suspicions != 0 {
		t.Errorf("an unrelated pool counted %d suspicions", s.Suspicions)
	}
}
