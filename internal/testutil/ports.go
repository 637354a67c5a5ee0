package testutil

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut keeps FreePort from returning one port twice in a test process.
// The kernel may give the same ephemeral port to two listeners that were
// closed in between, and a process started with both as different flags
// then refuses its configuration.
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreePort returns a loopback port that is free for both TCP and UDP (serf
// and DNS use both) and that this process has not handed out before.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 200 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("reserve a port: %v", err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		u, uerr := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		_ = ln.Close()
		if uerr != nil {
			continue
		}
		_ = u.Close()
		handedOutMu.Lock()
		dup := handedOut[p]
		handedOut[p] = true
		handedOutMu.Unlock()
		if !dup {
			return p
		}
	}
	t.Fatal("no free loopback port after 200 tries")
	return 0
}

// FreePorts returns n distinct ports from FreePort.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = FreePort(t)
	}
	return ports
}
