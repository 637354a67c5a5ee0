// Package dns owns Warren's DNS interface: the server the agent runs on port
// 8600 (UDP and TCP) that answers Consul-style names (web.service.warren,
// v1.web.service.warren, _web._tcp.service.warren, node1.node.warren,
// web.connect.warren, reverse lookups) from the agent's local view of the
// catalog, and forwards other names to configured recursors.
//
// It depends only on the small View interface defined here and imports only
// catalog internally; the agent wires it. No query ever causes a request to
// a server: answers come from the View, built once per View generation and
// reused (see cache.go).
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for zero Config fields.
const (
	DefaultAddr            = "127.0.0.1:8600"
	DefaultDomain          = "warren."
	DefaultDatacenter      = "dc1"
	DefaultRecursorTimeout = 2 * time.Second
)

// maxUDPSize is the largest UDP answer we send, whatever the client's EDNS0
// buffer says (and what we advertise in our OPT record): larger datagrams
// fragment, and fragments get lost.
const maxUDPSize = 4096

// Config is the DNS server's configuration; zero fields take the defaults.
type Config struct {
	// Addr is the host:port both the UDP and the TCP listener bind to.
	Addr string
	// Domain is the zone we answer for ("warren." by default); AltDomain is
	// an optional second zone with the same names (e.g. "consul.").
	Domain, AltDomain string
	// Datacenter is the local datacenter, accepted as the .DC qualifier.
	// NodeName is this agent's node (for logs).
	Datacenter, NodeName string
	// Recursors get names outside our zones, tried in order ("host" or
	// "host:port"); each try is bounded by RecursorTimeout. With none,
	// such queries get REFUSED.
	Recursors       []string
	RecursorTimeout time.Duration
	// NodeTTL is the TTL of node records. ServiceTTL maps a service name to
	// the TTL of its records: an exact name, then the longest "prefix*",
	// then "*"; 0 when nothing matches.
	NodeTTL    time.Duration
	ServiceTTL map[string]time.Duration
	// SOAMinTTL is the SOA minimum, the TTL of negative answers (default 0).
	SOAMinTTL time.Duration
	// OnlyPassing excludes instances in warning from answers (critical ones
	// are always excluded).
	OnlyPassing bool
	// UDPAnswerLimit caps the A/AAAA records of a UDP answer (0: no cap).
	// Capped answers carry a random subset and no TC bit: the cap is a
	// choice, not a loss.
	UDPAnswerLimit int
	View           View
	Logger         *slog.Logger
	// Metrics gets the DNS metrics; nil records none.
	Metrics prometheus.Registerer
}

// Server is the DNS server. Create it with New, serve with Run.
type Server struct {
	cfg       Config
	view      View
	log       *slog.Logger
	zones     []string // lowercased FQDNs: Domain, then AltDomain
	dc        string   // lowercased datacenter
	recursors []string
	svcTTL    map[string]uint32
	svcPrefix []ttlPrefix // longest prefix first
	nodeTTL   uint32
	minTTL    uint32

	cache  cacheRef
	randN  func(n int) int // random int in [0,n); tests make it deterministic
	client func(network string) *dns.Client

	udp     net.PacketConn
	tcp     net.Listener
	runOnce sync.Once
	metrics *dnsMetrics
}

type ttlPrefix struct {
	prefix string
	ttl    uint32
}

// New validates cfg and binds the UDP and TCP listeners, so bind errors
// surface before Run. With port 0, TCP binds first and UDP takes the same
// port.
func New(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// newServer validates the config and builds a server without listeners.
func newServer(cfg Config) (*Server, error) {
	if cfg.View == nil {
		return nil, errors.New("dns: config: View is required")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Domain == "" {
		cfg.Domain = DefaultDomain
	}
	if cfg.Datacenter == "" {
		cfg.Datacenter = DefaultDatacenter
	}
	if cfg.RecursorTimeout <= 0 {
		cfg.RecursorTimeout = DefaultRecursorTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dm := newDNSMetrics(cfg.Metrics)
	if cfg.UDPAnswerLimit < 0 {
		return nil, fmt.Errorf("dns: config: udp_answer_limit %d is negative", cfg.UDPAnswerLimit)
	}
	s := &Server{metrics: dm,
		cfg:     cfg,
		view:    cfg.View,
		log:     cfg.Logger,
		dc:      strings.ToLower(cfg.Datacenter),
		svcTTL:  map[string]uint32{},
		nodeTTL: ttlSeconds(cfg.NodeTTL),
		minTTL:  ttlSeconds(cfg.SOAMinTTL),
		randN:   randIntN,
	}
	s.client = func(network string) *dns.Client {
		return &dns.Client{Net: network, Timeout: s.cfg.RecursorTimeout}
	}
	for i, d := range []string{cfg.Domain, cfg.AltDomain} {
		if d == "" {
			continue
		}
		z := dns.Fqdn(strings.ToLower(d))
		if _, ok := dns.IsDomainName(z); !ok || z == "." || strings.Contains(z, `\`) {
			return nil, fmt.Errorf("dns: config: %q is not a usable domain", d)
		}
		if i == 1 && z == s.zones[0] {
			return nil, fmt.Errorf("dns: config: alt_domain %q equals domain", d)
		}
		s.zones = append(s.zones, z)
	}
	for _, r := range cfg.Recursors {
		addr := r
		if _, _, err := net.SplitHostPort(r); err != nil {
			addr = net.JoinHostPort(strings.Trim(r, "[]"), "53")
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("dns: config: recursor %q: %w", r, err)
		}
		s.recursors = append(s.recursors, addr)
	}
	for name, d := range cfg.ServiceTTL {
		if d < 0 {
			return nil, fmt.Errorf("dns: config: service_ttl %q is negative", name)
		}
		name = strings.ToLower(name)
		if p, ok := strings.CutSuffix(name, "*"); ok {
			s.svcPrefix = append(s.svcPrefix, ttlPrefix{p, ttlSeconds(d)})
		} else {
			s.svcTTL[name] = ttlSeconds(d)
		}
	}
	// Longest prefix first; "*" (empty prefix) last.
	for i := 1; i < len(s.svcPrefix); i++ {
		for j := i; j > 0 && len(s.svcPrefix[j].prefix) > len(s.svcPrefix[j-1].prefix); j-- {
			s.svcPrefix[j], s.svcPrefix[j-1] = s.svcPrefix[j-1], s.svcPrefix[j]
		}
	}
	return s, nil
}

func ttlSeconds(d time.Duration) uint32 {
	sec := d / time.Second
	if sec <= 0 {
		return 0
	}
	if sec > 1<<31-1 {
		return 1<<31 - 1
	}
	return uint32(sec)
}

func (s *Server) serviceTTL(name string) uint32 {
	if t, ok := s.svcTTL[name]; ok {
		return t
	}
	for _, p := range s.svcPrefix {
		if strings.HasPrefix(name, p.prefix) {
			return p.ttl
		}
	}
	return 0
}

func (s *Server) listen() error {
	tcp, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("dns: listen tcp %s: %w", s.cfg.Addr, err)
	}
	udpAddr := tcp.Addr().String()
	udp, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		tcp.Close()
		return fmt.Errorf("dns: listen udp %s: %w", udpAddr, err)
	}
	s.tcp, s.udp = tcp, udp
	return nil
}

// Addr returns the bound address (the same port for UDP and TCP).
func (s *Server) Addr() string {
	if s.tcp == nil {
		return s.cfg.Addr
	}
	return s.tcp.Addr().String()
}

// Handler returns the query handler, for serving in memory (tests).
func (s *Server) Handler() dns.Handler { return s }

// Run serves UDP and TCP until ctx is done, then shuts both listeners down
// and returns nil; it returns an error if a listener fails first. Call it
// once.
func (s *Server) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("dns: Run called twice")
	}
	if s.udp == nil || s.tcp == nil {
		return errors.New("dns: server has no listeners (use New)")
	}
	servers := []*dns.Server{
		{PacketConn: s.udp, Handler: s, UDPSize: dns.DefaultMsgSize, MsgAcceptFunc: acceptMsg, MsgInvalidFunc: s.invalidMsg},
		{Listener: s.tcp, Handler: s, MsgAcceptFunc: acceptMsg, MsgInvalidFunc: s.invalidMsg},
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	s.log.Info("dns serving", "addr", s.Addr(), "domains", s.zones, "node", s.cfg.NodeName)
	var err error
	running := len(servers)
	select {
	case <-ctx.Done():
	case err = <-errc:
		running--
		err = fmt.Errorf("dns: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		// Errors here mean the server had stopped already or had not
		// started yet; closing the listeners below covers both.
		_ = srv.ShutdownContext(sctx)
	}
	// A server whose goroutine had not started serving when ctx ended
	// would start after Shutdown; with its listener closed it returns at
	// once. Run returns only when both have stopped.
	s.udp.Close()
	s.tcp.Close()
	for ; running > 0; running-- {
		<-errc
	}
	return err
}

func (s *Server) invalidMsg(m []byte, err error) {
	s.log.Debug("invalid dns message", "len", len(m), "err", err)
}

// acceptMsg rejects, before parsing the body, what no query of ours may be:
// responses (dropped: replying could make a loop), opcodes other than QUERY
// (NOTIMP), and anything but one question with empty answer and authority
// sections and at most OPT and TSIG in the additional section (FORMERR).
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr = 1 << 15
	if dh.Bits&qr != 0 {
		return dns.MsgIgnore
	}
	if opcode := int(dh.Bits>>11) & 0xF; opcode != dns.OpcodeQuery {
		return dns.MsgRejectNotImplemented
	}
	if dh.Qdcount != 1 || dh.Ancount != 0 || dh.Nscount != 0 || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}
