package server

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server/fsm"
)

// ACLConfig is the servers' access control configuration.
type ACLConfig struct {
	// Enabled turns enforcement on; off, every request is allowed.
	Enabled bool
	// DefaultAllow is default_policy = "allow": what a token may do where
	// no rule says.
	DefaultAllow bool
	// InitialManagementToken is a secret the leader makes a management
	// token of at its first leadership if no token has it yet (Consul's
	// acl.tokens.initial_management). Never logged.
	InitialManagementToken string
}

// ACL objects live in the cluster metadata, one key per object, plus index
// keys, all in one tombstone scope ("acl/") so blocking lists see
// deletions:
//
//	acl/token/<accessor>  JSON acl.Token (the secret's SHA-256 only)
//	acl/secret/<sha256>   accessor
//	acl/policy/<id>       JSON acl.Policy; acl/policyname/<name> -> id
//	acl/role/<id>         JSON acl.Role;   acl/rolename/<name>   -> id
//	acl/bootstrap         accessor of the bootstrap token, once done
//	acl/gen               changes with every ACL write: caches key on it
const (
	aclPrefix           = "acl/"
	aclTokenPrefix      = "acl/token/"
	aclSecretPrefix     = "acl/secret/"
	aclPolicyPrefix     = "acl/policy/"
	aclPolicyNamePrefix = "acl/policyname/"
	aclRolePrefix       = "acl/role/"
	aclRoleNamePrefix   = "acl/rolename/"
	aclBootstrapKey     = "acl/bootstrap"
	aclGenKey           = "acl/gen"
)

// aclState is the server's ACL configuration and caches.
type aclState struct {
	cfg ACLConfig
	// localSecret is a process-local secret that resolves to management:
	// the agent that runs in this server's process uses it. Never stored,
	// never sent to another process.
	localSecret string
	// mu serializes ACL writes on the leader, so uniqueness checks (names,
	// secrets, bootstrap) and the write they guard are atomic.
	mu sync.Mutex

	cacheMu sync.Mutex
	cache   map[string]cachedIdentity // by secret hash

	// askLeader bounds the resolutions a follower forwards to the leader
	// at once, so that a stream of made-up tokens cannot turn into
	// leader traffic: when it is full, an unknown token is unknown.
	askLeader chan struct{}
}

type cachedIdentity struct {
	gen uint64
	id  *acl.Identity
	err error
}

// maxCachedIdentities bounds the resolution cache; it is emptied when full.
const maxCachedIdentities = 8192

func newACLState(cfg ACLConfig) *aclState {
	return &aclState{cfg: cfg, localSecret: rand.Text(), cache: map[string]cachedIdentity{}, askLeader: make(chan struct{}, 4)}
}

// LocalAgentToken is the secret the agent in this server's process calls
// its server with. It is valid on this server only.
func (s *Server) LocalAgentToken() string { return s.acl.localSecret }

// ACLEnabled reports whether the server enforces ACLs.
func (s *Server) ACLEnabled() bool { return s.acl.cfg.Enabled }

var allowAll = &acl.Identity{AccessorID: acl.AnonymousTokenID, Authorizer: acl.AllowAll()}

// identity returns who made the request ctx belongs to: the identity an
// HTTP handler in this process resolved, or the one its token secret
// resolves to.
func (s *Server) identity(ctx context.Context) (*acl.Identity, error) {
	if !s.acl.cfg.Enabled {
		return allowAll, nil
	}
	if id := acl.FromContext(ctx); id != nil {
		return id, nil
	}
	secret, _ := acl.SecretFrom(ctx)
	return s.ResolveToken(ctx, secret)
}

// ResolveToken returns the identity of a token secret ("" is the anonymous
// token), from this server's state: catalog.ErrACLNotFound for a secret no
// token has or an expired token.
func (s *Server) ResolveToken(ctx context.Context, secret string) (*acl.Identity, error) {
	if !s.acl.cfg.Enabled {
		return allowAll, nil
	}
	if secret == s.acl.localSecret {
		return &acl.Identity{AccessorID: "local-agent", Authorizer: acl.ManageAll()}, nil
	}
	hash := acl.HashSecret(secret)
	_, genEntry, err := s.store.MetaEntry(nil, aclGenKey)
	if err != nil {
		return nil, err
	}
	var gen uint64
	if genEntry != nil {
		gen = genEntry.ModifyIndex
	}
	s.acl.cacheMu.Lock()
	c, ok := s.acl.cache[hash]
	s.acl.cacheMu.Unlock()
	if ok && c.gen == gen && (c.err != nil || !expiredIdentity(c.id)) {
		return c.id, c.err
	}
	id, err := s.resolveUncached(secret, hash)
	if errors.Is(err, catalog.ErrACLNotFound) && secret != "" && !s.IsLeader() {
		// A token made a moment ago may not have reached this server
		// yet: ask the leader before saying it does not exist.
		if fid, ok := s.askLeaderToResolve(ctx, secret); ok {
			return fid, nil
		}
	}
	s.acl.cacheMu.Lock()
	if len(s.acl.cache) >= maxCachedIdentities {
		clear(s.acl.cache)
	}
	s.acl.cache[hash] = cachedIdentity{gen: gen, id: id, err: err}
	s.acl.cacheMu.Unlock()
	return id, err
}

// identityExpiry remembers when a resolved token expires, so a cached
// identity is not used past its token's expiry.
type expiringAuthorizer struct {
	acl.Authorizer
	expires time.Time
}

func expiredIdentity(id *acl.Identity) bool {
	e, ok := id.Authorizer.(expiringAuthorizer)
	return ok && !time.Now().Before(e.expires)
}

func (s *Server) resolveUncached(secret, hash string) (*acl.Identity, error) {
	var tok *acl.Token
	if secret == "" {
		t, err := s.loadToken(nil, acl.AnonymousTokenID)
		if err != nil {
			return nil, err
		}
		if t == nil {
			t = &acl.Token{AccessorID: acl.AnonymousTokenID}
		}
		tok = t
	} else {
		_, e, err := s.store.MetaEntry(nil, aclSecretPrefix+hash)
		if err != nil {
			return nil, err
		}
		if e == nil {
			return nil, catalog.ErrACLNotFound
		}
		if tok, err = s.loadToken(nil, e.Value); err != nil {
			return nil, err
		}
		if tok == nil {
			return nil, catalog.ErrACLNotFound
		}
	}
	if tok.Expired(time.Now()) {
		return nil, catalog.ErrACLNotFound
	}
	authz, err := acl.Resolve(tok, s.policyLookup(), s.roleLookup(), s.cfg.Datacenter, s.acl.cfg.DefaultAllow)
	if err != nil {
		return nil, err
	}
	if tok.ExpirationTime != nil {
		authz = expiringAuthorizer{Authorizer: authz, expires: *tok.ExpirationTime}
	}
	return &acl.Identity{AccessorID: tok.AccessorID, Authorizer: authz}, nil
}

func (s *Server) policyLookup() acl.PolicyLookup {
	return func(l acl.PolicyLink) (*acl.Policy, bool) {
		p, err := s.findPolicy(nil, l.ID, l.Name)
		return p, err == nil && p != nil
	}
}

func (s *Server) roleLookup() acl.RoleLookup {
	return func(l acl.RoleLink) (*acl.Role, bool) {
		r, err := s.findRole(nil, l.ID, l.Name)
		return r, err == nil && r != nil
	}
}

// metaJSON reads one JSON object from the metadata; nil if absent.
func metaJSON[T any](s *Server, ws memdb.WatchSet, key string, set func(*T, uint64, uint64)) (*T, error) {
	_, e, err := s.store.MetaEntry(ws, key)
	if err != nil || e == nil {
		return nil, err
	}
	v := new(T)
	if err := json.Unmarshal([]byte(e.Value), v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	set(v, e.CreateIndex, e.ModifyIndex)
	return v, nil
}

// metaList reads every JSON object under prefix, with the scope's index.
func metaList[T any](s *Server, ws memdb.WatchSet, prefix string, set func(*T, uint64, uint64)) (uint64, []*T, error) {
	idx, entries, err := s.store.MetaPrefix(ws, prefix)
	if err != nil {
		return 0, nil, err
	}
	out := make([]*T, 0, len(entries))
	for _, e := range entries {
		v := new(T)
		if err := json.Unmarshal([]byte(e.Value), v); err != nil {
			return 0, nil, fmt.Errorf("decode %s: %w", e.Key, err)
		}
		set(v, e.CreateIndex, e.ModifyIndex)
		out = append(out, v)
	}
	return idx, out, nil
}

func setTokenIdx(t *acl.Token, c, m uint64)   { t.CreateIndex, t.ModifyIndex = c, m }
func setPolicyIdx(p *acl.Policy, c, m uint64) { p.CreateIndex, p.ModifyIndex = c, m }
func setRoleIdx(r *acl.Role, c, m uint64)     { r.CreateIndex, r.ModifyIndex = c, m }

func (s *Server) loadToken(ws memdb.WatchSet, accessor string) (*acl.Token, error) {
	return metaJSON(s, ws, aclTokenPrefix+accessor, setTokenIdx)
}

// findPolicy finds a policy by ID, or by name when id is "".
func (s *Server) findPolicy(ws memdb.WatchSet, id, name string) (*acl.Policy, error) {
	if id == "" {
		if name == "" {
			return nil, nil
		}
		_, e, err := s.store.MetaEntry(ws, aclPolicyNamePrefix+name)
		if err != nil || e == nil {
			return nil, err
		}
		id = e.Value
	}
	if id == acl.GlobalManagementPolicyID {
		p, err := metaJSON(s, ws, aclPolicyPrefix+id, setPolicyIdx)
		if err == nil && p == nil {
			p = globalManagementPolicy()
		}
		return p, err
	}
	return metaJSON(s, ws, aclPolicyPrefix+id, setPolicyIdx)
}

// findRole finds a role by ID, or by name when id is "".
func (s *Server) findRole(ws memdb.WatchSet, id, name string) (*acl.Role, error) {
	if id == "" {
		if name == "" {
			return nil, nil
		}
		_, e, err := s.store.MetaEntry(ws, aclRoleNamePrefix+name)
		if err != nil || e == nil {
			return nil, err
		}
		id = e.Value
	}
	return metaJSON(s, ws, aclRolePrefix+id, setRoleIdx)
}

func globalManagementPolicy() *acl.Policy {
	return &acl.Policy{ID: acl.GlobalManagementPolicyID, Name: acl.GlobalManagementPolicyName,
		Description: "Builtin Policy that grants unlimited access", Rules: ""}
}

// aclBatch is one atomic ACL write: the sets and deletes, plus the
// generation key every ACL cache is keyed on.
type aclBatch struct{ fsm.MetaBatch }

func (b *aclBatch) set(key string, v any) error {
	var val string
	switch x := v.(type) {
	case string:
		val = x
	default:
		raw, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("encode %s: %w", key, err)
		}
		val = string(raw)
	}
	b.Set = append(b.Set, fsm.SetMeta{Key: key, Value: val})
	return nil
}

func (b *aclBatch) del(key string) { b.Delete = append(b.Delete, key) }

func (s *Server) applyACL(ctx context.Context, b *aclBatch) error {
	// The value only has to differ from the last one: the leader's clock
	// is stamped here, outside the FSM.
	b.Set = append(b.Set, fsm.SetMeta{Key: aclGenKey, Value: strconv.FormatInt(time.Now().UnixNano(), 10)})
	return s.applyCommand(ctx, fsm.MetaBatchType, b.MetaBatch)
}

// requireACL checks the caller's identity for ACL reads or writes.
func (s *Server) requireACL(ctx context.Context, write bool) (*acl.Identity, error) {
	id, err := s.identity(ctx)
	if err != nil {
		return nil, err
	}
	if write && !id.Authorizer.ACLWrite() {
		return nil, denied("acl:write", "")
	}
	if !write && !id.Authorizer.ACLRead() {
		return nil, denied("acl:read", "")
	}
	return id, nil
}

// newSecret is a token secret: a UUID, as Consul makes them.
func newSecret() string { return uuid.NewString() }

// localACLBootstrap makes the first management token, once.
func (s *Server) localACLBootstrap(ctx context.Context, _ *rpc.Empty) (*acl.TokenReply, error) {
	if !s.acl.cfg.Enabled {
		return nil, fmt.Errorf("%w: ACL support disabled", catalog.ErrInvalid)
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	idx, done, err := s.store.MetaEntry(nil, aclBootstrapKey)
	if err != nil {
		return nil, err
	}
	if done != nil {
		return nil, fmt.Errorf("%w: ACL bootstrap no longer allowed (reset index: %d)", catalog.ErrPermissionDenied, idx)
	}
	secret := newSecret()
	tok := acl.Token{AccessorID: uuid.NewString(), SecretHash: acl.HashSecret(secret),
		Description: "Bootstrap Token (Global Management)", CreateTime: time.Now().UTC(),
		Policies: []acl.PolicyLink{{ID: acl.GlobalManagementPolicyID, Name: acl.GlobalManagementPolicyName}}}
	if err := s.writeManagementToken(ctx, &tok, true); err != nil {
		return nil, err
	}
	out, err := s.loadToken(nil, tok.AccessorID)
	if err != nil {
		return nil, err
	}
	return &acl.TokenReply{Token: out, SecretID: secret}, nil
}

// writeManagementToken stores a management token with the built-in policy
// and, with bootstrap, the bootstrap marker. The caller holds acl.mu.
func (s *Server) writeManagementToken(ctx context.Context, tok *acl.Token, bootstrap bool) error {
	b := &aclBatch{}
	if err := b.set(aclPolicyPrefix+acl.GlobalManagementPolicyID, globalManagementPolicy()); err != nil {
		return err
	}
	if err := b.set(aclPolicyNamePrefix+acl.GlobalManagementPolicyName, acl.GlobalManagementPolicyID); err != nil {
		return err
	}
	if err := b.set(aclTokenPrefix+tok.AccessorID, tok); err != nil {
		return err
	}
	if err := b.set(aclSecretPrefix+tok.SecretHash, tok.AccessorID); err != nil {
		return err
	}
	if bootstrap {
		if err := b.set(aclBootstrapKey, tok.AccessorID); err != nil {
			return err
		}
	}
	if err := s.applyACL(ctx, b); err != nil {
		return fmt.Errorf("write management token: %w", err)
	}
	return nil
}

// ensureInitialManagementToken runs at leadership: the configured
// initial management token exists, and counts as the bootstrap.
func (s *Server) ensureInitialManagementToken(ctx context.Context) error {
	secret := s.acl.cfg.InitialManagementToken
	if !s.acl.cfg.Enabled || secret == "" {
		return nil
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	hash := acl.HashSecret(secret)
	if _, e, err := s.store.MetaEntry(nil, aclSecretPrefix+hash); err != nil || e != nil {
		return err
	}
	tok := acl.Token{AccessorID: uuid.NewString(), SecretHash: hash,
		Description: "Initial Management Token", CreateTime: time.Now().UTC(),
		Policies: []acl.PolicyLink{{ID: acl.GlobalManagementPolicyID, Name: acl.GlobalManagementPolicyName}}}
	return s.writeManagementToken(ctx, &tok, true)
}

// resolveLinks checks that every policy and role a token or role links to
// exists, and fills in both ID and name.
func (s *Server) resolveLinks(policies []acl.PolicyLink, roles []acl.RoleLink) error {
	for i, l := range policies {
		p, err := s.findPolicy(nil, l.ID, l.Name)
		if err != nil {
			return err
		}
		if p == nil {
			return &catalog.FieldError{Field: fmt.Sprintf("Policies[%d]", i), Reason: fmt.Sprintf("no policy with ID %q or name %q", l.ID, l.Name)}
		}
		policies[i] = acl.PolicyLink{ID: p.ID, Name: p.Name}
	}
	for i, l := range roles {
		r, err := s.findRole(nil, l.ID, l.Name)
		if err != nil {
			return err
		}
		if r == nil {
			return &catalog.FieldError{Field: fmt.Sprintf("Roles[%d]", i), Reason: fmt.Sprintf("no role with ID %q or name %q", l.ID, l.Name)}
		}
		roles[i] = acl.RoleLink{ID: r.ID, Name: r.Name}
	}
	return nil
}

// localACLTokenSet creates or updates a token.
func (s *Server) localACLTokenSet(ctx context.Context, req *acl.TokenSetRequest) (*acl.TokenReply, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	t := req.Token
	if err := acl.ValidateToken(&t); err != nil {
		return nil, err
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	if err := s.resolveLinks(t.Policies, t.Roles); err != nil {
		return nil, err
	}
	b := &aclBatch{}
	secret := ""
	if req.Create {
		if t.AccessorID == "" { // a given one was checked by ValidateToken
			t.AccessorID = uuid.NewString()
		}
		if old, err := s.loadToken(nil, t.AccessorID); err != nil {
			return nil, err
		} else if old != nil {
			return nil, &catalog.FieldError{Field: "AccessorID", Reason: "a token with this accessor ID exists"}
		}
		secret = req.SecretID
		if secret == "" {
			secret = newSecret()
		} else if err := acl.ValidateSecretID(secret); err != nil {
			return nil, err
		}
		t.SecretHash = acl.HashSecret(secret)
		if _, e, err := s.store.MetaEntry(nil, aclSecretPrefix+t.SecretHash); err != nil {
			return nil, err
		} else if e != nil {
			return nil, &catalog.FieldError{Field: "SecretID", Reason: "a token with this secret exists"}
		}
		t.CreateTime = time.Now().UTC()
		if req.ExpirationTTL > 0 {
			exp := t.CreateTime.Add(req.ExpirationTTL)
			t.ExpirationTime = &exp
		}
		if err := b.set(aclSecretPrefix+t.SecretHash, t.AccessorID); err != nil {
			return nil, err
		}
	} else {
		old, err := s.loadToken(nil, t.AccessorID)
		if err != nil {
			return nil, err
		}
		if old == nil {
			if t.AccessorID != acl.AnonymousTokenID {
				return nil, fmt.Errorf("%w: no token with accessor ID %q", catalog.ErrNotFound, t.AccessorID)
			}
			old = &acl.Token{AccessorID: acl.AnonymousTokenID, Description: "Anonymous Token", CreateTime: time.Now().UTC()}
		}
		if req.SecretID != "" && acl.HashSecret(req.SecretID) != old.SecretHash {
			return nil, &catalog.FieldError{Field: "SecretID", Reason: "cannot change a token's secret"}
		}
		t.SecretHash, t.CreateTime, t.ExpirationTime, t.Local = old.SecretHash, old.CreateTime, old.ExpirationTime, old.Local
	}
	t.CreateIndex, t.ModifyIndex = 0, 0
	if err := b.set(aclTokenPrefix+t.AccessorID, &t); err != nil {
		return nil, err
	}
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("write token %s: %w", t.AccessorID, err)
	}
	out, err := s.loadToken(nil, t.AccessorID)
	if err != nil {
		return nil, err
	}
	return &acl.TokenReply{Token: out, SecretID: secret}, nil
}

// readACLToken reads a token by accessor, or the caller's own.
func (s *Server) readACLToken(ctx context.Context, req *acl.ReadRequest) (*acl.TokenReply, error) {
	var id *acl.Identity
	var err error
	if req.Self {
		if id, err = s.identity(ctx); err != nil {
			return nil, err
		}
		if id == allowAll {
			return nil, fmt.Errorf("%w: ACL support disabled", catalog.ErrInvalid)
		}
		req.ID = id.AccessorID
	} else if _, err = s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.TokenReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		t, err := s.loadToken(ws, req.ID)
		reply.Token = t
		if t != nil {
			return t.ModifyIndex, err
		}
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	if reply.Token == nil {
		if req.ID == acl.AnonymousTokenID {
			reply.Token = &acl.Token{AccessorID: acl.AnonymousTokenID, Description: "Anonymous Token"}
		} else {
			return nil, fmt.Errorf("%w: no token with accessor ID %q", catalog.ErrNotFound, req.ID)
		}
	}
	reply.Meta = meta
	return reply, nil
}

func (s *Server) localACLTokenDelete(ctx context.Context, req *acl.ReadRequest) (*rpc.Empty, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	if req.ID == acl.AnonymousTokenID {
		return nil, &catalog.FieldError{Field: "AccessorID", Reason: "the anonymous token cannot be deleted"}
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	t, err := s.loadToken(nil, req.ID)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return &rpc.Empty{}, nil
	}
	b := &aclBatch{}
	b.del(aclTokenPrefix + t.AccessorID)
	b.del(aclSecretPrefix + t.SecretHash)
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("delete token %s: %w", t.AccessorID, err)
	}
	return &rpc.Empty{}, nil
}

func (s *Server) readACLTokens(ctx context.Context, req *acl.ReadRequest) (*acl.ListReply, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.ListReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		idx, ts, err := metaList(s, ws, aclTokenPrefix, setTokenIdx)
		reply.Tokens = ts
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	reply.Meta = meta
	return reply, nil
}

// localACLPolicySet creates or updates a policy.
func (s *Server) localACLPolicySet(ctx context.Context, req *acl.PolicySetRequest) (*acl.PolicyReply, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	p := req.Policy
	if err := acl.ValidatePolicy(&p); err != nil {
		return nil, err
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	b := &aclBatch{}
	if req.Create {
		if p.ID != "" {
			return nil, &catalog.FieldError{Field: "ID", Reason: "must be empty when creating a policy"}
		}
		p.ID = uuid.NewString()
	} else {
		old, err := s.findPolicy(nil, p.ID, "")
		if err != nil {
			return nil, err
		}
		if old == nil {
			return nil, fmt.Errorf("%w: no policy with ID %q", catalog.ErrNotFound, p.ID)
		}
		if p.ID == acl.GlobalManagementPolicyID && (p.Rules != old.Rules || p.Name != old.Name) {
			return nil, &catalog.FieldError{Field: "Rules", Reason: "the global-management policy's name and rules cannot change"}
		}
		if old.Name != p.Name {
			b.del(aclPolicyNamePrefix + old.Name)
		}
	}
	if other, err := s.findPolicy(nil, "", p.Name); err != nil {
		return nil, err
	} else if other != nil && other.ID != p.ID {
		return nil, &catalog.FieldError{Field: "Name", Reason: fmt.Sprintf("a policy named %q exists", p.Name)}
	}
	p.CreateIndex, p.ModifyIndex = 0, 0
	if err := b.set(aclPolicyPrefix+p.ID, &p); err != nil {
		return nil, err
	}
	if err := b.set(aclPolicyNamePrefix+p.Name, p.ID); err != nil {
		return nil, err
	}
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("write policy %q: %w", p.Name, err)
	}
	out, err := s.findPolicy(nil, p.ID, "")
	if err != nil {
		return nil, err
	}
	return &acl.PolicyReply{Policy: out}, nil
}

func (s *Server) readACLPolicy(ctx context.Context, req *acl.ReadRequest) (*acl.PolicyReply, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.PolicyReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		p, err := s.findPolicy(ws, req.ID, req.Name)
		reply.Policy = p
		if p != nil {
			return p.ModifyIndex, err
		}
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	if reply.Policy == nil {
		return nil, fmt.Errorf("%w: no policy with ID %q or name %q", catalog.ErrNotFound, req.ID, req.Name)
	}
	reply.Meta = meta
	return reply, nil
}

func (s *Server) localACLPolicyDelete(ctx context.Context, req *acl.ReadRequest) (*rpc.Empty, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	if req.ID == acl.GlobalManagementPolicyID {
		return nil, &catalog.FieldError{Field: "ID", Reason: "the global-management policy cannot be deleted"}
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	p, err := s.findPolicy(nil, req.ID, "")
	if err != nil || p == nil {
		return &rpc.Empty{}, err
	}
	b := &aclBatch{}
	b.del(aclPolicyPrefix + p.ID)
	b.del(aclPolicyNamePrefix + p.Name)
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("delete policy %q: %w", p.Name, err)
	}
	return &rpc.Empty{}, nil
}

func (s *Server) readACLPolicies(ctx context.Context, req *acl.ReadRequest) (*acl.ListReply, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.ListReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		idx, ps, err := metaList(s, ws, aclPolicyPrefix, setPolicyIdx)
		sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
		reply.Policies = ps
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	reply.Meta = meta
	return reply, nil
}

// localACLRoleSet creates or updates a role.
func (s *Server) localACLRoleSet(ctx context.Context, req *acl.RoleSetRequest) (*acl.RoleReply, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	r := req.Role
	if err := acl.ValidateRole(&r); err != nil {
		return nil, err
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	if err := s.resolveLinks(r.Policies, nil); err != nil {
		return nil, err
	}
	b := &aclBatch{}
	if req.Create {
		if r.ID != "" {
			return nil, &catalog.FieldError{Field: "ID", Reason: "must be empty when creating a role"}
		}
		r.ID = uuid.NewString()
	} else {
		old, err := s.findRole(nil, r.ID, "")
		if err != nil {
			return nil, err
		}
		if old == nil {
			return nil, fmt.Errorf("%w: no role with ID %q", catalog.ErrNotFound, r.ID)
		}
		if old.Name != r.Name {
			b.del(aclRoleNamePrefix + old.Name)
		}
	}
	if other, err := s.findRole(nil, "", r.Name); err != nil {
		return nil, err
	} else if other != nil && other.ID != r.ID {
		return nil, &catalog.FieldError{Field: "Name", Reason: fmt.Sprintf("a role named %q exists", r.Name)}
	}
	r.CreateIndex, r.ModifyIndex = 0, 0
	if err := b.set(aclRolePrefix+r.ID, &r); err != nil {
		return nil, err
	}
	if err := b.set(aclRoleNamePrefix+r.Name, r.ID); err != nil {
		return nil, err
	}
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("write role %q: %w", r.Name, err)
	}
	out, err := s.findRole(nil, r.ID, "")
	if err != nil {
		return nil, err
	}
	return &acl.RoleReply{Role: out}, nil
}

func (s *Server) readACLRole(ctx context.Context, req *acl.ReadRequest) (*acl.RoleReply, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.RoleReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		r, err := s.findRole(ws, req.ID, req.Name)
		reply.Role = r
		if r != nil {
			return r.ModifyIndex, err
		}
		return 0, err
	})
	if err != nil {
		return nil, err
	}
	if reply.Role == nil {
		return nil, fmt.Errorf("%w: no role with ID %q or name %q", catalog.ErrNotFound, req.ID, req.Name)
	}
	reply.Meta = meta
	return reply, nil
}

func (s *Server) localACLRoleDelete(ctx context.Context, req *acl.ReadRequest) (*rpc.Empty, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	r, err := s.findRole(nil, req.ID, "")
	if err != nil || r == nil {
		return &rpc.Empty{}, err
	}
	b := &aclBatch{}
	b.del(aclRolePrefix + r.ID)
	b.del(aclRoleNamePrefix + r.Name)
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("delete role %q: %w", r.Name, err)
	}
	return &rpc.Empty{}, nil
}

func (s *Server) readACLRoles(ctx context.Context, req *acl.ReadRequest) (*acl.ListReply, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	reply := &acl.ListReply{}
	meta, err := s.blockingQuery(ctx, req.Options, func(ws memdb.WatchSet) (uint64, error) {
		idx, rs, err := metaList(s, ws, aclRolePrefix, setRoleIdx)
		sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
		reply.Roles = rs
		return idx, err
	})
	if err != nil {
		return nil, err
	}
	reply.Meta = meta
	return reply, nil
}

// readACLResolve gives an agent what it needs to build the authorizer of
// a token secret (the call's own token): the token, its policies and
// roles. Any valid token may resolve itself.
func (s *Server) readACLResolve(ctx context.Context, _ *rpc.Empty) (*acl.ResolveReply, error) {
	reply := &acl.ResolveReply{Enabled: s.acl.cfg.Enabled, DefaultAllow: s.acl.cfg.DefaultAllow}
	if !s.acl.cfg.Enabled {
		return reply, nil
	}
	secret, _ := acl.SecretFrom(ctx)
	if secret == s.acl.localSecret {
		// Another process presenting this server's local secret: it
		// was never sent anywhere, so this is a guess or a leak.
		return nil, catalog.ErrACLNotFound
	}
	id, err := s.ResolveToken(ctx, secret)
	if err != nil {
		return nil, err
	}
	tok, err := s.loadToken(nil, id.AccessorID)
	if err != nil {
		return nil, err
	}
	if tok == nil {
		tok = &acl.Token{AccessorID: id.AccessorID}
	}
	reply.Token = tok
	seen := map[string]bool{}
	addPolicies := func(links []acl.PolicyLink) {
		for _, l := range links {
			if p, err := s.findPolicy(nil, l.ID, l.Name); err == nil && p != nil && !seen[p.ID] {
				seen[p.ID] = true
				reply.Policies = append(reply.Policies, p)
			}
		}
	}
	addPolicies(tok.Policies)
	for _, l := range tok.Roles {
		if r, err := s.findRole(nil, l.ID, l.Name); err == nil && r != nil {
			reply.Roles = append(reply.Roles, r)
			addPolicies(r.Policies)
		}
	}
	return reply, nil
}

// ACLCall runs one ACL API method (acl.Method*) for the HTTP API: here if
// this server serves it, else on the leader. req and reply are the
// method's types from package acl.
func (s *Server) ACLCall(ctx context.Context, method string, req, reply any) error {
	ep, ok := s.endpoints[method]
	if !ok || !strings.HasPrefix(method, "ACL.") {
		return fmt.Errorf("unknown ACL method %s", method)
	}
	in := ep.newReq()
	if err := roundTrip(req, in); err != nil {
		return err
	}
	if !s.servesLocally(ep, in) {
		return s.forwardInto(ctx, method, in, reply)
	}
	out, err := ep.run(ctx, in)
	if err != nil {
		return err
	}
	return roundTrip(out, reply)
}

// roundTrip copies from into to through JSON, their shared wire form.
func roundTrip(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := json.Unmarshal(b, to); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	return nil
}

// askLeaderToResolve asks the leader for a token this follower does not
// know; false when the leader does not know it either, cannot be reached,
// or too many such questions are in flight.
func (s *Server) askLeaderToResolve(ctx context.Context, secret string) (*acl.Identity, bool) {
	select {
	case s.acl.askLeader <- struct{}{}:
		defer func() { <-s.acl.askLeader }()
	default:
		return nil, false
	}
	var reply acl.ResolveReply
	fctx, cancel := context.WithTimeout(acl.WithSecret(ctx, secret), 2*time.Second)
	defer cancel()
	if err := s.forwardInto(fctx, acl.MethodResolve, &rpc.Empty{}, &reply); err != nil {
		return nil, false
	}
	id, err := reply.Identity(s.cfg.Datacenter)
	return id, err == nil
}
