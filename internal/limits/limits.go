// Package limits bounds what one client may cost a Warren process: the
// rejection counter every limit reports to
// (warren_limits_rejections_total{limit}), a per-client-IP connection cap
// for listeners, a per-key concurrency cap (blocking queries per client)
// and per-key token buckets (RPC rate per agent). It imports nothing
// internal; cli, httpapi, server and agent use it.
package limits

import (
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Limit names: the only values of the metric's "limit" label, and the
// words of the body of a rejection.
const (
	HTTPBodySize                 = "http_max_body_bytes"
	HTTPConnsPerClient           = "http_max_conns_per_client"
	HTTPBlockingQueriesPerClient = "http_max_blocking_queries_per_client"
	RPCRate                      = "rpc_rate"
	CheckOutputSize              = "check_output_max_size"
)

// Names lists every limit name.
var Names = []string{HTTPBodySize, HTTPConnsPerClient, HTTPBlockingQueriesPerClient, RPCRate, CheckOutputSize}

// Rejections counts the requests each limit refused (or, for check output,
// cut). A nil *Rejections counts nothing, so components may be built
// without one.
type Rejections struct {
	vec *prometheus.CounterVec
}

// NewRejections returns a counter registered with reg (nil: unregistered,
// still counting, for tests). Every limit's series exists from the start
// at 0, so a dashboard sees the limit before its first rejection.
func NewRejections(reg prometheus.Registerer) *Rejections {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "warren", Subsystem: "limits", Name: "rejections_total",
		Help: "Requests refused (or check outputs cut) by a configured limit, by limit name.",
	}, []string{"limit"})
	for _, n := range Names {
		vec.WithLabelValues(n)
	}
	if reg != nil {
		reg.MustRegister(vec)
	}
	return &Rejections{vec: vec}
}

// Inc counts one rejection by limit, one of the names above.
func (r *Rejections) Inc(limit string) {
	if r == nil {
		return
	}
	r.vec.WithLabelValues(limit).Inc()
}

// Count is how many rejections limit has counted.
func (r *Rejections) Count(limit string) float64 {
	if r == nil {
		return 0
	}
	var m dto.Metric
	if err := r.vec.WithLabelValues(limit).Write(&m); err != nil {
		return 0
	}
	return m.GetCounter().GetValue()
}

// ClientIP returns the IP of a "host:port" remote address (IPv4-mapped
// IPv6 addresses unmapped), or the whole string when it does not parse, so
// that a key always exists.
func ClientIP(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone("").String()
	}
	return host
}
