package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/internal/testutil"
)

// TestSecureClusterEnrolledAgents is the secure-by-default cluster: 3
// servers with ACLs (default deny), TLS on every control-plane link and
// gossip encryption, and 2 agents that are given nothing but an
// enrollment token: no CA, no certificate, no ACL token, no gossip key,
// no server address. They join, register, answer DNS, and are bounded by
// what their enrollment allows; a spent token and a node without the
// gossip key are refused.
func TestSecureClusterEnrolledAgents(t *testing.T) {
	pki := t.TempDir()
	for _, args := range [][]string{
		{"tls", "ca", "create"},
		{"tls", "cert", "create", "-server", "-ca", filepath.Join(pki, "warren-agent-ca.pem"), "-key", filepath.Join(pki, "warren-agent-ca-key.pem")},
	} {
		if out, errOut, code := run(t, append(args, "-dir", pki)...); code != 0 {
			t.Fatalf("warren %v: %d\n%s%s", args, code, out, errOut)
		}
	}
	out, _, code := run(t, "keygen")
	if code != 0 {
		t.Fatal("keygen failed")
	}
	gossipKey := strings.TrimSpace(out)
	serverConf := filepath.Join(pki, "server.hcl")
	if err := os.WriteFile(serverConf, []byte(fmt.Sprintf(`encrypt = %q
tls {
  defaults {
    ca_file         = %q
    cert_file       = %q
    key_file        = %q
    verify_incoming = true
  }
}
auto_encrypt {
  allow_tls = true
}
`, gossipKey, filepath.Join(pki, "warren-agent-ca.pem"), filepath.Join(pki, "dc1-server-warren-0.pem"),
		filepath.Join(pki, "dc1-server-warren-0-key.pem"))), 0o600); err != nil {
		t.Fatal(err)
	}

	c := &testCluster{dir: t.TempDir()}
	t.Cleanup(func() { c.cleanup(t) })
	for i := 1; i <= 3; i++ {
		c.servers = append(c.servers, c.newNode(t, fmt.Sprintf("s%d", i), true, nil, nodeOpts{extra: []string{"-config-file", serverConf, "-https-port", strconv.Itoa(testutil.FreePort(t))}}))
	}
	for _, s := range c.servers {
		for _, o := range c.servers {
			if o != s {
				s.args = append(s.args, "-retry-join", o.Serf())
			}
		}
		s.start(t)
	}
	c.waitLeader(t, 60*time.Second)
	s1 := c.servers[0]
	mgmt := s1.client(t)
	waitFor(t, 20*time.Second, func() error { _, _, err := mgmt.ACL().TokenReadSelf(nil); return err })

	// One token for two hosts whose names start with "e", which may
	// hold the web service.
	out, errOut, code := run(t, "acl", "enrollment-token", "create", "-http-addr", s1.HTTP(),
		"-ttl", "10m", "-uses", "2", "-node-prefix", "e", "-service-identity", "web", "-format", "json")
	if code != 0 {
		t.Fatalf("enrollment-token create: %d %s", code, errOut)
	}
	var et struct{ Token string }
	if err := json.Unmarshal([]byte(out), &et); err != nil || !strings.HasPrefix(et.Token, "wrenroll1.") {
		t.Fatalf("enrollment token output %q: %v", out, err)
	}
	if strings.Contains(et.Token, gossipKey) {
		t.Fatal("the enrollment token carries the gossip key in clear")
	}

	// An enrolled agent has only -enroll (and its ports): newNode's ACL
	// fragment and joins are not given.
	enrolled := func(name, token string) *clusterNode {
		n := c.newNode(t, name, false, nil, nodeOpts{})
		var args []string
		for i := 0; i < len(n.args); i++ {
			if n.args[i] == "-hcl" {
				i++
				continue
			}
			args = append(args, n.args[i])
		}
		n.args = append(args, "-enroll", token)
		return n
	}
	e1, e2 := enrolled("e1", et.Token), enrolled("e2", et.Token)
	for _, a := range []*clusterNode{e1, e2} {
		c.agents = append(c.agents, a)
		a.start(t)
		a.waitHTTP(t, 60*time.Second)
	}
	c.waitNodesHealthy(t, 60*time.Second, "s1", "s2", "s3", "e1", "e2")
	for _, a := range []*clusterNode{e1, e2} {
		st, err := os.ReadFile(filepath.Join(a.dataDir, "enrollment.json"))
		if err != nil {
			t.Fatalf("%s: %v", a.name, err)
		}
		if fi, _ := os.Stat(filepath.Join(a.dataDir, "enrollment.json")); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: enrollment state mode %v, want 0600", a.name, fi.Mode().Perm())
		}
		if !strings.Contains(string(st), gossipKey) {
			t.Errorf("%s: the enrollment did not hand over the gossip key", a.name)
		}
		if !strings.Contains(a.log.String(), "auto-encrypt: client certificate in place") {
			t.Errorf("%s: no TLS client certificate from auto-encrypt", a.name)
		}
	}

	// web registers on e1 and reaches the catalog with e1's own token; a
	// service the enrollment does not allow is accepted locally by a
	// management token but never leaves the host.
	e1c := e1.client(t)
	if err := e1c.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080}); err != nil {
		t.Fatal(err)
	}
	if err := e1c.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, func() error { return inCatalog(c.servers[1].client(t), "e1", "web-1") })
	time.Sleep(2 * time.Second)
	if svcs, _, err := mgmt.Catalog().Service("db", "", nil); err != nil || len(svcs) != 0 {
		t.Errorf("db synced from a host whose token does not allow it: %v, %v", svcs, err)
	}
	// DNS on the enrolled agent answers from its view.
	waitFor(t, 10*time.Second, func() error {
		addrs, err := digA(t, e2.dnsPort, "web.service.warren.")
		if err == nil && len(addrs) != 1 {
			err = fmt.Errorf("web on e2's DNS: %v", addrs)
		}
		return err
	})

	// The mesh: a leaf for web from e1 (signed for e1's agent, which may
	// hold web), and intentions decide who may connect to it.
	webTok, _, err := mgmt.ACL().TokenCreate(&consulapi.ACLToken{ServiceIdentities: []*consulapi.ACLServiceIdentity{{ServiceName: "web"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	webCl, _ := consulapi.NewClient(&consulapi.Config{Address: e1.HTTP(), Token: webTok.SecretID})
	leaf, _, err := webCl.Agent().ConnectCALeaf("web", nil)
	if err != nil || !strings.HasSuffix(leaf.ServiceURI, "/svc/web") {
		t.Fatalf("leaf for web on e1: %+v, %v", leaf, err)
	}
	if _, err := mgmt.Connect().IntentionUpsert(&consulapi.Intention{SourceName: "api", DestinationName: "web", Action: consulapi.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	apiURI := strings.TrimSuffix(leaf.ServiceURI, "/svc/web") + "/svc/api"
	authz, err := webCl.Agent().ConnectAuthorize(&consulapi.AgentAuthorizeParams{Target: "web", ClientCertURI: apiURI, ClientCertSerial: "01"})
	if err != nil || authz.Authorized {
		t.Errorf("api -> web with a deny intention: %+v, %v", authz, err)
	}
	if _, _, err := webCl.Agent().ConnectCALeaf("db", nil); err == nil {
		t.Error("a web token got a leaf for db")
	}

	// The token is spent: a third host is refused, and says why.
	e3 := enrolled("e3", et.Token)
	cmd := exec.Command(warrenBin, e3.args...)
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	outB, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(outB), "enrollment refused") {
		t.Errorf("a third host with a two-use token: %v\n%s", err, outB)
	}
	if strings.Contains(string(outB), et.Token) {
		t.Error("the refused agent logged the enrollment token")
	}
	logs := s1.log.String() + c.servers[1].log.String() + c.servers[2].log.String()
	if !strings.Contains(logs, "enrollment refused") || !strings.Contains(logs, "unknown_or_used") {
		t.Error("no server logged the refused enrollment")
	}

	// A node without the gossip key never joins the pool.
	nokey := c.newNode(t, "nokey", false, []string{s1.Serf()}, nodeOpts{extra: []string{"-hcl", "acl {\n enabled = false\n}\n"}})
	c.agents = append(c.agents, nokey)
	nokey.start(t)
	time.Sleep(3 * time.Second)
	members, err := mgmt.Agent().Members(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.Name == "nokey" {
			t.Errorf("a node without the gossip key joined: %+v", m)
		}
	}

	// Anonymous clients get nothing, even from an enrolled host.
	anon, _ := consulapi.NewClient(&consulapi.Config{Address: e1.HTTP()})
	if svcs, _, err := anon.Catalog().Services(nil); err != nil || len(svcs) != 0 {
		t.Errorf("anonymous on e1: %v, %v", svcs, err)
	}
}
