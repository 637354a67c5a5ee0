package server

import (
	"strconv"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/metrics"
)

// serverMetrics are the server's own metrics; the Raft and catalog gauges
// are read at scrape time.
type serverMetrics struct {
	applyLatency   prometheus.Histogram
	batchSize      prometheus.Histogram
	rpcRequests    *prometheus.CounterVec
	rpcLatency     *prometheus.HistogramVec
	forwarded      *prometheus.CounterVec
	watchers       prometheus.Gauge
	wakeups        prometheus.Counter
	internalWakes  prometheus.Counter
	spuriousWakes  prometheus.Counter
	snapshotLength prometheus.Histogram
	enrollRefused  *prometheus.CounterVec
}

// storeLogsHistogram times raft's log appends to boltdb, fsync included.
func storeLogsHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "raft", Name: "store_logs_duration_seconds",
		Help: "Time to append a batch of entries to the Raft log on disk, fsync included.", Buckets: metrics.LatencyBuckets})
}

// timedLogStore times StoreLogs of a raft.LogStore.
type timedLogStore struct {
	raft.LogStore
	h prometheus.Histogram
}

func (t *timedLogStore) StoreLog(l *raft.Log) error { return t.StoreLogs([]*raft.Log{l}) }

func (t *timedLogStore) StoreLogs(logs []*raft.Log) error {
	start := time.Now()
	err := t.LogStore.StoreLogs(logs)
	t.h.Observe(time.Since(start).Seconds())
	return err
}

func newServerMetrics(reg prometheus.Registerer, s *Server) *serverMetrics {
	reg = metrics.Or(reg)
	m := &serverMetrics{
		applyLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "raft", Name: "apply_duration_seconds",
			Help: "Time from handing a command to Raft to its FSM result on the leader.", Buckets: metrics.LatencyBuckets}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "raft", Name: "fsm_batch_size",
			Help: "Commands applied per FSM batch (one state store transaction).", Buckets: prometheus.ExponentialBuckets(1, 2, 11)}),
		rpcRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "rpc", Name: "requests_total",
			Help: "Server RPC calls served, by method and outcome.", ConstLabels: nil}, []string{"method", "outcome"}),
		rpcLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "rpc", Name: "request_duration_seconds",
			Help: "Server RPC latency by method.", Buckets: metrics.LatencyBuckets}, []string{"method"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "rpc", Name: "forwarded_total",
			Help: "Requests this server forwarded to the leader, by method."}, []string{"method"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "blocking", Name: "open_watchers",
			Help: "Blocking queries waiting for a change."}),
		wakeups: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "blocking", Name: "wakeups_total",
			Help: "Blocking queries answered because their result's index moved."}),
		internalWakes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "blocking", Name: "internal_rechecks_total",
			Help: "Watch wake-ups where the result's index had not moved; the query went back to waiting without answering."}),
		spuriousWakes: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "blocking", Name: "spurious_wakeups_total",
			Help: "Blocking queries answered before their wait ended with an unchanged index. Must stay 0."}),
		enrollRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "acl", Name: "enrollments_refused_total",
			Help: "Enrollment tokens refused, by reason (unknown_or_used, expired, node_prefix, malformed)."}, []string{"reason"}),
		snapshotLength: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "warren", Subsystem: "raft", Name: "snapshot_save_duration_seconds",
			Help: "Time to produce a user snapshot archive.", Buckets: metrics.LatencyBuckets}),
	}
	for _, reason := range []string{"unknown_or_used", "expired", "node_prefix", "malformed"} {
		m.enrollRefused.WithLabelValues(reason) // every series from the start, at 0
	}
	reg.MustRegister(m.applyLatency, m.batchSize, m.rpcRequests, m.rpcLatency, m.forwarded, m.watchers, m.wakeups,
		m.internalWakes, m.spuriousWakes, m.snapshotLength, m.enrollRefused, s.storeLogs, &raftCollector{s: s}, &catalogCollector{s: s},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "warren", Subsystem: "connect", Name: "active_root_expiry_seconds",
			Help: "Seconds until the active CA root expires (0 when there is no CA yet)."}, func() float64 {
			roots, _, _, err := s.loadCA(nil)
			if err != nil {
				return 0
			}
			for _, r := range roots {
				if r.Active {
					return time.Until(r.NotAfter).Seconds()
				}
			}
			return 0
		}))
	return m
}

var (
	descLeader      = prometheus.NewDesc("warren_raft_leader", "1 if this server is the ready leader.", nil, nil)
	descTerm        = prometheus.NewDesc("warren_raft_term", "Current Raft term.", nil, nil)
	descCommit      = prometheus.NewDesc("warren_raft_commit_index", "Raft commit index.", nil, nil)
	descApplied     = prometheus.NewDesc("warren_raft_applied_index", "Last index applied to the state store.", nil, nil)
	descLastContact = prometheus.NewDesc("warren_raft_last_contact_seconds", "Time since this follower last heard from the leader (0 on the leader).", nil, nil)
	descPeers       = prometheus.NewDesc("warren_raft_voters", "Voting servers in the Raft configuration.", nil, nil)
	descNodes       = prometheus.NewDesc("warren_catalog_nodes", "Nodes in the catalog.", nil, nil)
	descServices    = prometheus.NewDesc("warren_catalog_services", "Distinct service names in the catalog.", nil, nil)
	descInstances   = prometheus.NewDesc("warren_catalog_service_instances", "Service instances in the catalog.", nil, nil)
	descChecks      = prometheus.NewDesc("warren_catalog_checks", "Health checks in the catalog, by status.", []string{"status"}, nil)
)

// raftCollector reads Raft's state at scrape time.
type raftCollector struct{ s *Server }

func (c *raftCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLeader, descTerm, descCommit, descApplied, descLastContact, descPeers, descFollowerContact} {
		ch <- d
	}
}

func (c *raftCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.raft
	if r == nil {
		return
	}
	stats := r.Stats()
	num := func(k string) float64 { v, _ := strconv.ParseFloat(stats[k], 64); return v }
	leader := 0.0
	if c.s.IsLeader() {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(descLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descTerm, prometheus.GaugeValue, num("term"))
	ch <- prometheus.MustNewConstMetric(descCommit, prometheus.GaugeValue, num("commit_index"))
	ch <- prometheus.MustNewConstMetric(descApplied, prometheus.GaugeValue, float64(r.AppliedIndex()))
	contact := 0.0
	if r.State() != raft.Leader {
		if last := r.LastContact(); !last.IsZero() {
			contact = time.Since(last).Seconds()
		}
	}
	ch <- prometheus.MustNewConstMetric(descLastContact, prometheus.GaugeValue, contact)
	ch <- prometheus.MustNewConstMetric(descPeers, prometheus.GaugeValue, num("num_peers")+1)
	c.followerContacts(ch)
}

// catalogCollector counts the catalog at scrape time.
type catalogCollector struct{ s *Server }

func (c *catalogCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descNodes, descServices, descInstances, descChecks} {
		ch <- d
	}
}

func (c *catalogCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.store
	_, nodes, err := st.Nodes(nil, nil)
	if err != nil {
		return
	}
	_, names, _ := st.Services(nil, nil)
	instances := 0
	for _, n := range nodes {
		_, _, svcs, _ := st.NodeServices(nil, n.Name)
		instances += len(svcs)
	}
	_, checks, _ := st.ChecksInState(nil, catalog.HealthAny)
	byStatus := map[string]int{catalog.HealthPassing: 0, catalog.HealthWarning: 0, catalog.HealthCritical: 0}
	for _, chk := range checks {
		byStatus[chk.Status]++
	}
	ch <- prometheus.MustNewConstMetric(descNodes, prometheus.GaugeValue, float64(len(nodes)))
	ch <- prometheus.MustNewConstMetric(descServices, prometheus.GaugeValue, float64(len(names)))
	ch <- prometheus.MustNewConstMetric(descInstances, prometheus.GaugeValue, float64(instances))
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(descChecks, prometheus.GaugeValue, float64(n), status)
	}
}
