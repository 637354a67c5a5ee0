package limits

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys bounds a KeyedRate's map.
const DefaultMaxKeys = 16384

// KeyedRate is one token bucket per key (an agent's IP), with a bounded
// map: when it is full, buckets idle long enough to have refilled are
// dropped (forgetting them changes nothing), and if none is, an arbitrary
// one is (its client starts over with a full burst).
type KeyedRate struct {
	limit   rate.Limit
	burst   int
	maxKeys int
	now     func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time
}

// NewKeyedRate returns buckets of perSecond tokens a second and burst
// tokens; perSecond <= 0 means no limit (Allow is always true). burst < 1
// is taken as 1.
func NewKeyedRate(perSecond float64, burst, maxKeys int) *KeyedRate {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &KeyedRate{limit: rate.Limit(perSecond), burst: max(burst, 1), maxKeys: maxKeys,
		now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket, reporting whether there was one.
func (k *KeyedRate) Allow(key string) bool {
	if k == nil || k.limit <= 0 {
		return true
	}
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	b := k.buckets[key]
	if b == nil {
		if len(k.buckets) >= k.maxKeys {
			k.evict(now)
		}
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.last = now
	return b.lim.AllowN(now, 1)
}

// evict makes room for one bucket.
func (k *KeyedRate) evict(now time.Time) {
	refill := time.Duration(float64(k.burst) / float64(k.limit) * float64(time.Second))
	for key, b := range k.buckets {
		if now.Sub(b.last) > refill {
			delete(k.buckets, key)
		}
	}
	for key := range k.buckets {
		if len(k.buckets) < k.maxKeys {
			return
		}
		delete(k.buckets, key)
	}
}

// Len is the number of buckets held (for tests).
func (k *KeyedRate) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}
