package metrics

import (
	"strconv"
	"sync"
	"sync/atomic"

	gometrics "github.com/hashicorp/go-metrics/compat"
)

// Bridge from hashicorp/go-metrics, which serf, memberlist and raft report
// to through one process-wide sink, to the components that own a
// Prometheus registry. go-metrics has no per-instance sink, so this file
// installs the process's only one (once, on first use) and routes each
// counter by a label that the library instance attaches to everything it
// emits (memberlist's and serf's MetricLabels): InstanceLabel, whose value
// RouteCounters hands out. Everything without that label (raft's metrics,
// today) is dropped, as go-metrics' default black-hole sink did.
// Nothing else in the process may call go-metrics' NewGlobal.

// InstanceLabel is the go-metrics label that routes a library instance's
// metrics.
const InstanceLabel = "warren_instance"

// CounterFunc receives the counters of one library instance: key is the
// go-metrics key ("memberlist", "msg", "suspect").
type CounterFunc func(key []string, val float32)

var (
	routeOnce sync.Once
	routes    sync.Map // instance label value -> CounterFunc
	nextRoute atomic.Uint64
)

// RouteCounters routes the counters labelled with the returned label to
// f until stop is called.
func RouteCounters(f CounterFunc) (label gometrics.Label, stop func()) {
	routeOnce.Do(func() {
		cfg := gometrics.DefaultConfig("")
		cfg.EnableHostname = false
		cfg.EnableHostnameLabel = false
		cfg.EnableRuntimeMetrics = false // no collection goroutine
		cfg.EnableServiceLabel = false
		cfg.EnableTypePrefix = false
		_, _ = gometrics.NewGlobal(cfg, routingSink{})
	})
	id := strconv.FormatUint(nextRoute.Add(1), 10)
	routes.Store(id, f)
	return gometrics.Label{Name: InstanceLabel, Value: id}, func() { routes.Delete(id) }
}

// routingSink is a go-metrics MetricSink that forwards labelled counters.
type routingSink struct{}

func (routingSink) IncrCounterWithLabels(key []string, val float32, labels []gometrics.Label) {
	for _, l := range labels {
		if l.Name == InstanceLabel {
			if f, ok := routes.Load(l.Value); ok {
				f.(CounterFunc)(key, val)
			}
			return
		}
	}
}

func (routingSink) SetGauge([]string, float32)                               {}
func (routingSink) SetGaugeWithLabels([]string, float32, []gometrics.Label)  {}
func (routingSink) EmitKey([]string, float32)                                {}
func (routingSink) IncrCounter([]string, float32)                            {}
func (routingSink) AddSample([]string, float32)                              {}
func (routingSink) AddSampleWithLabels([]string, float32, []gometrics.Label) {}
