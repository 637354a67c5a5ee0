package main

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server"
)

// Mesh identity benchmarks (issue 5):
//
//   - leaf signing throughput on 3 servers with the signing rate limit
//     lifted. server.Config.CSRMaxPerSecond has no config key or flag, so
//     the binary always limits signing to 50/s; this part runs 3 real
//     servers in-process (real Raft over loopback, boltdb on disk) with
//     CSRMaxPerSecond = -1, and concurrent signers send ECDSA P-256 CSRs
//     made ahead of time over the server RPC, round-robin to every server
//     (followers forward to the leader), as agents do.
//   - time from a new service registration on a real agent (of the built
//     binary, joined to a real 3-server cluster) to its first leaf at the
//     agent's leaf endpoint (the Workload API would need a uid selector and
//     a socket per run; the leaf endpoint is what it is fed from).
const (
	signTarget      = 2000 // leaves/s
	firstCertTarget = 200 * time.Millisecond
	signers         = 64
	signsPerRun     = 20000
	firstCertRuns   = 5
	signRuns        = 3
)

func runConnect(ctx context.Context, o *options, rep *report) error {
	if err := benchSigning(ctx, o, rep); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	if err := benchFirstCert(ctx, o, rep); err != nil {
		return fmt.Errorf("first certificate: %w", err)
	}
	return nil
}

func benchSigning(ctx context.Context, o *options, rep *report) error {
	base, err := dataBase()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(base, "warren-bench-connect-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	ports, err := freePorts(clusterSize)
	if err != nil {
		return err
	}
	var addrs []string
	for _, p := range ports {
		addrs = append(addrs, net.JoinHostPort(loopback, fmt.Sprint(p)))
	}
	var srvs []*server.Server
	var wg sync.WaitGroup
	runCtx, cancel := context.WithCancel(ctx)
	defer func() { cancel(); wg.Wait() }()
	for i := range clusterSize {
		s, err := server.New(server.Config{
			NodeName: fmt.Sprintf("s%d", i+1), Datacenter: "dc1", DataDir: fmt.Sprintf("%s/s%d", dir, i+1),
			BindAddr: addrs[i], AdvertiseAddr: addrs[i], BootstrapExpect: clusterSize, RetryJoin: addrs,
			RetryInterval: 100 * time.Millisecond, Version: "bench", CSRMaxPerSecond: -1, Logger: logging.Discard(),
		})
		if err != nil {
			return fmt.Errorf("start in-process server: %w", err)
		}
		srvs = append(srvs, s)
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(runCtx) }()
	}
	pool := rpc.NewPool()
	defer pool.Close()
	// The leader, its CA root and a registered service.
	const node, service = "bench-node", "signer"
	deadline := time.Now().Add(leaderTimeout)
	var td string
	for {
		if time.Now().After(deadline) {
			return errors.New("no leader with a CA root in time")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		var leader *server.Server
		for _, s := range srvs {
			if s.IsLeader() {
				leader = s
			}
		}
		if leader != nil {
			err := leader.Register(ctx, &catalog.Registration{Node: catalog.Node{Name: node, Address: "10.0.0.1", Datacenter: "dc1"},
				Service: &catalog.Service{Node: node, ID: service + "-1", Name: service, Port: 80}})
			if err == nil {
				if r, _, err := leader.CARoots(ctx, catalog.QueryOptions{}); err == nil && r.ActiveRootID != "" {
					td = r.TrustDomain
					break
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	id := connect.ServiceID(td, "default", "dc1", service)
	log.Printf("connect: in-process cluster up (trust domain %s); making %d P-256 CSRs per run", td, signsPerRun)
	var rates []float64
	var failed atomic.Int64
	for run := range signRuns {
		csrs := make([][]byte, signsPerRun)
		for i := range csrs {
			_, csr, err := connect.NewCSR(id, nil, crand.Reader)
			if err != nil {
				return err
			}
			csrs[i] = csr
		}
		var next atomic.Int64
		var ok atomic.Int64
		var firstErr atomic.Value
		start := time.Now()
		var sw sync.WaitGroup
		for w := range signers {
			sw.Add(1)
			go func() {
				defer sw.Done()
				addr := addrs[w%len(addrs)]
				for {
					i := next.Add(1) - 1
					if i >= int64(len(csrs)) || ctx.Err() != nil {
						return
					}
					var reply rpc.SignReply
					if err := pool.Call(ctx, addr, rpc.MethodCASign, &rpc.SignRequest{Node: node, Service: service, CSR: csrs[i]}, &reply); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err.Error())
						continue
					}
					ok.Add(1)
				}
			}()
		}
		sw.Wait()
		el := time.Since(start)
		rate := float64(ok.Load()) / el.Seconds()
		rates = append(rates, rate)
		log.Printf("connect: signing run %d: %d leaves in %s = %.0f/s (%d failed %v)", run+1, ok.Load(), el.Round(time.Millisecond), rate, failed.Load(), firstErr.Load())
	}
	slices.Sort(rates)
	med := rates[len(rates)/2]
	rep.check("connect: leaf signing, 3 servers in-process, no rate limit, P-256, 64 signers (median of 3)", fmt.Sprintf("%.0f/s", med), fmt.Sprintf(">= %d/s", signTarget), med >= signTarget && failed.Load() == 0)
	if failed.Load() > 0 {
		rep.note("connect: %d signing requests failed", failed.Load())
	}
	rep.note("connect: signing throughput is measured on 3 in-process servers with the rate limit lifted (CSRMaxPerSecond = -1, what connect { ca_config { csr_max_per_second = 0 } } sets); signers round-robin over the 3 servers' RPC (followers forward)")
	return nil
}

func benchFirstCert(ctx context.Context, o *options, rep *report) error {
	c, err := startCluster(ctx, o.warren, o.keep)
	if err != nil {
		return err
	}
	defer c.stop()
	a, err := startAgent(c, o.warren, "a1", 0, "")
	if err != nil {
		return err
	}
	defer a.stop()
	hc := newClient(4)
	defer hc.CloseIdleConnections()
	agentURL := "http://" + a.httpAddr
	// The agent is in the catalog and its leaf machinery follows the roots.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var roots struct{ ActiveRootID string }
		var nodeSvcs json.RawMessage
		_, err1 := hc.getJSON(ctx, agentURL+"/v1/agent/connect/ca/roots", &roots)
		_, err2 := hc.getJSON(ctx, c.leader.baseURL()+"/v1/catalog/node/a1", &nodeSvcs)
		if err1 == nil && err2 == nil && roots.ActiveRootID != "" && string(nodeSvcs) != "null" {
			break
		}
		if err := a.checkAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent not ready: %v %v", err1, err2)
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	var ds []time.Duration
	for i := range firstCertRuns {
		name := fmt.Sprintf("fresh-%d", i)
		body, _ := json.Marshal(map[string]any{"ID": name + "-1", "Name": name, "Port": 9000 + i})
		start := time.Now()
		if err := hc.put(ctx, agentURL+"/v1/agent/service/register", body); err != nil {
			return fmt.Errorf("register %s: %w", name, err)
		}
		var leaf struct{ CertPEM, ServiceURI string }
		if _, err := hc.getJSON(ctx, agentURL+"/v1/agent/connect/ca/leaf/"+name, &leaf); err != nil {
			return fmt.Errorf("leaf of %s: %w", name, err)
		}
		d := time.Since(start)
		if leaf.CertPEM == "" {
			return fmt.Errorf("leaf of %s: empty", name)
		}
		ds = append(ds, d)
		log.Printf("connect: %s: registration to first leaf %s", name, ms(d))
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			return err
		}
	}
	slices.Sort(ds)
	med := ds[len(ds)/2]
	rep.check(fmt.Sprintf("connect: new service registration to first leaf, agent leaf endpoint (median of %d; min %s, max %s)", len(ds), ms(ds[0]), ms(ds[len(ds)-1])), ms(med), "< 200ms", med < firstCertTarget)
	return nil
}
