package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/connect/workload"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/rpc"
)

// The SPIFFE Workload API (package connect/workload) serves the leaves of
// the local services whose Identity selectors match a caller's unix peer
// credentials. The agent keeps the selectors of its services, follows the
// trust bundle with a blocking query on the servers' CA roots, and reads
// leaves from the leaf cache, which renews them in the background.

// workloadSelector is a service's Identity, as the agent matches it.
type workloadSelector struct {
	name string // service name: leaves are per name
	uid  *uint32
	path string
}

func (s workloadSelector) matches(c workload.Caller) bool {
	if s.uid == nil && s.path == "" {
		return false
	}
	if s.uid != nil && *s.uid != c.UID {
		return false
	}
	return s.path == "" || s.path == c.Path
}

// maxUID is the largest valid uid ((uid_t)-1 means "no uid").
const maxUID = 1<<32 - 2

// validateIdentity checks a registration's Identity block.
func validateIdentity(id *api.AgentServiceIdentity) error {
	if id == nil {
		return nil
	}
	if id.UID == nil && id.Path == "" {
		return &catalog.FieldError{Field: "Identity", Reason: "set UID, Path or both"}
	}
	if id.UID != nil && (*id.UID < 0 || *id.UID > maxUID) {
		return &catalog.FieldError{Field: "Identity.UID", Reason: fmt.Sprintf("%d is not a uid (0..%d)", *id.UID, maxUID)}
	}
	if id.Path != "" && (!filepath.IsAbs(id.Path) || filepath.Clean(id.Path) != id.Path) {
		return &catalog.FieldError{Field: "Identity.Path", Reason: fmt.Sprintf("%q is not a clean absolute path", id.Path)}
	}
	return nil
}

// setIdentity records (id non-nil) or forgets the selectors of a local
// service.
func (a *Agent) setIdentity(svc *catalog.Service, id *api.AgentServiceIdentity) {
	a.mu.Lock()
	old, had := a.identities[svc.ID]
	var sel workloadSelector
	if id != nil {
		sel = workloadSelector{name: svc.Name, path: id.Path}
		if id.UID != nil {
			u := uint32(*id.UID)
			sel.uid = &u
		}
		a.identities[svc.ID] = sel
	} else {
		delete(a.identities, svc.ID)
	}
	changed := had != (id != nil) || (had && !sameSelector(old, sel))
	if changed {
		close(a.identitiesChanged)
		a.identitiesChanged = make(chan struct{})
	}
	a.mu.Unlock()
}

// warmIdentities starts (or keeps alive) the leaves of every service with
// selectors, so that its workloads do not wait for a signature on their
// first call. It runs after each successful sync with the servers: before
// that, the servers would refuse to sign for a service they do not know.
func (a *Agent) warmIdentities() {
	a.mu.Lock()
	names := make([]string, 0, len(a.identities))
	for _, s := range a.identities {
		names = append(names, s.name)
	}
	a.mu.Unlock()
	for _, n := range names {
		a.leaves.Current(n)
	}
}

func sameSelector(x, y workloadSelector) bool {
	return x.name == y.name && x.path == y.path && (x.uid == nil) == (y.uid == nil) && (x.uid == nil || *x.uid == *y.uid)
}

// workloadServices returns the names of the local services that select c,
// and a channel closed at the next change of any selector.
func (a *Agent) workloadServices(c workload.Caller) ([]string, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var names []string
	for _, s := range a.identities {
		if s.matches(c) && !slices.Contains(names, s.name) {
			names = append(names, s.name)
		}
	}
	sort.Strings(names)
	return names, a.identitiesChanged
}

// WorkloadAPI serves the SPIFFE Workload API of this agent.
type WorkloadAPI struct {
	a   *Agent
	ln  net.Listener
	log *slog.Logger

	jwt jwtCache

	mu        sync.Mutex
	td        string
	roots     []string
	jwtKeys   []rpc.JWTKey
	jwtBundle *jwtbundle.Bundle
	changed   chan struct{} // closed at the next change of anything served
}

// WorkloadAPI returns the Workload API served on ln (see
// workload.Listen); Run serves it.
func (a *Agent) WorkloadAPI(ln net.Listener, log *slog.Logger) *WorkloadAPI {
	if log == nil {
		log = a.log
	}
	return &WorkloadAPI{a: a, ln: ln, log: log, changed: make(chan struct{})}
}

// Run serves the Workload API and follows what it serves until ctx ends.
func (w *WorkloadAPI) Run(ctx context.Context) error {
	srv := workload.NewServer(w, w.log)
	return task.Run(ctx, w.followRoots, w.followLocal, func(ctx context.Context) error {
		return workload.Serve(ctx, w.ln, srv)
	})
}

// Snapshot implements workload.Source.
func (w *WorkloadAPI) Snapshot(c workload.Caller) workload.Snapshot {
	// Take the change channel first: a change after this point closes it.
	w.mu.Lock()
	snap := workload.Snapshot{TrustDomain: w.td, RootPEMs: w.roots, JWTBundle: w.jwtBundle, Changed: w.changed}
	w.mu.Unlock()
	names, _ := w.a.workloadServices(c)
	snap.Matched = len(names) > 0
	for _, name := range names {
		if cert := w.a.leaves.Current(name); cert != nil && cert.ServiceURI != "" {
			snap.SVIDs = append(snap.SVIDs, workload.SVID{ID: cert.ServiceURI, CertPEM: cert.CertPEM, KeyPEM: cert.PrivateKeyPEM})
		} else {
			snap.Pending++
		}
	}
	return snap
}

func (w *WorkloadAPI) bump() {
	w.mu.Lock()
	close(w.changed)
	w.changed = make(chan struct{})
	w.mu.Unlock()
}

// followLocal wakes the streams on every change of a leaf or a selector.
func (w *WorkloadAPI) followLocal(ctx context.Context) error {
	for {
		leaves := w.a.leaves.Changed()
		_, selectors := w.a.workloadServices(workload.Caller{})
		select {
		case <-ctx.Done():
			return nil
		case <-leaves:
		case <-selectors:
		}
		w.bump()
	}
}

// followRoots keeps the trust bundle (every trusted root, during a
// rotation the old and the new) current.
func (w *WorkloadAPI) followRoots(ctx context.Context) error {
	var idx uint64
	backoff := leafBackoffMin
	for ctx.Err() == nil {
		var r rpc.CARootsReply
		q := catalog.QueryOptions{MinIndex: idx, MaxWait: 5 * time.Minute}
		if err := w.a.router.call(ctx, rpc.MethodCARoots, &rpc.ReadRequest{Options: q}, &r); err != nil {
			w.log.Debug("CA roots watch failed; retrying", "in", backoff, "err", err)
			if !sleepCtx(ctx, jitter(backoff)) {
				return nil
			}
			backoff = min(2*backoff, leafBackoffMax)
			continue
		}
		backoff = leafBackoffMin
		if r.Meta.Index < idx {
			idx = 0 // the servers' state was restored: start over
		} else {
			idx = max(r.Meta.Index, 1)
		}
		var pems []string
		for _, root := range r.Roots {
			if root.RootCert != "" {
				pems = append(pems, root.RootCert)
			}
		}
		w.mu.Lock()
		changed := w.td != r.TrustDomain || !slices.Equal(w.roots, pems)
		if changed {
			w.td, w.roots = r.TrustDomain, pems
		}
		if r.TrustDomain != "" && (changed || !slices.Equal(w.jwtKeys, r.JWTKeys)) {
			keys := make([]connect.JWTKey, len(r.JWTKeys))
			for i, k := range r.JWTKeys {
				keys[i] = connect.JWTKey(k)
			}
			if b, err := connect.JWTBundle(r.TrustDomain, keys); err != nil {
				w.log.Error("JWT bundle from the servers", "err", err)
			} else {
				w.jwtKeys, w.jwtBundle = r.JWTKeys, b
				changed = true
				// New tokens from the new key at once; those handed out
				// stay valid while the old key is in the bundle.
				w.jwt.clear()
			}
		}
		w.mu.Unlock()
		if changed {
			w.log.Debug("trust bundle changed", "trust_domain", r.TrustDomain, "roots", len(pems))
			w.bump()
		}
	}
	return nil
}
