package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// liveSVID is an x509svid.Source that follows a service's leaf on the
// agent's leaf endpoint with blocking queries.
type liveSVID struct {
	p       atomic.Pointer[x509svid.SVID]
	serials sync.Map // serials seen
	changes atomic.Int64
}

func (s *liveSVID) GetX509SVID() (*x509svid.SVID, error) {
	if v := s.p.Load(); v != nil {
		return v, nil
	}
	return nil, errors.New("no SVID yet")
}

// liveBundle is an x509bundle.Source that follows the agent's CA roots.
type liveBundle struct {
	p       atomic.Pointer[x509bundle.Bundle]
	changes atomic.Int64
}

func (b *liveBundle) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	v := b.p.Load()
	if v == nil || v.TrustDomain() != td {
		return nil, fmt.Errorf("no bundle for %s", td)
	}
	return v, nil
}

func bundleFromRoots(roots *consulapi.CARootList, activeOnly bool) (*x509bundle.Bundle, error) {
	td, err := spiffeid.TrustDomainFromString(roots.TrustDomain)
	if err != nil {
		return nil, err
	}
	b := x509bundle.New(td)
	for _, r := range roots.Roots {
		if activeOnly && r.ID != roots.ActiveRootID {
			continue
		}
		certs, err := x509bundleParse(r.RootCertPEM)
		if err != nil {
			return nil, err
		}
		for _, c := range certs {
			b.AddX509Authority(c)
		}
	}
	return b, nil
}

func x509bundleParse(pemText string) ([]*x509.Certificate, error) {
	b, err := x509bundle.Parse(spiffeid.RequireTrustDomainFromString("x.warren"), []byte(pemText))
	if err != nil {
		return nil, err
	}
	return b.X509Authorities(), nil
}

// followLeaf keeps src at service's current leaf until stop is closed.
func followLeaf(t *testing.T, cl *consulapi.Client, service string, src *liveSVID, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		var idx uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			leaf, meta, err := cl.Agent().ConnectCALeaf(service, &consulapi.QueryOptions{WaitIndex: idx, WaitTime: 2 * time.Second})
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			idx = meta.LastIndex
			if _, seen := src.serials.LoadOrStore(leaf.SerialNumber, true); seen {
				continue
			}
			s, err := x509svid.Parse([]byte(leaf.CertPEM), []byte(leaf.PrivateKeyPEM))
			if err != nil {
				t.Errorf("parse %s leaf: %v", service, err)
				continue
			}
			src.p.Store(s)
			src.changes.Add(1)
		}
	}()
}

// followRoots keeps b at the agent's trust bundle (every root) until stop.
func followRoots(t *testing.T, cl *consulapi.Client, b *liveBundle, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		var idx uint64
		for {
			select {
			case <-stop:
				return
			default:
			}
			roots, meta, err := cl.Agent().ConnectCARoots(&consulapi.QueryOptions{WaitIndex: idx, WaitTime: 2 * time.Second})
			if err != nil || len(roots.Roots) == 0 {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			if meta.LastIndex == idx {
				continue
			}
			idx = meta.LastIndex
			nb, err := bundleFromRoots(roots, false)
			if err != nil {
				t.Errorf("roots: %v", err)
				continue
			}
			b.p.Store(nb)
			b.changes.Add(1)
		}
	}()
}

// TestRotationNoFailedHandshake: on 3 servers and an agent, with a 4 s
// leaf TTL, a TLS client ("web") keeps connecting to a TLS server ("db"),
// each side reloading its leaf and bundle from the agent's leaf and roots
// endpoints as they change, across several leaf renewals and one CA root
// rotation (ec -> rsa); not one handshake may fail on either side.
func TestRotationNoFailedHandshake(t *testing.T) {
	c := startCluster(t, 3, 1)
	cl := c.agents[0].client(t)
	if _, err := c.servers[0].client(t).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "4s"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"web", "db"} {
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: svc + "-1", Name: svc, Port: 8080}); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var web, db liveSVID
	var webBundle, dbBundle liveBundle
	followLeaf(t, cl, "web", &web, stop, &wg)
	followLeaf(t, cl, "db", &db, stop, &wg)
	followRoots(t, cl, &webBundle, stop, &wg)
	followRoots(t, cl, &dbBundle, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, 20*time.Second, func() error {
		if web.p.Load() == nil || db.p.Load() == nil || webBundle.p.Load() == nil || dbBundle.p.Load() == nil {
			return errors.New("no leaves or bundle yet")
		}
		return nil
	})
	webID, dbID := web.p.Load().ID, db.p.Load().ID

	ln, err := tls.Listen("tcp", "127.0.0.1:0", tlsconfig.MTLSServerConfig(&db, &dbBundle, tlsconfig.AuthorizeID(webID)))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var srvOK, srvFail atomic.Int64
	var failMu sync.Mutex
	var failures []string
	fail := func(side string, err error) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 10 {
			failures = append(failures, fmt.Sprintf("%s %s: %v", time.Now().Format("15:04:05.000"), side, err))
		}
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func(conn net.Conn) {
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				if err := conn.(*tls.Conn).Handshake(); err != nil {
					srvFail.Add(1)
					fail("server", err)
					return
				}
				srvOK.Add(1)
				_, _ = io.WriteString(conn, "ok")
			}(conn)
		}
	}()

	var cliOK, cliFail atomic.Int64
	cliCfg := tlsconfig.MTLSClientConfig(&web, &webBundle, tlsconfig.AuthorizeID(dbID))
	clientDone := make(chan struct{})
	clientStop := make(chan struct{})
	go func() {
		defer close(clientDone)
		d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: cliCfg}
		for {
			select {
			case <-clientStop:
				return
			default:
			}
			conn, err := d.Dial("tcp", ln.Addr().String())
			if err == nil {
				_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 2)
				_, err = io.ReadFull(conn, buf)
				conn.Close()
			}
			if err != nil {
				cliFail.Add(1)
				fail("client", err)
			} else {
				cliOK.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	rootsBefore, _, err := cl.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Second)
	webBefore, dbBefore := web.changes.Load(), db.changes.Load()
	t.Logf("before root rotation: web leaves %d, db leaves %d, handshakes ok %d", webBefore, dbBefore, cliOK.Load())
	if _, err := c.servers[1].client(t).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul",
		Config: map[string]any{"PrivateKeyType": "rsa", "PrivateKeyBits": 2048, "LeafCertTTL": "4s"}}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(14 * time.Second)
	close(clientStop)
	<-clientDone

	rootsAfter, _, err := cl.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("handshakes: client ok %d failed %d; server ok %d failed %d; leaves seen: web %d, db %d; bundle changes: %d; roots %d -> %d, active %s -> %s",
		cliOK.Load(), cliFail.Load(), srvOK.Load(), srvFail.Load(), web.changes.Load(), db.changes.Load(), webBundle.changes.Load(),
		len(rootsBefore.Roots), len(rootsAfter.Roots), rootsBefore.ActiveRootID, rootsAfter.ActiveRootID)
	if rootsAfter.ActiveRootID == rootsBefore.ActiveRootID {
		t.Fatal("the root did not rotate")
	}
	if web.changes.Load() < 5 || db.changes.Load() < 5 || webBefore < 3 {
		t.Errorf("too few leaf rotations: web %d (%d before the root rotation), db %d", web.changes.Load(), webBefore, db.changes.Load())
	}
	if cliOK.Load() < 500 {
		t.Errorf("only %d handshakes", cliOK.Load())
	}
	if cliFail.Load() != 0 || srvFail.Load() != 0 {
		t.Errorf("failed handshakes: client %d, server %d; first: %s", cliFail.Load(), srvFail.Load(), strings.Join(failures, "\n"))
	}
	// The current leaves were signed by the new root.
	active, err := bundleFromRoots(rootsAfter, true)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*liveSVID{"web": &web, "db": &db} {
		v := s.p.Load()
		if _, _, err := x509svid.Verify(v.Certificates, active); err != nil {
			t.Errorf("%s leaf does not verify against the new root alone: %v", name, err)
		}
	}
}

// TestLeaderDiesMidRotation: the leader is killed (SIGKILL) 20 ms into a
// root rotation (PUT configuration, ec -> rsa, whose key generation runs on
// the leader before the commit). A new leader is elected; the rotation is
// then finished by repeating the PUT to a survivor if it did not commit.
// Afterwards every survivor holds the same roots with exactly one active
// root, the agent's leaves (and a leaf signed afterwards) verify against
// the active root alone, and the workloads complete mutual TLS.
func TestLeaderDiesMidRotation(t *testing.T) {
	c := startCluster(t, 3, 1)
	cl := c.agents[0].client(t)
	if _, err := c.servers[0].client(t).Connect().CASetConfig(&consulapi.CAConfig{Provider: "consul", Config: map[string]any{"LeafCertTTL": "30s"}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"web", "db"} {
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: svc + "-1", Name: svc, Port: 8080}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cl.Agent().ConnectCALeaf(svc, nil); err != nil {
			t.Fatal(err)
		}
	}
	before, _, err := cl.Agent().ConnectCARoots(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaderAddr, err := c.servers[0].client(t).Status().Leader()
	if err != nil {
		t.Fatal(err)
	}
	var leader *clusterNode
	var survivors []*clusterNode
	for _, s := range c.servers {
		if leaderAddr == fmt.Sprintf("127.0.0.1:%d", s.serverPort) {
			leader = s
		} else {
			survivors = append(survivors, s)
		}
	}
	if leader == nil {
		t.Fatalf("leader %s is none of the servers", leaderAddr)
	}
	rsa := &consulapi.CAConfig{Provider: "consul", Config: map[string]any{"PrivateKeyType": "rsa", "PrivateKeyBits": 2048, "LeafCertTTL": "30s"}}
	putErr := make(chan error, 1)
	go func() {
		_, err := leader.client(t).Connect().CASetConfig(rsa, nil)
		putErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	leader.kill9(t)
	t.Logf("PUT to the killed leader %s: %v", leader.name, <-putErr)

	// A new leader among the survivors.
	waitFor(t, 30*time.Second, func() error {
		l := ""
		for _, s := range survivors {
			got, err := s.client(t).Status().Leader()
			if err != nil || got == "" || got == leaderAddr {
				return fmt.Errorf("%s: leader %q %v", s.name, got, err)
			}
			if l != "" && got != l {
				return fmt.Errorf("survivors disagree: %s %s", l, got)
			}
			l = got
		}
		return nil
	})
	cfg, _, err := survivors[0].client(t).Connect().CAGetConfig(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config["PrivateKeyType"] != "rsa" {
		t.Logf("the rotation did not commit before the leader died; repeating it on the new leader")
		waitFor(t, 20*time.Second, func() error {
			_, err := survivors[0].client(t).Connect().CASetConfig(rsa, nil)
			return err
		})
	} else {
		t.Logf("the rotation committed before the leader died")
	}

	// Survivors agree; one active root, not the old one, of the new type.
	var roots *consulapi.CARootList
	waitFor(t, 20*time.Second, func() error {
		var ids []string
		for _, s := range survivors {
			r, _, err := s.client(t).Connect().CARoots(&consulapi.QueryOptions{AllowStale: true})
			if err != nil {
				return err
			}
			active := 0
			var list []string
			for _, x := range r.Roots {
				list = append(list, x.ID)
				if x.Active {
					active++
					certs, err := x509bundleParse(x.RootCertPEM)
					if err != nil || len(certs) != 1 || x.ID != r.ActiveRootID || certs[0].PublicKeyAlgorithm != x509.RSA {
						return fmt.Errorf("%s: active root %s (%v), ActiveRootID %s", s.name, x.ID, err, r.ActiveRootID)
					}
				}
			}
			if active != 1 || r.ActiveRootID == before.ActiveRootID {
				return fmt.Errorf("%s: %d active roots, active %s", s.name, active, r.ActiveRootID)
			}
			ids = append(ids, r.ActiveRootID+" "+strings.Join(list, ","))
			roots = r
		}
		if ids[0] != ids[1] {
			return fmt.Errorf("survivors' roots differ: %q vs %q", ids[0], ids[1])
		}
		return nil
	})
	activeOnly, err := bundleFromRoots(roots, true)
	if err != nil {
		t.Fatal(err)
	}
	full, err := bundleFromRoots(roots, false)
	if err != nil {
		t.Fatal(err)
	}
	// Every workload moves to a leaf of the new root, and a leaf signed
	// now (a new service) does too.
	if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{ID: "api-1", Name: "api", Port: 8081}); err != nil {
		t.Fatal(err)
	}
	leaves := map[string]*consulapi.LeafCert{}
	waitFor(t, 30*time.Second, func() error {
		for _, svc := range []string{"web", "db", "api"} {
			l, _, err := cl.Agent().ConnectCALeaf(svc, nil)
			if err != nil {
				return fmt.Errorf("%s: %v", svc, err)
			}
			s, err := x509svid.Parse([]byte(l.CertPEM), []byte(l.PrivateKeyPEM))
			if err != nil {
				return err
			}
			if time.Now().After(l.ValidBefore) {
				return fmt.Errorf("%s: expired leaf", svc)
			}
			if _, _, err := x509svid.Verify(s.Certificates, full); err != nil {
				t.Fatalf("%s leaf does not verify against the bundle: %v", svc, err)
			}
			if _, _, err := x509svid.Verify(s.Certificates, activeOnly); err != nil {
				return fmt.Errorf("%s leaf not yet from the new root: %v", svc, err)
			}
			leaves[svc] = l
		}
		return nil
	})
	handshake(t, leaves["db"], leaves["web"], full)
	handshake(t, leaves["db"], leaves["web"], activeOnly)
	handshake(t, leaves["web"], leaves["api"], full)
}
