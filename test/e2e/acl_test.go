package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// testACLs drives the ACLs of a cluster (ACLs on, default deny) the way
// users do: the Consul Go client with and without tokens, and the warren
// acl CLI against the real servers.
func testACLs(t *testing.T, c *testCluster) {
	a1 := c.node(t, "a1")
	mgmt := a1.client(t)
	anon, err := consulapi.NewClient(&consulapi.Config{Address: a1.HTTP(), HttpClient: &http.Client{Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	status := func(err error) int {
		var se consulapi.StatusError
		if errors.As(err, &se) {
			return se.Code
		}
		return 0
	}

	// An anonymous client gets nothing it should not.
	if svcs, _, err := anon.Catalog().Services(nil); err != nil || len(svcs) != 0 {
		t.Errorf("anonymous catalog services: %v, %v; want none", svcs, err)
	}
	req, _ := http.NewRequest("GET", "http://"+a1.HTTP()+"/v1/catalog/nodes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("X-Consul-Results-Filtered-By-ACLs") != "true" {
		t.Errorf("anonymous node list not marked filtered: %v", resp.Header)
	}
	if _, err := anon.Agent().Self(); status(err) != http.StatusForbidden {
		t.Errorf("anonymous agent self: %v, want 403", err)
	}
	if _, err := anon.Agent().Monitor("debug", make(chan struct{}), nil); status(err) != http.StatusForbidden {
		t.Errorf("anonymous agent monitor: %v, want 403", err)
	}
	if members, err := anon.Agent().Members(false); err != nil || len(members) != 0 {
		t.Errorf("anonymous members: %d, %v; want none", len(members), err)
	}
	if err := anon.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "evil", Port: 1}); status(err) != http.StatusForbidden {
		t.Errorf("anonymous service register: %v, want 403", err)
	}
	if _, _, err := anon.ACL().TokenList(nil); status(err) != http.StatusForbidden {
		t.Errorf("anonymous token list: %v, want 403", err)
	}
	if _, _, err := anon.Snapshot().Save(nil); err == nil {
		t.Error("anonymous snapshot save succeeded")
	}

	// A token made with the CLI, for one service.
	out, errOut, code := run(t, "acl", "token", "create", "-http-addr", a1.HTTP(), "-description", "api service",
		"-service-identity", "api", "-format", "json")
	if code != 0 {
		t.Fatalf("acl token create: %d %s", code, errOut)
	}
	var tok consulapi.ACLToken
	if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.SecretID == "" {
		t.Fatalf("acl token create output %q: %v", out, err)
	}
	apiCl, err := consulapi.NewClient(&consulapi.Config{Address: a1.HTTP(), Token: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	if err := apiCl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "api", ID: "api-1", Port: 7070}); err != nil {
		t.Fatalf("register api with its service identity: %v", err)
	}
	if err := apiCl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "db", Port: 5432}); status(err) != http.StatusForbidden {
		t.Errorf("register db with the api token: %v, want 403", err)
	}
	// It syncs to the servers (with the agent's token) and reads back
	// through any node.
	waitFor(t, 10*time.Second, func() error {
		svcs, _, err := c.node(t, "s3").client(t).Catalog().Service("api", "", nil)
		if err == nil && len(svcs) != 1 {
			err = errors.New("api not in the catalog yet")
		}
		return err
	})
	if err := apiCl.Agent().ServiceDeregister("api-1"); err != nil {
		t.Errorf("deregister api with its token: %v", err)
	}

	// Policies through the CLI.
	if _, errOut, code := run(t, "acl", "policy", "create", "-http-addr", a1.HTTP(), "-name", "readers",
		"-rules", "service_prefix \"\" {\n  policy = \"read\"\n}\n"); code != 0 {
		t.Fatalf("acl policy create: %d %s", code, errOut)
	}
	if out, errOut, code := run(t, "acl", "policy", "list", "-http-addr", a1.HTTP()); code != 0 || !strings.Contains(out, "readers") || !strings.Contains(out, "global-management") {
		t.Errorf("acl policy list: %d %q %s", code, out, errOut)
	}
	if _, errOut, code := run(t, "acl", "policy", "create", "-http-addr", a1.HTTP(), "-name", "bad",
		"-rules", "service \"x\" {\n  policy = \"wirte\"\n}\n"); code == 0 || !strings.Contains(errOut, "wirte") {
		t.Errorf("acl policy create with a bad rule: %d %s", code, errOut)
	}

	// The agent's default token, set through the API (as `consul acl
	// set-agent-token default` does): anonymous requests to a1 read what it
	// may read, until it is cleared. Only acl:write may set it.
	readers, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Description: "default for a1",
		Policies: []*consulapi.ACLTokenPolicyLink{{Name: "readers"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Agent().UpdateDefaultACLToken(readers.SecretID, nil); status(err) != http.StatusForbidden {
		t.Errorf("anonymous sets the default token: %v, want 403", err)
	}
	if _, err := mgmt.Agent().UpdateDefaultACLToken(readers.SecretID, nil); err != nil {
		t.Fatalf("set a1's default token: %v", err)
	}
	if svcs, _, err := anon.Catalog().Services(nil); err != nil || len(svcs) == 0 {
		t.Errorf("anonymous catalog services with a reader default token: %v, %v; want some", svcs, err)
	}
	if _, err := mgmt.Agent().UpdateDefaultACLToken("", nil); err != nil {
		t.Fatalf("clear a1's default token: %v", err)
	}
	if svcs, _, err := anon.Catalog().Services(nil); err != nil || len(svcs) != 0 {
		t.Errorf("anonymous catalog services after the default token was cleared: %v, %v; want none", svcs, err)
	}
	req, _ = http.NewRequest("PUT", "http://"+a1.HTTP()+"/v1/agent/token/replication", strings.NewReader(`{"Token":"x"}`))
	req.Header.Set("X-Consul-Token", clusterMgmtToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Errorf("set an unsupported token kind: %v %v, want 400", resp, err)
	} else {
		resp.Body.Close()
	}
	// The agent token: with an unknown one set through the API, a1's
	// syncs are refused (and /v1/agent/self says so); cleared, a1 is back
	// on its configured token and the registration reaches the servers.
	if _, err := mgmt.Agent().UpdateAgentACLToken("00000000-0000-4000-8000-000000000001", nil); err != nil {
		t.Fatalf("set a1's agent token: %v", err)
	}
	if err := mgmt.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "tokened", Port: 1}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		self, err := mgmt.Agent().Self()
		if err != nil {
			return err
		}
		if e, _ := self["Sync"]["LastSyncError"].(string); e == "" {
			return errors.New("no sync error yet with an unknown agent token")
		}
		return nil
	})
	if svcs, _, err := c.node(t, "s2").client(t).Catalog().Service("tokened", "", nil); err != nil || len(svcs) != 0 {
		t.Fatalf("tokened reached the catalog with an unknown agent token: %v, %v", svcs, err)
	}
	if _, err := mgmt.Agent().UpdateAgentACLToken("", nil); err != nil {
		t.Fatalf("reset a1's agent token: %v", err)
	}
	waitFor(t, 20*time.Second, func() error {
		svcs, _, err := c.node(t, "s2").client(t).Catalog().Service("tokened", "", nil)
		if err == nil && len(svcs) != 1 {
			err = errors.New("tokened not in the catalog yet")
		}
		return err
	})
	if err := mgmt.Agent().ServiceDeregister("tokened"); err != nil {
		t.Fatal(err)
	}

	// The stored form of a secret is no token.
	sum := sha256.Sum256([]byte(tok.SecretID))
	hashed, _ := consulapi.NewClient(&consulapi.Config{Address: a1.HTTP(), Token: hex.EncodeToString(sum[:])})
	if _, _, err := hashed.Catalog().Services(nil); status(err) != http.StatusForbidden {
		t.Errorf("the secret's hash as a token: %v, want 403", err)
	}
	// A revoked token stops working on the agent within its cache TTL.
	if _, err := mgmt.ACL().TokenDelete(tok.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.node(t, "s1").client(t).ACL().TokenRead(tok.AccessorID, nil); status(err) != http.StatusNotFound {
		t.Errorf("read a deleted token: %v, want 404", err)
	}

	// An expiring token works on the agent until its expiration time and
	// not a moment after, though the agent's cache (30 s) still holds it.
	exp, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Description: "short-lived",
		ServiceIdentities: []*consulapi.ACLServiceIdentity{{ServiceName: "api"}}, ExpirationTTL: 3 * time.Second}, nil)
	if err != nil || exp.ExpirationTime == nil {
		t.Fatalf("create an expiring token: %+v, %v", exp, err)
	}
	expCl, _ := consulapi.NewClient(&consulapi.Config{Address: a1.HTTP(), Token: exp.SecretID})
	if _, err := expCl.Agent().Services(); err != nil {
		t.Fatalf("the expiring token before it expires: %v", err)
	}
	time.Sleep(time.Until(*exp.ExpirationTime) + 100*time.Millisecond)
	// The agent answers its own services from its cache of the token.
	if _, err := expCl.Agent().Services(); status(err) != http.StatusForbidden {
		t.Errorf("the expired token on a1's agent API: %v, want 403", err)
	}
	if _, _, err := expCl.Catalog().Services(nil); status(err) != http.StatusForbidden {
		t.Errorf("the expired token on a1's catalog API: %v, want 403", err)
	}
}
