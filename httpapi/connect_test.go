package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// TestRateLimitedIs429: a rate-limited request, even one that crossed the
// server RPC, answers 429 with Consul's words.
func TestRateLimitedIs429(t *testing.T) {
	err := rpc.FromStatus(rpc.ToStatus(fmt.Errorf("sign leaf: %w", catalog.ErrRateLimited)))
	code, msg, unexpected := statusOf(err)
	if code != http.StatusTooManyRequests || msg != "rate limit exceeded, retry" || unexpected {
		t.Fatalf("statusOf = %d %q %v", code, msg, unexpected)
	}
}

// TestConnectHandlersBadInput: the handlers refuse bad input before the
// backend, naming the field, and the agent routes need an agent.
func TestConnectHandlersBadInput(t *testing.T) {
	be := newFakeBackend()
	srv := httptest.NewServer(New(Config{Backend: be}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"PUT", "/v1/connect/ca/configuration", `{"Provider":"vault"}`, 400, "Provider"},
		{"PUT", "/v1/connect/ca/configuration", `{"Config":{"RootCert":"x"}}`, 400, "PrivateKey"},
		{"PUT", "/v1/connect/ca/configuration", `{"Config":{"LeafCertTTL":"soon"}}`, 400, "LeafCertTTL"},
		{"PUT", "/v1/connect/ca/configuration", `{"Config":{"PrivateKeyBits":"many"}}`, 400, "PrivateKeyBits"},
		{"PUT", "/v1/connect/ca/configuration", `{"State":{"a":"b"}}`, 400, "State"},
		{"POST", "/v1/agent/connect/authorize", `{"ClientCertURI":"spiffe://a/b"}`, 400, "Target"},
		{"POST", "/v1/agent/connect/authorize", `{"Target":"db"}`, 400, "ClientCertURI"},
		{"POST", "/v1/agent/connect/authorize", `{"Target":1}`, 400, "Target"},
		{"PUT", "/v1/connect/intentions/exact?source=a&destination=b", `{"Action":"maybe"}`, 400, "Action"},
		{"PUT", "/v1/connect/intentions/exact?source=a&destination=b", `[]`, 400, "body"},
		{"GET", "/v1/connect/intentions/exact?source=a&destination=b", ``, 404, "none"},
		{"GET", "/v1/agent/connect/ca/leaf/web", ``, 404, "no local agent"},
		{"GET", "/v1/connect/ca/roots?dc=dc9", ``, 500, "No path to datacenter"},
	} {
		resp, body := do(t, tc.method, srv.URL+tc.path, tc.body)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %q, want %d containing %q", tc.method, tc.path, tc.body, resp.StatusCode, body, tc.code, tc.want)
		}
	}
	resp, body := do(t, "GET", srv.URL+"/v1/connect/ca/roots", "")
	if resp.StatusCode != 200 || resp.Header.Get("X-Consul-Index") != "7" || !strings.Contains(body, `"ActiveRootID":"r1"`) {
		t.Fatalf("roots: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	resp, _ = do(t, "GET", srv.URL+"/v1/connect/intentions/match?by=source&name=a&name=b", "")
	if resp.StatusCode != 200 || be.lastIntentionQuery == nil || len(be.lastIntentionQuery.Names) != 2 {
		t.Fatalf("match: %d %+v", resp.StatusCode, be.lastIntentionQuery)
	}
}
