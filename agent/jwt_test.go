package agent

import (
	"fmt"
	"testing"
	"time"
)

// TestJWTCache: a token is handed out again until half its life, whatever
// the order of the audiences; the cache stays bounded.
func TestJWTCache(t *testing.T) {
	var c jwtCache
	now := time.Now()
	k := jwtCacheKey("web", []string{"b", "a", "a"})
	if k != jwtCacheKey("web", []string{"a", "b"}) || k == jwtCacheKey("api", []string{"a", "b"}) || k == jwtCacheKey("web", []string{"a"}) {
		t.Fatal("cache keys: the audiences' order must not matter, the service and the set must")
	}
	c.put(k, jwtToken{token: "t1", refreshAt: now.Add(time.Minute)}, now)
	if got, ok := c.get(k, now.Add(59*time.Second)); !ok || got.token != "t1" {
		t.Fatalf("before half-life: %v %v", got, ok)
	}
	if _, ok := c.get(k, now.Add(time.Minute)); ok {
		t.Fatal("a token past half its life was handed out")
	}
	for i := range 2 * jwtCacheMax {
		c.put(fmt.Sprintf("k%d", i), jwtToken{token: "x", refreshAt: now.Add(time.Minute)}, now)
	}
	if n := len(c.entries); n > jwtCacheMax {
		t.Fatalf("%d cached tokens, more than %d", n, jwtCacheMax)
	}
	c.clear()
	if _, ok := c.get(k, now); ok || len(c.entries) != 0 {
		t.Fatal("clear left tokens")
	}
}
