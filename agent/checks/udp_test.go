package checks

import (
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// udpServer reads datagrams and, if reply, answers each one.
func udpServer(t *testing.T, reply bool) (addr string, got *atomic.Value) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	got = &atomic.Value{}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			got.Store(string(buf[:n]))
			if reply {
				pc.WriteTo([]byte("pong"), from)
			}
		}
	}()
	return pc.LocalAddr().String(), got
}

func TestUDP(t *testing.T) {
	silent, silentGot := udpServer(t, false)
	answering, _ := udpServer(t, true)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close() // nothing listens: the kernel answers with ICMP port unreachable

	m, _ := startManager(t, ManagerConfig{})
	// A silent service passes once the read times out (Consul's rule).
	mustAdd(t, m, Definition{ID: "silent", UDP: silent, UDPPayload: "ping", Interval: 20 * time.Millisecond, Timeout: 50 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "answering", UDP: answering, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second})
	mustAdd(t, m, Definition{ID: "closed", UDP: closed, Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Status: catalog.HealthPassing})

	if out := waitStatus(t, m, "silent", catalog.HealthPassing); out != "UDP connect "+silent+": Success" {
		t.Errorf("output %q", out)
	}
	if p, _ := silentGot.Load().(string); p != "ping" {
		t.Errorf("server got payload %q, want ping", p)
	}
	waitStatus(t, m, "answering", catalog.HealthPassing)
	if out := waitStatus(t, m, "closed", catalog.HealthCritical); !strings.Contains(out, "refused") {
		t.Errorf("output %q", out)
	}
}
