package server

import (
	"context"
	crand "crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/internal/metrics"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server/fsm"
)

// The CA lives in the cluster metadata: the roots (with their keys, which
// every server needs to sign after a failover) under metaCARoots as a JSON
// list of connect.Root, the configuration under metaCAConfig as a JSON
// connect.CAConfig. Both change in one MetaBatch command. Only the leader
// writes them: it generates keys and certificates and commits the result,
// the FSM only stores it.
const (
	metaCARoots  = "ca_roots"
	metaCAConfig = "ca_config"
)

// DefaultCSRMaxPerSecond is the default rate limit of leaf signing on the
// leader, Consul's.
const DefaultCSRMaxPerSecond = 50

// caState is the leader's CA machinery: a lock that serializes CA changes,
// the signer of the active root (parsed once), and the signing rate limit.
type caState struct {
	mu sync.Mutex // serializes CA writes on the leader

	signerMu sync.Mutex
	signer   built[*connect.Signer] // for root ID + signing key ID
	// The decoded active root and config, for signing, valid while the
	// roots' and config's meta rows keep these modify indexes.
	signAt     [2]uint64
	signActive *connect.Root
	signCfg    connect.CAConfig
	signIdx    uint64

	jwtSigner built[*connect.JWTSigner] // for root ID + JWT key ID

	limiter   *rate.Limiter
	limitMu   sync.Mutex
	limitRate float64 // the limiter's rate; negative: none

	signed     prometheus.Counter
	refused    *prometheus.CounterVec
	jwtSigned  prometheus.Counter
	jwtRefused *prometheus.CounterVec
}

func newCAState(reg prometheus.Registerer, perSecond float64) *caState {
	c := &caState{
		signed: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "connect", Name: "leaves_signed_total",
			Help: "Leaf certificates signed by this server as leader."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "connect", Name: "csr_refused_total",
			Help: "Signing requests refused, by reason."}, []string{"reason"}),
		jwtSigned: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "warren", Subsystem: "connect", Name: "jwt_svids_signed_total",
			Help: "JWT-SVIDs signed by this server as leader."}),
		jwtRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "warren", Subsystem: "connect", Name: "jwt_refused_total",
			Help: "JWT-SVID requests refused, by reason."}, []string{"reason"}),
		limiter: rate.NewLimiter(rate.Inf, 0),
	}
	c.setRate(csrRate(0, perSecond))
	metrics.Or(reg).MustRegister(c.signed, c.refused, c.jwtSigned, c.jwtRefused)
	return c
}

// csrRate is the signing rate limit in force: the CA config's (set through
// the API) if set, else the server's (csr_max_per_second), else Consul's
// default. Negative means no limit.
func csrRate(fromCA, fromServer float64) float64 {
	r := fromCA
	if r == 0 {
		r = fromServer
	}
	switch {
	case r == 0:
		return DefaultCSRMaxPerSecond
	case r < 0:
		return -1
	}
	return r
}

// setRate changes the limiter's rate when it differs from r.
func (c *caState) setRate(r float64) {
	c.limitMu.Lock()
	defer c.limitMu.Unlock()
	if r == c.limitRate {
		return
	}
	c.limitRate = r
	if r < 0 {
		c.limiter.SetLimit(rate.Inf)
		return
	}
	c.limiter.SetLimit(rate.Limit(r))
	c.limiter.SetBurst(max(1, int(math.Ceil(r))))
}

// loadCA reads the roots and the configuration; idx is the roots' index.
// A missing config reads as the defaults.
func (s *Server) loadCA(ws memdb.WatchSet) (roots []*connect.Root, cfg connect.CAConfig, idx uint64, err error) {
	idx, e, err := s.store.MetaEntry(ws, metaCARoots)
	if err != nil {
		return nil, cfg, 0, err
	}
	if e != nil {
		if err := json.Unmarshal([]byte(e.Value), &roots); err != nil {
			return nil, cfg, 0, fmt.Errorf("decode CA roots: %w", err)
		}
		for _, r := range roots {
			// A root's indexes are those of the write that created or last
			// changed it: the leader leaves them zero in that write.
			if r.CreateIndex == 0 {
				r.CreateIndex = e.ModifyIndex
			}
			if r.ModifyIndex == 0 {
				r.ModifyIndex = e.ModifyIndex
			}
		}
	}
	_, c, err := s.store.MetaEntry(nil, metaCAConfig)
	if err != nil {
		return nil, cfg, 0, err
	}
	if c != nil {
		if err := json.Unmarshal([]byte(c.Value), &cfg); err != nil {
			return nil, cfg, 0, fmt.Errorf("decode CA config: %w", err)
		}
	}
	return roots, cfg.WithDefaults(), idx, nil
}

// commitCA writes roots and config in one command.
func (s *Server) commitCA(ctx context.Context, roots []*connect.Root, cfg connect.CAConfig) error {
	rb, err := json.Marshal(roots)
	if err != nil {
		return fmt.Errorf("encode CA roots: %w", err)
	}
	cb, err := json.Marshal(cfg.WithDefaults())
	if err != nil {
		return fmt.Errorf("encode CA config: %w", err)
	}
	return s.applyCommand(ctx, fsm.MetaBatchType, fsm.MetaBatch{Set: []fsm.SetMeta{
		{Key: metaCARoots, Value: string(rb)},
		{Key: metaCAConfig, Value: string(cb)},
	}})
}

// hasKeys reports whether a root can sign (a root restored from a snapshot
// archive has no keys).
func hasKeys(r *connect.Root) bool { return r != nil && r.RootKeyPEM != "" && r.SigningKeyPEM != "" }

// ensureCA runs on the leader: once the cluster has an ID and no active root
// with keys (a new cluster, or a snapshot archive restored without keys), it
// creates a root. Roots restored without keys stay in the bundle as
// rotated-out roots for one leaf TTL, so leaves they signed keep verifying
// while agents renew against the new root (they cannot be cross-signed).
func (s *Server) ensureCA(ctx context.Context) error {
	cid, ok := s.store.Meta(metaClusterID)
	if !ok || cid == "" {
		return nil
	}
	s.ca.mu.Lock()
	defer s.ca.mu.Unlock()
	roots, cfg, _, err := s.loadCA(nil)
	if err != nil {
		return err
	}
	active := connect.ActiveRoot(roots)
	if hasKeys(active) {
		if active.JWTKeyPEM != "" {
			return nil
		}
		return s.addJWTKey(ctx, roots, active, cfg)
	}
	now := time.Now()
	td := connect.TrustDomain(cid)
	if active != nil && active.TrustDomain != "" {
		td = active.TrustDomain
	}
	root, err := connect.NewRoot(cfg, td, now, crand.Reader)
	if err != nil {
		return fmt.Errorf("create CA root: %w", err)
	}
	var keep []*connect.Root
	for _, r := range roots {
		c := *r
		if c.Active || c.RotatedOutAt.IsZero() {
			c.Active = false
			c.RotatedOutAt = now
			c.TrustUntil = now.Add(cfg.CredentialTTL() + time.Minute)
			if c.TrustUntil.After(c.NotAfter) {
				c.TrustUntil = c.NotAfter
			}
			c.ModifyIndex = 0
		}
		if c.TrustedAt(now) {
			keep = append(keep, &c)
		}
	}
	keep = append(keep, root)
	if err := s.commitCA(ctx, keep, cfg); err != nil {
		return fmt.Errorf("commit CA root: %w", err)
	}
	s.log.Info("created CA root", "root", root, "trust_domain", td, "replaced_keyless", len(roots))
	return nil
}

// addJWTKey gives the active root a JWT key: roots made before JWT-SVIDs
// have none. The caller holds s.ca.mu.
func (s *Server) addJWTKey(ctx context.Context, roots []*connect.Root, active *connect.Root, cfg connect.CAConfig) error {
	c := *active
	if err := connect.NewJWTKey(&c, crand.Reader); err != nil {
		return err
	}
	c.ModifyIndex = 0
	out := make([]*connect.Root, len(roots))
	for i, r := range roots {
		out[i] = r
		if r.ID == active.ID {
			out[i] = &c
		}
	}
	if err := s.commitCA(ctx, out, cfg); err != nil {
		return fmt.Errorf("commit JWT key: %w", err)
	}
	s.log.Info("added a JWT-SVID key to the active CA root", "root", c.ID, "kid", c.JWTKeyID)
	return nil
}

// pruneCA drops roots that left the trust bundle; the leader runs it now
// and then.
func (s *Server) pruneCA(ctx context.Context) error {
	s.ca.mu.Lock()
	defer s.ca.mu.Unlock()
	roots, cfg, _, err := s.loadCA(nil)
	if err != nil || len(roots) == 0 {
		return err
	}
	keep := connect.Prune(roots, time.Now())
	if len(keep) == len(roots) || connect.ActiveRoot(keep) == nil {
		return nil
	}
	return s.commitCA(ctx, keep, cfg)
}

// serialUint64 is the low 64 bits of a colon-hex serial number: Consul's
// CARoot.SerialNumber is a uint64.
func serialUint64(colonHex string) uint64 {
	b, err := hex.DecodeString(strings.ReplaceAll(colonHex, ":", ""))
	if err != nil {
		return 0
	}
	var v uint64
	for _, x := range b[max(0, len(b)-8):] {
		v = v<<8 | uint64(x)
	}
	return v
}

func publicRoot(r *connect.Root) rpc.CARoot {
	p := r.Public()
	return rpc.CARoot{
		ID: p.ID, Name: p.Name, SerialNumber: serialUint64(r.SerialNumber), SigningKeyID: p.SigningKeyID,
		ExternalTrustDomain: p.ExternalTrustDomain, NotBefore: p.NotBefore, NotAfter: p.NotAfter,
		RootCert: p.RootCertPEM, IntermediateCerts: p.IntermediateCertPEMs, Active: p.Active,
		RotatedOutAt: p.RotatedOutAt, PrivateKeyType: p.PrivateKeyType, PrivateKeyBits: p.PrivateKeyBits,
		CreateIndex: p.CreateIndex, ModifyIndex: p.ModifyIndex,
	}
}

// blockingQuery runs read until its index differs from opts.MinIndex or
// the wait ends, as blockingRead does for catalog reads.
func (s *Server) blockingQuery(ctx context.Context, opts catalog.QueryOptions, read func(ws memdb.WatchSet) (uint64, error)) (catalog.QueryMeta, error) {
	if opts.Consistency == catalog.ConsistencyConsistent {
		if err := s.raft.VerifyLeader().Error(); err != nil {
			return catalog.QueryMeta{}, fmt.Errorf("%w: verify leadership: %v", catalog.ErrNoLeader, err)
		}
	}
	wait := opts.MaxWait
	if wait <= 0 {
		wait = catalog.DefaultQueryWait
	}
	wait = min(wait, catalog.MaxQueryWait)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for {
		ws := memdb.NewWatchSet()
		ws.Add(s.store.AbandonCh())
		idx, err := read(ws)
		if err != nil {
			return catalog.QueryMeta{}, err
		}
		meta := s.queryMeta(max(idx, 1))
		if opts.MinIndex == 0 || meta.Index != opts.MinIndex {
			return meta, nil
		}
		s.metrics.watchers.Inc()
		err = ws.WatchCtx(ctx)
		s.metrics.watchers.Dec()
		if err != nil {
			return meta, nil
		}
	}
}

func (s *Server) readCARoots(ctx context.Context, req *rpc.ReadRequest) (*rpc.CARootsReply, error) {
	reply := &rpc.CARootsReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		roots, _, idx, err := s.loadCA(ws)
		if err != nil {
			return 0, err
		}
		*reply = rpc.CARootsReply{Roots: []rpc.CARoot{}}
		now := time.Now()
		for _, r := range roots {
			if !r.TrustedAt(now) {
				continue
			}
			reply.TrustDomain = r.TrustDomain
			if r.Active {
				reply.ActiveRootID = r.ID
			}
			reply.Roots = append(reply.Roots, publicRoot(r))
		}
		for _, k := range connect.JWTKeys(roots, now) {
			reply.JWTKeys = append(reply.JWTKeys, rpc.JWTKey(k))
		}
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	reply.Meta = meta
	return reply, nil
}

func (s *Server) readCAConfig(ctx context.Context, req *rpc.ReadRequest) (*rpc.CAConfigReply, error) {
	reply := &rpc.CAConfigReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		idx, e, err := s.store.MetaEntry(ws, metaCAConfig)
		if err != nil {
			return 0, err
		}
		cfg := connect.CAConfig{}
		if e != nil {
			if err := json.Unmarshal([]byte(e.Value), &cfg); err != nil {
				return 0, fmt.Errorf("decode CA config: %w", err)
			}
			reply.CreateIndex, reply.ModifyIndex = e.CreateIndex, e.ModifyIndex
		}
		reply.Config = rpc.CAConfig(cfg.WithDefaults())
		// The rate in force, whether set through the API or not.
		reply.Config.CSRMaxPerSecond = csrRate(cfg.CSRMaxPerSecond, s.cfg.CSRMaxPerSecond)
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	reply.Meta = meta
	return reply, nil
}

// localSetCAConfig changes the CA configuration on the leader. A new key
// type or size, or Rotate, creates a new root and rotates to it: the new
// root is cross-signed by the old one, and the old one stays in the bundle
// until every leaf it signed has expired.
func (s *Server) localSetCAConfig(ctx context.Context, req *rpc.CAConfigSetRequest) (*rpc.Empty, error) {
	newCfg := connect.CAConfig(req.Config)
	if err := newCfg.Validate(); err != nil {
		return nil, err
	}
	newCfg = newCfg.WithDefaults()
	s.ca.mu.Lock()
	defer s.ca.mu.Unlock()
	roots, oldCfg, _, err := s.loadCA(nil)
	if err != nil {
		return nil, err
	}
	active := connect.ActiveRoot(roots)
	if active == nil {
		return nil, fmt.Errorf("%w: the CA has no root yet", catalog.ErrNoLeader)
	}
	rotate := req.Rotate || newCfg.KeyType != oldCfg.KeyType || newCfg.KeyBits != oldCfg.KeyBits
	if !rotate {
		if newCfg == oldCfg {
			return &rpc.Empty{}, nil
		}
		if err := s.commitCA(ctx, roots, newCfg); err != nil {
			return nil, fmt.Errorf("commit CA config: %w", err)
		}
		s.log.Info("CA configuration changed", "leaf_ttl", newCfg.LeafTTL, "key_type", newCfg.KeyType)
		return &rpc.Empty{}, nil
	}
	now := time.Now()
	newRoot, err := connect.NewRoot(newCfg, active.TrustDomain, now, crand.Reader)
	if err != nil {
		return nil, fmt.Errorf("create CA root: %w", err)
	}
	old := *active
	if hasKeys(active) {
		if err := connect.Rotate(&old, newRoot, oldCfg.CredentialTTL(), now, crand.Reader); err != nil {
			return nil, fmt.Errorf("rotate CA root: %w", err)
		}
	} else {
		old.Active, old.RotatedOutAt = false, now
		old.TrustUntil = now.Add(oldCfg.CredentialTTL() + time.Minute)
	}
	old.ModifyIndex = 0
	var out []*connect.Root
	for _, r := range roots {
		if r.ID == active.ID {
			r = &old
		}
		if r.TrustedAt(now) {
			out = append(out, r)
		}
	}
	out = append(out, newRoot)
	if err := s.commitCA(ctx, out, newCfg); err != nil {
		return nil, fmt.Errorf("commit CA rotation: %w", err)
	}
	s.log.Info("CA root rotated", "old", old.ID, "new", newRoot, "old_trusted_until", old.TrustUntil)
	return &rpc.Empty{}, nil
}

// built is a value built for a key (a root and one of its keys), kept
// until the key changes.
type built[T any] struct {
	v   T
	key string
}

// get returns the value built for key, building it if needed; the caller
// holds the lock that guards b.
func (b *built[T]) get(key string, build func() (T, error)) (T, error) {
	if b.key == key && key != "" {
		return b.v, nil
	}
	v, err := build()
	if err != nil {
		return v, err
	}
	b.v, b.key = v, key
	return v, nil
}

// signer returns the cached signer of the active root, rebuilding it when
// the active root or its signing key changed.
func (s *Server) signer(active *connect.Root) (*connect.Signer, error) {
	s.ca.signerMu.Lock()
	defer s.ca.signerMu.Unlock()
	return s.ca.signer.get(active.ID+"/"+active.SigningKeyID, func() (*connect.Signer, error) { return connect.NewSigner(active) })
}

// signingCA returns the active root and the CA config, decoding them only
// when their rows changed: signing is the hot path of the CA, and decoding
// every root (keys included) per request was most of its cost. The result
// is read-only.
func (s *Server) signingCA() (*connect.Root, connect.CAConfig, uint64, error) {
	_, re, err := s.store.MetaEntry(nil, metaCARoots)
	if err != nil {
		return nil, connect.CAConfig{}, 0, err
	}
	_, ce, err := s.store.MetaEntry(nil, metaCAConfig)
	if err != nil {
		return nil, connect.CAConfig{}, 0, err
	}
	var at [2]uint64
	if re != nil {
		at[0] = re.ModifyIndex
	}
	if ce != nil {
		at[1] = ce.ModifyIndex
	}
	s.ca.signerMu.Lock()
	if s.ca.signActive != nil && s.ca.signAt == at {
		active, cfg, idx := s.ca.signActive, s.ca.signCfg, s.ca.signIdx
		s.ca.signerMu.Unlock()
		return active, cfg, idx, nil
	}
	s.ca.signerMu.Unlock()
	roots, cfg, idx, err := s.loadCA(nil)
	if err != nil {
		return nil, cfg, 0, err
	}
	active := connect.ActiveRoot(roots)
	s.ca.signerMu.Lock()
	s.ca.signAt, s.ca.signActive, s.ca.signCfg, s.ca.signIdx = at, active, cfg, idx
	s.ca.signerMu.Unlock()
	return active, cfg, idx, nil
}

// localSign signs a leaf for a service registered on the requesting node.
// Refusals are counted by reason and logged without the CSR.
func (s *Server) localSign(_ context.Context, req *rpc.SignRequest) (reply *rpc.SignReply, err error) {
	defer func() {
		if err == nil {
			s.ca.signed.Inc()
			return
		}
		reason := refusalReason(err)
		s.ca.refused.WithLabelValues(reason).Inc()
		s.log.Warn("refused to sign a leaf", "node", req.Node, "service", req.Service, "reason", reason, "err", err.Error())
	}()
	active, cfg, idx, err := s.signingCA()
	if err != nil {
		return nil, err
	}
	s.ca.setRate(csrRate(cfg.CSRMaxPerSecond, s.cfg.CSRMaxPerSecond))
	if !s.ca.limiter.Allow() {
		return nil, fmt.Errorf("sign leaf: %w", catalog.ErrRateLimited)
	}
	if err := s.checkNodeService(req.Node, req.Service); err != nil {
		return nil, err
	}
	if !hasKeys(active) {
		return nil, fmt.Errorf("%w: the CA has no active root yet", catalog.ErrNoLeader)
	}
	id, err := connect.ServiceIDErr(active.TrustDomain, connect.DefaultNamespace, s.cfg.Datacenter, req.Service)
	if err != nil {
		return nil, &connect.SignError{Reason: connect.ReasonInvalidRequest, Detail: err.Error()}
	}
	sg, err := s.signer(active)
	if err != nil {
		return nil, err
	}
	dnsNames := []string{req.Service, req.Service + ".service.warren", req.Service + ".service." + s.cfg.Datacenter + ".warren"}
	certPEM, serial, err := sg.Sign(req.CSR, id, dnsNames, cfg.LeafTTL, time.Now(), crand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := parseSigned(certPEM)
	if err != nil {
		return nil, fmt.Errorf("sign leaf: %w", err)
	}
	return &rpc.SignReply{
		SerialNumber: serial, CertPEM: certPEM, Service: req.Service, ServiceURI: id.String(),
		ValidAfter: cert.NotBefore, ValidBefore: cert.NotAfter, RootID: active.ID,
		CreateIndex: idx, ModifyIndex: idx,
	}, nil
}

// parseSigned parses the leaf at the head of a signer's output.
func parseSigned(certPEM string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(certPEM))
	if block == nil {
		return nil, errors.New("no certificate in the signer's output")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse the signed certificate: %w", err)
	}
	return cert, nil
}

// checkNodeService checks that service is registered on node: a node may
// have certificates and tokens signed only for its own services.
func (s *Server) checkNodeService(nodeName, service string) error {
	if nodeName == "" {
		return &catalog.FieldError{Field: "Node", Reason: "missing"}
	}
	if service == "" {
		return &catalog.FieldError{Field: "Service", Reason: "missing"}
	}
	_, node, svcs, err := s.store.NodeServices(nil, nodeName)
	if err != nil {
		return err
	}
	if node == nil {
		return &connect.SignError{Reason: connect.ReasonInvalidRequest, Detail: fmt.Sprintf("node %q is not in the catalog", nodeName)}
	}
	for _, sv := range svcs {
		if sv.Name == service {
			return nil
		}
	}
	return &connect.SignError{Reason: connect.ReasonWrongID, Detail: fmt.Sprintf("service %q is not registered on node %q", service, nodeName)}
}

// refusalReason is the metric label of a refused signing request.
func refusalReason(err error) string {
	reason := string(connect.ReasonOf(err))
	switch {
	case errors.Is(err, catalog.ErrRateLimited):
		reason = "rate_limited"
	case reason == "" && errors.Is(err, catalog.ErrInvalid):
		reason = "invalid_request"
	case reason == "":
		reason = "internal"
	}
	return reason
}

// jwtSignerOf returns the cached JWT signer of the active root.
func (s *Server) jwtSignerOf(active *connect.Root) (*connect.JWTSigner, error) {
	s.ca.signerMu.Lock()
	defer s.ca.signerMu.Unlock()
	return s.ca.jwtSigner.get(active.ID+"/"+active.JWTKeyID, func() (*connect.JWTSigner, error) { return connect.NewJWTSigner(active) })
}

// localSignJWT signs a JWT-SVID for a service registered on the requesting
// node, valid for the CA config's JWTTTL. Refusals are counted by reason.
func (s *Server) localSignJWT(_ context.Context, req *rpc.SignJWTRequest) (reply *rpc.SignJWTReply, err error) {
	defer func() {
		if err == nil {
			s.ca.jwtSigned.Inc()
			return
		}
		reason := refusalReason(err)
		s.ca.jwtRefused.WithLabelValues(reason).Inc()
		s.log.Warn("refused to sign a JWT-SVID", "node", req.Node, "service", req.Service, "reason", reason, "err", err.Error())
	}()
	if err := connect.ValidateAudience(req.Audience); err != nil {
		return nil, err
	}
	if err := s.checkNodeService(req.Node, req.Service); err != nil {
		return nil, err
	}
	active, cfg, _, err := s.signingCA()
	if err != nil {
		return nil, err
	}
	if active == nil || active.JWTKeyPEM == "" {
		return nil, fmt.Errorf("%w: the CA has no JWT key yet", catalog.ErrNoLeader)
	}
	id, err := connect.ServiceIDErr(active.TrustDomain, connect.DefaultNamespace, s.cfg.Datacenter, req.Service)
	if err != nil {
		return nil, &connect.SignError{Reason: connect.ReasonInvalidRequest, Detail: err.Error()}
	}
	sg, err := s.jwtSignerOf(active)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tok, exp, err := sg.Sign(id, req.Audience, cfg.JWTTTL, now)
	if err != nil {
		return nil, err
	}
	return &rpc.SignJWTReply{Token: tok, ServiceURI: id.String(), IssuedAt: now, ExpiresAt: exp}, nil
}
