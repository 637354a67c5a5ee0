package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
)

// TLS on the RPC port (issue 8). With a Configurator, the mux terminates
// TLS on every connection (a first byte other than a TLS handshake record
// is refused), classifies the client by its certificate, and only then
// sniffs the first byte inside TLS: Raft (0x01, servers only) or gRPC.
// gRPC gets the connection with TLS already done (preTLSCreds) and reads
// the classification from the peer's AuthInfo (authorizeRPC).

// tlsHandshakeRecord is the first byte of a TLS ClientHello.
const tlsHandshakeRecord byte = 0x16

// rpcConn is a connection routed by the mux, with what TLS told us.
type rpcConn struct {
	peekedConn
	state *tls.ConnectionState // nil without TLS
	peer  tlscfg.Peer
}

// rpcAuthInfo is the gRPC AuthInfo of a TLS connection: credentials.TLSInfo
// (for code that reads it) and the peer's class.
type rpcAuthInfo struct {
	credentials.TLSInfo
	peer tlscfg.Peer
}

// preTLSCreds are the gRPC server credentials of a connection whose TLS
// handshake the mux already did.
type preTLSCreds struct{}

func (preTLSCreds) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, fmt.Errorf("preTLSCreds are server-side only")
}

func (preTLSCreds) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	rc, ok := c.(*rpcConn)
	if !ok || rc.state == nil {
		return nil, nil, fmt.Errorf("connection without TLS on a TLS RPC port")
	}
	return c, rpcAuthInfo{
		TLSInfo: credentials.TLSInfo{State: *rc.state, CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity}},
		peer:    rc.peer,
	}, nil
}

func (preTLSCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}
func (p preTLSCreds) Clone() credentials.TransportCredentials { return p }
func (preTLSCreds) OverrideServerName(string) error           { return nil }

// peerOf is the class of the client of an RPC; without TLS (a loopback
// cluster) every client counts as a server.
func (s *Server) peerOf(ctx context.Context) tlscfg.Peer {
	if s.cfg.TLS == nil {
		return tlscfg.PeerServer
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return tlscfg.PeerAnonymous
	}
	if ai, ok := p.AuthInfo.(rpcAuthInfo); ok {
		return ai.peer
	}
	return tlscfg.PeerAnonymous
}

// authorizeRPC says whether a client of class p may call method: server
// discovery (Join) and forwarded requests need a server certificate; an
// agent's requests an agent or server certificate; AutoEncrypt.Sign, with
// auto_encrypt.allow_tls, no certificate at all.
func authorizeRPC(p tlscfg.Peer, method string, forwarded bool, serverName string) error {
	need := tlscfg.PeerAgent
	switch {
	case method == "Join" || forwarded:
		need = tlscfg.PeerServer
	case method == rpc.MethodAutoEncryptSign, method == acl.MethodEnrollCA, method == acl.MethodEnroll:
		// Callers without a certificate yet: auto-encrypt (checked by
		// the agent token) and enrollment (by the enrollment secret).
		return nil
	}
	if p >= need {
		return nil
	}
	what := "a client certificate of the CA"
	if need == tlscfg.PeerServer {
		what = "a server certificate (" + serverName + ") of the CA"
	}
	return status.Errorf(codes.PermissionDenied, "RPC %s needs %s; this client presented %s", method, what, describePeer(p))
}

func describePeer(p tlscfg.Peer) string {
	if p == tlscfg.PeerAgent {
		return "an agent certificate"
	}
	return "no certificate"
}

func (s *Server) authorizeUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if s.cfg.TLS != nil {
		method, forwarded := info.FullMethod, false
		switch r := req.(type) {
		case *pb.CallRequest:
			method, forwarded = r.Method, r.Forwarded
		case *pb.JoinRequest:
			method = "Join"
		}
		if err := authorizeRPC(s.peerOf(ctx), method, forwarded, s.cfg.TLS.ServerName()); err != nil {
			s.log.Warn("refused RPC", "method", method, "err", err)
			return nil, err
		}
	}
	return handler(ctx, req)
}

func (s *Server) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if s.cfg.TLS != nil {
		if err := authorizeRPC(s.peerOf(ss.Context()), info.FullMethod, false, s.cfg.TLS.ServerName()); err != nil {
			s.log.Warn("refused RPC stream", "method", info.FullMethod, "err", err)
			return err
		}
	}
	return handler(srv, ss)
}

// connectRoots is the pool of the built-in CA's trusted roots, for the
// TLS Configurator to accept auto-encrypt agent certificates; rebuilt when
// the roots change.
type connectRoots struct {
	mu   sync.Mutex
	idx  uint64
	pool *x509.CertPool
	td   string
}

func (s *Server) connectRootPool() (*x509.CertPool, string) {
	idx, _, err := s.store.MetaEntry(nil, metaCARoots)
	if err != nil {
		return nil, ""
	}
	s.tlsRoots.mu.Lock()
	defer s.tlsRoots.mu.Unlock()
	if s.tlsRoots.pool != nil && s.tlsRoots.idx == idx {
		return s.tlsRoots.pool, s.tlsRoots.td
	}
	roots, _, _, err := s.loadCA(nil)
	if err != nil || len(roots) == 0 {
		return nil, ""
	}
	pool := x509.NewCertPool()
	td := ""
	for _, r := range roots {
		if !pool.AppendCertsFromPEM([]byte(r.RootCertPEM)) {
			continue
		}
		if r.Active || td == "" {
			td = r.TrustDomain
		}
	}
	s.tlsRoots.idx, s.tlsRoots.pool, s.tlsRoots.td = idx, pool, td
	return pool, td
}

// checkPlaintextBind refuses RPC without TLS on anything but loopback.
func checkPlaintextBind(ln net.Listener, tc *tlscfg.Configurator, log interface{ Warn(string, ...any) }) error {
	if tc != nil {
		return nil
	}
	addr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !addr.IP.IsLoopback() {
		return fmt.Errorf("server RPC on %s without TLS: refusing a non-loopback address; configure tls { defaults { ca_file, cert_file, key_file } } (make them with `warren tls ca create` and `warren tls cert create -server`), or bind to 127.0.0.1", ln.Addr())
	}
	log.Warn("server RPC runs without TLS (loopback only); configure tls.defaults to encrypt it", "rpc", ln.Addr().String())
	return nil
}

// refuseGRPC answers the first call of a plaintext gRPC client with the
// gRPC status Unavailable "the server RPC port requires TLS", so that the
// client's error says what is wrong, then closes. Bounded: 2 s and 16
// frames.
func refuseGRPC(conn net.Conn) {
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(conn, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	fr := http2.NewFramer(conn, conn)
	fr.SetMaxReadFrameSize(1 << 16)
	if err := fr.WriteSettings(); err != nil {
		return
	}
	for range 16 {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if h, ok := f.(*http2.HeadersFrame); ok {
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			for _, kv := range [][2]string{{":status", "200"}, {"content-type", "application/grpc"},
				{"grpc-status", strconv.Itoa(int(codes.Unavailable))},
				{"grpc-message", "warren: the server RPC port requires TLS (configure tls.defaults.ca_file and a certificate)"}} {
				_ = enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]})
			}
			_ = fr.WriteHeaders(http2.HeadersFrameParam{StreamID: h.StreamID, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
			_ = fr.WriteGoAway(h.StreamID, http2.ErrCodeNo, []byte("TLS required"))
			return
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = fr.WriteSettingsAck()
		}
	}
}
