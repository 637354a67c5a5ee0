package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/hashicorp/go-bexpr"
)

// ?filter takes Consul's filter expressions (hashicorp/go-bexpr, the
// library Consul uses), evaluated against each row in the shape the
// endpoint answers with: `Service.Meta.env == prod` on /v1/health/service,
// `ServiceTags contains primary` on /v1/catalog/service, `Status !=
// passing` on /v1/agent/checks. The routes that take one are Consul's; the
// others refuse it rather than answer with rows the client asked to leave
// out. A filter changes the rows, never the index, so blocking on a
// filtered query wakes on any change to what it reads.

// filterRoutes are the routes that take ?filter.
var filterRoutes = map[string]bool{
	"GET /v1/catalog/nodes":                true,
	"GET /v1/catalog/services":             true,
	"GET /v1/catalog/service/{name}":       true,
	"GET /v1/catalog/node/{node}":          true,
	"GET /v1/catalog/node-services/{node}": true,
	"GET /v1/health/service/{name}":        true,
	"GET /v1/health/connect/{name}":        true,
	"GET /v1/catalog/connect/{name}":       true,
	"GET /v1/health/checks/{service}":      true,
	"GET /v1/health/node/{node}":           true,
	"GET /v1/health/state/{state}":         true,
	"GET /v1/agent/services":               true,
	"GET /v1/agent/checks":                 true,
	"GET /v1/connect/intentions":           true,
}

// maxFilterSteps bounds the parser's work on one expression (go-bexpr
// counts grammar steps). A flat 4 KB expression of 54 clauses takes 45,000
// (2 ms); nested parentheses cost steps exponentially in their depth (6
// levels parse in 19-22 ms, 7 are refused), and a 406-byte filter of 200
// nested levels did not parse within 100 million steps, the most tried.
// At the bound a refusal costs 32-50 ms of CPU.
const maxFilterSteps = 1_000_000

// filterKey carries a request's compiled filter in its context.
type filterKey struct{}

// withFilter compiles the request's ?filter, once, and returns r carrying
// it for filterOf (query and info call it; parseQueryOptions has already
// refused a filter on a route that takes none). An empty filter is none,
// as in Consul. A syntax error or more than one ?filter is a 400 naming
// the problem.
func withFilter(r *http.Request) (*http.Request, error) {
	vs, ok := r.URL.Query()["filter"]
	if !ok {
		return r, nil
	}
	if len(vs) != 1 {
		return r, badRequest("filter: given %d times; give one expression (combine clauses with and/or)", len(vs))
	}
	if vs[0] == "" {
		return r, nil
	}
	ev, err := bexpr.CreateEvaluator(vs[0], bexpr.WithMaxExpressions(maxFilterSteps))
	if err != nil {
		return r, badRequest("filter: %q: %v", vs[0], err)
	}
	return r.WithContext(context.WithValue(r.Context(), filterKey{}, ev)), nil
}

// filterOf is the filter withFilter compiled, nil when there is none.
func filterOf(r *http.Request) *bexpr.Evaluator {
	ev, _ := r.Context().Value(filterKey{}).(*bexpr.Evaluator)
	return ev
}

// filterError is a filter that could not be evaluated against a row:
// mostly a selector that names no field ("Servce == web"), or one that
// reaches into a list as if it were one value ("Checks.Status", where
// go-bexpr wants an index and says it cannot make "Status" an int).
func filterError(ev *bexpr.Evaluator, err error) error {
	msg := fmt.Sprintf("filter: %q: %v", ev.Expression(), err)
	if strings.Contains(err.Error(), "to type int") {
		msg += `; a selector goes through a list with "any" or "all", e.g. any Checks as c { c.Status == passing }`
	}
	return badRequest("%s", msg)
}

// filterSlice keeps the rows ev matches; a nil ev keeps them all.
func filterSlice[T any](ev *bexpr.Evaluator, rows []T) ([]T, error) {
	if ev == nil {
		return rows, nil
	}
	out := rows[:0:0]
	for _, row := range rows {
		ok, err := ev.Evaluate(row)
		if err != nil {
			return nil, filterError(ev, err)
		}
		if ok {
			out = append(out, row)
		}
	}
	return out, nil
}

// filterMap keeps the entries whose values ev matches.
func filterMap[T any](ev *bexpr.Evaluator, rows map[string]T) (map[string]T, error) {
	if ev == nil {
		return rows, nil
	}
	keys := make([]string, 0, len(rows))
	for k := range rows {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same row fails first every time
	out := make(map[string]T, len(rows))
	for _, k := range keys {
		ok, err := ev.Evaluate(rows[k])
		if err != nil {
			return nil, filterError(ev, err)
		}
		if ok {
			out[k] = rows[k]
		}
	}
	return out, nil
}
