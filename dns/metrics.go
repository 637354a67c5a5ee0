package dns

import (
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/internal/metrics"
)

type dnsMetrics struct {
	queries   *prometheus.CounterVec
	truncated prometheus.Counter
	latency   prometheus.Histogram
}

// newDNSMetrics returns nil when reg is nil: the server then records
// nothing at all.
func newDNSMetrics(reg prometheus.Registerer) *dnsMetrics {
	if reg == nil {
		return nil
	}
	m := &dnsMetrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "dns", Name: "queries_total",
			Help: "DNS queries answered, by query type and response code."}, []string{"qtype", "rcode"}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "dns", Name: "truncated_total",
			Help: "UDP answers sent with the TC bit because records did not fit."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "dns", Name: "query_duration_seconds",
			Help: "Time to answer a DNS query (recursion included).", Buckets: metrics.LatencyBuckets}),
	}
	reg.MustRegister(m.queries, m.truncated, m.latency)
	return m
}

// qtypeLabel keeps the qtype label bounded: common types by name, the
// rest as "other".
func qtypeLabel(t uint16) string {
	switch t {
	case dns.TypeA, dns.TypeAAAA, dns.TypeSRV, dns.TypeTXT, dns.TypePTR, dns.TypeCNAME, dns.TypeSOA, dns.TypeNS, dns.TypeANY, dns.TypeMX:
		return dns.TypeToString[t]
	}
	return "other"
}
