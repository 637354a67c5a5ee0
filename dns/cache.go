package dns

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/miekg/dns"
)

// Answers are built once per View generation and reused. The cache holds
// one map per generation: when the View's generation moves, the next query
// installs an empty cache and the old one becomes garbage, so nothing is
// ever stale by more than the query that notices the change.
//
// A key is (lowercased name, type, size class). The class-independent part
// of an answer (its records) is built once under classAny and shared by the
// per-class entries, which add only whether the whole answer fits.

// Bounds on one generation's cache: every name under our zones can be
// asked, so an attacker could otherwise grow it without end. Past the
// bounds, answers are built per query (slower, still correct).
const (
	maxCacheEntries    = 1 << 16
	maxNegativeEntries = 1 << 12
)

const classAny = numClasses // key of the class-independent records

type cacheKey struct {
	name  string
	qtype uint16
	class uint8
}

type cache struct {
	gen     uint64
	mu      sync.RWMutex
	entries map[cacheKey]*entry
	neg     int

	revOnce sync.Once
	rev     map[netip.Addr][]string // address -> PTR targets
}

type cacheRef struct{ p atomic.Pointer[cache] }

// entry is a prebuilt answer.
type entry struct {
	rcode         int
	authoritative bool
	forward       bool // not ours after all: recurse or refuse

	// answers are the answer records; extras[i] (when extras is non-nil)
	// are the additional records that go with answers[i] and are kept or
	// dropped with it.
	answers     []dns.RR
	extras      [][]dns.RR
	extraCount  int  // total of len(extras[i])
	dupExtras   bool // the same extra record serves several answers
	ns          []dns.RR
	shuffle     bool
	maxAnswers  int  // 0: all; 1 for a CNAME picked among several
	addrRecords bool // A/AAAA answers: the UDP answer limit applies

	// Per size class: whether the whole answer fits, and whether it needs
	// compression to.
	fits     bool
	compress bool
}

// current returns the cache of the View's current generation.
func (s *Server) current() *cache {
	g := s.view.Generation()
	c := s.cache.p.Load()
	if c != nil && c.gen == g {
		return c
	}
	nc := &cache{gen: g, entries: make(map[cacheKey]*entry)}
	if s.cache.p.CompareAndSwap(c, nc) {
		return nc
	}
	if c = s.cache.p.Load(); c != nil && c.gen == g {
		return c
	}
	return nc // racing with another change; use ours unshared
}

func (c *cache) get(k cacheKey) *entry {
	c.mu.RLock()
	e := c.entries[k]
	c.mu.RUnlock()
	return e
}

func (c *cache) put(k cacheKey, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		return
	}
	if e.rcode == dns.RcodeNameError || e.forward {
		if c.neg >= maxNegativeEntries {
			return
		}
		c.neg++
	}
	c.entries[k] = e
}

// lookup returns the answer for (name, qtype) sized for class, building and
// caching it when the generation has none yet.
func (s *Server) lookup(name string, qtype uint16, class uint8, zone string) *entry {
	c := s.current()
	k := cacheKey{name, qtype, class}
	if e := c.get(k); e != nil {
		return e
	}
	bk := cacheKey{name, qtype, classAny}
	base := c.get(bk)
	if base == nil {
		base = s.build(c, name, qtype, zone)
		c.put(bk, base)
	}
	e := new(entry)
	*e = *base
	e.fits, e.compress = fit(e, name, qtype, classSize[class], class != classTCP)
	c.put(k, e)
	return e
}

// fitMargin is the slack kept when a compressed answer is judged to fit:
// answers are shuffled per query, and the compressed length moves a little
// with the order of the names.
const fitMargin = 64

// fit reports whether the whole answer fits size, and whether it needs
// compression to. Answers that do not fit are cut per query (truncate).
func fit(e *entry, name string, qtype uint16, size int, withOPT bool) (fits, compress bool) {
	m := &dns.Msg{Question: []dns.Question{{Name: name, Qtype: qtype, Qclass: dns.ClassINET}}}
	m.Answer = e.answers
	m.Ns = e.ns
	for _, ex := range e.extras {
		m.Extra = append(m.Extra, ex...)
	}
	if withOPT {
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		m.Extra = append(m.Extra, o)
	}
	if m.Len() <= size {
		return true, false
	}
	m.Compress = true
	if m.Len()+fitMargin <= size {
		return true, true
	}
	return false, true
}
