package workload

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warren-mesh/warren/connect"
)

// TestJWTSVID drives the JWT methods with go-spiffe's workloadapi client:
// a token for audience A validates for A and not for B, a tampered token
// fails, and after a root rotation the bundle holds both keys and tokens
// signed by either validate.
func TestJWTSVID(t *testing.T) {
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	uid := uint32(os.Getuid())
	web, api := ca.svid(t, "web"), ca.svid(t, "api")
	src.set(uid, web, api)
	src.setJWT(t, ca.root)
	c := client(t, serve(t, src))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	svid, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != web.ID || len(svid.Audience) != 1 || svid.Audience[0] != "A" {
		t.Fatalf("JWT-SVID: %+v", svid)
	}
	if left := time.Until(svid.Expiry); left <= 0 || left > time.Minute+time.Second {
		t.Fatalf("expiry %s", svid.Expiry)
	}
	// One per identity, or the one named.
	all, err := c.FetchJWTSVIDs(ctx, jwtsvid.Params{Audience: "A", ExtraAudiences: []string{"C"}})
	if err != nil || len(all) != 2 || all[1].ID.String() != api.ID {
		t.Fatalf("FetchJWTSVIDs: %+v %v", all, err)
	}
	one, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "A", Subject: spiffeid.RequireFromString(api.ID)})
	if err != nil || one.ID.String() != api.ID {
		t.Fatalf("FetchJWTSVID for api: %+v %v", one, err)
	}
	other := connect.ServiceID(ca.td, "default", "dc1", "db")
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "A", Subject: other}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchJWTSVID for a service that does not select the caller: %v, want PermissionDenied", err)
	}

	// The bundle, as a workload would validate on its own.
	bundles, err := c.FetchJWTBundles(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := bundles.GetJWTBundleForTrustDomain(spiffeid.RequireTrustDomainFromString(ca.td)); err != nil || len(b.JWTAuthorities()) != 1 || !b.HasJWTAuthority(ca.root.JWTKeyID) {
		t.Fatalf("JWT bundle: %v %v", b, err)
	}
	if _, err := jwtsvid.ParseAndValidate(svid.Marshal(), bundles, []string{"A"}); err != nil {
		t.Fatalf("local validation: %v", err)
	}

	// Validation by the Workload API.
	got, err := c.ValidateJWTSVID(ctx, svid.Marshal(), "A")
	if err != nil || got.ID.String() != web.ID {
		t.Fatalf("ValidateJWTSVID for A: %+v %v", got, err)
	}
	if _, err := c.ValidateJWTSVID(ctx, svid.Marshal(), "B"); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "audience") {
		t.Fatalf("ValidateJWTSVID for B: %v, want InvalidArgument (audience)", err)
	}
	for name, tampered := range tamper(t, svid.Marshal()) {
		if _, err := c.ValidateJWTSVID(ctx, tampered, "A"); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s token: %v, want InvalidArgument", name, err)
		}
	}
	// A token of another CA with the same trust domain and key ID shape.
	stranger := newTestCA(t)
	sg, err := connect.NewJWTSigner(stranger.root)
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := sg.Sign(spiffeid.RequireFromString(web.ID), []string{"A"}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidateJWTSVID(ctx, forged, "A"); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("token of another CA: %v, want InvalidArgument", err)
	}

	// Rotation: a watcher sees the bundle with both keys; tokens signed
	// by the old and the new key validate.
	updates := make(chan *jwtbundle.Set, 10)
	go func() {
		_ = c.WatchJWTBundles(ctx, jwtWatcher(func(s *jwtbundle.Set) { updates <- s }))
	}()
	if first := <-updates; first.Len() != 1 {
		t.Fatalf("first JWT bundle update: %d bundles", first.Len())
	}
	newRoot, err := connect.NewRoot(connect.CAConfig{}, ca.td, time.Now(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	old := *ca.root
	if err := connect.Rotate(&old, newRoot, time.Hour, time.Now(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	src.setJWT(t, newRoot, &old)
	select {
	case s := <-updates:
		b, err := s.GetJWTBundleForTrustDomain(spiffeid.RequireTrustDomainFromString(ca.td))
		if err != nil || len(b.JWTAuthorities()) != 2 || !b.HasJWTAuthority(old.JWTKeyID) || !b.HasJWTAuthority(newRoot.JWTKeyID) {
			t.Fatalf("JWT bundle after rotation: %v %v", b, err)
		}
	case <-ctx.Done():
		t.Fatal("no JWT bundle update after the rotation")
	}
	fresh, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "A"})
	if err != nil {
		t.Fatal(err)
	}
	if kid := tokenKeyID(t, fresh.Marshal()); kid != newRoot.JWTKeyID {
		t.Fatalf("new token signed by %s, want the new key %s", kid, newRoot.JWTKeyID)
	}
	for name, tok := range map[string]string{"old": svid.Marshal(), "new": fresh.Marshal()} {
		if _, err := c.ValidateJWTSVID(ctx, tok, "A"); err != nil {
			t.Errorf("%s token after the rotation: %v", name, err)
		}
	}
}

// TestJWTSVID_NoMatchIsPermissionDenied: a caller no service selects gets
// PermissionDenied from every JWT method.
func TestJWTSVID_NoMatchIsPermissionDenied(t *testing.T) {
	ca := newTestCA(t)
	src := newFakeSource(ca.td, ca.root.RootCertPEM)
	web := ca.svid(t, "web")
	src.set(uint32(os.Getuid())+1, web)
	src.setJWT(t, ca.root)
	c := client(t, serve(t, src))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.FetchJWTSVID(ctx, jwtsvid.Params{Audience: "A"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchJWTSVID: %v, want PermissionDenied", err)
	}
	if _, err := c.FetchJWTBundles(ctx); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("FetchJWTBundles: %v, want PermissionDenied", err)
	}
	tok, _, err := src.jwt.Sign(spiffeid.RequireFromString(web.ID), []string{"A"}, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ValidateJWTSVID(ctx, tok, "A"); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("ValidateJWTSVID: %v, want PermissionDenied", err)
	}
}

// tamper returns variants of a compact JWS: a changed payload (another
// subject) with the original signature, and a changed signature.
func tamper(t *testing.T, tok string) map[string]string {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	payload := []byte(parts[1])
	// Flip one base64url character in the middle of the payload.
	i := len(payload) / 2
	if payload[i] == 'A' {
		payload[i] = 'B'
	} else {
		payload[i] = 'A'
	}
	sig := []byte(parts[2])
	if sig[3] == 'A' {
		sig[3] = 'B'
	} else {
		sig[3] = 'A'
	}
	return map[string]string{
		"payload": parts[0] + "." + string(payload) + "." + parts[2],
		"sig":     parts[0] + "." + parts[1] + "." + string(sig),
		"no-sig":  parts[0] + "." + parts[1] + ".",
	}
}

func tokenKeyID(t *testing.T, tok string) string {
	t.Helper()
	hdr := strings.Split(tok, ".")[0]
	b, err := base64.RawURLEncoding.DecodeString(hdr)
	if err != nil {
		t.Fatal(err)
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h.Kid
}

type jwtWatcher func(*jwtbundle.Set)

func (w jwtWatcher) OnJWTBundlesUpdate(s *jwtbundle.Set) { w(s) }
func (jwtWatcher) OnJWTBundlesWatchError(error)          {}

var _ workloadapi.JWTBundleWatcher = jwtWatcher(nil)
