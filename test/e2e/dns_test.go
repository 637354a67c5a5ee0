package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
)

// The DNS tests drive `warren dev` with real `dig` queries (bind9-dnsutils)
// over UDP and TCP, against names registered through the HTTP API. Every
// address registered here is data only (documentation ranges); the only
// address anything is sent to is 127.0.0.1.

// needDig skips the test when dig is not installed.
func needDig(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not found on PATH: install bind9-dnsutils (apt-get install -y bind9-dnsutils) to run the DNS end-to-end tests")
	}
}

// freeDNSPort returns a loopback port free for both TCP and UDP (the DNS
// server binds both on one port).
func freeDNSPort(t *testing.T) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no loopback port free for both TCP and UDP")
	return 0
}

// startDevDNS starts `warren dev` with its DNS server on a known port (a
// later -dns-port overrides the one startDev picks) and returns the process
// and the port.
func startDevDNS(t *testing.T, extra ...string) (*proc, int) {
	t.Helper()
	port := freeDNSPort(t)
	p := startDev(t, append([]string{"-dns-port", strconv.Itoa(port)}, extra...)...)
	// Stop it with SIGINT before startDev's cleanup kills it (cleanups run
	// last-in first-out): a killed dev process leaves its temp data dir.
	t.Cleanup(func() { p.stop(t) })
	return p, port
}

// digResult is dig's output, parsed.
type digResult struct {
	status     string          // NOERROR, NXDOMAIN, REFUSED, ...
	flags      map[string]bool // header flags: qr, aa, tc, rd, ra, ...
	answer     [][]string      // records, split into fields
	authority  [][]string
	additional [][]string
	raw        string
}

func (r digResult) hasFlag(f string) bool { return r.flags[f] }

// rdata returns the last field of every record of type rrtype in rrs (the
// address of an A record, the target of an SRV record, ...).
func rdata(rrs [][]string, rrtype string) []string {
	var out []string
	for _, f := range rrs {
		if len(f) >= 5 && f[3] == rrtype {
			out = append(out, f[len(f)-1])
		}
	}
	slices.Sort(out)
	return out
}

var (
	digStatus = regexp.MustCompile(`->>HEADER<<- opcode: \w+, status: (\w+),`)
	digFlags  = regexp.MustCompile(`(?m)^;; flags:([^;]*);`)
)

// dig runs dig against 127.0.0.1:port with args (name, type, options) and
// parses its answer. One try, bounded wait: a lost answer fails the test
// rather than hanging it.
func dig(t *testing.T, port int, args ...string) digResult {
	t.Helper()
	r, err := tryDig(port, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func tryDig(port int, args ...string) (digResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	all := append([]string{"@127.0.0.1", "-p", strconv.Itoa(port), "+time=2", "+tries=1", "+norecurse"}, args...)
	cmd := exec.CommandContext(ctx, "dig", all...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return digResult{}, fmt.Errorf("dig %s: %v\n%s%s", strings.Join(all, " "), err, out.String(), errb.String())
	}
	return parseDig(out.String())
}

func parseDig(s string) (digResult, error) {
	r := digResult{raw: s, flags: map[string]bool{}}
	m := digStatus.FindStringSubmatch(s)
	if m == nil {
		return r, fmt.Errorf("dig output has no header:\n%s", s)
	}
	r.status = m[1]
	if m := digFlags.FindStringSubmatch(s); m != nil {
		for _, f := range strings.Fields(m[1]) {
			r.flags[f] = true
		}
	}
	var sec *[][]string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == ";; ANSWER SECTION:":
			sec = &r.answer
		case line == ";; AUTHORITY SECTION:":
			sec = &r.authority
		case line == ";; ADDITIONAL SECTION:":
			sec = &r.additional
		case line == "" || strings.HasPrefix(line, ";"):
			if line == "" {
				sec = nil
			}
		case sec != nil:
			*sec = append(*sec, strings.Fields(line))
		}
	}
	return r, nil
}

// waitDig polls dig until cond accepts its answer, for at most timeout.
func waitDig(t *testing.T, port int, timeout time.Duration, cond func(digResult) error, args ...string) digResult {
	t.Helper()
	var last digResult
	waitFor(t, timeout, func() error {
		r, err := tryDig(port, args...)
		if err != nil {
			return err
		}
		last = r
		if err := cond(r); err != nil {
			return fmt.Errorf("%v; dig output:\n%s", err, r.raw)
		}
		return nil
	})
	return last
}

func wantAddrs(want ...string) func(digResult) error {
	slices.Sort(want)
	return func(r digResult) error {
		if got := rdata(r.answer, "A"); r.status != "NOERROR" || !slices.Equal(got, want) {
			return fmt.Errorf("status %s, A = %v, want NOERROR %v", r.status, got, want)
		}
		return nil
	}
}

func catalogRegister(t *testing.T, cat *consulapi.Catalog, regs ...*consulapi.CatalogRegistration) {
	t.Helper()
	for _, r := range regs {
		if _, err := cat.Register(r, nil); err != nil {
			t.Fatalf("register %s/%s: %v", r.Node, r.Service.ID, err)
		}
	}
}

// instanceReg is one instance on its own node, with a service check.
func instanceReg(node, addr, service, id string, port int, status string, tags ...string) *consulapi.CatalogRegistration {
	return &consulapi.CatalogRegistration{
		Node: node, Address: addr,
		Service: &consulapi.AgentService{ID: id, Service: service, Tags: tags, Port: port},
		Check:   &consulapi.AgentCheck{Node: node, CheckID: "check-" + id, Name: "alive", Status: status, ServiceID: id},
	}
}

// bigInstances is the instance count of the service whose answers do not
// fit a 512-byte UDP message.
const bigInstances = 40

func bigRegs() ([]*consulapi.CatalogRegistration, []string) {
	var regs []*consulapi.CatalogRegistration
	var addrs []string
	for i := 1; i <= bigInstances; i++ {
		addr := fmt.Sprintf("198.51.100.%d", i)
		addrs = append(addrs, addr)
		regs = append(regs, instanceReg(fmt.Sprintf("big-%02d", i), addr, "big", fmt.Sprintf("big-%02d", i), 9000+i, consulapi.HealthPassing))
	}
	return regs, addrs
}

// TestDNSDig registers services through the HTTP API and checks the
// answers of the dev process's DNS server with dig.
func TestDNSDig(t *testing.T) {
	needDig(t)
	t.Parallel()
	p, port := startDevDNS(t)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	cat := cl.Catalog()

	web1 := instanceReg("web-1", "192.0.2.1", "web", "web-a", 8080, consulapi.HealthPassing, "v1", "primary")
	web1.NodeMeta = map[string]string{"rack": "r1", "env": "e2e"}
	web2 := instanceReg("web-2", "192.0.2.2", "web", "web-b", 8081, consulapi.HealthPassing, "v2")
	catalogRegister(t, cat, web1, web2)
	bigs, bigAddrs := bigRegs()
	catalogRegister(t, cat, bigs...)
	// And one through the agent endpoint: it lands on the dev node.
	if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "cache-1", Name: "cache", Port: 6379, Address: "192.0.2.50"}); err != nil {
		t.Fatalf("agent service register: %v", err)
	}

	// The view follows the catalog asynchronously: wait for the last
	// registrations to show, then every answer must be exact.
	waitDig(t, port, 10*time.Second, wantAddrs("192.0.2.1", "192.0.2.2"), "web.service.warren", "A")
	waitDig(t, port, 10*time.Second, wantAddrs("192.0.2.50"), "cache.service.warren", "A")
	waitDig(t, port, 10*time.Second, func(r digResult) error {
		if n := len(rdata(r.answer, "SRV")); n != bigInstances {
			return fmt.Errorf("%d SRV records, want %d", n, bigInstances)
		}
		return nil
	}, "+tcp", "big.service.warren", "SRV")

	t.Run("A", func(t *testing.T) {
		r := dig(t, port, "web.service.warren", "A")
		if !r.hasFlag("qr") || !r.hasFlag("aa") || r.hasFlag("tc") {
			t.Errorf("flags %v, want qr aa and no tc", r.flags)
		}
		if err := wantAddrs("192.0.2.1", "192.0.2.2")(r); err != nil {
			t.Errorf("%v\n%s", err, r.raw)
		}
		// Case-insensitive, and the .DC qualifier.
		r = dig(t, port, "WEB.Service.DC1.Warren", "A")
		if err := wantAddrs("192.0.2.1", "192.0.2.2")(r); err != nil {
			t.Errorf("%v\n%s", err, r.raw)
		}
	})

	t.Run("SRV", func(t *testing.T) {
		r := dig(t, port, "web.service.warren", "SRV")
		if r.status != "NOERROR" || len(r.answer) != 2 {
			t.Fatalf("want 2 SRV records:\n%s", r.raw)
		}
		want := map[string]string{"web-1.node.dc1.warren.": "8080", "web-2.node.dc1.warren.": "8081"}
		for _, f := range r.answer {
			// NAME TTL IN SRV PRIORITY WEIGHT PORT TARGET
			if len(f) != 8 || f[3] != "SRV" || want[f[7]] != f[6] {
				t.Errorf("unexpected SRV record %v", f)
			}
		}
		extra := map[string]string{}
		for _, f := range r.additional {
			if len(f) == 5 && f[3] == "A" {
				extra[f[0]] = f[4]
			}
		}
		if extra["web-1.node.dc1.warren."] != "192.0.2.1" || extra["web-2.node.dc1.warren."] != "192.0.2.2" {
			t.Errorf("additional A records %v, want the targets' addresses\n%s", extra, r.raw)
		}
	})

	t.Run("Tag", func(t *testing.T) {
		if err := wantAddrs("192.0.2.1")(dig(t, port, "v1.web.service.warren", "A")); err != nil {
			t.Error("v1.web:", err)
		}
		if err := wantAddrs("192.0.2.2")(dig(t, port, "v2.web.service.warren", "A")); err != nil {
			t.Error("v2.web:", err)
		}
		if r := dig(t, port, "v3.web.service.warren", "A"); r.status != "NXDOMAIN" {
			t.Errorf("v3.web: status %s, want NXDOMAIN", r.status)
		}
	})

	t.Run("RFC2782", func(t *testing.T) {
		r := dig(t, port, "_web._tcp.service.warren", "SRV")
		if got := rdata(r.answer, "SRV"); r.status != "NOERROR" || !slices.Equal(got, []string{"web-1.node.dc1.warren.", "web-2.node.dc1.warren."}) {
			t.Errorf("_web._tcp: targets %v\n%s", got, r.raw)
		}
		r = dig(t, port, "_web._primary.service.warren", "SRV")
		if got := rdata(r.answer, "SRV"); r.status != "NOERROR" || !slices.Equal(got, []string{"web-1.node.dc1.warren."}) {
			t.Errorf("_web._primary: targets %v\n%s", got, r.raw)
		}
		if got := rdata(r.additional, "A"); !slices.Equal(got, []string{"192.0.2.1"}) {
			t.Errorf("_web._primary: additional A %v\n%s", got, r.raw)
		}
	})

	t.Run("Node", func(t *testing.T) {
		r := dig(t, port, "web-1.node.warren", "A")
		if err := wantAddrs("192.0.2.1")(r); err != nil || !r.hasFlag("aa") {
			t.Errorf("node A: %v, flags %v\n%s", err, r.flags, r.raw)
		}
		r = dig(t, port, "web-1.node.warren", "TXT")
		got := rdata(r.answer, "TXT")
		if r.status != "NOERROR" || !slices.Equal(got, []string{`"env=e2e"`, `"rack=r1"`}) {
			t.Errorf("node TXT = %v, want env=e2e and rack=r1\n%s", got, r.raw)
		}
		if r := dig(t, port, "nosuch.node.warren", "A"); r.status != "NXDOMAIN" {
			t.Errorf("unknown node: status %s, want NXDOMAIN", r.status)
		}
	})

	t.Run("Truncation", func(t *testing.T) {
		// SRV: 40 records and their addresses cannot fit 512 bytes, and
		// the UDP answer limit does not apply to SRV: TC, then TCP has all.
		r := dig(t, port, "+ignore", "+noedns", "big.service.warren", "SRV")
		if !r.hasFlag("qr") || !r.hasFlag("aa") || !r.hasFlag("tc") {
			t.Errorf("UDP SRV without EDNS: flags %v, want qr aa tc\n%s", r.flags, r.raw)
		}
		if n := len(r.answer); n == 0 || n >= bigInstances {
			t.Errorf("UDP SRV: %d records, want a non-empty part of %d", n, bigInstances)
		}
		r = dig(t, port, "+tcp", "big.service.warren", "SRV")
		if r.hasFlag("tc") || len(rdata(r.answer, "SRV")) != bigInstances || len(rdata(r.additional, "A")) != bigInstances {
			t.Errorf("TCP SRV: flags %v, %d SRV, %d additional A; want all %d\n%s",
				r.flags, len(rdata(r.answer, "SRV")), len(rdata(r.additional, "A")), bigInstances, r.raw)
		}
		// A over UDP: the default udp_answer_limit (3) caps the answer
		// without TC (a choice, not a loss); TCP returns all 40.
		r = dig(t, port, "+ignore", "+noedns", "big.service.warren", "A")
		if len(r.answer) != 3 || r.hasFlag("tc") {
			t.Errorf("UDP A with udp_answer_limit 3: %d records, flags %v; want 3 and no tc", len(r.answer), r.flags)
		}
		if err := wantAddrs(bigAddrs...)(dig(t, port, "+tcp", "big.service.warren", "A")); err != nil {
			t.Errorf("TCP A: %v", err)
		}
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		r := dig(t, port, "nosuch.service.warren", "A")
		if r.status != "NXDOMAIN" || !r.hasFlag("aa") || len(r.answer) != 0 {
			t.Errorf("status %s flags %v, want authoritative NXDOMAIN\n%s", r.status, r.flags, r.raw)
		}
		if len(r.authority) != 1 || len(r.authority[0]) < 5 || r.authority[0][3] != "SOA" || r.authority[0][0] != "warren." {
			t.Errorf("authority %v, want the SOA of warren.\n%s", r.authority, r.raw)
		}
	})

	t.Run("NoRecursors", func(t *testing.T) {
		r := dig(t, port, "example.test.", "A")
		if r.status != "REFUSED" || len(r.answer) != 0 {
			t.Errorf("outside name without recursors: status %s, want REFUSED\n%s", r.status, r.raw)
		}
	})

	t.Run("CriticalDisappears", func(t *testing.T) {
		a := instanceReg("flap-1", "192.0.2.101", "flap", "flap-a", 7000, consulapi.HealthPassing)
		b := instanceReg("flap-2", "192.0.2.102", "flap", "flap-b", 7000, consulapi.HealthPassing)
		catalogRegister(t, cat, a, b)
		waitDig(t, port, 10*time.Second, wantAddrs("192.0.2.101", "192.0.2.102"), "flap.service.warren", "A")

		b.Check.Status = consulapi.HealthCritical
		b.Check.Output = "connection refused"
		start := time.Now()
		catalogRegister(t, cat, b)
		acked := time.Since(start)
		deadline := start.Add(time.Second)
		var last digResult
		for polls := 1; ; polls++ {
			r, err := tryDig(port, "flap.service.warren", "A")
			if err != nil {
				t.Fatal(err)
			}
			last = r
			if wantAddrs("192.0.2.101")(r) == nil {
				t.Logf("critical instance gone from DNS %s after the re-registration was sent (HTTP ack after %s, %d dig polls)",
					time.Since(start).Round(time.Millisecond), acked.Round(time.Millisecond), polls)
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("critical instance still answered %s after re-registration (deadline 1s):\n%s", time.Since(start).Round(time.Millisecond), last.raw)
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Passing again: it comes back.
		b.Check.Status = consulapi.HealthPassing
		catalogRegister(t, cat, b)
		waitDig(t, port, 5*time.Second, wantAddrs("192.0.2.101", "192.0.2.102"), "flap.service.warren", "A")
	})
}

// TestDNSRecursorAndUDPLimit runs a dev process with a recursor (a tiny
// miekg/dns server in the test), an alt domain, and an UDP answer limit
// large enough that A answers too big for UDP are truncated with TC.
func TestDNSRecursorAndUDPLimit(t *testing.T) {
	needDig(t)
	t.Parallel()

	// The upstream: a fixed A for example.test., NXDOMAIN for the rest.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.RecursionAvailable = true
		if len(r.Question) == 1 && strings.EqualFold(r.Question[0].Name, "example.test.") && r.Question[0].Qtype == dns.TypeA {
			m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(203, 0, 113, 7)}}
		} else {
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = upstream.ActivateAndServe() }()
	t.Cleanup(func() { _ = upstream.Shutdown() })

	cfgFile := filepath.Join(t.TempDir(), "dns.hcl")
	if err := os.WriteFile(cfgFile, []byte("dns_config {\n  udp_answer_limit = 64\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, port := startDevDNS(t, "-recursor", pc.LocalAddr().String(), "-alt-domain", "consul", "-config-file", cfgFile)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("Forward", func(t *testing.T) {
		r := dig(t, port, "+recurse", "example.test.", "A")
		if got := rdata(r.answer, "A"); r.status != "NOERROR" || !slices.Equal(got, []string{"203.0.113.7"}) || !r.hasFlag("ra") {
			t.Errorf("example.test. through warren: status %s, A %v, flags %v; want NOERROR 203.0.113.7 with ra\n%s", r.status, got, r.flags, r.raw)
		}
		if r := dig(t, port, "+recurse", "nosuch.test.", "A"); r.status != "NXDOMAIN" {
			t.Errorf("upstream NXDOMAIN relayed as %s\n%s", r.status, r.raw)
		}
	})

	bigs, bigAddrs := bigRegs()
	catalogRegister(t, cl.Catalog(), bigs...)
	waitDig(t, port, 10*time.Second, wantAddrs(bigAddrs...), "+tcp", "big.service.warren", "A")

	t.Run("TruncatedA", func(t *testing.T) {
		r := dig(t, port, "+ignore", "+noedns", "big.service.warren", "A")
		if !r.hasFlag("qr") || !r.hasFlag("aa") || !r.hasFlag("tc") {
			t.Errorf("UDP A of %d instances without EDNS: flags %v, want qr aa tc\n%s", bigInstances, r.flags, r.raw)
		}
		if n := len(r.answer); n == 0 || n >= bigInstances {
			t.Errorf("UDP A: %d records, want a non-empty part of %d", n, bigInstances)
		}
		r = dig(t, port, "+tcp", "big.service.warren", "A")
		if err := wantAddrs(bigAddrs...)(r); err != nil || r.hasFlag("tc") {
			t.Errorf("TCP A: %v, flags %v", err, r.flags)
		}
		// Without +ignore dig itself retries over TCP and gets them all.
		if err := wantAddrs(bigAddrs...)(dig(t, port, "+noedns", "big.service.warren", "A")); err != nil {
			t.Errorf("dig's TCP retry: %v", err)
		}
	})

	t.Run("AltDomain", func(t *testing.T) {
		if err := wantAddrs(bigAddrs...)(dig(t, port, "+tcp", "big.service.consul", "A")); err != nil {
			t.Errorf("alt domain: %v", err)
		}
		r := dig(t, port, "nosuch.service.consul", "A")
		if r.status != "NXDOMAIN" || len(r.authority) != 1 || len(r.authority[0]) < 5 || r.authority[0][0] != "consul." || r.authority[0][3] != "SOA" {
			t.Errorf("alt domain NXDOMAIN: status %s authority %v, want the SOA of consul.\n%s", r.status, r.authority, r.raw)
		}
	})
}
