package cli

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/internal/atomicfile"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
)

// Host enrollment, the agent's side: with an enrollment token (-enroll)
// and nothing else, the agent asks a server named in the token for its
// ACL token, the gossip key, the servers' serf addresses and the operator
// CA, keeps them in its data dir (0600), and starts as if they had been
// configured, with auto-encrypt for its TLS certificate. The token is
// spent: a restart uses the saved state, never the token again.

const (
	enrollStateFile = "enrollment.json"
	enrollCAFile    = "enrollment-ca.pem"
)

// enrollState is what an enrolled agent keeps. AgentToken and GossipKey
// are secrets.
type enrollState struct {
	AgentToken string
	AccessorID string
	GossipKey  string   `json:",omitempty"`
	RetryJoin  []string `json:",omitempty"`
	Datacenter string
	// CAFile is the operator CA written beside the state, "" without TLS.
	CAFile string `json:",omitempty"`
}

// applyEnrollment enrolls an agent that has an enrollment token and no
// saved enrollment, then applies the saved enrollment to cfg where cfg
// does not say otherwise.
func applyEnrollment(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if cfg.Mode != config.ModeAgent {
		return nil
	}
	path := filepath.Join(cfg.DataDir, enrollStateFile)
	st, err := loadEnrollState(path)
	if err != nil {
		return err
	}
	switch {
	case st == nil && cfg.Enroll == "":
		return nil
	case st == nil:
		if st, err = enrollWithRetry(ctx, cfg, log); err != nil {
			return err
		}
		if err := saveEnrollState(cfg.DataDir, st); err != nil {
			return err
		}
		log.Info("enrolled", "accessor", st.AccessorID, "servers", len(st.RetryJoin), "tls", st.CAFile != "", "gossip_encrypted", st.GossipKey != "")
	case cfg.Enroll != "":
		log.Info("already enrolled: the enrollment token is not presented again", "state", path)
	}
	if cfg.Datacenter != st.Datacenter {
		return fmt.Errorf("enrollment: this agent's datacenter is %q, the enrollment's %q: set datacenter = %q", cfg.Datacenter, st.Datacenter, st.Datacenter)
	}
	if cfg.ACL.Tokens.Agent == "" {
		cfg.ACL.Tokens.Agent = st.AgentToken
	}
	if cfg.Encrypt == "" {
		cfg.Encrypt = st.GossipKey
	}
	if len(cfg.RetryJoin) == 0 {
		cfg.RetryJoin = st.RetryJoin
	}
	if st.CAFile != "" && !cfg.TLS.Enabled() {
		cfg.TLS.CAFile = st.CAFile
		cfg.TLS.AutoEncrypt = true
	}
	return nil
}

func loadEnrollState(path string) (*enrollState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read enrollment: %w", err)
	}
	var st enrollState
	if err := json.Unmarshal(b, &st); err != nil || st.AgentToken == "" {
		return nil, fmt.Errorf("enrollment state %s is damaged (%v): remove it and enroll again with a new token", path, err)
	}
	return &st, nil
}

func saveEnrollState(dataDir string, st *enrollState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.Write(filepath.Join(dataDir, enrollStateFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save enrollment: %w", err)
	}
	return nil
}

// enrollWithRetry presents the token to the servers it names until one
// answers: a refusal (used, expired, wrong node prefix) or a CA that does
// not match the token's pin ends it at once; an unreachable cluster is
// retried until ctx ends.
func enrollWithRetry(ctx context.Context, cfg *config.Config, log *slog.Logger) (*enrollState, error) {
	blob, err := acl.DecodeEnrollment(cfg.Enroll)
	if err != nil {
		return nil, fmt.Errorf("enroll: %w", err)
	}
	nodeID, err := loadNodeID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	wait := time.Second
	for {
		var errs []error
		for _, addr := range blob.Servers {
			st, err := enrollOnce(ctx, cfg, blob, addr, nodeID)
			if err == nil {
				return st, nil
			}
			var fatal *fatalEnrollError
			if errors.As(err, &fatal) {
				return nil, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
		log.Warn("enrollment: no server answered; retrying", "in", wait, "err", errors.Join(errs...))
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("enroll: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// fatalEnrollError is an answer that retrying cannot change.
type fatalEnrollError struct{ err error }

func (e *fatalEnrollError) Error() string { return e.err.Error() }
func (e *fatalEnrollError) Unwrap() error { return e.err }

func enrollOnce(ctx context.Context, cfg *config.Config, blob *acl.EnrollmentBlob, addr, nodeID string) (*enrollState, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var pool *rpc.Pool
	var caPEM []byte
	if blob.CAPin == "" {
		host, _, _ := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, &fatalEnrollError{fmt.Errorf("enroll: the cluster runs without TLS; refusing to send the enrollment secret in plaintext to %s", addr)}
		}
		pool = rpc.NewPool()
	} else {
		// First the CA, which is no secret, over an unverified
		// connection; it must be the one the token pins. Then the
		// secret, to a server whose certificate that CA signed.
		probe := rpc.NewTLSPool(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}) //nolint:gosec // checked against the pin below
		var ca acl.EnrollCAReply
		err := probe.Call(ctx, addr, acl.MethodEnrollCA, struct{}{}, &ca)
		probe.Close()
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256([]byte(ca.CAPEM))
		if hex.EncodeToString(sum[:]) != blob.CAPin {
			return nil, &fatalEnrollError{fmt.Errorf("enroll: %s presented a CA that is not the one the enrollment token names: refusing to send the secret", addr)}
		}
		pool0 := x509.NewCertPool()
		if !pool0.AppendCertsFromPEM([]byte(ca.CAPEM)) {
			return nil, &fatalEnrollError{fmt.Errorf("enroll: %s: the CA is not PEM", addr)}
		}
		caPEM = []byte(ca.CAPEM)
		pool = rpc.NewTLSPool(&tls.Config{RootCAs: pool0, ServerName: tlscfg.ServerName(blob.Datacenter, cfg.DNS.Domain), MinVersion: tls.VersionTLS12})
	}
	defer pool.Close()
	var reply acl.EnrollReply
	err := pool.Call(acl.WithSecret(ctx, ""), addr, acl.MethodEnroll, &acl.EnrollRequest{Secret: blob.Secret, Node: cfg.NodeName, NodeID: nodeID}, &reply)
	if errors.Is(err, catalog.ErrPermissionDenied) || errors.Is(err, catalog.ErrInvalid) {
		return nil, &fatalEnrollError{fmt.Errorf("enroll: %w", err)}
	}
	if err != nil {
		return nil, err
	}
	st := &enrollState{AgentToken: reply.AgentToken, AccessorID: reply.AccessorID, GossipKey: reply.GossipKey,
		RetryJoin: reply.RetryJoin, Datacenter: reply.Datacenter}
	if len(caPEM) > 0 {
		st.CAFile = filepath.Join(cfg.DataDir, enrollCAFile)
		if err := atomicfile.Write(st.CAFile, caPEM, 0o600); err != nil {
			return nil, fmt.Errorf("save the enrollment CA: %w", err)
		}
	}
	return st, nil
}
