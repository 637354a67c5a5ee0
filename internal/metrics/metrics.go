// Package metrics holds the process's Prometheus registry helpers and the
// conversion of gathered metrics into Consul's JSON shape for
// /v1/agent/metrics. There is no global registry: each process makes one
// and hands a Registerer to each component through its config, so tests
// can make their own. Any package may import it.
package metrics

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	dto "github.com/prometheus/client_model/go"
)

// Namespace prefixes every metric: warren_<subsystem>_<name>_<unit>.
const Namespace = "warren"

// NewRegistry returns a registry with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Or returns r, or a throwaway registry when r is nil, so components can
// always register.
func Or(r prometheus.Registerer) prometheus.Registerer {
	if r == nil {
		return prometheus.NewRegistry()
	}
	return r
}

// Gauge is a gauge in Consul's JSON shape.
type Gauge struct {
	Name   string
	Value  float64
	Labels map[string]string
}

// Counter is a counter or a summary in Consul's JSON shape.
type Counter struct {
	Name   string
	Count  int
	Rate   float64
	Sum    float64
	Min    float64
	Max    float64
	Mean   float64
	Stddev float64
	Labels map[string]string
}

// Summary is Consul's /v1/agent/metrics answer.
type Summary struct {
	Timestamp string
	Gauges    []Gauge
	Points    []struct{}
	Counters  []Counter
	Samples   []Counter
}

// ConsulJSON converts gathered metric families into Consul's JSON shape:
// gauges as Gauges, counters as Counters (Count and Sum hold the total),
// histograms and summaries as Samples (Count, Sum and Mean).
func ConsulJSON(families []*dto.MetricFamily, now time.Time) Summary {
	s := Summary{Timestamp: now.UTC().Format("2006-01-02 15:04:05 -0700 MST"), Gauges: []Gauge{}, Points: []struct{}{}, Counters: []Counter{}, Samples: []Counter{}}
	for _, f := range families {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				s.Gauges = append(s.Gauges, Gauge{Name: name, Value: m.GetGauge().GetValue(), Labels: labels})
			case dto.MetricType_UNTYPED:
				s.Gauges = append(s.Gauges, Gauge{Name: name, Value: m.GetUntyped().GetValue(), Labels: labels})
			case dto.MetricType_COUNTER:
				v := m.GetCounter().GetValue()
				s.Counters = append(s.Counters, Counter{Name: name, Count: int(v), Sum: v, Labels: labels})
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				s.Samples = append(s.Samples, sample(name, h.GetSampleCount(), h.GetSampleSum(), labels))
			case dto.MetricType_SUMMARY:
				sm := m.GetSummary()
				s.Samples = append(s.Samples, sample(name, sm.GetSampleCount(), sm.GetSampleSum(), labels))
			}
		}
	}
	sort.SliceStable(s.Gauges, func(i, j int) bool { return s.Gauges[i].Name < s.Gauges[j].Name })
	return s
}

func sample(name string, count uint64, sum float64, labels map[string]string) Counter {
	c := Counter{Name: name, Count: int(count), Sum: sum, Labels: labels}
	if count > 0 {
		c.Mean = sum / float64(count)
	}
	return c
}

// LatencyBuckets are histogram buckets in seconds from 50µs to 10s.
var LatencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
