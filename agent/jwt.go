package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/connect/workload"
	"github.com/warren-mesh/warren/rpc"
)

// JWT-SVIDs for the Workload API. The leader signs them (ConnectCA.SignJWT,
// for a service registered on this node); the agent caches each token per
// (service, audiences) and hands it out again until half its life is gone,
// so a workload asking on every request costs the servers one signature per
// half TTL.

const (
	// jwtCacheMax bounds the cached tokens: a workload inventing audiences
	// must not grow the agent without end.
	jwtCacheMax = 1024
	// jwtSignWait bounds how long a request waits for the leader (no
	// leader, a leader election) before it fails.
	jwtSignWait = 5 * time.Second
)

type jwtToken struct {
	token     string
	id        string
	refreshAt time.Time // half the token's life
}

type jwtCache struct {
	mu      sync.Mutex
	entries map[string]jwtToken
}

func jwtCacheKey(service string, audience []string) string {
	aud := slices.Clone(audience)
	slices.Sort(aud)
	aud = slices.Compact(aud)
	return service + "\x00" + strings.Join(aud, "\x00")
}

func (c *jwtCache) get(key string, now time.Time) (jwtToken, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.entries[key]
	if !ok || !now.Before(t.refreshAt) {
		return jwtToken{}, false
	}
	return t, true
}

func (c *jwtCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

func (c *jwtCache) put(key string, t jwtToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]jwtToken{}
	}
	if len(c.entries) >= jwtCacheMax {
		for k, e := range c.entries {
			if !now.Before(e.refreshAt) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < jwtCacheMax {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = t
}

// JWTSVIDs implements workload.Source: a JWT-SVID for each local service
// that selects c (or only the one whose SPIFFE ID is id), for audience.
func (w *WorkloadAPI) JWTSVIDs(ctx context.Context, c workload.Caller, id string, audience []string) ([]workload.JWTSVID, error) {
	if err := connect.ValidateAudience(audience); err != nil {
		return nil, err
	}
	names, _ := w.a.workloadServices(c)
	if len(names) == 0 {
		return nil, workload.ErrNotSelected
	}
	w.mu.Lock()
	td := w.td
	w.mu.Unlock()
	if td == "" {
		return nil, fmt.Errorf("%w: the trust domain is not known yet", catalog.ErrNoLeader)
	}
	if id != "" {
		var pick string
		for _, n := range names {
			if connect.ServiceID(td, connect.DefaultNamespace, w.a.leaves.dc, n).String() == id {
				pick = n
				break
			}
		}
		if pick == "" {
			return nil, fmt.Errorf("%w: not %s", workload.ErrNotSelected, id)
		}
		names = []string{pick}
	}
	ctx, cancel := context.WithTimeout(ctx, jwtSignWait)
	defer cancel()
	out := make([]workload.JWTSVID, 0, len(names))
	for _, n := range names {
		t, err := w.jwtToken(ctx, n, audience)
		if err != nil {
			return nil, fmt.Errorf("JWT-SVID for %s: %w", n, err)
		}
		out = append(out, workload.JWTSVID{ID: t.id, Token: t.token})
	}
	return out, nil
}

// jwtToken returns a cached token or asks the leader for one, retrying
// while there is no leader or it is over its rate, until ctx ends.
func (w *WorkloadAPI) jwtToken(ctx context.Context, service string, audience []string) (jwtToken, error) {
	key := jwtCacheKey(service, audience)
	if t, ok := w.jwt.get(key, time.Now()); ok {
		return t, nil
	}
	backoff := leafBackoffMin
	for {
		asked := time.Now()
		var r rpc.SignJWTReply
		err := w.a.router.call(ctx, rpc.MethodCASignJWT, &rpc.SignJWTRequest{Node: w.a.leaves.node, Service: service, Audience: audience}, &r)
		if err == nil {
			// Half the life as the agent saw it: from the request, so that
			// a slow answer or a skewed clock renews early, not late.
			t := jwtToken{token: r.Token, id: r.ServiceURI, refreshAt: asked.Add(r.ExpiresAt.Sub(r.IssuedAt) / 2)}
			w.jwt.put(key, t, time.Now())
			return t, nil
		}
		retry := errors.Is(err, catalog.ErrNoLeader) || errors.Is(err, catalog.ErrRateLimited) || errors.Is(err, errNoServers)
		if !retry || !sleepCtx(ctx, jitter(backoff)) {
			return jwtToken{}, err
		}
		backoff = min(2*backoff, time.Second)
	}
}
