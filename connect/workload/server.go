package workload

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/internal/logging"
)

// SVID is one X.509-SVID: a local service's leaf certificate and key.
type SVID struct {
	// ID is the SPIFFE ID (the leaf's URI SAN).
	ID string
	// CertPEM is the leaf followed by its intermediates.
	CertPEM string
	// KeyPEM is the leaf's private key, PKCS #8.
	KeyPEM string
}

// Snapshot is what a caller may see now.
type Snapshot struct {
	// Matched reports whether any local service selects the caller (its
	// leaf may not be there yet).
	Matched bool
	// SVIDs are the leaves of the matching services that have one.
	SVIDs []SVID
	// Pending counts the matching services without a leaf yet.
	Pending int
	// TrustDomain and RootPEMs are the trust bundle; "" and nil while the
	// agent has not heard from the servers yet.
	TrustDomain string
	RootPEMs    []string
	// JWTBundle holds the trust domain's JWT-SVID keys (during a rotation
	// the old and the new); nil while unknown.
	JWTBundle *jwtbundle.Bundle
	// Changed is closed at the next change that may alter the snapshot:
	// a leaf, the roots, or the local services' selectors.
	Changed <-chan struct{}
}

// JWTSVID is one JWT-SVID.
type JWTSVID struct {
	ID    string // the SPIFFE ID (the "sub" claim)
	Token string
}

// Source is what the Workload API serves; the agent implements it.
type Source interface {
	Snapshot(c Caller) Snapshot
	// JWTSVIDs returns a JWT-SVID for audience for each service that
	// selects c, or only for the one whose SPIFFE ID is id. A caller no
	// service selects (or not for id) gets an error matching
	// ErrNotSelected; a bad request one matching catalog.ErrInvalid.
	JWTSVIDs(ctx context.Context, c Caller, id string, audience []string) ([]JWTSVID, error)
}

// ErrNotSelected: no local service selects the caller (PermissionDenied).
var ErrNotSelected = errors.New("no service on this agent selects the caller")

// Server implements go-spiffe's SpiffeWorkloadAPIServer over a Source.
type Server struct {
	workload.UnimplementedSpiffeWorkloadAPIServer
	src Source
	log *slog.Logger
}

var _ workload.SpiffeWorkloadAPIServer = (*Server)(nil)

// NewServer returns a Workload API server reading src.
func NewServer(src Source, log *slog.Logger) *Server {
	if log == nil {
		log = logging.Discard()
	}
	return &Server{src: src, log: log}
}

// caller checks the security header and returns the caller.
func (s *Server) caller(ctx context.Context) (Caller, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get("workload.spiffe.io"); len(v) != 1 || v[0] != "true" {
		return Caller{}, status.Error(codes.InvalidArgument, "security header missing from request: set gRPC metadata workload.spiffe.io: true")
	}
	c, ok := CallerFrom(ctx)
	if !ok {
		return Caller{}, status.Error(codes.Internal, "no peer credentials on the connection")
	}
	return c, nil
}

func denied(c Caller) error {
	return status.Errorf(codes.PermissionDenied, "no service on this agent selects the caller (%s)", c)
}

// FetchX509SVID streams the caller's SVIDs: the first response as soon as
// one leaf and the bundle are known, then a new one whenever they change.
// When no service selects the caller any more, the stream ends with
// PermissionDenied.
func (s *Server) FetchX509SVID(_ *workload.X509SVIDRequest, stream grpc.ServerStreamingServer[workload.X509SVIDResponse]) error {
	ctx := stream.Context()
	c, err := s.caller(ctx)
	if err != nil {
		return err
	}
	var last string
	// The first response waits a little for every matching service's
	// leaf, so that a one-shot fetch sees them all.
	complete := time.NewTimer(firstResponseWait)
	defer complete.Stop()
	waited := false
	for {
		snap := s.src.Snapshot(c)
		if !snap.Matched {
			s.log.Debug("workload API: caller denied", "caller", c.String())
			return denied(c)
		}
		ready := len(snap.SVIDs) > 0 && snap.TrustDomain != "" && len(snap.RootPEMs) > 0
		if ready && last == "" && snap.Pending > 0 && !waited {
			ready = false
		}
		if ready {
			key := svidKey(snap)
			if key != last {
				resp, err := x509SVIDResponse(snap)
				if err != nil {
					// A bad leaf in the cache: wait for the next one.
					s.log.Error("workload API: encode X.509-SVIDs", "err", err)
				} else {
					if err := stream.Send(resp); err != nil {
						return err
					}
					last = key
					s.log.Debug("workload API: sent X.509-SVIDs", "caller", c.String(), "svids", len(resp.Svids))
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-snap.Changed:
		case <-complete.C:
			waited = true
		}
	}
}

// firstResponseWait bounds how long the first X.509-SVID response waits
// for the leaves of all the caller's services once it has one.
const firstResponseWait = 2 * time.Second

// FetchX509Bundles streams the trust bundle to a caller that some service
// selects.
func (s *Server) FetchX509Bundles(_ *workload.X509BundlesRequest, stream grpc.ServerStreamingServer[workload.X509BundlesResponse]) error {
	ctx := stream.Context()
	c, err := s.caller(ctx)
	if err != nil {
		return err
	}
	var last string
	for {
		snap := s.src.Snapshot(c)
		if !snap.Matched {
			return denied(c)
		}
		if snap.TrustDomain != "" && len(snap.RootPEMs) > 0 {
			key := snap.TrustDomain + "\x00" + strings.Join(snap.RootPEMs, "")
			if key != last {
				der, err := pemsToDER(snap.RootPEMs)
				if err != nil {
					s.log.Error("workload API: encode bundle", "err", err)
				} else {
					resp := &workload.X509BundlesResponse{Bundles: map[string][]byte{"spiffe://" + snap.TrustDomain: der}}
					if err := stream.Send(resp); err != nil {
						return err
					}
					last = key
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-snap.Changed:
		}
	}
}

// FetchJWTSVID returns a JWT-SVID for the requested audiences for each of
// the caller's identities, or for the one it names.
func (s *Server) FetchJWTSVID(ctx context.Context, req *workload.JWTSVIDRequest) (*workload.JWTSVIDResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Audience) == 0 {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.SpiffeId != "" {
		if _, err := spiffeid.FromString(req.SpiffeId); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "invalid requested SPIFFE ID: %v", err)
		}
	}
	svids, err := s.src.JWTSVIDs(ctx, c, req.SpiffeId, req.Audience)
	switch {
	case errors.Is(err, ErrNotSelected):
		s.log.Debug("workload API: JWT-SVID denied", "caller", c.String(), "spiffe_id", req.SpiffeId)
		if req.SpiffeId != "" {
			return nil, status.Errorf(codes.PermissionDenied, "no service on this agent with ID %s selects the caller (%s)", req.SpiffeId, c)
		}
		return nil, denied(c)
	case errors.Is(err, catalog.ErrInvalid):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		s.log.Warn("workload API: fetch JWT-SVID", "caller", c.String(), "err", err)
		return nil, status.Errorf(codes.Unavailable, "could not get a JWT-SVID: %v", err)
	}
	resp := &workload.JWTSVIDResponse{}
	for _, v := range svids {
		resp.Svids = append(resp.Svids, &workload.JWTSVID{SpiffeId: v.ID, Svid: v.Token})
	}
	return resp, nil
}

// FetchJWTBundles streams the JWT bundle (a JWKS document, as go-spiffe's
// jwtbundle marshals it) to a caller that some service selects: the first
// response at once, a new one whenever the keys change.
func (s *Server) FetchJWTBundles(_ *workload.JWTBundlesRequest, stream grpc.ServerStreamingServer[workload.JWTBundlesResponse]) error {
	ctx := stream.Context()
	c, err := s.caller(ctx)
	if err != nil {
		return err
	}
	var last *jwtbundle.Bundle
	for {
		snap := s.src.Snapshot(c)
		if !snap.Matched {
			return denied(c)
		}
		if b := snap.JWTBundle; b != nil && (last == nil || !b.Equal(last)) {
			jwks, err := b.Marshal()
			if err != nil {
				s.log.Error("workload API: encode JWT bundle", "err", err)
			} else {
				resp := &workload.JWTBundlesResponse{Bundles: map[string][]byte{b.TrustDomain().IDString(): jwks}}
				if err := stream.Send(resp); err != nil {
					return err
				}
				last = b
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-snap.Changed:
		}
	}
}

// ValidateJWTSVID validates a JWT-SVID for an audience against the trust
// domain's JWT bundle, with go-spiffe's jwtsvid.ParseAndValidate.
func (s *Server) ValidateJWTSVID(ctx context.Context, req *workload.ValidateJWTSVIDRequest) (*workload.ValidateJWTSVIDResponse, error) {
	c, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	if req.Audience == "" {
		return nil, status.Error(codes.InvalidArgument, "audience must be specified")
	}
	if req.Svid == "" {
		return nil, status.Error(codes.InvalidArgument, "svid must be specified")
	}
	if len(req.Svid) > maxJWTSize {
		return nil, status.Errorf(codes.InvalidArgument, "svid longer than %d bytes", maxJWTSize)
	}
	snap := s.src.Snapshot(c)
	if !snap.Matched {
		return nil, denied(c)
	}
	if snap.JWTBundle == nil {
		return nil, status.Error(codes.Unavailable, "the JWT bundle is not known yet")
	}
	svid, err := jwtsvid.ParseAndValidate(req.Svid, snap.JWTBundle, []string{req.Audience})
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	claims, err := structpb.NewStruct(svid.Claims)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "claims: %v", err)
	}
	return &workload.ValidateJWTSVIDResponse{SpiffeId: svid.ID.String(), Claims: claims}, nil
}

// maxJWTSize bounds a token to validate.
const maxJWTSize = 64 << 10

func svidKey(s Snapshot) string {
	var b strings.Builder
	b.WriteString(s.TrustDomain)
	for _, r := range s.RootPEMs {
		b.WriteString(r)
	}
	for _, v := range s.SVIDs {
		b.WriteString("\x00" + v.ID + "\x00" + v.CertPEM)
	}
	return b.String()
}

func x509SVIDResponse(s Snapshot) (*workload.X509SVIDResponse, error) {
	bundle, err := pemsToDER(s.RootPEMs)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	resp := &workload.X509SVIDResponse{}
	for _, v := range s.SVIDs {
		chain, err := pemsToDER([]string{v.CertPEM})
		if err != nil {
			return nil, fmt.Errorf("%s: certificate: %w", v.ID, err)
		}
		key, err := keyDER(v.KeyPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: key: %w", v.ID, err)
		}
		resp.Svids = append(resp.Svids, &workload.X509SVID{SpiffeId: v.ID, X509Svid: chain, X509SvidKey: key, Bundle: bundle})
	}
	return resp, nil
}

// pemsToDER concatenates the DER of every CERTIFICATE block, in order.
func pemsToDER(pems []string) ([]byte, error) {
	var out bytes.Buffer
	for _, p := range pems {
		rest := []byte(p)
		for {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if blk.Type != "CERTIFICATE" {
				continue
			}
			out.Write(blk.Bytes)
		}
	}
	if out.Len() == 0 {
		return nil, errors.New("no certificate")
	}
	return out.Bytes(), nil
}

// keyDER returns the PKCS #8 DER of a PEM private key.
func keyDER(p string) ([]byte, error) {
	blk, _ := pem.Decode([]byte(p))
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PRIVATE KEY":
		if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err != nil {
			return nil, err
		}
		return blk.Bytes, nil
	case "EC PRIVATE KEY":
		k, err := x509.ParseECPrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(k)
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKCS8PrivateKey(k)
	}
	return nil, fmt.Errorf("unknown key block %q", blk.Type)
}

// Listen creates the Workload API socket at path: the directory (0755)
// if missing, and a socket anyone may connect to (0666), since callers are
// authorized by their peer credentials, not by file permissions.
//
// The socket's owner holds an exclusive lock on path+".lock" for as long as
// it listens (released by Close, or by the kernel when the process dies), so
// processes starting at once cannot take over each other's socket: one gets
// it, the others ErrInUse. A socket left by a process that died is replaced;
// one served by a process that holds no lock (an older warren) is not.
func Listen(path string) (net.Listener, error) {
	if path == "" {
		return nil, errors.New("workload API: no socket path")
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("workload API: create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, fmt.Errorf("workload API: %w", err)
		}
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("workload API: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("workload API: %s: %w", path, ErrInUse)
		}
		return nil, fmt.Errorf("workload API: lock %s.lock: %w", path, err)
	}
	ln, err := listenLocked(path)
	if err != nil {
		_ = lock.Close()
		return nil, err
	}
	return &lockedListener{Listener: ln, lock: lock}, nil
}

// listenLocked listens on path, replacing a stale socket; the caller holds
// the lock.
func listenLocked(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("workload API: %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("workload API: %s: %w", path, ErrInUse)
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("workload API: remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("workload API: %w", err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("workload API: %w", err)
	}
	return ln, nil
}

// lockedListener releases the socket's lock when it is closed.
type lockedListener struct {
	net.Listener
	lock *os.File
}

func (l *lockedListener) Close() error {
	err := l.Listener.Close()
	_ = l.lock.Close()
	return err
}

// ErrInUse: another live process serves the socket.
var ErrInUse = errors.New("another process is serving this socket")

// Serve serves the Workload API on ln until ctx ends; then it closes ln
// (removing the socket) and ends the open streams.
func Serve(ctx context.Context, ln net.Listener, srv *Server) error {
	gs := grpc.NewServer(grpc.Creds(PeerCredentials()), grpc.MaxRecvMsgSize(1<<20))
	workload.RegisterSpiffeWorkloadAPIServer(gs, srv)
	errCh := make(chan error, 1)
	go func() { errCh <- gs.Serve(ln) }()
	select {
	case err := <-errCh:
		return fmt.Errorf("serve workload API: %w", err)
	case <-ctx.Done():
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(time.Second):
		gs.Stop() // the streams never end on their own
	}
	<-errCh
	return nil
}
