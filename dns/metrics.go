package dns

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/internal/metrics"
)

// The DNS metrics are recorded on every query, so they are kept off the
// shared paths that prometheus' own vectors and histograms take: a
// CounterVec hashes its label values and takes a read lock per call, and a
// Histogram's atomics sit on one cache line that both cores fight over at
// 70k queries a second (measured by BenchmarkQueryMetrics: 190-490 ns a
// query with two goroutines, against ~20 ns for this). Instead each query
// adds to one of a few shards, picked at random, in a fixed table indexed
// by (qtype, rcode) and by latency bucket; a scrape sums the shards. The
// exported metrics are the same series a CounterVec and a Histogram would
// give.
//
// Reading the clock twice costs more than all the counting (~100 ns a
// read on the shared benchmark machine), so the latency histogram is
// sampled: one query in latencySample is timed, and counts as
// latencySample observations, which keeps _count and _sum unbiased
// estimates and the quantiles those of the sampled distribution.

// qtypes are the query types counted by name; index 0 is "none" (no
// single question) and the last is "other", so the label stays bounded.
var qtypes = [...]uint16{
	dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS, dns.TypeANY, dns.TypeMX,
}

const (
	qtypeNone  = 0
	qtypeOther = len(qtypes) + 1
	nQtypes    = len(qtypes) + 2
	// nRcodes counts rcodes 0..23 (NOERROR .. BADCOOKIE) by their names;
	// any other, and any of those without a name, is "other".
	nRcodes     = dns.RcodeBadCookie + 2
	rcodeOther  = nRcodes - 1
	nShards     = 8 // a power of two
	nLatBuckets = 17
	// latencySample: one query in this many is timed (a power of two).
	latencySample = 16
)

// qtypeIndex returns the table index of a query type.
func qtypeIndex(t uint16) int {
	switch t {
	case dns.TypeA:
		return 1
	case dns.TypeAAAA:
		return 2
	case dns.TypeSRV:
		return 3
	case dns.TypeTXT:
		return 4
	case dns.TypePTR:
		return 5
	case dns.TypeCNAME:
		return 6
	case dns.TypeSOA:
		return 7
	case dns.TypeNS:
		return 8
	case dns.TypeANY:
		return 9
	case dns.TypeMX:
		return 10
	}
	return qtypeOther
}

func qtypeName(i int) string {
	switch i {
	case qtypeNone:
		return "none"
	case qtypeOther:
		return "other"
	}
	return dns.TypeToString[qtypes[i-1]]
}

func rcodeName(i int) string {
	if s, ok := dns.RcodeToString[i]; ok && i != rcodeOther {
		return s
	}
	return "other"
}

// shard is one set of counters, padded so that two shards never share a
// cache line.
type shard struct {
	queries   [nQtypes][nRcodes]atomic.Uint64
	truncated atomic.Uint64
	buckets   [nLatBuckets + 1]atomic.Uint64 // the last is +Inf
	sumNanos  atomic.Uint64
	_         [64]byte
}

type dnsMetrics struct {
	shards    [nShards]shard
	boundsNs  [nLatBuckets]int64 // upper bounds of the latency buckets
	queries   *prometheus.Desc
	truncated *prometheus.Desc
	latency   *prometheus.Desc
}

// newDNSMetrics returns nil when reg is nil: the server then records
// nothing at all.
func newDNSMetrics(reg prometheus.Registerer) *dnsMetrics {
	if reg == nil {
		return nil
	}
	if len(metrics.LatencyBuckets) != nLatBuckets {
		panic("dns: nLatBuckets does not match metrics.LatencyBuckets")
	}
	m := &dnsMetrics{
		queries: prometheus.NewDesc("warren_dns_queries_total",
			"DNS queries answered, by query type and response code.", []string{"qtype", "rcode"}, nil),
		truncated: prometheus.NewDesc("warren_dns_truncated_total",
			"UDP answers sent with the TC bit because records did not fit.", nil, nil),
		latency: prometheus.NewDesc("warren_dns_query_duration_seconds",
			"Time to answer a DNS query (recursion included); one query in 16 is timed and counts for 16.", nil, nil),
	}
	for i, b := range metrics.LatencyBuckets {
		m.boundsNs[i] = int64(math.Round(b * 1e9))
	}
	reg.MustRegister(m)
	return m
}

// answered records one answer: its question's type (hasQ false when the
// message had no single question), its rcode and whether it was truncated.
func (m *dnsMetrics) answered(hasQ bool, qtype uint16, rcode int, truncated bool) {
	qi := qtypeNone
	if hasQ {
		qi = qtypeIndex(qtype)
	}
	ri := rcode
	if ri < 0 || ri >= rcodeOther {
		ri = rcodeOther
	}
	sh := &m.shards[rand.Uint32()&(nShards-1)]
	sh.queries[qi][ri].Add(1)
	if truncated {
		sh.truncated.Add(1)
	}
}

// sample reports whether to time this query.
func (m *dnsMetrics) sample() bool {
	return rand.Uint32()&(latencySample-1) == 0
}

// took records the time one sampled query took, as latencySample
// observations.
func (m *dnsMetrics) took(d time.Duration) {
	ns := int64(d)
	i := 0
	for i < nLatBuckets && ns > m.boundsNs[i] {
		i++
	}
	sh := &m.shards[rand.Uint32()&(nShards-1)]
	sh.buckets[i].Add(latencySample)
	if ns > 0 {
		sh.sumNanos.Add(latencySample * uint64(ns))
	}
}

// Describe implements prometheus.Collector.
func (m *dnsMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.queries
	ch <- m.truncated
	ch <- m.latency
}

// Collect implements prometheus.Collector: the shards summed. A
// (qtype, rcode) pair is exported once it has been seen, as a CounterVec
// would.
func (m *dnsMetrics) Collect(ch chan<- prometheus.Metric) {
	var queries [nQtypes][nRcodes]uint64
	var truncated, sumNanos uint64
	var buckets [nLatBuckets + 1]uint64
	for s := range m.shards {
		sh := &m.shards[s]
		for q := range nQtypes {
			for r := range nRcodes {
				queries[q][r] += sh.queries[q][r].Load()
			}
		}
		truncated += sh.truncated.Load()
		sumNanos += sh.sumNanos.Load()
		for i := range buckets {
			buckets[i] += sh.buckets[i].Load()
		}
	}
	for q := range nQtypes {
		// Unnamed rcodes below rcodeOther share its label: sum them.
		byName := map[string]uint64{}
		for r := range nRcodes {
			if n := queries[q][r]; n > 0 {
				byName[rcodeName(r)] += n
			}
		}
		for name, n := range byName {
			ch <- prometheus.MustNewConstMetric(m.queries, prometheus.CounterValue, float64(n), qtypeName(q), name)
		}
	}
	ch <- prometheus.MustNewConstMetric(m.truncated, prometheus.CounterValue, float64(truncated))
	cumulative := make(map[float64]uint64, nLatBuckets)
	var count uint64
	for i, b := range metrics.LatencyBuckets {
		count += buckets[i]
		cumulative[b] = count
	}
	count += buckets[nLatBuckets]
	ch <- prometheus.MustNewConstHistogram(m.latency, count, float64(sumNanos)/1e9, cumulative)
}
