package state

import "sync"

// interner keeps one copy of the strings that repeat across rows: service
// and check names, tags, statuses. Each registration decodes its own copy of
// every string; without this, 10,000 instances of one service hold 10,000
// copies of its name and tags. Bounded: when full it starts afresh (rows
// keep the strings they have).
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

const internMax = 4096

func (in *interner) intern(s string) string {
	if s == "" || len(s) > 128 {
		return s
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.m[s]; ok {
		return c
	}
	if in.m == nil || len(in.m) >= internMax {
		in.m = make(map[string]string, 64)
	}
	in.m[s] = s
	return s
}

// internAll interns every string of xs in place; xs must be the caller's
// own copy.
func (in *interner) internAll(xs []string) {
	for i, s := range xs {
		xs[i] = in.intern(s)
	}
}
