package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// exchange is one request the command must send and the answer it gets.
type exchange struct {
	method, uri string // uri: escaped path and query
	body        string // the JSON body expected, "" for none
	status      int    // 200 when zero
	answer      string
}

// fakeACLServer answers the exchanges in order and records what differs.
type fakeACLServer struct {
	t         *testing.T
	wantToken string
	mu        sync.Mutex
	script    []exchange
	next      int
}

func (f *fakeACLServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.next >= len(f.script) {
		f.t.Errorf("unexpected request %s %s", r.Method, r.URL.RequestURI())
		http.Error(w, "unexpected", http.StatusTeapot)
		return
	}
	x := f.script[f.next]
	f.next++
	if r.Method != x.method || r.URL.RequestURI() != x.uri {
		f.t.Errorf("request %d: got %s %s, want %s %s", f.next, r.Method, r.URL.RequestURI(), x.method, x.uri)
	}
	if got := r.Header.Get("X-Consul-Token"); got != f.wantToken {
		f.t.Errorf("request %d: X-Consul-Token %q, want %q", f.next, got, f.wantToken)
	}
	body, _ := io.ReadAll(r.Body)
	switch {
	case x.body == "" && len(body) != 0:
		f.t.Errorf("request %d: unexpected body %s", f.next, body)
	case x.body != "":
		var got, want any
		if err := json.Unmarshal(body, &got); err != nil {
			f.t.Errorf("request %d: body %q: %v", f.next, body, err)
		}
		if err := json.Unmarshal([]byte(x.body), &want); err != nil {
			f.t.Fatalf("bad test body %q: %v", x.body, err)
		}
		if !reflect.DeepEqual(got, want) {
			f.t.Errorf("request %d: body\n got  %s\n want %s", f.next, body, x.body)
		}
	}
	if x.status != 0 {
		w.WriteHeader(x.status)
	}
	_, _ = io.WriteString(w, x.answer)
}

const (
	tokenAnswer = `{"AccessorID":"acc-1","SecretID":"sec-1","Description":"web token","Local":false,
		"Policies":[{"ID":"pol-1","Name":"web-write"}],
		"ServiceIdentities":[{"ServiceName":"web","Datacenters":["dc1","dc2"]}],
		"NodeIdentities":[{"NodeName":"host-1","Datacenter":"dc1"}],
		"CreateTime":"2026-11-25T23:00:00Z","ExpirationTime":"2026-11-26T23:00:00Z","CreateIndex":7,"ModifyIndex":7}`
	tokenPretty = `AccessorID:       acc-1
SecretID:         sec-1
Description:      web token
Local:            false
Create Time:      2026-11-25 23:00:00 +0000 UTC
Expiration Time:  2026-11-26 23:00:00 +0000 UTC
Policies:
   pol-1 - web-write
Service Identities:
   web (Datacenters: dc1, dc2)
Node Identities:
   host-1 (Datacenter: dc1)
`
	readAnswer = `{"AccessorID":"acc-1","SecretID":"","Description":"old","Policies":[{"ID":"pol-1","Name":"web-write"}],
		"Roles":[{"ID":"role-1","Name":"ops"}],"Local":true,"CreateTime":"2026-11-25T23:00:00Z","ExpirationTime":"2026-11-26T23:00:00Z","CreateIndex":7,"ModifyIndex":7}`
	policyAnswer = `{"ID":"pol-1","Name":"web-write","Description":"d","Rules":"service \"web\" { policy = \"write\" }","Datacenters":["dc1"],"CreateIndex":3,"ModifyIndex":3}`
	roleAnswer   = `{"ID":"role-1","Name":"ops","Description":"d","Policies":[{"ID":"pol-1","Name":"web-write"}],"NodeIdentities":[{"NodeName":"h","Datacenter":"dc1"}],"CreateIndex":4,"ModifyIndex":4}`
)

func TestACLCommands(t *testing.T) {
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "web.hcl")
	if err := os.WriteFile(rulesFile, []byte("service \"web\" {\n  policy = \"write\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badRules := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(badRules, []byte("service \"web\" {\n  policy = \"wirte\"\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("file-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		stdin     string
		wantToken string // "" means "tok" (every row passes -token tok unless it sets env or -token-file)
		noToken   bool   // do not add -token tok
		script    []exchange
		code      int
		stdout    string // exact, when set
		contains  []string
		stderr    string // substring, when set
	}{
		{name: "bootstrap", args: []string{"bootstrap"}, noToken: true, wantToken: "-",
			script: []exchange{{method: "PUT", uri: "/v1/acl/bootstrap", answer: tokenAnswer}}, stdout: tokenPretty},
		{name: "token create with every flag", args: []string{"token", "create", "-description", "web token",
			"-policy-name", "web-write", "-policy-id", "pol-2", "-role-name", "ops", "-role-id", "role-9",
			"-service-identity", "web:dc1,dc2", "-service-identity", "api", "-node-identity", "host-1:dc1", "-expires-ttl", "24h", "-local"},
			script: []exchange{{method: "PUT", uri: "/v1/acl/token", body: `{"CreateIndex":0,"ModifyIndex":0,"AccessorID":"","SecretID":"",
				"Description":"web token","Policies":[{"ID":"pol-2","Name":""},{"ID":"","Name":"web-write"}],
				"Roles":[{"ID":"role-9","Name":""},{"ID":"","Name":"ops"}],
				"ServiceIdentities":[{"ServiceName":"web","Datacenters":["dc1","dc2"]},{"ServiceName":"api"}],
				"NodeIdentities":[{"NodeName":"host-1","Datacenter":"dc1"}],"Local":true,"ExpirationTTL":"24h0m0s",
				"CreateTime":"0001-01-01T00:00:00Z"}`, answer: tokenAnswer}},
			stdout: tokenPretty},
		{name: "token create JSON output", args: []string{"token", "create", "-format", "json"},
			script: []exchange{{method: "PUT", uri: "/v1/acl/token", body: `{"CreateIndex":0,"ModifyIndex":0,"AccessorID":"","SecretID":"",
				"Description":"","Local":false,"CreateTime":"0001-01-01T00:00:00Z"}`, answer: tokenAnswer}},
			contains: []string{`"AccessorID": "acc-1"`, `"SecretID": "sec-1"`, `"ServiceName": "web"`}},
		{name: "token read by id hides the unstored secret", args: []string{"token", "read", "-id", "acc-1"},
			script:   []exchange{{method: "GET", uri: "/v1/acl/token/acc-1", answer: readAnswer}},
			contains: []string{"AccessorID:       acc-1\n", "SecretID:         <hidden: Warren stores only its hash", "Roles:\n   role-1 - ops\n", "Local:            true\n"}},
		{name: "token read self", args: []string{"token", "read", "-self"},
			script: []exchange{{method: "GET", uri: "/v1/acl/token/self", answer: tokenAnswer}}, stdout: tokenPretty},
		{name: "token read needs -id or -self", args: []string{"token", "read"}, code: ExitUsage, stderr: "want -id ACCESSOR_ID or -self"},
		{name: "token update replaces what is given, keeps the rest", args: []string{"token", "update", "-id", "acc-1",
			"-description", "new", "-service-identity", "db"},
			script: []exchange{
				{method: "GET", uri: "/v1/acl/token/acc-1", answer: readAnswer},
				{method: "PUT", uri: "/v1/acl/token/acc-1", body: `{"CreateIndex":7,"ModifyIndex":7,"AccessorID":"acc-1","SecretID":"",
					"Description":"new","Policies":[{"ID":"pol-1","Name":"web-write"}],"Roles":[{"ID":"role-1","Name":"ops"}],
					"ServiceIdentities":[{"ServiceName":"db"}],"Local":true,
					"ExpirationTime":"2026-11-26T23:00:00Z","CreateTime":"2026-11-25T23:00:00Z"}`, answer: readAnswer},
			}, contains: []string{"Token updated successfully.\nAccessorID:       acc-1\n"}},
		{name: "token delete", args: []string{"token", "delete", "-id", "acc/1"},
			script: []exchange{{method: "DELETE", uri: "/v1/acl/token/acc%2F1", answer: "true"}}, stdout: "Token \"acc/1\" deleted successfully\n"},
		{name: "token list", args: []string{"token", "list"},
			script:   []exchange{{method: "GET", uri: "/v1/acl/tokens", answer: `[{"AccessorID":"a1","Description":"one","CreateTime":"2026-11-25T23:00:00Z"},{"AccessorID":"a2","Description":"two","CreateTime":"2026-11-25T23:00:00Z"}]`}},
			contains: []string{"AccessorID:       a1\n", "Description:      one\n", "\n\nAccessorID:       a2\n"}},
		{name: "bad node identity", args: []string{"token", "create", "-node-identity", "host-1"}, code: ExitUsage,
			stderr: `-node-identity "host-1": want NAME:DC`},
		{name: "server error is shown", args: []string{"token", "read", "-id", "nope"},
			script: []exchange{{method: "GET", uri: "/v1/acl/token/nope", status: 403, answer: "Permission denied: token lacks acl:read\n"}},
			code:   ExitError, stderr: "GET /v1/acl/token/nope: 403 Forbidden: Permission denied: token lacks acl:read"},

		{name: "policy create with rules from a file", args: []string{"policy", "create", "-name", "web-write", "-description", "d",
			"-rules", "@" + rulesFile, "-datacenter", "dc1"},
			script: []exchange{{method: "PUT", uri: "/v1/acl/policy", body: `{"ID":"","Name":"web-write","Description":"d",
				"Rules":"service \"web\" {\n  policy = \"write\"\n}\n","Datacenters":["dc1"],"Hash":null,"CreateIndex":0,"ModifyIndex":0}`,
				answer: policyAnswer}},
			stdout: "ID:           pol-1\nName:         web-write\nDescription:  d\nDatacenters:  dc1\nRules:\nservice \"web\" { policy = \"write\" }\n"},
		{name: "policy create with rules from stdin", args: []string{"policy", "create", "-name", "ops", "-rules", "-"},
			stdin: `operator = "read"`,
			script: []exchange{{method: "PUT", uri: "/v1/acl/policy", body: `{"ID":"","Name":"ops","Description":"",
				"Rules":"operator = \"read\"","Datacenters":null,"Hash":null,"CreateIndex":0,"ModifyIndex":0}`, answer: policyAnswer}},
			contains: []string{"ID:           pol-1\n"}},
		{name: "policy create with inline rules", args: []string{"policy", "create", "-name", "ops", "-rules", `acl = "read"`, "-json"},
			script: []exchange{{method: "PUT", uri: "/v1/acl/policy", body: `{"ID":"","Name":"ops","Description":"",
				"Rules":"acl = \"read\"","Datacenters":null,"Hash":null,"CreateIndex":0,"ModifyIndex":0}`, answer: policyAnswer}},
			contains: []string{`"ID": "pol-1"`}},
		{name: "policy create refuses bad rules with the file and line", args: []string{"policy", "create", "-name", "p", "-rules", "@" + badRules},
			code: ExitError, stderr: badRules + `: rules:2,12: invalid policy "wirte" for service "web": want read, write or deny`},
		{name: "policy create needs a name", args: []string{"policy", "create"}, code: ExitUsage, stderr: "want -name"},
		{name: "policy read by name", args: []string{"policy", "read", "-name", "web write"},
			script:   []exchange{{method: "GET", uri: "/v1/acl/policy/name/web%20write", answer: policyAnswer}},
			contains: []string{"Name:         web-write\n"}},
		{name: "policy update by id", args: []string{"policy", "update", "-id", "pol-1", "-name", "renamed", "-rules", `service_prefix "" { policy = "read" }`},
			script: []exchange{
				{method: "GET", uri: "/v1/acl/policy/pol-1", answer: policyAnswer},
				{method: "PUT", uri: "/v1/acl/policy/pol-1", body: `{"ID":"pol-1","Name":"renamed","Description":"d",
					"Rules":"service_prefix \"\" { policy = \"read\" }","Datacenters":["dc1"],"Hash":null,"CreateIndex":3,"ModifyIndex":3}`, answer: policyAnswer},
			}, contains: []string{"Policy updated successfully.\n"}},
		{name: "policy delete by name", args: []string{"policy", "delete", "-name", "web-write"},
			script: []exchange{
				{method: "GET", uri: "/v1/acl/policy/name/web-write", answer: policyAnswer},
				{method: "DELETE", uri: "/v1/acl/policy/pol-1", answer: "true"},
			}, stdout: "Policy \"pol-1\" deleted successfully\n"},
		{name: "policy list", args: []string{"policy", "list"},
			script: []exchange{{method: "GET", uri: "/v1/acl/policies", answer: `[{"ID":"00000000-0000-0000-0000-000000000001","Name":"global-management","Description":"Builtin Policy that grants unlimited access"}]`}},
			stdout: "global-management:\n   ID:           00000000-0000-0000-0000-000000000001\n   Description:  Builtin Policy that grants unlimited access\n   Datacenters:  \n"},

		{name: "role create", args: []string{"role", "create", "-name", "ops", "-description", "d", "-policy-name", "web-write", "-node-identity", "h:dc1"},
			script: []exchange{{method: "PUT", uri: "/v1/acl/role", body: `{"ID":"","Name":"ops","Description":"d",
				"Policies":[{"ID":"","Name":"web-write"}],"NodeIdentities":[{"NodeName":"h","Datacenter":"dc1"}],"Hash":null,"CreateIndex":0,"ModifyIndex":0}`,
				answer: roleAnswer}},
			stdout: "ID:           role-1\nName:         ops\nDescription:  d\nPolicies:\n   pol-1 - web-write\nNode Identities:\n   h (Datacenter: dc1)\n"},
		{name: "role read by id", args: []string{"role", "read", "-id", "role-1"},
			script: []exchange{{method: "GET", uri: "/v1/acl/role/role-1", answer: roleAnswer}}, contains: []string{"ID:           role-1\n"}},
		{name: "role update by name", args: []string{"role", "update", "-name", "ops", "-policy-id", "pol-9"},
			script: []exchange{
				{method: "GET", uri: "/v1/acl/role/name/ops", answer: roleAnswer},
				{method: "PUT", uri: "/v1/acl/role/role-1", body: `{"ID":"role-1","Name":"ops","Description":"d",
					"Policies":[{"ID":"pol-9","Name":""}],"NodeIdentities":[{"NodeName":"h","Datacenter":"dc1"}],"Hash":null,"CreateIndex":4,"ModifyIndex":4}`, answer: roleAnswer},
			}, contains: []string{"Role updated successfully.\n"}},
		{name: "role delete by id", args: []string{"role", "delete", "-id", "role-1"},
			script: []exchange{{method: "DELETE", uri: "/v1/acl/role/role-1", answer: "true"}}, stdout: "Role \"role-1\" deleted successfully\n"},
		{name: "role list JSON", args: []string{"role", "list", "-format", "json"},
			script:   []exchange{{method: "GET", uri: "/v1/acl/roles", answer: "[" + roleAnswer + "]"}},
			contains: []string{`"Name": "ops"`}},

		{name: "token from WARREN_HTTP_TOKEN", args: []string{"token", "list"}, noToken: true, wantToken: "env-token",
			env:    map[string]string{"WARREN_HTTP_TOKEN": "env-token", "CONSUL_HTTP_TOKEN": "consul-token"},
			script: []exchange{{method: "GET", uri: "/v1/acl/tokens", answer: "[]"}}, stdout: ""},
		{name: "token from CONSUL_HTTP_TOKEN", args: []string{"token", "list"}, noToken: true, wantToken: "consul-token",
			env:    map[string]string{"CONSUL_HTTP_TOKEN": "consul-token"},
			script: []exchange{{method: "GET", uri: "/v1/acl/tokens", answer: "[]"}}, stdout: ""},
		{name: "-token-file beats the environment", args: []string{"token", "list", "-token-file", tokenFile}, noToken: true, wantToken: "file-token",
			env:    map[string]string{"CONSUL_HTTP_TOKEN": "consul-token"},
			script: []exchange{{method: "GET", uri: "/v1/acl/tokens", answer: "[]"}}, stdout: ""},
		{name: "CONSUL_HTTP_TOKEN_FILE", args: []string{"token", "list"}, noToken: true, wantToken: "file-token",
			env:    map[string]string{"CONSUL_HTTP_TOKEN_FILE": tokenFile},
			script: []exchange{{method: "GET", uri: "/v1/acl/tokens", answer: "[]"}}, stdout: ""},
		{name: "missing token file", args: []string{"token", "list", "-token-file", filepath.Join(dir, "nope")}, noToken: true,
			code: ExitError, stderr: "read token file: open " + filepath.Join(dir, "nope")},
		{name: "unknown kind", args: []string{"tokens", "list"}, code: ExitUsage, stderr: `unknown subcommand "tokens"`},
		{name: "unknown verb", args: []string{"token", "show"}, code: ExitUsage, stderr: `unknown subcommand "show"`},
		{name: "stray argument", args: []string{"token", "list", "extra"}, code: ExitUsage, stderr: `takes no arguments, got ["extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, env := range []string{"WARREN_HTTP_TOKEN", "CONSUL_HTTP_TOKEN", "WARREN_HTTP_TOKEN_FILE", "CONSUL_HTTP_TOKEN_FILE"} {
				t.Setenv(env, tt.env[env])
			}
			f := &fakeACLServer{t: t, script: tt.script, wantToken: "tok"}
			switch {
			case tt.wantToken == "-":
				f.wantToken = ""
			case tt.wantToken != "":
				f.wantToken = tt.wantToken
			}
			srv := httptest.NewServer(f)
			defer srv.Close()
			stdin = strings.NewReader(tt.stdin)
			defer func() { stdin = os.Stdin }()
			args := append([]string{"acl"}, tt.args...)
			if len(tt.args) >= 2 || tt.args[0] == "bootstrap" {
				args = append(args, "-http-addr", srv.URL)
				if !tt.noToken {
					args = append(args, "-token", "tok")
				}
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr %s", code, tt.code, stderr.String())
			}
			if tt.stdout != "" || (tt.contains == nil && tt.code == ExitOK) {
				if stdout.String() != tt.stdout {
					t.Errorf("stdout\n%s\nwant\n%s", stdout.String(), tt.stdout)
				}
			}
			for _, s := range tt.contains {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			if tt.stderr != "" && !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr.String(), tt.stderr)
			}
			f.mu.Lock()
			if f.next != len(f.script) {
				t.Errorf("%d of %d requests made", f.next, len(f.script))
			}
			f.mu.Unlock()
		})
	}
}

// TestEveryClientCommandSendsTheToken checks that the commands built on
// clientFlags send -token as X-Consul-Token.
func TestEveryClientCommandSendsTheToken(t *testing.T) {
	for _, args := range [][]string{
		{"members", "-json"},
		{"catalog", "services", "-json"},
		{"intention", "list", "-json"},
	} {
		t.Run(args[0], func(t *testing.T) {
			var got string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r.Header.Get("X-Consul-Token")
				_, _ = io.WriteString(w, "[]")
			}))
			defer srv.Close()
			var stdout, stderr bytes.Buffer
			Run(context.Background(), append(args, "-http-addr", srv.URL, "-token", "s3cret"), &stdout, &stderr)
			if got != "s3cret" {
				t.Errorf("X-Consul-Token %q; stderr %s", got, stderr.String())
			}
		})
	}
}
