package dns

import (
	"cmp"
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"

	"github.com/warren-mesh/warren/catalog"
)

// query is a parsed name under one of our zones.
type query struct {
	kind    string // "service", "connect", "node", or "" for the zone apex
	name    string // service or node name
	tag     string // service tag filter
	invalid bool   // no such name can exist
	// ent marks an empty non-terminal: a name with no records of its own
	// but names below it (service.warren. above web.service.warren.,
	// _tcp.service.warren. above _web._tcp.service.warren.). It gets
	// NODATA, not NXDOMAIN: NXDOMAIN would tell a resolver that does
	// QNAME minimisation (RFC 7816, 8020) that nothing below exists.
	ent bool
}

const (
	kindService = "service"
	kindConnect = "connect"
	kindNode    = "node"
)

func isKind(l string) bool { return l == kindService || l == kindConnect || l == kindNode }

// parseName parses a lowercased name under zone:
//
//	NAME.service[.DC]   TAG.NAME.service[.DC]   _NAME._tcp.service[.DC]
//	_NAME._TAG.service[.DC]   NODE.node[.DC]   NAME.connect[.DC]
//
// A DC other than ours makes the name unknown: the View holds only the
// local datacenter, and no query may ask a server.
func (s *Server) parseName(name, zone string) query {
	prefix := strings.TrimSuffix(strings.TrimSuffix(name, zone), ".")
	if prefix == "" {
		return query{}
	}
	if strings.ContainsRune(prefix, '\\') {
		return query{invalid: true} // escaped bytes: never one of our labels
	}
	labels := strings.Split(prefix, ".")
	n := len(labels)
	if (n == 1 && (isKind(labels[0]) || labels[0] == s.dc)) || (n == 2 && isKind(labels[0]) && labels[1] == s.dc) {
		return query{ent: true}
	}
	var kind string
	var rest []string
	switch {
	case isKind(labels[n-1]):
		kind, rest = labels[n-1], labels[:n-1]
	case n >= 2 && isKind(labels[n-2]):
		if labels[n-1] != s.dc {
			return query{invalid: true}
		}
		kind, rest = labels[n-2], labels[:n-2]
	default:
		return query{invalid: true}
	}
	q := query{kind: kind}
	if kind == kindService && len(rest) == 1 && strings.HasPrefix(rest[0], "_") {
		return query{ent: true} // _TAG.service or _tcp.service: parent of RFC 2782 names
	}
	switch {
	case len(rest) == 1:
		q.name = rest[0]
	case len(rest) == 2 && kind == kindService:
		a, b := rest[0], rest[1]
		if strings.HasPrefix(a, "_") && strings.HasPrefix(b, "_") { // RFC 2782
			q.name, q.tag = a[1:], b[1:]
			if q.tag == "tcp" {
				q.tag = ""
			}
		} else {
			q.tag, q.name = a, b
		}
	default:
		return query{invalid: true}
	}
	if q.name == "" {
		return query{invalid: true}
	}
	return q
}

// build makes the class-independent answer for (name, qtype).
func (s *Server) build(c *cache, name string, qtype uint16, zone string) *entry {
	if zone == "" {
		return s.buildReverse(c, name, qtype)
	}
	q := s.parseName(name, zone)
	switch {
	case q.invalid:
		return s.nxdomain(zone, c.gen)
	case q.ent:
		return s.nodata(zone, c.gen)
	case q.kind == "":
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			return &entry{authoritative: true, answers: []dns.RR{s.soa(zone, c.gen, 0)}}
		}
		return s.nodata(zone, c.gen)
	case q.kind == kindNode:
		return s.buildNode(q, name, qtype, zone, c.gen)
	default:
		return s.buildService(q, name, qtype, zone, c.gen)
	}
}

// soa is the zone's SOA record. Its serial is the view generation, so it
// moves whenever an answer may have.
func (s *Server) soa(zone string, gen uint64, ttl uint32) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: ttl},
		Ns:      "ns." + zone,
		Mbox:    "hostmaster." + zone,
		Serial:  uint32(gen),
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.minTTL,
	}
}

// nxdomain and nodata are the negative answers (RFC 2308): the SOA in the
// authority section, its TTL the SOA minimum.
func (s *Server) nxdomain(zone string, gen uint64) *entry {
	return &entry{rcode: dns.RcodeNameError, authoritative: true, ns: []dns.RR{s.soa(zone, gen, s.minTTL)}}
}

func (s *Server) nodata(zone string, gen uint64) *entry {
	return &entry{authoritative: true, ns: []dns.RR{s.soa(zone, gen, s.minTTL)}}
}

// parseAddr parses an IP address; ok is false for a host name (or nothing).
func parseAddr(a string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(a)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip.Unmap(), true
}

func addrRR(owner string, ip netip.Addr, ttl uint32) dns.RR {
	if ip.Is4() {
		return &dns.A{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: ttl}, A: ip.AsSlice()}
	}
	return &dns.AAAA{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: ttl}, AAAA: ip.AsSlice()}
}

func cnameRR(owner, target string, ttl uint32) dns.RR {
	return &dns.CNAME{Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: ttl}, Target: dns.Fqdn(target)}
}

// wantsAddr reports whether an address record of ip answers qtype.
func wantsAddr(qtype uint16, ip netip.Addr) bool {
	switch qtype {
	case dns.TypeANY:
		return true
	case dns.TypeA:
		return ip.Is4()
	case dns.TypeAAAA:
		return ip.Is6()
	}
	return false
}

func (s *Server) nodeName(node, zone string) string {
	return strings.ToLower(node) + ".node." + s.dc + "." + zone
}

// Answers are owned by the name asked (lowercased), whichever of its forms
// was used; SRV targets and PTRs use the canonical NODE.node.DC.DOMAIN.
func (s *Server) buildNode(q query, owner string, qtype uint16, zone string, gen uint64) *entry {
	n, ok := s.view.Node(q.name)
	if !ok || n == nil {
		return s.nxdomain(zone, gen)
	}
	e := &entry{authoritative: true}
	if ip, ok := parseAddr(n.Address); ok {
		if wantsAddr(qtype, ip) {
			e.answers = append(e.answers, addrRR(owner, ip, s.nodeTTL))
			e.addrRecords = true
		}
	} else if n.Address != "" && qtype != dns.TypeTXT {
		// A name with a CNAME has no other data (RFC 1034 3.6.2).
		e.answers = append(e.answers, cnameRR(owner, n.Address, s.nodeTTL))
		return e
	}
	if qtype == dns.TypeTXT || qtype == dns.TypeANY {
		e.answers = append(e.answers, metaTXT(owner, n.Meta, s.nodeTTL)...)
	}
	if len(e.answers) == 0 {
		return s.nodata(zone, gen)
	}
	return e
}

// metaTXT makes one TXT record "key=value" per meta pair, sorted by key.
func metaTXT(owner string, meta map[string]string, ttl uint32) []dns.RR {
	keys := make([]string, 0, len(meta))
	for k := range meta {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]dns.RR, 0, len(keys))
	for _, k := range keys {
		out = append(out, &dns.TXT{
			Hdr: dns.RR_Header{Name: owner, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: ttl},
			Txt: txtStrings(k + "=" + meta[k]),
		})
	}
	return out
}

// txtStrings splits s into character-strings of at most 255 bytes, escaped
// the way miekg/dns parses TXT data when packing.
func txtStrings(s string) []string {
	var out []string
	for len(s) > 0 || out == nil {
		chunk := s[:min(len(s), 255)]
		s = s[len(chunk):]
		out = append(out, strings.ReplaceAll(chunk, `\`, `\\`))
	}
	return out
}

// healthy filters instances: never critical, not warning under OnlyPassing.
func (s *Server) healthy(csn catalog.CheckServiceNode) (string, bool) {
	st := catalog.AggregatedStatus(csn.Checks)
	switch {
	case st == catalog.HealthCritical:
		return st, false
	case st == catalog.HealthWarning && s.cfg.OnlyPassing:
		return st, false
	}
	return st, true
}

func hasTag(tags []string, tag string) bool {
	for _, t := range tags {
		if strings.EqualFold(t, tag) {
			return true
		}
	}
	return false
}

type instance struct {
	node   string // lowercased node name
	addr   string
	ip     netip.Addr
	isIP   bool
	port   int
	weight int
}

func (s *Server) buildService(q query, owner string, qtype uint16, zone string, gen uint64) *entry {
	svc := q.name
	if q.kind == kindConnect {
		svc = q.name + catalog.SidecarSuffix
	}
	var insts []instance
	for _, csn := range s.view.ServiceInstances(svc) {
		if csn.Service == nil || csn.Node == nil {
			continue
		}
		if q.kind == kindConnect && csn.Service.Kind != "connect-proxy" {
			continue
		}
		if q.tag != "" && !hasTag(csn.Service.Tags, q.tag) {
			continue
		}
		status, ok := s.healthy(csn)
		if !ok {
			continue
		}
		in := instance{node: strings.ToLower(csn.Node.Name), addr: csn.Service.Address, port: csn.Service.Port}
		if in.addr == "" {
			in.addr = csn.Node.Address
		}
		in.ip, in.isIP = parseAddr(in.addr)
		in.weight = csn.Service.Weights.Passing
		if status == catalog.HealthWarning {
			in.weight = csn.Service.Weights.Warning
		}
		if csn.Service.Weights == (catalog.Weights{}) {
			in.weight = 1
		}
		insts = append(insts, in)
	}
	if len(insts) == 0 {
		return s.nxdomain(zone, gen)
	}
	// A stable base order, so that cached answers do not depend on the
	// View's order; answers are shuffled per query anyway.
	slices.SortFunc(insts, func(a, b instance) int {
		return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.addr, b.addr), cmp.Compare(a.port, b.port))
	})
	ttl := s.serviceTTL(q.name)
	e := &entry{authoritative: true, shuffle: true}
	anyIP := slices.ContainsFunc(insts, func(in instance) bool { return in.isIP })

	switch qtype {
	case dns.TypeA, dns.TypeAAAA, dns.TypeANY:
		if !anyIP {
			// Every address is a host name: the name is an alias of one of
			// them, picked per query.
			seen := map[string]bool{}
			for _, in := range insts {
				if h := strings.ToLower(dns.Fqdn(in.addr)); !seen[h] {
					seen[h] = true
					e.answers = append(e.answers, cnameRR(owner, h, ttl))
				}
			}
			e.maxAnswers = 1
			return e
		}
		seen := map[netip.Addr]bool{}
		for _, in := range insts {
			if in.isIP && wantsAddr(qtype, in.ip) && !seen[in.ip] {
				seen[in.ip] = true
				e.answers = append(e.answers, addrRR(owner, in.ip, ttl))
			}
		}
		e.addrRecords = true
	case dns.TypeSRV:
		shared := map[string]dns.RR{} // one additional record per (target, address)
		for _, in := range insts {
			srv := &dns.SRV{
				Hdr:      dns.RR_Header{Name: owner, Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: ttl},
				Priority: 1,
				Weight:   uint16(min(max(in.weight, 0), 65535)),
				Port:     uint16(in.port),
			}
			var extra []dns.RR
			if in.isIP {
				srv.Target = s.nodeName(in.node, zone)
				key := srv.Target + " " + in.ip.String()
				rr, dup := shared[key]
				if !dup {
					rr = addrRR(srv.Target, in.ip, ttl)
					shared[key] = rr
				}
				e.dupExtras = e.dupExtras || dup
				extra = []dns.RR{rr}
			} else {
				srv.Target = strings.ToLower(dns.Fqdn(in.addr))
			}
			e.answers = append(e.answers, srv)
			e.extras = append(e.extras, extra)
			e.extraCount += len(extra)
		}
	}
	if len(e.answers) == 0 {
		return s.nodata(zone, gen)
	}
	return e
}
