package checks

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

func TestTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	addr := ln.Addr().String()

	m, _ := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "tcp", TCP: addr, Interval: 20 * time.Millisecond, Timeout: time.Second})
	if out := waitStatus(t, m, "tcp", catalog.HealthPassing); out != "TCP connect "+addr+": Success" {
		t.Errorf("output %q", out)
	}
	ln.Close()
	if out := waitStatus(t, m, "tcp", catalog.HealthCritical); !strings.Contains(out, "connection refused") {
		t.Errorf("output %q", out)
	}
}
