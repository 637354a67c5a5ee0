package server

import (
	"context"
	crand "crypto/rand"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/rpc"
)

// localAutoEncryptSign signs an agent's client certificate with the
// built-in CA (auto-encrypt), on the leader. The certificate carries the
// agent SPIFFE ID and client.<dc>.<domain>; servers accept it from agents
// (tlscfg.Classify) and never as a server's, which only the operator CA
// issues.
func (s *Server) localAutoEncryptSign(_ context.Context, req *rpc.AutoEncryptSignRequest) (*rpc.AutoEncryptSignReply, error) {
	if s.cfg.TLS == nil || !s.cfg.TLS.AllowAnonymous() {
		return nil, fmt.Errorf("%w: auto-encrypt is off: the servers need auto_encrypt { allow_tls = true }", catalog.ErrInvalid)
	}
	// The caller's token was checked before this runs: node:write on
	// req.Node (authorizeCall).
	active, cfg, _, err := s.signingCA()
	if err != nil {
		return nil, err
	}
	if !hasKeys(active) {
		return nil, fmt.Errorf("%w: the CA has no active root yet", catalog.ErrNoLeader)
	}
	reply := &rpc.AutoEncryptSignReply{TrustDomain: active.TrustDomain}
	if len(req.CSR) == 0 {
		return reply, nil
	}
	if req.Datacenter != s.cfg.Datacenter {
		return nil, &catalog.FieldError{Field: "Datacenter", Reason: fmt.Sprintf("%q is not this datacenter (%s)", req.Datacenter, s.cfg.Datacenter)}
	}
	if _, err := uuid.Parse(req.NodeID); err != nil {
		return nil, &catalog.FieldError{Field: "NodeID", Reason: "not a UUID"}
	}
	if err := catalog.ValidateName("Node", req.Node); err != nil {
		return nil, err
	}
	if !s.ca.limiter.Allow() {
		return nil, fmt.Errorf("sign agent certificate: %w", catalog.ErrRateLimited)
	}
	id := connect.AgentID(active.TrustDomain, s.cfg.Datacenter, req.NodeID)
	sg, err := s.signer(active)
	if err != nil {
		return nil, err
	}
	certPEM, _, err := sg.Sign(req.CSR, id, []string{s.cfg.TLS.ClientName(), "localhost"}, cfg.LeafTTL, time.Now(), crand.Reader)
	if err != nil {
		s.log.Warn("refused to sign an agent certificate", "node", req.Node, "err", err.Error())
		return nil, err
	}
	cert, err := parseSigned(certPEM)
	if err != nil {
		return nil, fmt.Errorf("sign agent certificate: %w", err)
	}
	s.log.Info("signed an agent certificate", "node", req.Node, "id", id.String(), "expires", cert.NotAfter)
	reply.CertPEM, reply.ValidAfter, reply.ValidBefore = certPEM, cert.NotBefore, cert.NotAfter
	return reply, nil
}
