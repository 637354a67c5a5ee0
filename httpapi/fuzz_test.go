package httpapi

import (
	"bytes"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeAgentRequests feeds arbitrary bodies to the agent's JSON write
// endpoints (service and check registration, TTL updates, intention
// writes, authorize): each must answer 200 or a client error with a
// one-line body, never panic or 5xx, and hand the agent only what passes
// validation. The seed corpus is in testdata/fuzz/FuzzDecodeAgentRequests.
func FuzzDecodeAgentRequests(f *testing.F) {
	for _, seed := range []string{
		`{"Name":"web","ID":"web-1","Port":80,"Tags":["a"],"Check":{"TTL":"10s"}}`,
		`{"Name":"web","Checks":[{"HTTP":"http://127.0.0.1:1/","Interval":"10s","DisableRedirects":false}]}`,
		`{"Name":"web","Connect":{"SidecarService":{}}}`,
		`{"Name":"c","TTL":"5s","ServiceID":"web-1"}`,
		`{"Status":"passing","Output":"ok"}`,
		`{"Name":"../../etc/passwd","ID":"..%2f..%2f"}`,
		`{"Name":"web","Port":-1}`,
		`{"Name":"web","Meta":{"":"x"}}`,
		`{"Target":"web","ClientCertURI":"spiffe://x/ns/default/dc/dc1/svc/api"}`,
		`null`,
		`{}`,
	} {
		for _, route := range []byte{0, 1, 2, 3} {
			f.Add(route, []byte(seed))
		}
	}
	routes := []string{
		"/v1/agent/service/register",
		"/v1/agent/check/register",
		"/v1/agent/check/update/c",
		"/v1/agent/connect/authorize",
	}
	f.Fuzz(func(t *testing.T, route byte, body []byte) {
		path := routes[int(route)%len(routes)]
		method := "PUT"
		if strings.HasSuffix(path, "authorize") {
			method = "POST"
		}
		a := newFakeAgent()
		h := New(Config{Backend: newFakeBackend(), Agent: a, MaxBodyBytes: 64 << 10})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, bytes.NewReader(body)))
		for _, r := range a.serviceReg {
			if err := validateServiceRegistration(r); err != nil {
				t.Fatalf("the agent got an invalid registration: %v", err)
			}
		}
		for _, r := range a.checkReg {
			if err := validateCheckDefinition("", &r.AgentServiceCheck); err != nil || r.Name == "" {
				t.Fatalf("the agent got an invalid check: %v", err)
			}
		}
		switch {
		case rec.Code == 200:
		case rec.Code >= 400 && rec.Code < 500:
			if b := strings.TrimSuffix(rec.Body.String(), "\n"); b == "" || strings.Contains(b, "\n") {
				t.Fatalf("%d body %q: want one line", rec.Code, rec.Body)
			}
		default:
			t.Fatalf("%s: status %d %q", path, rec.Code, rec.Body)
		}
	})
}
