package agent

import (
	"time"

	"github.com/hashicorp/serf/serf"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/internal/metrics"
)

type agentMetrics struct {
	checkUpdates *prometheus.CounterVec
	checkProbes  *prometheus.CounterVec
	syncs        *prometheus.CounterVec
}

var (
	descMembers    = prometheus.NewDesc("warren_gossip_members", "Members of the gossip pool, by status.", []string{"status"}, nil)
	descSuspicions = prometheus.NewDesc("warren_gossip_suspicions_total",
		"Probe failures: members this node marked suspect because a probe of them failed, here or at the member that told us first (memberlist.msg.suspect).", nil, nil)
	descDegradedProbes = prometheus.NewDesc("warren_gossip_degraded_probes_total",
		"Probe rounds run at a slowed interval because this node's own health was degraded (memberlist.degraded.probe).", nil, nil)
	descHealthScore = prometheus.NewDesc("warren_gossip_health_score",
		"Memberlist's local health score (0 is healthy; it rises when this node's own probes fail or go unanswered).", nil, nil)
)

// membersCollector counts gossip members and reads the failure detector's
// counters at scrape time.
type membersCollector struct{ a *Agent }

func (c membersCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMembers, descSuspicions, descDegradedProbes, descHealthScore} {
		ch <- d
	}
}

func (c membersCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{"alive": 0, "leaving": 0, "left": 0, "failed": 0}
	for _, m := range c.a.cfg.Gossip.Members() {
		if m.Status != serf.StatusNone {
			counts[m.Status.String()]++
		}
	}
	for status, n := range counts {
		ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(n), status)
	}
	ps := c.a.cfg.Gossip.ProbeStats()
	ch <- prometheus.MustNewConstMetric(descSuspicions, prometheus.CounterValue, float64(ps.Suspicions))
	ch <- prometheus.MustNewConstMetric(descDegradedProbes, prometheus.CounterValue, float64(ps.DegradedProbes))
	ch <- prometheus.MustNewConstMetric(descHealthScore, prometheus.GaugeValue, float64(ps.HealthScore))
}

func newAgentMetrics(reg prometheus.Registerer, a *Agent) *agentMetrics {
	reg = metrics.Or(reg)
	m := &agentMetrics{
		checkUpdates: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "checks", Name: "updates_total",
			Help: "Check results reported by the runners (status changes and rate-limited output updates), by new status."}, []string{"status"}),
	}
	m.checkProbes = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "checks", Name: "probes_total",
		Help: "Health check probes run, by check kind and raw result (before success/failure thresholds)."}, []string{"kind", "result"})
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "antientropy", Name: "syncs_total",
		Help: "Anti-entropy sync attempts, by kind (full or changes) and result."}, []string{"kind", "result"})
	reg.MustRegister(m.checkUpdates, m.checkProbes, m.syncs, membersCollector{a: a},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "antientropy", Name: "last_success_age_seconds",
			Help: "Seconds since the last successful sync with the servers (-1 before the first)."}, func() float64 {
			ok, _ := a.local.LastSync()
			if ok.IsZero() {
				return -1
			}
			return time.Since(ok).Seconds()
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "antientropy", Name: "failing",
			Help: "1 while the last sync attempt failed."}, func() float64 {
			if _, err := a.local.LastSync(); err != nil {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "agent", Name: "services",
			Help: "Services registered on this agent."}, func() float64 { return float64(len(a.local.Services())) }),
	)
	if !a.cfg.NoView {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "dns", Name: "view_staleness_seconds",
			Help: "How long the local catalog view DNS answers from has been cut off from the servers (0 while its stream is up)."}, func() float64 {
			since, _ := a.view.Staleness()
			return since.Seconds()
		}))
	}
	return m
}

func (m *agentMetrics) onSync(full bool, err error) {
	kind, result := "changes", "ok"
	if full {
		kind = "full"
	}
	if err != nil {
		result = "error"
	}
	m.syncs.WithLabelValues(kind, result).Inc()
}
