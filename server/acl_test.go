package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

const testMgmtToken = "8f2d5e8c-6a4e-4f1e-9a51-3f3c0d1b2a77"

func aclCluster(t *testing.T, n int) *servertest.Cluster {
	t.Helper()
	return servertest.New(t, n, func(c *server.Config) {
		c.ACL = server.ACLConfig{Enabled: true, InitialManagementToken: testMgmtToken}
	})
}

func tokenClient(t *testing.T, n *servertest.Node, token string) *consulapi.Client {
	t.Helper()
	c, err := consulapi.NewClient(&consulapi.Config{Address: n.HTTP.URL, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// statusOf is the HTTP status a Consul client error carries (0 if none).
func statusOf(err error) int {
	var se consulapi.StatusError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

// waitMgmt waits until the leader has written the initial management token.
func waitMgmt(t *testing.T, n *servertest.Node) *consulapi.Client {
	t.Helper()
	mgmt := tokenClient(t, n, testMgmtToken)
	servertest.WaitFor(t, 10*time.Second, func() error {
		_, _, err := mgmt.ACL().TokenReadSelf(nil)
		return err
	})
	return mgmt
}

func TestACLEnforcedThroughConsulClient(t *testing.T) {
	c := aclCluster(t, 3)
	leader := c.WaitLeader()
	follower := c.Followers()[0]
	mgmt := waitMgmt(t, follower)

	// The initial management token counts as the bootstrap.
	if _, _, err := tokenClient(t, leader, "").ACL().Bootstrap(); statusOf(err) != http.StatusForbidden {
		t.Fatalf("bootstrap after the initial management token: %v, want 403", err)
	}

	// A policy and a token for "web" only, made through a follower (the
	// writes are forwarded with the token).
	pol, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{Name: "web-only",
		Rules: "service \"web\" {\n policy = \"write\"\n}\nnode_prefix \"\" {\n policy = \"read\"\n}\n"}, nil)
	if err != nil {
		t.Fatalf("create policy: %v", err)
	}
	webTok, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Description: "web",
		Policies: []*consulapi.ACLTokenPolicyLink{{Name: pol.Name}}}, nil)
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	if webTok.SecretID == "" || webTok.AccessorID == "" || webTok.Policies[0].ID != pol.ID {
		t.Fatalf("created token: %+v", webTok)
	}
	web := tokenClient(t, follower, webTok.SecretID)
	anon := tokenClient(t, follower, "")

	reg := func(svc string) *consulapi.CatalogRegistration {
		return &consulapi.CatalogRegistration{Node: "n1", Address: "10.0.0.1",
			Service: &consulapi.AgentService{ID: svc + "-1", Service: svc, Port: 80}}
	}
	// Anonymous (default deny): no write, and reads are empty.
	if _, err := anon.Catalog().Register(reg("web"), nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("anonymous register: %v, want 403", err)
	}
	// The web token may not create node n1 (node write), so management
	// registers the node with db first.
	if _, err := mgmt.Catalog().Register(reg("db"), nil); err != nil {
		t.Fatalf("management register db: %v", err)
	}
	// The follower vets writes against its own state: wait until it has
	// the node, so that re-posting the same node needs no node:write.
	servertest.WaitFor(t, 5*time.Second, func() error {
		n, _, err := tokenClient(t, follower, testMgmtToken).Catalog().Node("n1", &consulapi.QueryOptions{AllowStale: true})
		if err == nil && n == nil {
			err = errors.New("n1 not on the follower yet")
		}
		return err
	})
	if _, err := web.Catalog().Register(reg("web"), nil); err != nil {
		t.Fatalf("web token registers web on an existing node: %v", err)
	}
	_, err = web.Catalog().Register(reg("db"), nil)
	if statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), `service:write`) {
		t.Fatalf("web token registers db: %v, want 403 naming service:write", err)
	}
	if _, err := web.Catalog().Deregister(&consulapi.CatalogDeregistration{Node: "n1", ServiceID: "db-1"}, nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("web token deregisters db: %v, want 403", err)
	}

	// Reads are filtered, and say so.
	svcs, _, err := web.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svcs["db"]; ok || svcs["web"] == nil {
		t.Fatalf("web token sees services %v, want web only", svcs)
	}
	resp := rawGet(t, follower, "/v1/catalog/services", webTok.SecretID)
	if resp.Header.Get("X-Consul-Results-Filtered-By-ACLs") != "true" {
		t.Fatalf("filtered read without X-Consul-Results-Filtered-By-ACLs: %v", resp.Header)
	}
	if got, _, err := anon.Health().Service("db", "", false, nil); err != nil || len(got) != 0 {
		t.Fatalf("anonymous health read of db: %v, %v; want nothing", got, err)
	}
	if got, _, err := mgmt.Health().Service("db", "", false, nil); err != nil || len(got) != 1 {
		t.Fatalf("management health read of db: %v, %v", got, err)
	}

	// Operator and snapshot calls need their permissions.
	if _, err := web.Operator().RaftGetConfiguration(nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("web token reads the raft configuration: %v, want 403", err)
	}
	if _, _, err := web.Snapshot().Save(nil); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("web token saves a snapshot: %v, want 403", err)
	}

	// The token in a header, as Bearer, works; in the query string it
	// is refused so it never lands in a log.
	if self, _, err := anon.ACL().TokenReadSelf(nil); err != nil || self.AccessorID != acl.AnonymousTokenID {
		t.Fatalf("token/self without a token: %+v, %v; want the anonymous token", self, err)
	}
	req, _ := http.NewRequest("GET", follower.HTTP.URL+"/v1/acl/token/self", nil)
	req.Header.Set("Authorization", "Bearer "+webTok.SecretID)
	if r := do(t, req); r.StatusCode != http.StatusOK {
		t.Fatalf("token/self with a Bearer token: %d", r.StatusCode)
	}
	if r := rawGet(t, follower, "/v1/catalog/services?token="+webTok.SecretID, ""); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("token in the query string: %d, want 400", r.StatusCode)
	}

	// Secrets are stored hashed: a snapshot holds no secret, and the hash
	// presented as a token is no token.
	rc, _, err := mgmt.Snapshot().Save(nil)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := io.ReadAll(zr)
	rc.Close()
	hash := acl.HashSecret(webTok.SecretID)
	if bytes.Contains(snap, []byte(webTok.SecretID)) || bytes.Contains(snap, []byte(testMgmtToken)) {
		t.Fatal("a token secret is in the snapshot")
	}
	if !bytes.Contains(snap, []byte(hash)) {
		t.Fatal("the snapshot does not hold the token's hash: is the token in it at all?")
	}
	for _, bad := range []string{hash, "not-a-token", strings.ToUpper(webTok.SecretID), webTok.AccessorID} {
		if _, _, err := tokenClient(t, follower, bad).Catalog().Services(nil); statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "ACL not found") {
			t.Fatalf("token %q: %v, want 403 ACL not found", bad, err)
		}
	}

	// Read back: no secret (the servers do not have it), and lists.
	got, _, err := mgmt.ACL().TokenRead(webTok.AccessorID, nil)
	if err != nil || got.SecretID != "" || got.Description != "web" {
		t.Fatalf("token read: %+v, %v", got, err)
	}
	list, _, err := mgmt.ACL().TokenList(nil)
	if err != nil || len(list) < 2 {
		t.Fatalf("token list: %v, %v", list, err)
	}
	if _, _, err := web.ACL().TokenList(nil); statusOf(err) != http.StatusForbidden {
		t.Fatalf("web token lists tokens: %v, want 403", err)
	}

	// A revoked token stops working on every server (caches follow).
	if _, err := mgmt.ACL().TokenDelete(webTok.AccessorID, nil); err != nil {
		t.Fatal(err)
	}
	servertest.WaitFor(t, 5*time.Second, func() error {
		for _, n := range c.Nodes {
			if _, _, err := tokenClient(t, n, webTok.SecretID).Catalog().Services(nil); statusOf(err) != http.StatusForbidden {
				return errors.New("revoked token still accepted")
			}
		}
		return nil
	})
}

func TestACLRolesIdentitiesAndExpiry(t *testing.T) {
	c := aclCluster(t, 1)
	n := c.WaitLeader()
	mgmt := waitMgmt(t, n)

	pol, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{Name: "read-all",
		Rules: "service_prefix \"\" {\n policy = \"read\"\n}\nnode_prefix \"\" {\n policy = \"read\"\n}\n"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	role, _, err := mgmt.ACL().RoleCreate(&consulapi.ACLRole{Name: "reader",
		Policies: []*consulapi.ACLRolePolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, _, err := mgmt.ACL().RoleCreate(&consulapi.ACLRole{Name: "reader"}, nil); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("duplicate role name: %v, want 400", err)
	}
	if _, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{Name: "bad", Rules: `service "x" { policy = "wirte" }`}, nil); statusOf(err) != http.StatusBadRequest {
		t.Fatalf("bad rules: %v, want 400", err)
	}
	// A service identity writes its service and its sidecar, reads all.
	tok, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{
		ServiceIdentities: []*consulapi.ACLServiceIdentity{{ServiceName: "api"}},
		Roles:             []*consulapi.ACLTokenRoleLink{{Name: role.Name}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := tokenClient(t, n, tok.SecretID)

	// Clone, list filters and replication status, as the Consul client
	// calls them.
	clone, _, err := mgmt.ACL().TokenClone(tok.AccessorID, "a copy", nil)
	if err != nil || clone.SecretID == "" || clone.AccessorID == tok.AccessorID || clone.Description != "a copy" ||
		len(clone.Roles) != 1 || len(clone.ServiceIdentities) != 1 {
		t.Fatalf("clone: %+v, %v", clone, err)
	}
	var byRole []string
	if list, _, err := mgmt.ACL().TokenListFiltered(consulapi.ACLTokenFilterOptions{Role: role.ID}, nil); err != nil {
		t.Fatal(err)
	} else {
		for _, e := range list {
			byRole = append(byRole, e.AccessorID)
		}
	}
	if len(byRole) != 2 {
		t.Errorf("tokens with role %s: %v, want the token and its clone", role.Name, byRole)
	}
	if rep, _, err := mgmt.ACL().Replication(nil); err != nil || rep.Enabled {
		t.Errorf("replication status: %+v, %v", rep, err)
	}
	if _, err := mgmt.Catalog().Register(&consulapi.CatalogRegistration{Node: "n1", Address: "10.0.0.1"}, nil); err != nil {
		t.Fatal(err)
	}
	for svc, want := range map[string]int{"api": 0, "api-sidecar-proxy": 0, "web": http.StatusForbidden} {
		_, err := cl.Catalog().Register(&consulapi.CatalogRegistration{Node: "n1", Address: "10.0.0.1",
			Service: &consulapi.AgentService{ID: svc, Service: svc}}, nil)
		if statusOf(err) != want {
			t.Errorf("register %s with a service identity: %v, want status %d", svc, err, want)
		}
	}

	// An expiring token works, then does not.
	exp, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{ExpirationTTL: 1500 * time.Millisecond,
		Policies: []*consulapi.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if exp.ExpirationTime == nil {
		t.Fatal("no ExpirationTime on an expiring token")
	}
	ec := tokenClient(t, n, exp.SecretID)
	if _, _, err := ec.Catalog().Services(nil); err != nil {
		t.Fatalf("fresh expiring token: %v", err)
	}
	servertest.WaitFor(t, 5*time.Second, func() error {
		if _, _, err := ec.Catalog().Services(nil); statusOf(err) != http.StatusForbidden {
			return errors.New("expired token still accepted")
		}
		return nil
	})
}

// TestACLOnRPC checks the servers' own enforcement: an agent (or anyone
// reaching the RPC port) with a node token cannot call operator or
// server-only methods, nor write services it has no rights on
// (Consul's CVE-2021-37219 let agent tokens call server-only RPCs).
func TestACLOnRPC(t *testing.T) {
	c := aclCluster(t, 3)
	leader := c.WaitLeader()
	mgmt := waitMgmt(t, leader)
	tok, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{
		NodeIdentities: []*consulapi.ACLNodeIdentity{{NodeName: "agent-1", Datacenter: "dc1"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pool := rpc.NewPool()
	defer pool.Close()
	pool.SetToken(tok.SecretID)
	addr := c.Followers()[0].Server.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Its own node: allowed.
	own := rpc.RegisterRequest{Registration: catalog.Registration{Node: catalog.Node{Name: "agent-1", Address: "10.0.0.9"}}}
	if err := pool.Call(ctx, addr, rpc.MethodRegister, &own, &rpc.Empty{}); err != nil {
		t.Fatalf("node token registers its node: %v", err)
	}
	for _, tc := range []struct {
		method string
		req    any
	}{
		{rpc.MethodRegister, &rpc.RegisterRequest{Registration: catalog.Registration{Node: catalog.Node{Name: "other", Address: "10.0.0.8"}}}},
		{rpc.MethodRegister, &rpc.RegisterRequest{Registration: catalog.Registration{Node: catalog.Node{Name: "agent-1", Address: "10.0.0.9"},
			Service: &catalog.Service{ID: "web", Name: "web"}}}},
		{rpc.MethodRemovePeer, &rpc.RemovePeerRequest{ID: "s1"}},
		{rpc.MethodRaftConfiguration, &rpc.RaftConfigurationReply{}},
		{rpc.MethodSnapshotSave, &rpc.Empty{}},
		{rpc.MethodCAConfigSet, &rpc.CAConfigSetRequest{}},
		{acl.MethodTokenList, &acl.ReadRequest{}},
	} {
		err := pool.Call(ctx, addr, tc.method, tc.req, new(struct{}))
		if !errors.Is(err, catalog.ErrPermissionDenied) {
			t.Errorf("%s with a node token: %v, want permission denied", tc.method, err)
		}
	}
	// No token at all: the anonymous token, denied by default. (An
	// unchanged node with nothing else is a no-op that needs no write,
	// as in Consul, so change the address.)
	pool.SetToken("")
	own.Registration.Node.Address = "10.0.0.10"
	if err := pool.Call(ctx, addr, rpc.MethodRegister, &own, &rpc.Empty{}); !errors.Is(err, catalog.ErrPermissionDenied) {
		t.Errorf("anonymous register over RPC: %v, want permission denied", err)
	}
	pool.SetToken("made-up")
	if err := pool.Call(ctx, addr, rpc.MethodRegister, &own, &rpc.Empty{}); !errors.Is(err, catalog.ErrACLNotFound) {
		t.Errorf("unknown token over RPC: %v, want ACL not found", err)
	}
	// The watch stream needs read on every service.
	stream, err := pool.Watch(ctx, addr)
	if err == nil {
		_, err = stream.Recv()
	}
	if !errors.Is(rpc.FromStatus(err), catalog.ErrACLNotFound) {
		t.Errorf("watch with an unknown token: %v", err)
	}
}

func rawGet(t *testing.T, n *servertest.Node, path, token string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", n.HTTP.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Consul-Token", token)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestACLBootstrapOnce: a cluster without an initial management token is
// bootstrapped once through the API; the token it returns manages, a
// second bootstrap is refused, and the bootstrap token's secret is not in
// the token list.
func TestACLBootstrapOnce(t *testing.T) {
	c := servertest.New(t, 1, func(c *server.Config) { c.ACL = server.ACLConfig{Enabled: true} })
	n := c.WaitLeader()
	anon := tokenClient(t, n, "")
	if _, _, err := anon.Catalog().Services(nil); err != nil {
		t.Fatalf("anonymous read before bootstrap: %v", err)
	}
	tok, _, err := anon.ACL().Bootstrap()
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	if tok.SecretID == "" || len(tok.Policies) != 1 || tok.Policies[0].Name != "global-management" {
		t.Fatalf("bootstrap token: %+v", tok)
	}
	if _, _, err := anon.ACL().Bootstrap(); statusOf(err) != http.StatusForbidden || !strings.Contains(err.Error(), "no longer allowed") {
		t.Fatalf("second bootstrap: %v", err)
	}
	mgmt := tokenClient(t, n, tok.SecretID)
	list, _, err := mgmt.ACL().TokenList(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range list {
		if e.SecretID != "" {
			t.Errorf("token %s listed with a secret", e.AccessorID)
		}
	}
	if _, _, err := mgmt.ACL().PolicyList(nil); err != nil {
		t.Errorf("management token lists policies: %v", err)
	}
	if _, err := mgmt.Catalog().Register(&consulapi.CatalogRegistration{Node: "n", Address: "10.0.0.1"}, nil); err != nil {
		t.Errorf("management token registers: %v", err)
	}
}

// TestACLBlockingQueriesShareNoAnswers: watchers with different tokens,
// woken by the same change, each get their own token's view (blocking
// answers are encoded once per change and shared, but only between
// requests made with the same token).
func TestACLBlockingQueriesShareNoAnswers(t *testing.T) {
	c := aclCluster(t, 1)
	n := c.WaitLeader()
	mgmt := waitMgmt(t, n)
	pol, _, err := mgmt.ACL().PolicyCreate(&consulapi.ACLPolicy{Name: "web-read",
		Rules: "service \"web\" {\n policy = \"read\"\n}\nnode_prefix \"\" {\n policy = \"read\"\n}\n"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	webTok, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{Policies: []*consulapi.ACLTokenPolicyLink{{ID: pol.ID}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := func(svc string) {
		t.Helper()
		if _, err := mgmt.Catalog().Register(&consulapi.CatalogRegistration{Node: "n1", Address: "10.0.0.1",
			Service: &consulapi.AgentService{ID: svc, Service: svc}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	reg("web")
	reg("db")
	_, meta, err := mgmt.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	type answer struct {
		svcs map[string][]string
		err  error
	}
	watch := func(token string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			s, _, err := tokenClient(t, n, token).Catalog().Services(&consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
			ch <- answer{s, err}
		}()
		return ch
	}
	// Many watchers of each kind, so both kinds are woken together.
	var webW, mgmtW []<-chan answer
	for range 20 {
		webW = append(webW, watch(webTok.SecretID))
		mgmtW = append(mgmtW, watch(testMgmtToken))
	}
	time.Sleep(300 * time.Millisecond)
	reg("cache")
	for i := range webW {
		w, m := <-webW[i], <-mgmtW[i]
		if w.err != nil || m.err != nil {
			t.Fatalf("watch: %v / %v", w.err, m.err)
		}
		if _, ok := w.svcs["db"]; ok || len(w.svcs) != 1 {
			t.Fatalf("web-read watcher got %v", w.svcs)
		}
		if len(m.svcs) != 3 {
			t.Fatalf("management watcher got %v", m.svcs)
		}
	}
}
