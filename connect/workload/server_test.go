package workload

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/connect"
)

// fakeSource serves the SVIDs given per uid.
type fakeSource struct {
	mu      sync.Mutex
	byUID   map[uint32][]SVID
	td      string
	roots   []string
	changed chan struct{}
	callers []Caller
	// JWT-SVIDs: signed by jwt (nil: none), validated against jwtBundle.
	jwt       *connect.JWTSigner
	jwtBundle *jwtbundle.Bundle
}

func newFakeSource(td string, roots ...string) *fakeSource {
	return &fakeSource{byUID: map[uint32][]SVID{}, td: td, roots: roots, changed: make(chan struct{})}
}

func (f *fakeSource) Snapshot(c Caller) Snapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.callers = append(f.callers, c)
	svids, ok := f.byUID[c.UID]
	return Snapshot{Matched: ok, SVIDs: append([]SVID(nil), svids...), TrustDomain: f.td, RootPEMs: f.roots, JWTBundle: f.jwtBundle, Changed: f.changed}
}

// JWTSVIDs signs a token for each of the caller's SVIDs' IDs.
func (f *fakeSource) JWTSVIDs(_ context.Context, c Caller, id string, audience []string) ([]JWTSVID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	svids, ok := f.byUID[c.UID]
	if !ok {
		return nil, ErrNotSelected
	}
	if f.jwt == nil {
		return nil, errors.New("no JWT signer")
	}
	var out []JWTSVID
	for _, s := range svids {
		if id != "" && s.ID != id {
			continue
		}
		tok, _, err := f.jwt.Sign(spiffeid.RequireFromString(s.ID), audience, time.Minute, time.Now())
		if err != nil {
			return nil, err
		}
		out = append(out, JWTSVID{ID: s.ID, Token: tok})
	}
	if len(out) == 0 {
		return nil, ErrNotSelected
	}
	return out, nil
}

// setJWT makes roots' JWT keys the bundle and the first one the signer.
func (f *fakeSource) setJWT(t *testing.T, roots ...*connect.Root) {
	t.Helper()
	sg, err := connect.NewJWTSigner(roots[0])
	if err != nil {
		t.Fatal(err)
	}
	b, err := connect.JWTBundle(f.td, connect.JWTKeys(roots, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.jwt, f.jwtBundle = sg, b
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeSource) set(uid uint32, svids ...SVID) {
	f.mu.Lock()
	f.byUID[uid] = svids
	close(f.changed)
	f.changed = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeSource) lastCaller() Caller {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.callers[len(f.callers)-1]
}

// testCA is a root of the built-in CA that signs leaves like the servers.
type testCA struct {
	root *connect.Root
	td   string
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	td := "11111111-2222-3333-4444-555555555555.warren"
	r, err := connect.NewRoot(connect.CAConfig{}, td, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{root: r, td: td}
}

func (ca *testCA) svid(t *testing.T, svc string) SVID {
	t.Helper()
	id := connect.ServiceID(ca.td, "default", "dc1", svc)
	keyPEM, csr, err := connect.NewCSR(id, nil, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _, err := connect.SignLeaf(ca.root, csr, id, nil, time.Hour, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return SVID{ID: id.String(), CertPEM: certPEM, KeyPEM: keyPEM}
}

// serve runs a Server for src on a socket in a directory that any user
// may traverse, and returns the socket path.
func serve(t *testing.T, src Source) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "wl-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "run", "workload.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, NewServer(src, nil)) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return path
}

func client(t *testing.T, path string) *workloadapi.Client {
	t.Helper()
	c, err := workloadapi.New(context.Background(), workloadapi.WithAddr("unix://"+path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestListenPermissionsAndStaleSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "workload.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{filepath.Dir(path): 0o755 | os.ModeDir, path: 0o666 | os.ModeSocket} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %s, want %s", p, fi.Mode(), want)
		}
	}
	// A live socket is not taken over.
	if _, err := Listen(path); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Listen: %v, want ErrInUse", err)
	}
	// A stale one (its process died without removing it) is replaced.
	ln.(*lockedListener).Listener.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("stale socket should still exist: %v", err)
	}
	ln, err = Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	_ = ln.Close()
	// A file that is not a socket is left alone.
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Listen over a file: %v", err)
	}
}

// TestFetchX509SVID_PeerCredsAndRotation: the server sees the caller's
// uid, pid and executable; the first response comes at once; every change
// of the caller's leaves reaches a watching client; the SVIDs verify
// against the bundle and complete an mTLS handshake.
func TestFetchX509SVID_PeerCredsAndRotation(t *testing.T) {
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	uid := uint32(os.Getuid())
	web, api := ca.svid(t, "web"), ca.svid(t, "api")
	src.set(uid, web, api)
	path := serve(t, src)
	c := client(t, path)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	x, err := c.FetchX509Context(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(x.SVIDs) != 2 || x.SVIDs[0].ID.String() != web.ID || x.SVIDs[1].ID.String() != api.ID {
		t.Fatalf("SVIDs: %+v", x.SVIDs)
	}
	exe, _ := os.Executable()
	if got := src.lastCaller(); got.UID != uid || got.GID != uint32(os.Getgid()) || got.PID != int32(os.Getpid()) || got.Path != exe {
		t.Fatalf("caller %+v, want uid %d pid %d path %s", got, uid, os.Getpid(), exe)
	}
	td := spiffeid.RequireTrustDomainFromString(ca.td)
	b, err := x.Bundles.GetX509BundleForTrustDomain(td)
	if err != nil || len(b.X509Authorities()) != 1 {
		t.Fatalf("bundle: %v %v", b, err)
	}
	mtls(t, x.SVIDs[0], x.SVIDs[1], x.Bundles)

	// Bundles alone.
	bs, err := c.FetchX509Bundles(ctx)
	if err != nil || bs.Len() != 1 {
		t.Fatalf("FetchX509Bundles: %v %v", bs, err)
	}

	// A watcher sees every rotation.
	updates := make(chan *workloadapi.X509Context, 10)
	go func() {
		_ = c.WatchX509Context(ctx, watcher{func(x *workloadapi.X509Context) { updates <- x }})
	}()
	first := <-updates
	if first.SVIDs[0].Certificates[0].SerialNumber.Cmp(x.SVIDs[0].Certificates[0].SerialNumber) != 0 {
		t.Fatal("first watch update should be the current SVIDs")
	}
	for range 3 {
		next := ca.svid(t, "web")
		src.set(uid, next)
		select {
		case u := <-updates:
			if len(u.SVIDs) != 1 || u.SVIDs[0].ID.String() != next.ID || u.SVIDs[0].Certificates[0].SerialNumber.Cmp(leafSerial(t, next.CertPEM)) != 0 {
				t.Fatalf("update: %+v", u.SVIDs)
			}
		case <-ctx.Done():
			t.Fatal("no update after a rotation")
		}
	}
	// A change that does not alter the caller's SVIDs sends nothing.
	src.set(uid+1, web)
	select {
	case u := <-updates:
		t.Fatalf("unexpected update %+v", u.SVIDs)
	case <-time.After(200 * time.Millisecond):
	}
}

func TestFetchX509SVID_NoMatchIsPermissionDenied(t *testing.T) {
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	src.set(uint32(os.Getuid())+1, ca.svid(t, "web"))
	c := client(t, serve(t, src))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.FetchX509SVID(ctx); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchX509SVID: %v, want PermissionDenied", err)
	}
	if _, err := c.FetchX509Bundles(ctx); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchX509Bundles: %v, want PermissionDenied", err)
	}
}

// TestSecurityHeader: every method wants workload.spiffe.io: true.
func TestSecurityHeader(t *testing.T) {
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	src.set(uint32(os.Getuid()), ca.svid(t, "web"))
	src.setJWT(t, ca.root)
	path := serve(t, src)
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	wl := workload.NewSpiffeWorkloadAPIClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := map[string]func(context.Context) error{
		"FetchX509SVID": func(ctx context.Context) error {
			s, err := wl.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
		"FetchX509Bundles": func(ctx context.Context) error {
			s, err := wl.FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
		"FetchJWTSVID": func(ctx context.Context) error {
			_, err := wl.FetchJWTSVID(ctx, &workload.JWTSVIDRequest{Audience: []string{"x"}})
			return err
		},
		"FetchJWTBundles": func(ctx context.Context) error {
			s, err := wl.FetchJWTBundles(ctx, &workload.JWTBundlesRequest{})
			if err == nil {
				_, err = s.Recv()
			}
			return err
		},
		"ValidateJWTSVID": func(ctx context.Context) error {
			_, err := wl.ValidateJWTSVID(ctx, &workload.ValidateJWTSVIDRequest{Audience: "x", Svid: "y"})
			return err
		},
	}
	for name, call := range calls {
		if err := call(ctx); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "security header") {
			t.Errorf("%s without the header: %v, want InvalidArgument", name, err)
		}
		wrong := metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "false")
		if err := call(wrong); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s with header false: %v, want InvalidArgument", name, err)
		}
		good := metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
		err := call(good)
		want := codes.OK
		if name == "ValidateJWTSVID" {
			want = codes.InvalidArgument // "y" is not a token
		}
		if status.Code(err) != want {
			t.Errorf("%s with the header: %v, want %s", name, err, want)
		}
	}
}

// TestDistinctUIDs runs the clients as other users (needs root): uid 1001
// and 1002 each get their own service's SVID, complete an mTLS handshake
// with each other, and uid 1003 is denied.
func TestDistinctUIDs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run clients as other users")
	}
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	web, api := ca.svid(t, "web"), ca.svid(t, "api")
	src.set(1001, web)
	src.set(1002, api)
	path := serve(t, src)
	bin := copyTestBinary(t)

	webOut := runAs(t, bin, 1001, path)
	apiOut := runAs(t, bin, 1002, path)
	if webOut.Err != "" || webOut.ID != web.ID || apiOut.Err != "" || apiOut.ID != api.ID {
		t.Fatalf("children: web %+v, api %+v", webOut, apiOut)
	}
	if out := runAs(t, bin, 1003, path); out.Code != codes.PermissionDenied.String() {
		t.Fatalf("uid 1003: %+v, want PermissionDenied", out)
	}
}

// childResult is what a child client prints.
type childResult struct {
	ID, Err, Code string
}

func TestMain(m *testing.M) {
	if path := os.Getenv("WARREN_WORKLOAD_TEST_CHILD"); path != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var r childResult
		s, err := workloadapi.FetchX509SVID(ctx, workloadapi.WithAddr("unix://"+path))
		if err != nil {
			r.Err, r.Code = err.Error(), status.Code(err).String()
		} else {
			r.ID = s.ID.String()
		}
		_ = json.NewEncoder(os.Stdout).Encode(r)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// copyTestBinary copies the test binary where other users may run it.
func copyTestBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "wl-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "workload-client")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func runAs(t *testing.T, bin string, uid uint32, path string) childResult {
	t.Helper()
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), "WARREN_WORKLOAD_TEST_CHILD="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	cmd.Dir = "/"
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child uid %d: %v: %s", uid, err, out)
	}
	var r childResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("child uid %d: %q: %v", uid, out, err)
	}
	return r
}

type watcher struct {
	f func(*workloadapi.X509Context)
}

func (w watcher) OnX509ContextUpdate(x *workloadapi.X509Context) { w.f(x) }
func (w watcher) OnX509ContextWatchError(error)                  {}

// mtls completes a handshake between a server holding srv and a client
// holding cli, each authorizing exactly the other's ID.
func mtls(t *testing.T, srv, cli *x509svid.SVID, bundles x509bundle.Source) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(srv, bundles, tlsconfig.AuthorizeID(cli.ID)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
		errc <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(cli, bundles, tlsconfig.AuthorizeID(srv.ID)))
	if err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	_ = c.Close()
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	// A client that authorizes another ID refuses the server.
	other := spiffeid.RequireFromPath(srv.ID.TrustDomain(), "/ns/default/dc/dc1/svc/other")
	go func() {
		c, err := ln.Accept()
		if err == nil {
			_ = c.(*tls.Conn).Handshake()
			_ = c.Close()
		}
	}()
	if c, err := tls.Dial("tcp", ln.Addr().String(), tlsconfig.MTLSClientConfig(cli, bundles, tlsconfig.AuthorizeID(other))); err == nil {
		_ = c.Close()
		t.Fatal("handshake with a server of an unexpected ID succeeded")
	}
}

// leafSerial is the serial of the first certificate of a PEM chain.
func leafSerial(t *testing.T, certPEM string) *big.Int {
	t.Helper()
	blk, _ := pem.Decode([]byte(certPEM))
	if blk == nil {
		t.Fatal("no PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber
}

// Processes that start at once over a stale socket (three servers on one
// host in the e2e harness did): exactly one serves it, every other is told
// it is in use, none fails otherwise.
func TestListenRaceOverStaleSocket(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "workload.sock")
		ln, err := Listen(path)
		if err != nil {
			t.Fatal(err)
		}
		ln.(*lockedListener).Listener.(*net.UnixListener).SetUnlinkOnClose(false)
		_ = ln.Close() // stale
		const n = 4
		errs := make(chan error, n)
		lns := make(chan net.Listener, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				l, err := Listen(path)
				if err == nil {
					lns <- l
				}
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		close(lns)
		ok := 0
		for err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrInUse):
				t.Fatalf("round %d: %v, want nil or ErrInUse", round, err)
			}
		}
		for l := range lns {
			_ = l.Close()
		}
		if ok != 1 {
			t.Fatalf("round %d: %d listeners serve the socket, want 1", round, ok)
		}
	}
}
