package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The test binary doubles as a workload: with workloadChildEnv set it runs
// one Workload API client role (workloadChild) and exits.
const workloadChildEnv = "WARREN_E2E_WORKLOAD_CHILD"

func init() {
	spec := os.Getenv(workloadChildEnv)
	if spec == "" {
		return
	}
	// spec: "<role> <socket> [<peer SPIFFE ID> [<addr>]]"
	f := strings.Fields(spec)
	os.Exit(workloadChild(f[0], f[1], f[2:]))
}

// childReport is what a child workload prints as its last line.
type childReport struct {
	IDs  []string `json:",omitempty"`
	Code string   `json:",omitempty"`
	Err  string   `json:",omitempty"`
	Peer string   `json:",omitempty"` // the peer's ID after an mTLS handshake
	Msg  string   `json:",omitempty"`
}

func workloadChild(role, socket string, args []string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	addr := workloadapi.WithClientOptions(workloadapi.WithAddr("unix://" + socket))
	report := func(r childReport) int {
		_ = json.NewEncoder(os.Stdout).Encode(r)
		return 0
	}
	fail := func(err error) int { return report(childReport{Err: err.Error(), Code: status.Code(err).String()}) }
	switch role {
	case "fetch": // every SVID the caller gets
		svids, err := workloadapi.FetchX509SVIDs(ctx, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			return fail(err)
		}
		var r childReport
		for _, s := range svids {
			r.IDs = append(r.IDs, s.ID.String())
		}
		return report(r)
	case "serve": // mTLS server that accepts only args[0]
		src, err := workloadapi.NewX509Source(ctx, addr)
		if err != nil {
			return fail(err)
		}
		defer src.Close()
		peer, err := spiffeid.FromString(args[0])
		if err != nil {
			return fail(err)
		}
		ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(src, src, tlsconfig.AuthorizeID(peer)))
		if err != nil {
			return fail(err)
		}
		defer ln.Close()
		fmt.Printf("listening %s\n", ln.Addr())
		c, err := ln.Accept()
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			return fail(err)
		}
		got, _ := spiffeid.FromURI(tc.ConnectionState().PeerCertificates[0].URIs[0])
		svid, _ := src.GetX509SVID()
		if _, err := io.WriteString(tc, "hello from "+svid.ID.String()+"\n"); err != nil {
			return fail(err)
		}
		return report(childReport{IDs: []string{svid.ID.String()}, Peer: got.String()})
	case "dial": // mTLS client of args[1] that accepts only args[0]
		src, err := workloadapi.NewX509Source(ctx, addr)
		if err != nil {
			return fail(err)
		}
		defer src.Close()
		peer, err := spiffeid.FromString(args[0])
		if err != nil {
			return fail(err)
		}
		c, err := tls.Dial("tcp", args[1], tlsconfig.MTLSClientConfig(src, src, tlsconfig.AuthorizeID(peer)))
		if err != nil {
			return fail(err)
		}
		defer c.Close()
		msg, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fail(err)
		}
		got, _ := spiffeid.FromURI(c.ConnectionState().PeerCertificates[0].URIs[0])
		svid, _ := src.GetX509SVID()
		return report(childReport{IDs: []string{svid.ID.String()}, Peer: got.String(), Msg: strings.TrimSpace(msg)})
	case "jwt-fetch": // a JWT-SVID for audience args[0]; the token in Msg
		svid, err := workloadapi.FetchJWTSVID(ctx, jwtsvid.Params{Audience: args[0]}, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			return fail(err)
		}
		return report(childReport{IDs: []string{svid.ID.String()}, Msg: svid.Marshal()})
	case "jwt-validate": // validate token args[1] for audience args[0]
		svid, err := workloadapi.ValidateJWTSVID(ctx, args[1], args[0], workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			return fail(err)
		}
		return report(childReport{IDs: []string{svid.ID.String()}})
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	return 2
}

// workloadBinary copies the test binary where other users may run it.
func workloadBinary(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := publicTempDir(t)
	bin := filepath.Join(dir, "workload-child")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// publicTempDir is a temporary directory every user may enter.
func publicTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "warren-wl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// childAs prepares the child workload binary as uid (and gid) uid.
func childAs(bin string, uid uint32, spec ...string) *exec.Cmd {
	cmd := exec.Command(bin, "-test.run=^$")
	cmd.Env = append(os.Environ(), workloadChildEnv+"="+strings.Join(spec, " "))
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func lastReport(t *testing.T, who string, out []byte) childReport {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var r childReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("%s: %q: %v", who, out, err)
	}
	return r
}

// registerWithIdentity registers a service with Warren's Identity
// extension through the HTTP API.
func registerWithIdentity(t *testing.T, httpAddr, name string, uid int, path string) {
	t.Helper()
	ident := map[string]any{"UID": uid}
	if path != "" {
		ident["Path"] = path
	}
	body, _ := json.Marshal(map[string]any{"Name": name, "Port": 8080, "Identity": ident})
	req, _ := http.NewRequest(http.MethodPut, "http://"+httpAddr+"/v1/agent/service/register", bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("register %s: %d %s", name, resp.StatusCode, b)
	}
}

// TestWorkloadAPIAgainstDev: workloads running as other users fetch their
// SVIDs from `warren dev`'s Workload API with go-spiffe's client, selected
// by uid (and executable path), and complete an mTLS handshake with each
// other, each authorizing the other's exact ID; a caller no service selects
// gets PermissionDenied; a call without the security header gets
// InvalidArgument; JWT-SVIDs are fetched and validated across users and a
// root rotation (testJWTSVIDs); with a leaf TTL of a few seconds a watching client gets
// each new SVID before the previous one expires.
func TestWorkloadAPIAgainstDev(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run workloads as other users")
	}
	socket := filepath.Join(publicTempDir(t), "run", "workload.sock")
	p := startDev(t, "-workload-socket", socket)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		r, _, err := cl.Connect().CARoots(nil)
		if err != nil {
			return err
		}
		if len(r.Roots) == 0 {
			return errors.New("no root yet")
		}
		return nil
	})
	fi, err := os.Stat(socket)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket: %v %v", fi, err)
	}
	// Short leaves, so that rotations happen during the test.
	if _, err := cl.Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "5s"}}, nil); err != nil {
		t.Fatal(err)
	}
	bin := workloadBinary(t)
	registerWithIdentity(t, p.HTTP, "web", 1001, "")
	registerWithIdentity(t, p.HTTP, "api", 1002, "")
	// Path selectors: uid 1001 running the child binary also gets
	// "webtool"; uid 1002 does not get "apitool" (another executable).
	registerWithIdentity(t, p.HTTP, "webtool", 1001, bin)
	registerWithIdentity(t, p.HTTP, "apitool", 1002, "/usr/bin/true")
	registerWithIdentity(t, p.HTTP, "watcher", os.Getuid(), "")

	// An Identity without selectors is refused.
	req, _ := http.NewRequest(http.MethodPut, "http://"+p.HTTP+"/v1/agent/service/register", strings.NewReader(`{"Name":"bad","Identity":{}}`))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Fatalf("register with an empty Identity: %v %v, want 400", resp, err)
	} else {
		resp.Body.Close()
	}

	roots, _, err := cl.Connect().CARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	id := func(svc string) string {
		return fmt.Sprintf("spiffe://%s/ns/default/dc/dc1/svc/%s", roots.TrustDomain, svc)
	}

	t.Run("selectors", func(t *testing.T) {
		out, err := childAs(bin, 1001, "fetch", socket).Output()
		if err != nil {
			t.Fatal(err)
		}
		if r := lastReport(t, "uid 1001", out); strings.Join(r.IDs, " ") != id("web")+" "+id("webtool") {
			t.Fatalf("uid 1001 got %+v, want web and webtool", r)
		}
		out, err = childAs(bin, 1002, "fetch", socket).Output()
		if err != nil {
			t.Fatal(err)
		}
		if r := lastReport(t, "uid 1002", out); strings.Join(r.IDs, " ") != id("api") {
			t.Fatalf("uid 1002 got %+v, want api only", r)
		}
	})

	t.Run("mTLS between two workloads", func(t *testing.T) {
		srv := childAs(bin, 1002, "serve", socket, id("web"))
		stdout, err := srv.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var srvErr bytes.Buffer
		srv.Stderr = &srvErr
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
		rd := bufio.NewReader(stdout)
		line, err := rd.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "listening ") {
			t.Fatalf("server child: %q %v %s", line, err, srvErr.String())
		}
		addr := strings.TrimSpace(strings.TrimPrefix(line, "listening "))
		out, err := childAs(bin, 1001, "dial", socket, id("api"), addr).Output()
		if err != nil {
			t.Fatal(err)
		}
		cr := lastReport(t, "client", out)
		rest, _ := io.ReadAll(rd)
		_ = srv.Wait()
		sr := lastReport(t, "server", rest)
		if cr.Err != "" || cr.Peer != id("api") || cr.Msg != "hello from "+id("api") || cr.IDs[0] != id("web") {
			t.Fatalf("client: %+v", cr)
		}
		if sr.Err != "" || sr.Peer != id("web") {
			t.Fatalf("server: %+v", sr)
		}
		// A client that expects another ID refuses the server.
		srv2 := childAs(bin, 1002, "serve", socket, id("web"))
		stdout2, _ := srv2.StdoutPipe()
		if err := srv2.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = srv2.Process.Kill(); _ = srv2.Wait() }()
		line, _ = bufio.NewReader(stdout2).ReadString('\n')
		addr = strings.TrimSpace(strings.TrimPrefix(line, "listening "))
		out, _ = childAs(bin, 1001, "dial", socket, id("db"), addr).Output()
		if r := lastReport(t, "client", out); r.Err == "" {
			t.Fatalf("handshake with an unexpected server ID succeeded: %+v", r)
		}
	})

	t.Run("no matching service", func(t *testing.T) {
		out, err := childAs(bin, 1003, "fetch", socket).Output()
		if err != nil {
			t.Fatal(err)
		}
		if r := lastReport(t, "uid 1003", out); r.Code != codes.PermissionDenied.String() {
			t.Fatalf("uid 1003: %+v, want PermissionDenied", r)
		}
	})

	t.Run("missing security header", func(t *testing.T) {
		conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := workload.NewSpiffeWorkloadAPIClient(conn).FetchX509SVID(ctx, &workload.X509SVIDRequest{})
		if err == nil {
			_, err = s.Recv()
		}
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("FetchX509SVID without workload.spiffe.io: %v, want InvalidArgument", err)
		}
		c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if s, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "x"}); err != nil || s.ID.String() != id("watcher") {
			t.Fatalf("FetchJWTSVID with the header: %v %v", s, err)
		}
	})

	t.Run("rotation", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		type update struct {
			at  time.Time
			ctx *workloadapi.X509Context
		}
		updates := make(chan update, 100)
		go func() {
			_ = c.WatchX509Context(ctx, x509Watcher(func(x *workloadapi.X509Context) { updates <- update{time.Now(), x} }))
		}()
		var prev *update
		for n := 0; n < 4; {
			select {
			case u := <-updates:
				if len(u.ctx.SVIDs) != 1 || u.ctx.SVIDs[0].ID.String() != id("watcher") {
					t.Fatalf("watcher got %+v", u.ctx.SVIDs)
				}
				leaf := u.ctx.SVIDs[0].Certificates[0]
				if life := leaf.NotAfter.Sub(u.at); life > 6*time.Second || life <= 0 {
					t.Fatalf("leaf valid for %s more at receipt; want the 5s TTL", life)
				}
				if prev != nil {
					old := prev.ctx.SVIDs[0].Certificates[0]
					if leaf.SerialNumber.Cmp(old.SerialNumber) == 0 {
						t.Fatalf("update %d repeats the previous SVID", n)
					}
					if !u.at.Before(old.NotAfter) {
						t.Fatalf("new SVID at %s, after the old one expired at %s", u.at, old.NotAfter)
					}
					// At 60-90% of a 5s life, not at once (NotBefore is
					// backdated by the same minute on both).
					if gap := leaf.NotBefore.Sub(old.NotBefore); gap < 2*time.Second {
						t.Fatalf("SVID signed %s after the previous one: renewing too often", gap)
					}
					n++
				}
				prev = &u
			case <-ctx.Done():
				t.Fatal("no SVID rotation seen")
			}
		}
	})

	t.Run("JWT-SVIDs", func(t *testing.T) { testJWTSVIDs(t, cl, bin, socket, id) })
}

// testJWTSVIDs: JWT-SVIDs from the real agent, fetched and validated by
// workloads of other users with go-spiffe's client; then a root rotation
// after which the JWT bundle holds the old and the new key and tokens of
// both validate.
func testJWTSVIDs(t *testing.T, cl *consulapi.Client, bin, socket string, id func(string) string) {
	fetch := func(uid uint32, aud string) childReport {
		t.Helper()
		out, err := childAs(bin, uid, "jwt-fetch", socket, aud).Output()
		if err != nil {
			t.Fatal(err)
		}
		return lastReport(t, fmt.Sprintf("jwt-fetch uid %d", uid), out)
	}
	validate := func(uid uint32, aud, tok string) childReport {
		t.Helper()
		out, err := childAs(bin, uid, "jwt-validate", socket, aud, tok).Output()
		if err != nil {
			t.Fatal(err)
		}
		return lastReport(t, fmt.Sprintf("jwt-validate uid %d", uid), out)
	}
	web := fetch(1001, "A")
	if web.Err != "" || len(web.IDs) != 1 || web.IDs[0] != id("web") || web.Msg == "" {
		t.Fatalf("uid 1001 JWT-SVID: %+v", web)
	}
	// Another workload (api, uid 1002) validates web's token.
	if r := validate(1002, "A", web.Msg); r.Err != "" || r.IDs[0] != id("web") {
		t.Fatalf("validate for A: %+v", r)
	}
	if r := validate(1002, "B", web.Msg); r.Code != codes.InvalidArgument.String() || !strings.Contains(r.Err, "audience") {
		t.Fatalf("validate a token for A as B: %+v, want InvalidArgument (audience)", r)
	}
	parts := strings.Split(web.Msg, ".")
	forged := parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2]))
	if r := validate(1002, "A", forged); r.Code != codes.InvalidArgument.String() {
		t.Fatalf("validate a token with a forged signature: %+v, want InvalidArgument", r)
	}
	// Cached: the same token again (well within half its 5 min life).
	if again := fetch(1001, "A"); again.Msg != web.Msg {
		t.Error("a second fetch for the same audience signed a new token")
	}
	if r := fetch(1003, "A"); r.Code != codes.PermissionDenied.String() {
		t.Fatalf("uid 1003 JWT-SVID: %+v, want PermissionDenied", r)
	}
	if r := validate(1003, "A", web.Msg); r.Code != codes.PermissionDenied.String() {
		t.Fatalf("uid 1003 ValidateJWTSVID: %+v, want PermissionDenied", r)
	}

	// Root rotation.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := workloadapi.New(ctx, workloadapi.WithAddr("unix://"+socket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	td := spiffeid.RequireTrustDomainFromString(strings.Split(strings.TrimPrefix(id("x"), "spiffe://"), "/")[0])
	keys := func() int {
		set, err := c.FetchJWTBundles(ctx)
		if err != nil {
			t.Fatal(err)
		}
		b, err := set.GetJWTBundleForTrustDomain(td)
		if err != nil {
			t.Fatal(err)
		}
		return len(b.JWTAuthorities())
	}
	if n := keys(); n != 1 {
		t.Fatalf("JWT bundle before the rotation: %d keys", n)
	}
	if _, err := cl.Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "5s", "RotateRoot": true}}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if n := keys(); n != 2 {
			return fmt.Errorf("JWT bundle holds %d keys", n)
		}
		return nil
	})
	fresh := fetch(1001, "A")
	if fresh.Err != "" || fresh.Msg == web.Msg {
		t.Fatalf("JWT-SVID after the rotation: %+v (the same token as before: %t)", fresh, fresh.Msg == web.Msg)
	}
	for name, tok := range map[string]string{"old key": web.Msg, "new key": fresh.Msg} {
		if r := validate(1002, "A", tok); r.Err != "" || r.IDs[0] != id("web") {
			t.Errorf("token of the %s after the rotation: %+v", name, r)
		}
	}
}

type x509Watcher func(*workloadapi.X509Context)

func (w x509Watcher) OnX509ContextUpdate(x *workloadapi.X509Context) { w(x) }
func (x509Watcher) OnX509ContextWatchError(error)                    {}
