package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
)

// tokenTTL is how long an agent trusts a token's resolution before asking
// a server again (Consul's acl.token_ttl).
const tokenTTL = 30 * time.Second

// maxCachedTokens bounds the agent's resolution cache.
const maxCachedTokens = 4096

// aclCache resolves request tokens for a plain agent by asking a server
// (ACL.Resolve with the token itself), caching each answer for tokenTTL.
// While no server answers, a resolution already made is used past its TTL
// (Consul's down_policy "extend-cache"); a token never seen is refused. A
// token with an expiration time is refused from that moment on, cached or
// not, servers reachable or not.
type aclCache struct {
	a  *Agent
	mu sync.Mutex
	m  map[string]cachedToken // by secret hash
}

type cachedToken struct {
	at    time.Time
	token *acl.Token // as the server answered; nil if it knows none
	id    *acl.Identity
	err   error
}

// expired reports whether the cached token has expired by now.
func (e cachedToken) expired(now time.Time) bool { return e.token != nil && e.token.Expired(now) }

// ResolveToken returns the identity of a token secret, for the HTTP API.
func (a *Agent) ResolveToken(ctx context.Context, secret string) (*acl.Identity, error) {
	c := a.acls
	hash := acl.HashSecret(secret)
	c.mu.Lock()
	e, ok := c.m[hash]
	c.mu.Unlock()
	now := time.Now()
	if ok && e.expired(now) {
		return nil, catalog.ErrACLNotFound
	}
	if ok && now.Sub(e.at) < tokenTTL {
		return e.id, e.err
	}
	fresh, err := a.resolveRemote(ctx, secret)
	if err != nil && !errors.Is(err, catalog.ErrACLNotFound) {
		if ok && e.err == nil {
			a.log.Warn("no server answered a token resolution; using the cached one", "accessor", e.id.AccessorID, "err", err)
			return e.id, nil
		}
		return nil, err
	}
	fresh.at, fresh.err = now, err
	c.mu.Lock()
	if len(c.m) >= maxCachedTokens {
		clear(c.m)
	}
	c.m[hash] = fresh
	c.mu.Unlock()
	if fresh.expired(now) {
		return nil, catalog.ErrACLNotFound
	}
	return fresh.id, err
}

// resolveRemote asks a server for the token's identity and expiry.
func (a *Agent) resolveRemote(ctx context.Context, secret string) (cachedToken, error) {
	var reply acl.ResolveReply
	if err := a.router.call(acl.WithSecret(ctx, secret), acl.MethodResolve, struct{}{}, &reply); err != nil {
		return cachedToken{}, err
	}
	id, err := reply.Identity(a.cfg.Datacenter)
	return cachedToken{token: reply.Token, id: id}, err
}
