package acl

import "sync"

// AuthorizerCache memoizes compiled authorizers for one generation of the
// ACL state (tokens, policies, roles): a request resolves its token once
// per generation instead of parsing and compiling its policies every time
// (BenchmarkResolve: ~100 µs; a cached lookup is a map read).
//
// The caller names the generation, typically the highest Raft index of the
// ACL tables: when it changes, every entry is dropped, so an edited policy
// or a deleted token takes effect on the next request. The cache holds
// authorizers only: the caller still checks that the token exists and has
// not expired before using one. It holds at most max entries and is
// cleared when full (a simple bound; a cluster has far fewer live tokens
// than requests). Safe for concurrent use.
type AuthorizerCache struct {
	max int

	mu  sync.Mutex
	gen uint64
	m   map[string]Authorizer
}

// NewAuthorizerCache returns a cache of at most size authorizers (at
// least 1).
func NewAuthorizerCache(size int) *AuthorizerCache {
	return &AuthorizerCache{max: max(size, 1), m: map[string]Authorizer{}}
}

// Get returns the authorizer cached under key for generation gen, or calls
// resolve and caches its answer (errors are not cached). A generation
// newer than the cache's empties it; an older one (a request that read the
// state before another moved it) resolves without touching the cache.
// resolve runs without the lock held; two concurrent misses may both
// resolve.
func (c *AuthorizerCache) Get(key string, gen uint64, resolve func() (Authorizer, error)) (Authorizer, error) {
	c.mu.Lock()
	if gen > c.gen {
		clear(c.m)
		c.gen = gen
	}
	z, ok := c.m[key]
	ok = ok && gen == c.gen
	c.mu.Unlock()
	if ok {
		return z, nil
	}
	z, err := resolve()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen == c.gen {
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[key] = z
	}
	return z, nil
}

// Len returns the number of cached authorizers.
func (c *AuthorizerCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
