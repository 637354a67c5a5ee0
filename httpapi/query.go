package httpapi

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// parseQueryOptions reads the options every read takes: dc, stale,
// consistent, index and wait. cached is accepted and ignored (there is no
// agent cache to opt into); filter is refused here on the routes that take
// none, and compiled by query and info for the others (filter.go).
func parseQueryOptions(r *http.Request, ourDC string) (catalog.QueryOptions, error) {
	var q catalog.QueryOptions
	v := r.URL.Query()
	if err := checkDatacenter(v.Get("dc"), ourDC); err != nil {
		return q, err
	}
	_, stale := v["stale"]
	_, consistent := v["consistent"]
	switch {
	case stale && consistent:
		return q, badRequest("Cannot specify ?stale with ?consistent, conflicting semantics.")
	case stale:
		q.Consistency = catalog.ConsistencyStale
	case consistent:
		q.Consistency = catalog.ConsistencyConsistent
	}
	if _, ok := v["filter"]; ok && !filterRoutes[r.Pattern] {
		return q, badRequest("filter: %s takes no filter expression", r.URL.Path)
	}
	if s := v.Get("index"); s != "" {
		i, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, badRequest("index: %q is not an unsigned integer", s)
		}
		q.MinIndex = i
	}
	wait := time.Duration(0)
	if s := v.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return q, badRequest("wait: %q is not a duration such as 10s or 5m", s)
		}
		wait = d
	}
	q.MaxWait = blockingWait(wait)
	return q, nil
}

// blockingWait bounds a requested wait the way Consul does: zero means the
// default, more than the maximum means the maximum, and up to wait/16 of
// random jitter spreads out the wake-ups of clients that all started
// waiting at once.
func blockingWait(wait time.Duration) time.Duration {
	switch {
	case wait == 0:
		wait = catalog.DefaultQueryWait
	case wait > catalog.MaxQueryWait:
		wait = catalog.MaxQueryWait
	}
	if j := wait / 16; j > 0 {
		wait += rand.N(j)
	}
	return wait
}

// checkDatacenter refuses a datacenter other than ours: Warren does not
// forward across datacenters.
func checkDatacenter(dc, ourDC string) error {
	if dc == "" || dc == ourDC {
		return nil
	}
	return fmt.Errorf("datacenter %q: %w", dc, catalog.ErrUnknownDatacenter)
}

// effectiveConsistency is how Consul names the mode that served a read in
// X-Consul-Effective-Consistency.
func effectiveConsistency(c catalog.Consistency) string {
	switch c {
	case catalog.ConsistencyStale:
		return "stale"
	case catalog.ConsistencyConsistent:
		return "consistent"
	}
	return "leader"
}

// setQueryMeta sets the X-Consul-* headers of a read. The index is never 0:
// a client that blocks on index 0 does not block at all, and would spin.
func setQueryMeta(h http.Header, m catalog.QueryMeta, c catalog.Consistency) {
	h.Set("X-Consul-Index", strconv.FormatUint(max(m.Index, 1), 10))
	h.Set("X-Consul-KnownLeader", strconv.FormatBool(m.KnownLeader))
	h.Set("X-Consul-LastContact", strconv.FormatInt(max(m.LastContact, 0).Milliseconds(), 10))
	h.Set("X-Consul-Effective-Consistency", effectiveConsistency(c))
	if m.ResultsFilteredByACLs {
		h.Set("X-Consul-Results-Filtered-By-ACLs", "true")
	}
}

// nodeMetaFilter parses repeated node-meta=key:value parameters; a value
// without a colon is a key with an empty value, as in Consul.
func nodeMetaFilter(v url.Values) map[string]string {
	pairs := v["node-meta"]
	if len(pairs) == 0 {
		return nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, val, _ := strings.Cut(p, ":")
		m[k] = val
	}
	return m
}

// matchesMeta reports whether a node carries every pair of filter.
func matchesMeta(n *catalog.Node, filter map[string]string) bool {
	for k, v := range filter {
		if got, ok := n.Meta[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// boolParam reads a flag such as ?passing: present with no value is true,
// otherwise the value must parse as a bool.
func boolParam(v url.Values, name string) (bool, error) {
	vals, ok := v[name]
	if !ok {
		return false, nil
	}
	if vals[0] == "" {
		return true, nil
	}
	b, err := strconv.ParseBool(vals[0])
	if err != nil {
		return false, badRequest("%s: %q is not a boolean", name, vals[0])
	}
	return b, nil
}
