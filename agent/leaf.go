package agent

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/rpc"
)

// Leaf certificates. The agent makes each service's key pair itself
// (connect.NewCSR), sends only the CSR to the servers (ConnectCA.Sign,
// which the leader answers), caches the leaf per service name, and renews
// it in the background at a random point between 60% and 90% of its
// lifetime (connect.RenewAt), before any client asks. A failed request is
// retried with exponential backoff (rate limiting included). When the
// cluster's active root changes, every leaf is renewed at once (spread by a
// little jitter) so workloads move to the new root well before the old one
// leaves the bundle.

const (
	leafBackoffMin = 100 * time.Millisecond
	leafBackoffMax = 30 * time.Second
	// leafRateLimitedMax caps the backoff after the leader refused a
	// request over its signing rate.
	leafRateLimitedMax = 4 * time.Second
	// leafFirstWait bounds how long a request for a service's first leaf
	// waits (a new service may not have reached the catalog yet).
	leafFirstWait = 15 * time.Second
	// leafIdleAfter stops renewing a leaf nobody asked for in this long.
	leafIdleAfter = 72 * time.Hour
)

// leafSigner sends a CSR to the servers.
type leafSigner func(ctx context.Context, req *rpc.SignRequest) (*rpc.SignReply, error)

// rootsWatcher reads the cluster's roots (blocking while minIndex is
// current): the active root's ID, the trust domain and the index.
type rootsWatcher func(ctx context.Context, minIndex uint64) (activeID, td string, idx uint64, err error)

type leafManager struct {
	log   *slog.Logger
	node  string
	dc    string
	sign  leafSigner
	roots rootsWatcher
	// registered reports whether a service name is registered locally.
	registered func(name string) bool

	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	leaves map[string]*leafEntry
	index  uint64 // counts leaf changes; a leaf's index is the count at its change
	td     string // the trust domain, once known
	// anyChanged is closed at the next change of any leaf.
	anyChanged chan struct{}
}

type leafEntry struct {
	service string
	renew   chan struct{} // a nudge to renew now (root rotation)

	// guarded by leafManager.mu
	cert     *api.LeafCert
	rootID   string
	err      error
	changed  chan struct{} // closed on the next change of cert or err
	lastUsed time.Time
}

func newLeafManager(node, dc string, sign leafSigner, roots rootsWatcher, registered func(string) bool, log *slog.Logger) *leafManager {
	ctx, cancel := context.WithCancel(context.Background())
	return &leafManager{log: log, node: node, dc: dc, sign: sign, roots: roots, registered: registered,
		ctx: ctx, cancel: cancel, leaves: map[string]*leafEntry{}, anyChanged: make(chan struct{})}
}

// Run follows the cluster's active root until ctx ends, then stops every
// renewal.
func (m *leafManager) Run(ctx context.Context) error {
	defer m.cancel()
	var idx uint64
	active := ""
	backoff := leafBackoffMin
	for ctx.Err() == nil {
		id, td, next, err := m.roots(ctx, idx)
		if err != nil {
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, leafBackoffMax)
			continue
		}
		backoff = leafBackoffMin
		if td != "" {
			m.mu.Lock()
			m.td = td
			m.mu.Unlock()
		}
		if next < idx {
			next = 0 // the servers' state was restored: start over
		}
		idx = next
		if active != "" && id != active {
			m.log.Info("CA root changed; renewing leaves", "root", id)
			m.renewAll(id)
		}
		active = id
	}
	return nil
}

func (m *leafManager) renewAll(activeRoot string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.leaves {
		if e.rootID == activeRoot {
			continue
		}
		select {
		case e.renew <- struct{}{}:
		default:
		}
	}
}

// Leaf returns the leaf of a service, waiting for the first one, and with
// q.MinIndex, blocking until it changes.
func (m *leafManager) Leaf(ctx context.Context, service string, q catalog.QueryOptions) (*api.LeafCert, catalog.QueryMeta, error) {
	e := m.entry(service)
	first := time.NewTimer(leafFirstWait)
	defer first.Stop()
	wait := q.MaxWait
	if wait <= 0 {
		wait = catalog.DefaultQueryWait
	}
	wait = min(wait, catalog.MaxQueryWait)
	block := time.NewTimer(wait)
	defer block.Stop()
	for {
		m.mu.Lock()
		e.lastUsed = time.Now()
		cert, err, changed, idx := e.cert, e.err, e.changed, m.index
		if cert != nil {
			idx = cert.ModifyIndex
		}
		m.mu.Unlock()
		switch {
		case cert == nil:
			select {
			case <-changed:
				continue
			case <-first.C:
				if err == nil {
					err = errors.New("no leaf certificate yet")
				}
				return nil, catalog.QueryMeta{}, fmt.Errorf("leaf certificate for %q: %w", service, err)
			case <-ctx.Done():
				return nil, catalog.QueryMeta{}, ctx.Err()
			}
		case q.MinIndex != 0 && q.MinIndex == idx:
			select {
			case <-changed:
				continue
			case <-block.C:
			case <-ctx.Done():
				return nil, catalog.QueryMeta{}, ctx.Err()
			}
		}
		out := *cert
		return &out, catalog.QueryMeta{Index: out.ModifyIndex, KnownLeader: true}, nil
	}
}

// Current returns the service's leaf without waiting, nil while there is
// none yet, starting its renewal loop on first use.
func (m *leafManager) Current(service string) *api.LeafCert {
	e := m.entry(service)
	m.mu.Lock()
	defer m.mu.Unlock()
	e.lastUsed = time.Now()
	return e.cert
}

// Changed returns a channel closed at the next change of any leaf.
func (m *leafManager) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.anyChanged
}

// entry returns the service's cache entry, starting its renewal loop.
func (m *leafManager) entry(service string) *leafEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e, ok := m.leaves[service]; ok {
		return e
	}
	e := &leafEntry{service: service, renew: make(chan struct{}, 1), changed: make(chan struct{}), lastUsed: time.Now()}
	m.leaves[service] = e
	go m.renewLoop(e)
	return e
}

func (m *leafManager) drop(e *leafEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.leaves[e.service] == e {
		delete(m.leaves, e.service)
	}
	close(e.changed)
	e.changed = make(chan struct{})
}

// renewLoop keeps a service's leaf fresh until the service leaves this
// agent, nobody asked for the leaf in leafIdleAfter, or the agent stops.
func (m *leafManager) renewLoop(e *leafEntry) {
	backoff := leafBackoffMin
	for {
		if !m.registered(e.service) {
			m.drop(e)
			return
		}
		m.mu.Lock()
		idle := time.Since(e.lastUsed) > leafIdleAfter
		m.mu.Unlock()
		if idle {
			m.drop(e)
			return
		}
		issued := time.Now()
		cert, rootID, err := m.fetch(e.service)
		m.mu.Lock()
		if err == nil {
			m.index++
			cert.CreateIndex, cert.ModifyIndex = m.index, m.index
			e.cert, e.rootID, e.err = cert, rootID, nil
		} else {
			e.err = err
		}
		close(e.changed)
		e.changed = make(chan struct{})
		close(m.anyChanged)
		m.anyChanged = make(chan struct{})
		m.mu.Unlock()

		var next time.Duration
		switch {
		case errors.Is(err, catalog.ErrRateLimited):
			// The leader is busy signing, not down: retry within a few
			// seconds at a random point (full jitter), so the agents that
			// were refused share the leader's rate instead of backing
			// off past their callers' patience.
			backoff = min(2*backoff, leafRateLimitedMax)
			next = time.Duration(rand.Int64N(int64(backoff) + 1))
			m.log.Debug("leaf certificate request rate-limited; retrying", "service", e.service, "in", next)
		case err != nil:
			m.log.Warn("leaf certificate request failed; retrying", "service", e.service, "in", backoff, "err", err)
			next = jitter(backoff)
			backoff = min(2*backoff, leafBackoffMax)
		default:
			backoff = leafBackoffMin
			// The servers backdate NotBefore (clock skew): count the
			// lifetime from when we asked, or a leaf of a few seconds
			// would be due for renewal at once, again and again.
			from := cert.ValidAfter
			if issued.After(from) {
				from = issued
			}
			next = time.Until(connect.RenewAt(from, cert.ValidBefore, nil))
			m.log.Debug("leaf certificate renewed", "service", e.service, "serial", cert.SerialNumber, "renew_in", next)
		}
		t := time.NewTimer(max(next, 0))
		select {
		case <-m.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-e.renew:
			t.Stop()
			// Spread the renewals a root rotation causes.
			if !sleepCtx(m.ctx, time.Duration(rand.Int64N(int64(500*time.Millisecond)))) {
				return
			}
		}
	}
}

// fetch makes a key and a CSR and has the servers sign it.
func (m *leafManager) fetch(service string) (*api.LeafCert, string, error) {
	// The trust domain is the servers' business: the CSR's ID needs one,
	// and the servers check the whole ID, so ask them which.
	ctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
	defer cancel()
	id, err := m.serviceID(ctx, service)
	if err != nil {
		return nil, "", err
	}
	keyPEM, csr, err := connect.NewCSR(id, nil, crand.Reader)
	if err != nil {
		return nil, "", err
	}
	r, err := m.sign(ctx, &rpc.SignRequest{Node: m.node, Service: service, CSR: csr})
	if err != nil {
		return nil, "", err
	}
	return &api.LeafCert{
		SerialNumber: r.SerialNumber, CertPEM: r.CertPEM, PrivateKeyPEM: keyPEM,
		Service: r.Service, ServiceURI: r.ServiceURI, ValidAfter: r.ValidAfter, ValidBefore: r.ValidBefore,
	}, r.RootID, nil
}

// serviceID is the SPIFFE ID the servers will sign for the service.
func (m *leafManager) serviceID(ctx context.Context, service string) (spiffeid.ID, error) {
	m.mu.Lock()
	td := m.td
	m.mu.Unlock()
	if td == "" {
		_, t, _, err := m.roots(ctx, 0)
		if err != nil {
			return spiffeid.ID{}, err
		}
		if t == "" {
			return spiffeid.ID{}, errors.New("the cluster has no CA root yet")
		}
		td = t
		m.mu.Lock()
		m.td = t
		m.mu.Unlock()
	}
	return connect.ServiceIDErr(td, connect.DefaultNamespace, m.dc, service)
}

func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
