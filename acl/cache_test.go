package acl

import (
	"errors"
	"sync"
	"testing"
)

func TestAuthorizerCache(t *testing.T) {
	c := NewAuthorizerCache(2)
	calls := 0
	resolveTo := func(z Authorizer) func() (Authorizer, error) {
		return func() (Authorizer, error) { calls++; return z, nil }
	}
	get := func(key string, gen uint64, z Authorizer) Authorizer {
		t.Helper()
		got, err := c.Get(key, gen, resolveTo(z))
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if get("a", 1, ManageAll()) != ManageAll() || get("a", 1, DenyAll()) != ManageAll() || calls != 1 {
		t.Fatalf("second Get of the same generation resolved again (%d calls)", calls)
	}
	if get("a", 2, DenyAll()) != DenyAll() || calls != 2 {
		t.Fatal("a new generation kept the old authorizer")
	}
	if get("a", 1, AllowAll()) != AllowAll() || calls != 3 || get("a", 2, AllowAll()) != DenyAll() {
		t.Fatal("an older generation read or replaced the cache")
	}
	get("b", 2, AllowAll())
	get("c", 2, AllowAll())
	if c.Len() > 2 {
		t.Errorf("%d entries, max 2", c.Len())
	}
	boom := errors.New("boom")
	if _, err := c.Get("d", 2, func() (Authorizer, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Errorf("error %v", err)
	}
	if _, err := c.Get("d", 2, resolveTo(AllowAll())); err != nil {
		t.Errorf("an error was cached: %v", err)
	}
}

func TestAuthorizerCacheConcurrent(t *testing.T) {
	c := NewAuthorizerCache(100)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				z, err := c.Get(string(rune('a'+i%20)), uint64(i/50+g%2), func() (Authorizer, error) { return AllowAll(), nil })
				if err != nil || z == nil {
					t.Error(z, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
