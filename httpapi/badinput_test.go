package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/catalog"
)

// do sends a raw request and returns the status and body.
func do(t *testing.T, method, url, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

const validNode = `"Node":"node1","Address":"10.0.0.1"`

func TestBadInput(t *testing.T) {
	f, _, srv := newTestServer(t)
	tests := []struct {
		name, method, path, body string
		code                     int
		// want is a substring the one-line body must hold: the field's name.
		want string
	}{
		{"body too large", "PUT", "/v1/catalog/register", `{"Node":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "too large"},
		{"empty body", "PUT", "/v1/catalog/register", ``, 400, "body"},
		{"malformed JSON", "PUT", "/v1/catalog/register", `{"Node":`, 400, "body"},
		{"syntax error", "PUT", "/v1/catalog/register", `{"Node" "x"}`, 400, "body: malformed JSON"},
		{"not an object", "PUT", "/v1/catalog/register", `[1]`, 400, "body"},
		{"trailing data", "PUT", "/v1/catalog/register", `{` + validNode + `} {}`, 400, "body"},
		{"port is a string", "PUT", "/v1/catalog/register", `{` + validNode + `,"Service":{"Service":"web","Port":"80"}}`, 400, "Service.Port"},
		{"node is a number", "PUT", "/v1/catalog/register", `{"Node":7,"Address":"10.0.0.1"}`, 400, "Node"},
		{"tags not a list", "PUT", "/v1/catalog/register", `{` + validNode + `,"Service":{"Service":"web","Tags":"a"}}`, 400, "Service.Tags"},
		{"bad interval", "PUT", "/v1/catalog/register", `{` + validNode + `,"Checks":[{"Name":"c","Definition":{"Interval":"often"}}]}`, 400, "Checks.Definition.Interval"},
		{"missing node", "PUT", "/v1/catalog/register", `{"Address":"10.0.0.1"}`, 400, "Node: missing"},
		{"missing address", "PUT", "/v1/catalog/register", `{"Node":"node1"}`, 400, "Address"},
		{"missing service name", "PUT", "/v1/catalog/register", `{` + validNode + `,"Service":{"ID":"web-1"}}`, 400, "Service.Service: missing"},
		{"node not a DNS label", "PUT", "/v1/catalog/register", `{"Node":"my_node","Address":"10.0.0.1"}`, 400, "Node:"},
		{"service not a DNS label", "PUT", "/v1/catalog/register", `{` + validNode + `,"Service":{"Service":"web.api"}}`, 400, "Service.Service"},
		{"bad check status", "PUT", "/v1/catalog/register", `{` + validNode + `,"Checks":[{"Name":"c","Status":"fine"}]}`, 400, "Checks[0].Status"},
		{"bad single check", "PUT", "/v1/catalog/register", `{` + validNode + `,"Check":{"Name":"c","Status":"fine"}}`, 400, "Checks[0].Status"},
		{"null check", "PUT", "/v1/catalog/register", `{` + validNode + `,"Checks":[null]}`, 400, "Checks[0]"},
		{"check names another node", "PUT", "/v1/catalog/register", `{` + validNode + `,"Checks":[{"Node":"node2","Name":"c"}]}`, 400, "Checks[0].Node"},
		{"other datacenter in body", "PUT", "/v1/catalog/register", `{` + validNode + `,"Datacenter":"dc2"}`, 500, "No path to datacenter"},
		{"other datacenter in query", "PUT", "/v1/catalog/register?dc=dc2", `{` + validNode + `}`, 500, "No path to datacenter"},
		{"deregister without node", "PUT", "/v1/catalog/deregister", `{"ServiceID":"web"}`, 400, "Node: missing"},
		{"deregister service and check", "PUT", "/v1/catalog/deregister", `{"Node":"node1","ServiceID":"a","CheckID":"b"}`, 400, "CheckID"},
		{"deregister malformed", "PUT", "/v1/catalog/deregister", `{"Node":["node1"]}`, 400, "Node"},
		{"remove peer without id", "DELETE", "/v1/operator/raft/peer", ``, 400, "id"},
		{"restore in other dc", "PUT", "/v1/snapshot?dc=dc2", `x`, 500, "No path to datacenter"},
		{"register with GET", "GET", "/v1/catalog/register", ``, 405, ""},
		{"register with POST", "POST", "/v1/catalog/register", `{` + validNode + `}`, 405, ""},
		{"unknown path", "GET", "/v1/catalog/nope", ``, 404, ""},
		{"unknown health state", "GET", "/v1/health/state/sick", ``, 400, "state"},
		{"bad passing flag", "GET", "/v1/health/service/web?passing=maybe", ``, 400, "passing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := f.Writes()
			resp, body := do(t, tt.method, srv.URL+tt.path, tt.body)
			if resp.StatusCode != tt.code {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tt.code, body)
			}
			if !strings.Contains(body, tt.want) {
				t.Errorf("body %q does not name %q", body, tt.want)
			}
			if strings.Count(strings.TrimSuffix(body, "\n"), "\n") != 0 {
				t.Errorf("body is not one line: %q", body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Errorf("Content-Type = %q, want text/plain", ct)
			}
			if got := f.Writes(); got != before {
				t.Errorf("backend received %d writes", got-before)
			}
		})
	}
	if resp, _ := do(t, "GET", srv.URL+"/v1/catalog/register", ""); resp.Header.Get("Allow") != "PUT" {
		t.Errorf("405 Allow = %q, want PUT", resp.Header.Get("Allow"))
	}
}

// Fields Warren does not implement are ignored, not refused: clients send
// them whether or not they are set.
func TestRegisterIgnoresUnknownFields(t *testing.T) {
	f, _, srv := newTestServer(t)
	body := `{"Node":"node1","Address":"10.0.0.1","Partition":"default","Locality":{"Region":"r"},
		"Service":{"Service":"web","Namespace":"default","Proxy":{"Upstreams":[]},"Connect":{"Native":true},"SocketPath":""},
		"Checks":[{"Name":"c","Status":"passing","ExposedPort":0,"Definition":{"Header":{"a":["b"]},"Interval":"0s","IntervalDuration":null}}]}`
	resp, got := do(t, "PUT", srv.URL+"/v1/catalog/register", body)
	if resp.StatusCode != 200 || got != "true\n" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, body %q, Content-Type %q", resp.StatusCode, got, resp.Header.Get("Content-Type"))
	}
	if f.Writes() != 1 {
		t.Fatalf("writes = %d", f.Writes())
	}
	c := f.checks["node1"]["c"]
	if c == nil || c.Definition.Interval != "" || c.Status != "passing" {
		t.Errorf("stored check = %+v", c)
	}
	if s := f.services["node1"]["web"]; s == nil || s.ID != "web" || s.Weights != (catalog.Weights{Passing: 1, Warning: 1}) {
		t.Errorf("stored service = %+v (Normalize not applied?)", s)
	}
}

// Backend errors map to Consul's statuses.
func TestBackendErrors(t *testing.T) {
	tests := []struct {
		err  error
		code int
		want string
	}{
		{fmt.Errorf("read: %w", catalog.ErrNoLeader), 503, "No cluster leader"},
		{fmt.Errorf("read: %w", catalog.ErrNotFound), 404, "not found"},
		{fmt.Errorf("forward: %w", catalog.ErrUnknownDatacenter), 500, "No path to datacenter"},
		{fmt.Errorf("apply: %w", &catalog.FieldError{Field: "Service.Meta", Reason: "too\nmany"}), 400, "Service.Meta: too many"},
		{fmt.Errorf("apply: %w", catalog.ErrInvalid), 400, "invalid request"},
		{fmt.Errorf("wait: %w", context.DeadlineExceeded), 504, "Timed out"},
		{errors.New("disk on fire\nreally"), 500, "disk on fire really"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			f, _, srv := newTestServer(t)
			f.err = tt.err
			for _, path := range []string{"/v1/catalog/nodes", "/v1/status/leader"} {
				resp, body := do(t, "GET", srv.URL+path, "")
				if resp.StatusCode != tt.code || body != tt.want+"\n" && !strings.Contains(body, tt.want) {
					t.Errorf("%s: %d %q, want %d %q", path, resp.StatusCode, body, tt.code, tt.want)
				}
			}
			resp, body := do(t, "PUT", srv.URL+"/v1/catalog/register", `{`+validNode+`}`)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("register: %d %q, want %d %q", resp.StatusCode, body, tt.code, tt.want)
			}
		})
	}
}

func TestSnapshotErrorBeforeStream(t *testing.T) {
	f, _, srv := newTestServer(t)
	f.err = catalog.ErrNoLeader
	resp, body := do(t, "GET", srv.URL+"/v1/snapshot", "")
	if resp.StatusCode != 503 || body != "No cluster leader\n" {
		t.Errorf("snapshot save: %d %q", resp.StatusCode, body)
	}
	f.err = nil
	f.snapshot = []byte("data")
	resp, body = do(t, "GET", srv.URL+"/v1/snapshot", "")
	if resp.StatusCode != 200 || body != "data" || resp.Header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("snapshot save: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

// A snapshot may be far larger than the JSON limit.
func TestSnapshotRestoreAboveJSONLimit(t *testing.T) {
	f, _, srv := newTestServer(t)
	big := strings.Repeat("s", 3<<20)
	resp, body := do(t, "PUT", srv.URL+"/v1/snapshot", big)
	if resp.StatusCode != 200 || len(f.snapshot) != len(big) {
		t.Fatalf("restore: %d %q, stored %d bytes", resp.StatusCode, body, len(f.snapshot))
	}
}

// FuzzDecodeRegistration feeds arbitrary bodies to the register endpoint:
// it must never panic, must answer 200 or a client error, and must write to
// the backend only what passes validation.
func FuzzDecodeRegistration(f *testing.F) {
	for _, seed := range []string{
		`{` + validNode + `}`,
		`{` + validNode + `,"Service":{"Service":"web","Tags":["a"],"Port":80,"TaggedAddresses":{"lan":{"Address":"10.0.0.1","Port":80}}}}`,
		`{` + validNode + `,"Check":{"Name":"c","Status":"passing","Definition":{"Interval":"10s","Timeout":1000000}},"Checks":[{"Name":"d"}]}`,
		`{"Node":"","Checks":[null]}`,
		`{"Node":7}`,
		`[]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fb := newFakeBackend()
		h := New(Config{Backend: fb})
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("PUT", "/v1/catalog/register", bytes.NewReader(body)))
		switch rec.Code {
		case 200:
			if fb.Writes() != 1 {
				t.Fatalf("200 with %d writes", fb.Writes())
			}
		case 400, 413, 500:
			if fb.Writes() != 0 {
				t.Fatalf("%d %q with %d writes", rec.Code, rec.Body, fb.Writes())
			}
			if rec.Code == 500 && !strings.Contains(rec.Body.String(), "No path to datacenter") {
				t.Fatalf("500 %q", rec.Body)
			}
		default:
			t.Fatalf("status %d %q", rec.Code, rec.Body)
		}
	})
}

// failingSnapshot writes part of a snapshot and then fails.
type failingSnapshot struct{ *fakeBackend }

func (failingSnapshot) SnapshotSave(_ context.Context, w io.Writer) error {
	w.Write(make([]byte, 64<<10)) // past the server's buffer, so the headers are out
	return errors.New("disk read failed")
}

// A snapshot that fails after its first byte must not look complete: the
// connection is aborted so the client sees an error, not a short archive.
func TestSnapshotFailsMidStream(t *testing.T) {
	srv := httptest.NewServer(New(Config{Backend: failingSnapshot{newFakeBackend()}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Fatal("reading a failed snapshot stream succeeded")
	}
}

// A body declared larger than the limit is refused with 413 even when its
// first bytes are not JSON.
func TestOversizedGarbageIs413(t *testing.T) {
	be := &fakeBackend{}
	srv := httptest.NewServer(New(Config{Backend: be}))
	defer srv.Close()
	body := strings.Repeat("a", maxBodyBytes+1)
	req, _ := http.NewRequest(http.MethodPut, srv.URL+"/v1/catalog/register", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}
