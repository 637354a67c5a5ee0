package dns

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/miekg/dns"
)

const (
	arpaV4 = ".in-addr.arpa."
	arpaV6 = ".ip6.arpa."
)

func isReverse(name string) bool {
	return strings.HasSuffix(name, arpaV4) || strings.HasSuffix(name, arpaV6)
}

// reverseAddr parses a full reverse name (four octets under in-addr.arpa,
// 32 nibbles under ip6.arpa); partial names are not addresses.
func reverseAddr(name string) (netip.Addr, bool) {
	if p, ok := strings.CutSuffix(name, arpaV4); ok {
		l := strings.Split(p, ".")
		if len(l) != 4 {
			return netip.Addr{}, false
		}
		slices.Reverse(l)
		ip, err := netip.ParseAddr(strings.Join(l, "."))
		if err != nil || !ip.Is4() {
			return netip.Addr{}, false
		}
		return ip, true
	}
	if p, ok := strings.CutSuffix(name, arpaV6); ok {
		l := strings.Split(p, ".")
		if len(l) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, nib := range l {
			if len(nib) != 1 {
				return netip.Addr{}, false
			}
			v := strings.IndexByte("0123456789abcdef", nib[0])
			if v < 0 {
				return netip.Addr{}, false
			}
			pos := 31 - i // the first label is the last nibble
			if pos%2 == 0 {
				b[pos/2] |= byte(v) << 4
			} else {
				b[pos/2] |= byte(v)
			}
		}
		return netip.AddrFrom16(b).Unmap(), true
	}
	return netip.Addr{}, false
}

// reverseIndex maps every node address to NODE.node.DC.DOMAIN and every
// service address that differs from its node's to NAME.service.DOMAIN. It is
// built at most once per generation, on the first reverse query.
func (s *Server) reverseIndex(c *cache) map[netip.Addr][]string {
	c.revOnce.Do(func() {
		zone := s.zones[0]
		idx := map[netip.Addr][]string{}
		add := func(a, target string) {
			ip, ok := parseAddr(a)
			if !ok || slices.Contains(idx[ip], target) {
				return
			}
			idx[ip] = append(idx[ip], target)
		}
		for _, n := range s.view.Nodes() {
			if n != nil {
				add(n.Address, s.nodeName(n.Name, zone))
			}
		}
		for _, svc := range s.view.ServiceNames() {
			for _, csn := range s.view.ServiceInstances(svc) {
				if csn.Service == nil || csn.Service.Address == "" ||
					(csn.Node != nil && csn.Service.Address == csn.Node.Address) {
					continue
				}
				add(csn.Service.Address, strings.ToLower(csn.Service.Name)+".service."+zone)
			}
		}
		for _, t := range idx {
			slices.Sort(t)
		}
		c.rev = idx
	})
	return c.rev
}

// buildReverse answers PTR queries for addresses we know. Any other name
// under the arpa zones is not ours: it is forwarded (or refused).
func (s *Server) buildReverse(c *cache, name string, qtype uint16) *entry {
	ip, ok := reverseAddr(name)
	if !ok {
		return &entry{forward: true}
	}
	targets := s.reverseIndex(c)[ip]
	if len(targets) == 0 {
		return &entry{forward: true}
	}
	e := &entry{authoritative: true}
	if qtype != dns.TypePTR && qtype != dns.TypeANY {
		return e // the name exists; we know no other type of it
	}
	for _, t := range targets {
		ttl := s.nodeTTL
		if strings.Contains(t, ".service.") {
			ttl = s.serviceTTL(t[:strings.IndexByte(t, '.')])
		}
		e.answers = append(e.answers, &dns.PTR{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl},
			Ptr: t,
		})
	}
	return e
}
