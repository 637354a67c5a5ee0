package dns

import (
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/miekg/dns"
)

func randIntN(n int) int { return rand.IntN(n) }

// Size classes key the cache together with name and type: an answer is
// prebuilt for the largest response a class allows. A client's EDNS0 size
// is rounded down to a class, so a handful of classes cover every client.
const (
	classTCP uint8 = iota
	classUDP512
	classUDP1232
	classUDP1472
	classUDP2048
	classUDP4096
	numClasses
)

var classSize = [numClasses]int{classTCP: dns.MaxMsgSize, classUDP512: 512, classUDP1232: 1232, classUDP1472: 1472, classUDP2048: 2048, classUDP4096: maxUDPSize}

func udpClass(size int) uint8 {
	switch {
	case size >= 4096:
		return classUDP4096
	case size >= 2048:
		return classUDP2048
	case size >= 1472:
		return classUDP1472
	case size >= 1232:
		return classUDP1232
	}
	return classUDP512
}

// ServeDNS answers one query. It checks the query itself (the UDP and TCP
// servers already reject most malformed messages, but the handler may be
// called directly), then answers from the cache, builds the answer, or
// forwards the query.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if s.metrics == nil || !s.metrics.sample() {
		s.serveDNS(w, r)
		return
	}
	start := time.Now()
	s.serveDNS(w, r)
	s.metrics.took(time.Since(start))
}

func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	if r.Response {
		return // never answer a response
	}
	// EDNS0: at most one OPT, owned by the root, version 0 (RFC 6891).
	var opt *dns.OPT
	for _, rr := range r.Extra {
		if o, ok := rr.(*dns.OPT); ok {
			if opt != nil || o.Hdr.Name != "." {
				s.replyRcode(w, r, dns.RcodeFormatError, nil)
				return
			}
			opt = o
		}
	}
	if r.Opcode != dns.OpcodeQuery {
		s.replyRcode(w, r, dns.RcodeNotImplemented, opt)
		return
	}
	if len(r.Question) != 1 || len(r.Answer) != 0 || len(r.Ns) != 0 {
		s.replyRcode(w, r, dns.RcodeFormatError, opt)
		return
	}
	if opt != nil && opt.Version() != 0 {
		s.replyRcode(w, r, dns.RcodeBadVers, opt)
		return
	}
	q := r.Question[0]
	if !dns.IsFqdn(q.Name) || len(q.Name) > 255 {
		s.replyRcode(w, r, dns.RcodeFormatError, opt)
		return
	}
	switch q.Qclass {
	case dns.ClassINET, dns.ClassANY:
	default:
		// We hold no data in other classes (CHAOS, HESIOD, ...).
		s.replyRcode(w, r, dns.RcodeRefused, opt)
		return
	}
	switch q.Qtype {
	case dns.TypeOPT, dns.TypeTSIG, dns.TypeTKEY:
		s.replyRcode(w, r, dns.RcodeFormatError, opt) // meta types are not questions
		return
	case dns.TypeAXFR, dns.TypeIXFR:
		s.replyRcode(w, r, dns.RcodeRefused, opt) // no zone transfers
		return
	}

	tcp := isTCP(w)
	class := classTCP
	if !tcp {
		size := dns.MinMsgSize
		if opt != nil {
			size = int(opt.UDPSize())
		}
		class = udpClass(size)
	}
	name := strings.ToLower(q.Name) // allocates only when q.Name has capitals
	zone := s.zoneOf(name)
	if zone == "" && !isReverse(name) {
		s.forward(w, r, tcp, classSize[class])
		return
	}
	e := s.lookup(name, q.Qtype, class, zone)
	if e.forward {
		s.forward(w, r, tcp, classSize[class])
		return
	}
	s.respond(w, r, e, tcp, opt, classSize[class])
}

func isTCP(w dns.ResponseWriter) bool {
	_, ok := w.RemoteAddr().(*net.TCPAddr)
	return ok
}

// zoneOf returns which of our zones holds name, or "".
func (s *Server) zoneOf(name string) string {
	for _, z := range s.zones {
		if name == z || (len(name) > len(z) && name[len(name)-len(z)-1] == '.' && strings.HasSuffix(name, z)) {
			return z
		}
	}
	return ""
}

// newOPT makes the OPT record of a response. It is made per response:
// packing a message writes the extended rcode into its OPT.
func newOPT(req *dns.OPT) *dns.OPT {
	o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
	o.SetUDPSize(maxUDPSize)
	if req.Do() {
		o.SetDo() // RFC 3225: copy the DO bit
	}
	return o
}

func (s *Server) replyRcode(w dns.ResponseWriter, r *dns.Msg, rcode int, opt *dns.OPT) {
	m := new(dns.Msg)
	m.Id = r.Id
	m.Response = true
	m.Opcode = r.Opcode
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.RecursionAvailable = len(s.recursors) > 0
	m.Rcode = rcode
	if len(r.Question) == 1 {
		m.Question = r.Question
	}
	if opt != nil {
		m.Extra = []dns.RR{newOPT(opt)}
	}
	s.write(w, m)
}

func (s *Server) write(w dns.ResponseWriter, m *dns.Msg) {
	if s.metrics != nil {
		one := len(m.Question) == 1
		var qtype uint16
		if one {
			qtype = m.Question[0].Qtype
		}
		s.metrics.answered(one, qtype, m.Rcode, m.Truncated)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns write", "err", err, "remote", w.RemoteAddr())
	}
}

// respond writes a prebuilt answer: a shuffled copy of its records, cut to
// the UDP answer limit and, when the class says it may not fit, to the
// client's size with the TC bit set.
func (s *Server) respond(w dns.ResponseWriter, r *dns.Msg, e *entry, tcp bool, opt *dns.OPT, size int) {
	m := &dns.Msg{}
	m.Id = r.Id
	m.Response = true
	m.Opcode = dns.OpcodeQuery
	m.Authoritative = e.authoritative
	m.RecursionDesired = r.RecursionDesired
	m.CheckingDisabled = r.CheckingDisabled
	m.RecursionAvailable = len(s.recursors) > 0
	m.Rcode = e.rcode
	m.Question = r.Question // shared, read-only
	m.Ns = e.ns             // shared, read-only
	m.Compress = e.compress

	n := len(e.answers)
	limit := n
	if e.maxAnswers > 0 && limit > e.maxAnswers {
		limit = e.maxAnswers
	}
	if !tcp && e.addrRecords && s.cfg.UDPAnswerLimit > 0 && limit > s.cfg.UDPAnswerLimit {
		limit = s.cfg.UDPAnswerLimit
	}
	var respOPT *dns.OPT
	if opt != nil {
		respOPT = newOPT(opt)
	}

	var extras [][]dns.RR // per answer, in answer order; nil without extras
	switch {
	case n == 0:
	case !e.shuffle && limit == n && e.extras == nil:
		m.Answer = e.answers[:n:n] // shared: nothing appends to it
	case e.extras == nil:
		ans := make([]dns.RR, n)
		copy(ans, e.answers)
		for i := 0; i < limit; i++ { // partial Fisher-Yates: first limit are a random sample
			j := i
			if e.shuffle {
				j = i + s.randN(n-i)
			}
			ans[i], ans[j] = ans[j], ans[i]
		}
		m.Answer = ans[:limit]
	default:
		var buf [64]int
		idx := buf[:0]
		if n > len(buf) {
			idx = make([]int, 0, n)
		}
		for i := range n {
			idx = append(idx, i)
		}
		for i := 0; i < limit && e.shuffle; i++ {
			j := i + s.randN(n-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
		idx = idx[:limit]
		ans := make([]dns.RR, limit)
		extras = make([][]dns.RR, limit)
		for i, k := range idx {
			ans[i] = e.answers[k]
			extras[i] = e.extras[k]
		}
		m.Answer = ans
	}
	m.Extra = flatten(extras, len(m.Answer), e.extraCount, e.dupExtras, respOPT)
	if !e.fits {
		s.truncate(m, extras, respOPT, size)
	}
	s.write(w, m)
}

// flatten makes the additional section of the first k answers: their extra
// records (once each) and the OPT record last.
func flatten(extras [][]dns.RR, k, hint int, dedupe bool, opt *dns.OPT) []dns.RR {
	if extras == nil && opt == nil {
		return nil
	}
	if extras == nil {
		return []dns.RR{opt}
	}
	out := make([]dns.RR, 0, min(hint, 4*k)+1)
	var seen map[dns.RR]struct{}
	if dedupe {
		seen = make(map[dns.RR]struct{}, k)
	}
	for _, ex := range extras[:k] {
		for _, rr := range ex {
			if seen != nil {
				if _, dup := seen[rr]; dup {
					continue
				}
				seen[rr] = struct{}{}
			}
			out = append(out, rr)
		}
	}
	if opt != nil {
		out = append(out, opt)
	}
	return out
}

// truncate cuts m to size: the largest number of leading answers (each
// with its extra records) that fits, found by binary search on the packed
// length, and sets TC when any answer had to go. It runs only for answers
// whose prebuilt form does not fit the client's class.
func (s *Server) truncate(m *dns.Msg, extras [][]dns.RR, opt *dns.OPT, size int) {
	m.Compress = true
	all := m.Answer
	n := len(all)
	fitsWith := func(k int) bool {
		m.Answer = all[:k]
		if extras != nil {
			m.Extra = flatten(extras, k, 0, true, opt)
		}
		return m.Len() <= size
	}
	if fitsWith(n) {
		return
	}
	lo, hi := 0, n // fitsWith(lo) assumed (an empty answer always fits), !fitsWith(hi)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fitsWith(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	fitsWith(lo)
	m.Truncated = true
	if m.Len() > size { // only the SOA and question are left; drop the rest too
		m.Ns = nil
	}
}
