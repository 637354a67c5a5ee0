package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/internal/audit"
	"github.com/warren-mesh/warren/rpc"
)

// EnrollmentConfig is what the servers hand an enrolling agent besides its
// token. Both are secrets or trust anchors: never logged.
type EnrollmentConfig struct {
	// GossipKey is the serf encryption key (base64), "" if none.
	GossipKey string
	// CAPEM is the operator CA's PEM (tls.defaults.ca_file), nil on a
	// cluster without TLS.
	CAPEM []byte
}

// Enrollment tokens live under "acl/enroll/<secret hash>": presenting one
// is a lookup by the hash, and a used or expired one is gone.
const aclEnrollPrefix = "acl/enroll/"

// caPin is the SHA-256 of the CA's PEM, as an enrollment token carries it.
func caPin(pem []byte) string {
	if len(pem) == 0 {
		return ""
	}
	sum := sha256.Sum256(pem)
	return hex.EncodeToString(sum[:])
}

// localEnrollmentTokenCreate makes an enrollment token (acl:write).
func (s *Server) localEnrollmentTokenCreate(ctx context.Context, req *acl.EnrollmentTokenRequest) (*acl.EnrollmentTokenReply, error) {
	if _, err := s.requireACL(ctx, true); err != nil {
		return nil, err
	}
	switch {
	case req.TTL <= 0 || req.TTL > acl.MaxEnrollmentTTL:
		return nil, &catalog.FieldError{Field: "TTL", Reason: fmt.Sprintf("must be between 1s and %s, got %s", acl.MaxEnrollmentTTL, req.TTL)}
	case req.Uses < 1 || req.Uses > acl.MaxEnrollmentUses:
		return nil, &catalog.FieldError{Field: "Uses", Reason: fmt.Sprintf("must be between 1 and %d, got %d", acl.MaxEnrollmentUses, req.Uses)}
	case len(req.NodePrefix) > 63 || strings.Trim(req.NodePrefix, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "":
		return nil, &catalog.FieldError{Field: "NodePrefix", Reason: "must be the start of a node name: letters, digits and '-', at most 63"}
	}
	probe := acl.Token{Description: req.Description, ServiceIdentities: req.ServiceIdentities}
	if err := acl.ValidateToken(&probe); err != nil {
		return nil, err
	}
	servers, err := s.Peers(ctx)
	if err != nil {
		return nil, err
	}
	secret := rand.Text()
	now := time.Now().UTC()
	et := acl.EnrollmentToken{ID: uuid.NewString(), SecretHash: acl.HashSecret(secret), Description: req.Description,
		NodePrefix: req.NodePrefix, ServiceIdentities: req.ServiceIdentities, UsesLeft: req.Uses,
		ExpirationTime: now.Add(req.TTL), CreateTime: now}
	b := &aclBatch{}
	if err := b.set(aclEnrollPrefix+et.SecretHash, &et); err != nil {
		return nil, err
	}
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("write enrollment token: %w", err)
	}
	blob := acl.EnrollmentBlob{Secret: secret, Servers: servers, CAPin: caPin(s.cfg.Enrollment.CAPEM), Datacenter: s.cfg.Datacenter}
	return &acl.EnrollmentTokenReply{ID: et.ID, Token: blob.Encode(), UsesLeft: et.UsesLeft, ExpirationTime: et.ExpirationTime}, nil
}

// readEnrollmentTokens lists the enrollment tokens (acl:read).
func (s *Server) readEnrollmentTokens(ctx context.Context, req *acl.ReadRequest) (*acl.EnrollmentTokenList, error) {
	if _, err := s.requireACL(ctx, false); err != nil {
		return nil, err
	}
	_, ts, err := metaList(s, nil, aclEnrollPrefix, func(*acl.EnrollmentToken, uint64, uint64) {})
	if err != nil {
		return nil, err
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].CreateTime.Before(ts[j].CreateTime) })
	for _, t := range ts {
		t.SecretHash = ""
	}
	return &acl.EnrollmentTokenList{Tokens: ts}, nil
}

// readEnrollCA answers the CA an enrolling agent checks against its
// token's pin before it sends the secret. It is public: the CA
// certificate is no secret.
func (s *Server) readEnrollCA(context.Context, *rpc.Empty) (*acl.EnrollCAReply, error) {
	return &acl.EnrollCAReply{CAPEM: string(s.cfg.Enrollment.CAPEM)}, nil
}

// errEnrollRefused is every refusal's answer: which of unknown, used or
// expired is for the servers' log and audit, not for the caller.
var errEnrollRefused = fmt.Errorf("%w: enrollment refused: the token is unknown, used up or expired", catalog.ErrPermissionDenied)

// localEnroll spends one use of an enrollment token and makes the agent's
// ACL token: a node identity for the node, with the enrollment's service
// identities. Refusals are logged with the reason, never the secret.
func (s *Server) localEnroll(ctx context.Context, req *acl.EnrollRequest) (reply *acl.EnrollReply, err error) {
	refuse := func(reason string, attrs ...any) (*acl.EnrollReply, error) {
		s.log.Warn("enrollment refused", append([]any{"reason", reason, "node", req.Node}, attrs...)...)
		s.metrics.enrollRefused.WithLabelValues(reason).Inc()
		s.cfg.Audit.Audit(ctx, audit.Event{Type: "enrollment", Route: acl.MethodEnroll, Result: "refused",
			Detail: fmt.Sprintf("reason=%s node=%q", reason, req.Node)})
		return nil, errEnrollRefused
	}
	if !s.acl.cfg.Enabled {
		return nil, fmt.Errorf("%w: enrollment needs ACLs on the servers", catalog.ErrInvalid)
	}
	if err := catalog.ValidateName("Node", req.Node); err != nil {
		return nil, err
	}
	if _, err := uuid.Parse(req.NodeID); req.NodeID != "" && err != nil {
		return nil, &catalog.FieldError{Field: "NodeID", Reason: "not a UUID"}
	}
	if req.Secret == "" || len(req.Secret) > 256 {
		return refuse("malformed")
	}
	s.acl.mu.Lock()
	defer s.acl.mu.Unlock()
	key := aclEnrollPrefix + acl.HashSecret(req.Secret)
	et, err := metaJSON(s, nil, key, func(*acl.EnrollmentToken, uint64, uint64) {})
	if err != nil {
		return nil, err
	}
	if et == nil {
		return refuse("unknown_or_used")
	}
	if !time.Now().Before(et.ExpirationTime) {
		// Expired tokens are removed when presented.
		b := &aclBatch{}
		b.del(key)
		_ = s.applyACL(ctx, b)
		return refuse("expired", "enrollment", et.ID)
	}
	if !strings.HasPrefix(req.Node, et.NodePrefix) {
		return refuse("node_prefix", "enrollment", et.ID, "prefix", et.NodePrefix)
	}
	secret := newSecret()
	tok := acl.Token{AccessorID: uuid.NewString(), SecretHash: acl.HashSecret(secret), CreateTime: time.Now().UTC(),
		Description:       fmt.Sprintf("agent %s, enrolled with %s", req.Node, et.ID),
		NodeIdentities:    []acl.NodeIdentity{{NodeName: req.Node, Datacenter: s.cfg.Datacenter}},
		ServiceIdentities: et.ServiceIdentities}
	b := &aclBatch{}
	if err := b.set(aclTokenPrefix+tok.AccessorID, &tok); err != nil {
		return nil, err
	}
	if err := b.set(aclSecretPrefix+tok.SecretHash, tok.AccessorID); err != nil {
		return nil, err
	}
	if et.UsesLeft--; et.UsesLeft <= 0 {
		b.del(key)
	} else if err := b.set(key, et); err != nil {
		return nil, err
	}
	if err := s.applyACL(ctx, b); err != nil {
		return nil, fmt.Errorf("enroll %s: %w", req.Node, err)
	}
	s.cfg.Audit.Audit(ctx, audit.Event{Type: "enrollment", Route: acl.MethodEnroll, Result: "ok",
		Detail: fmt.Sprintf("node=%q enrollment=%s accessor=%s", req.Node, et.ID, tok.AccessorID)})
	s.log.Info("agent enrolled", "node", req.Node, "enrollment", et.ID, "accessor", tok.AccessorID, "uses_left", max(et.UsesLeft, 0))
	return &acl.EnrollReply{AgentToken: secret, AccessorID: tok.AccessorID, Datacenter: s.cfg.Datacenter,
		GossipKey: s.cfg.Enrollment.GossipKey, RetryJoin: s.serverSerfAddrs(), CAPEM: string(s.cfg.Enrollment.CAPEM)}, nil
}

// serverSerfAddrs are the serf LAN addresses of the alive servers of our
// datacenter.
func (s *Server) serverSerfAddrs() []string {
	if s.cfg.Gossip == nil {
		return nil
	}
	var out []string
	for _, m := range s.cfg.Gossip.Members() {
		if _, ok := gossip.ServerRPCAddr(m, s.cfg.Datacenter); ok {
			out = append(out, net.JoinHostPort(m.Addr.String(), strconv.Itoa(int(m.Port))))
		}
	}
	sort.Strings(out)
	return out
}
