package e2e

// The delay fault. netem is not available on these kernels, so delay is a
// small TCP proxy in the test process: delayProxy accepts on the bridge's
// gateway address (10.213.N.1, in the root namespace) and forwards every
// connection to one target, holding each chunk it reads for a fixed time
// before writing it on (one-way delay per direction, order kept: the chunks
// of one direction go through a FIFO with their due times).
//
// nsNet.delay puts one server (the victim V) behind such proxies for its
// server RPC port (8300; Raft and forwarded RPC are multiplexed on it):
//
//   - in every other host's namespace, an nftables nat rule rewrites new
//     connections to V:8300 to the gateway proxy that forwards to V:8300
//     (followers' and agents' RPC to V, and the leader's Raft to V);
//   - in V's namespace, new connections to another server X:8300 go to the
//     proxy forwarding to X:8300 (V's Raft and forwarded RPC to the others).
//
// So every server-port TCP connection V takes part in crosses exactly one
// proxy and sees 2*d more round-trip time; traffic between the other
// servers is not touched, nor is gossip (serf's 8301), HTTP or DNS.
// Connections made before the fault carry no NAT and would stay direct, so
// they are aborted with `ss -K` in V's namespace (the kernel closes the
// socket and sends the peer a reset: both ends see the error at once; a
// reject rule on one side would leave the other end waiting for an answer
// until its RPC timeout). The processes reconnect through the proxies.
// The nat rules match only a connection's first SYN: a namespace that had
// no conntrack before (no rule used it) picks an established connection up
// mid-stream as a new one at its next packet, and rewriting that packet
// to the proxy would black-hole the connection.
// Healing deletes the tables first, then closes the proxies and with them
// every delayed connection, so the processes reconnect directly.
//
// A helper mode (WARREN_E2E_DELAY_HELPER, handled in init so TestMain does
// not rebuild warren) lets TestDelayProxyNetns measure a round trip from
// inside a namespace through the nat rule and the proxy.

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// delayProxy forwards connections accepted on its listener to target,
// delaying every byte by delay in each direction.
type delayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration

	done     chan struct{}
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	accepted atomic.Int64 // connections forwarded
	bytes    atomic.Int64 // bytes forwarded, both directions
}

// newDelayProxy listens on listen ("ip:0" picks a port) and forwards to
// target with delay added each way.
func newDelayProxy(listen, target string, delay time.Duration) (*delayProxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	p := &delayProxy{ln: ln, target: target, delay: delay, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *delayProxy) addr() string { return p.ln.Addr().String() }

func (p *delayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return false
	default:
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *delayProxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
		c.Close()
	}
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		if !p.track(client) {
			client.Close()
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			server, err := net.DialTimeout("tcp", p.target, 3*time.Second)
			if err != nil {
				p.untrack(client)
				return
			}
			if !p.track(server) {
				server.Close()
				p.untrack(client)
				return
			}
			p.accepted.Add(1)
			var both sync.WaitGroup
			both.Add(2)
			go func() { defer both.Done(); p.pipe(client, server) }()
			go func() { defer both.Done(); p.pipe(server, client) }()
			both.Wait()
			p.untrack(client, server)
		}()
	}
}

// chunk is bytes read at some time, to be written at due; eof marks the
// end of the direction (err: it ended by an error, not a FIN).
type chunk struct {
	b   []byte
	due time.Time
	eof bool
	err bool
}

// pipe copies src to dst, each chunk delay after it was read. A reader
// goroutine stamps chunks into a bounded FIFO (back-pressure when the
// writer is behind); this goroutine writes them in order when due.
func (p *delayProxy) pipe(src, dst net.Conn) {
	ch := make(chan chunk, 512)
	go func() {
		defer close(ch)
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			now := time.Now()
			if n > 0 {
				ch <- chunk{b: slices.Clone(buf[:n]), due: now.Add(p.delay)}
			}
			if err != nil {
				ch <- chunk{eof: true, err: !errors.Is(err, io.EOF), due: now.Add(p.delay)}
				return
			}
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	fail := func() {
		src.Close()
		dst.Close()
		for range ch { // the reader ends: src is closed
		}
	}
	for c := range ch {
		if d := time.Until(c.due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-p.done:
				fail()
				return
			}
		}
		if c.eof {
			if tc, ok := dst.(*net.TCPConn); ok && !c.err {
				_ = tc.CloseWrite() // pass the FIN on; the other direction goes on
			} else {
				fail()
			}
			for range ch {
			}
			return
		}
		if _, err := dst.Write(c.b); err != nil {
			fail()
			return
		}
		p.bytes.Add(int64(len(c.b)))
	}
}

// close stops accepting, closes every forwarded connection and waits for
// the proxy's goroutines.
func (p *delayProxy) close() {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return
	default:
	}
	close(p.done)
	p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// delayTable is the nftables table of the delay fault (apart from
// faultTable, so heal and the other faults do not touch it).
const delayTable = "wrdelay"

// rpcPort is the server RPC port every warren process of the harness uses.
const rpcPort = 8300

// delayFault is one applied delay: the proxies and the hosts with rules.
type delayFault struct {
	net     *nsNet
	victim  *nsHost
	proxies map[string]*delayProxy // by target host name
	hosts   []*nsHost              // namespaces holding a delayTable
}

// delay puts victim's server-port traffic with the other servers (and the
// agents' RPC to it) behind delaying proxies; servers are the server hosts
// (victim among them), others the remaining hosts (agents).
//
// staged (for a leader victim) cuts the victim's own connections over one
// server at a time, waiting until that server's proxy carries a connection
// before the next: a leader whose connections to every follower are reset
// at once cannot reach a quorum within its 250 ms lease and steps down,
// which would test a leader change, not a slow leader.
func (n *nsNet) delay(victim *nsHost, servers, others []*nsHost, d time.Duration, staged bool) (*delayFault, error) {
	f := &delayFault{net: n, victim: victim, proxies: map[string]*delayProxy{}}
	proxyTo := func(h *nsHost) (*delayProxy, error) {
		if p := f.proxies[h.name]; p != nil {
			return p, nil
		}
		p, err := newDelayProxy(net.JoinHostPort(n.gateway(), "0"), net.JoinHostPort(h.ip, strconv.Itoa(rpcPort)), d)
		if err != nil {
			return nil, err
		}
		f.proxies[h.name] = p
		return p, nil
	}
	apply := func(h *nsHost, nat []string) error {
		script := fmt.Sprintf(`table ip %s {
  chain nat_out { type nat hook output priority -100; policy accept; %s }
}
`, delayTable, strings.Join(nat, " "))
		f.hosts = append(f.hosts, h)
		return shStdin(script, "ip", "netns", "exec", h.ns, "nft", "-f", "-")
	}
	// abort kills V's connections to or from the server port with host h
	// (ss -K: the kernel aborts the socket and sends the peer a reset, so
	// neither end waits for an answer that will not come).
	abort := func(h *nsHost) error {
		port := ":" + strconv.Itoa(rpcPort)
		_, err := sh("ip", "netns", "exec", victim.ns, "ss", "-K", "-tn", "dst", h.ip, "and", "(", "dport", "=", port, "or", "sport", "=", port, ")")
		return err
	}
	toVictim, err := proxyTo(victim)
	if err != nil {
		return f, err
	}
	var peers []*nsHost // the other servers
	for _, h := range servers {
		if h != victim {
			peers = append(peers, h)
			if _, err := proxyTo(h); err != nil {
				return f, err
			}
		}
	}
	// Every other host: new connections to V's server port go through
	// the proxy. Only a connection's first SYN is rewritten (see above).
	for _, h := range append(slices.Clone(peers), others...) {
		nat := []string{fmt.Sprintf("ip daddr %s tcp dport %d tcp flags & (syn|ack) == syn dnat to %s;", victim.ip, rpcPort, toVictim.addr())}
		if err := apply(h, nat); err != nil {
			return f, err
		}
	}
	// V: new connections to each other server's port go through the proxy
	// to that server.
	var nat []string
	for _, h := range peers {
		nat = append(nat, fmt.Sprintf("ip daddr %s tcp dport %d tcp flags & (syn|ack) == syn dnat to %s;", h.ip, rpcPort, f.proxies[h.name].addr()))
	}
	if err := apply(victim, nat); err != nil {
		return f, err
	}
	// The connections made before carry no NAT: abort them, host by host;
	// the processes reconnect, through the proxies.
	for _, h := range others {
		if err := abort(h); err != nil {
			return f, err
		}
	}
	for _, h := range peers {
		p := f.proxies[h.name]
		before := p.accepted.Load()
		if err := abort(h); err != nil {
			return f, err
		}
		if staged {
			// Bounded: a victim with no connection to h (no Raft to it)
			// makes none.
			_ = poll(3*time.Second, func() error {
				if p.accepted.Load() == before {
					return errors.New("no new connection yet")
				}
				return nil
			})
		}
	}
	return f, nil
}

// stats sums the proxies' connections and bytes.
func (f *delayFault) stats() (conns, bytes int64) {
	for _, p := range f.proxies {
		conns += p.accepted.Load()
		bytes += p.bytes.Load()
	}
	return conns, bytes
}

// victimConns is how many connections to the victim's server port went
// through its proxy.
func (f *delayFault) victimConns() int64 {
	if p := f.proxies[f.victim.name]; p != nil {
		return p.accepted.Load()
	}
	return 0
}

// heal deletes the rules, then closes the proxies (and so every delayed
// connection: the processes reconnect directly).
func (f *delayFault) heal() error {
	var errs []error
	for _, h := range f.hosts {
		out, err := sh("ip", "netns", "exec", h.ns, "nft", "list", "tables")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.Contains(out, delayTable) {
			if _, err := sh("ip", "netns", "exec", h.ns, "nft", "delete", "table", "ip", delayTable); err != nil {
				errs = append(errs, err)
			}
		}
	}
	f.hosts = nil
	for _, p := range f.proxies {
		p.close()
	}
	return errors.Join(errs...)
}

// ---- tests of the proxy ------------------------------------------------------

// echoServer echoes every connection on ln until ln is closed.
func echoServer(t *testing.T, listen string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	return ln
}

// roundTrips dials addr and measures n ping/echo round trips of size
// bytes each; it returns them sorted.
func roundTrips(addr string, n, size int) ([]time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	msg := make([]byte, size)
	got := make([]byte, size)
	var rtts []time.Duration
	for i := range n {
		for j := range msg {
			msg[j] = byte(i + j)
		}
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return nil, err
		}
		rtts = append(rtts, time.Since(start))
		if string(got) != string(msg) {
			return nil, fmt.Errorf("round trip %d: echo differs from what was sent", i)
		}
	}
	slices.Sort(rtts)
	return rtts, nil
}

// TestDelayProxyAddsDelay measures round trips through the proxy on
// loopback: each adds two one-way delays, bytes come back in order, and a
// burst is delayed once, not once per chunk.
func TestDelayProxyAddsDelay(t *testing.T) {
	const d = 80 * time.Millisecond
	echo := echoServer(t, "127.0.0.1:0")
	direct, err := roundTrips(echo.Addr().String(), 5, 64)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newDelayProxy("127.0.0.1:0", echo.Addr().String(), d)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	rtts, err := roundTrips(p.addr(), 5, 64<<10) // several chunks each
	if err != nil {
		t.Fatal(err)
	}
	min, med := rtts[0], rtts[len(rtts)/2]
	t.Logf("round trip: direct median %s; through the proxy (%s each way) min %s median %s", direct[len(direct)/2], d, min, med)
	if min < 2*d {
		t.Errorf("a round trip through the proxy took %s, less than 2 x %s", min, d)
	}
	if med > 2*d+400*time.Millisecond {
		t.Errorf("median round trip through the proxy %s, far above 2 x %s", med, d)
	}
	// A burst of 20 writes without waiting: the replies arrive about one
	// round trip later, not 20.
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	var want []byte
	for i := range 20 {
		m := []byte(fmt.Sprintf("msg-%02d;", i))
		want = append(want, m...)
		if _, err := c.Write(m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if string(got) != string(want) {
		t.Errorf("burst came back reordered: %q", got)
	}
	if took < 2*d || took > 2*d+500*time.Millisecond {
		t.Errorf("burst of 20 writes took %s through the proxy, want about 2 x %s + 40ms", took, d)
	}
	// close ends the forwarded connection.
	p.close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("connection through the proxy still open after close")
	}
}

// delayHelperEnv makes the test binary a round-trip probe instead of a
// test run: "ADDR N SIZE"; it prints the sorted round trips in ns.
const delayHelperEnv = "WARREN_E2E_DELAY_HELPER"

func init() {
	spec := os.Getenv(delayHelperEnv)
	if spec == "" {
		return
	}
	f := strings.Fields(spec)
	code := 0
	if len(f) != 3 {
		fmt.Fprintln(os.Stderr, "usage: ADDR N SIZE")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(f[1])
	size, _ := strconv.Atoi(f[2])
	rtts, err := roundTrips(f[0], n, size)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	for _, r := range rtts {
		fmt.Println(r.Nanoseconds())
	}
	os.Exit(code)
}

// probeFrom runs the round-trip probe inside h's namespace.
func probeFrom(t *testing.T, h *nsHost, addr string, n int) []time.Duration {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.ns, self)
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", delayHelperEnv, addr, n, 256))
	dieWithParent(cmd)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("probe from %s to %s: %v: %s", h.name, addr, err, ee.Stderr)
		}
		t.Fatalf("probe from %s to %s: %v", h.name, addr, err)
	}
	var rtts []time.Duration
	for _, l := range strings.Fields(string(out)) {
		ns, _ := strconv.ParseInt(l, 10, 64)
		rtts = append(rtts, time.Duration(ns))
	}
	if len(rtts) != n {
		t.Fatalf("probe from %s: %d round trips, want %d: %q", h.name, len(rtts), n, out)
	}
	return rtts
}

// TestDelayProxyNetns measures the delay fault's real path: a probe in a
// namespace dials a server's RPC address; the nat rule sends the
// connection to the proxy on the gateway, which forwards to the real
// listener (here an echo server standing in for warren's server port).
// It also checks that healing restores the direct path.
func TestDelayProxyNetns(t *testing.T) {
	const d = 100 * time.Millisecond
	n := newNSNet(t)
	client := n.addHost(t, "c1", 11)
	// The "victim" needs no process: its address stands for a server's.
	victim := &nsHost{name: "v", ip: n.subnet + ".12"}
	echo := echoServer(t, net.JoinHostPort(n.gateway(), "0"))
	p, err := newDelayProxy(net.JoinHostPort(n.gateway(), "0"), echo.Addr().String(), d)
	if err != nil {
		t.Fatal(err)
	}
	f := &delayFault{net: n, victim: victim, proxies: map[string]*delayProxy{victim.name: p}}
	t.Cleanup(func() { _ = f.heal() })
	script := fmt.Sprintf(`table ip %s {
  chain nat_out { type nat hook output priority -100; policy accept; ip daddr %s tcp dport %d tcp flags & (syn|ack) == syn dnat to %s; }
}
`, delayTable, victim.ip, rpcPort, p.addr())
	if err := shStdin(script, "ip", "netns", "exec", client.ns, "nft", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	f.hosts = append(f.hosts, client)
	direct := probeFrom(t, client, echo.Addr().String(), 5)
	rtts := probeFrom(t, client, net.JoinHostPort(victim.ip, strconv.Itoa(rpcPort)), 5)
	t.Logf("from namespace %s: direct round trip median %s; to %s:%d through nat and proxy (%s each way) min %s median %s",
		client.name, direct[2], victim.ip, rpcPort, d, rtts[0], rtts[2])
	if rtts[0] < 2*d || rtts[2] > 2*d+400*time.Millisecond {
		t.Errorf("round trips through the delay path %v, want about 2 x %s", rtts, d)
	}
	if got := p.accepted.Load(); got != 1 {
		t.Errorf("proxy forwarded %d connections, want 1", got)
	}
	if err := f.heal(); err != nil {
		t.Fatal(err)
	}
	out, _ := sh("ip", "netns", "exec", client.ns, "nft", "list", "tables")
	if strings.Contains(out, delayTable) {
		t.Errorf("delay table left after heal: %s", out)
	}
}
