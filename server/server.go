// Package server is the control-plane server: Raft (raft-boltdb log and
// stable store, file snapshots) over the catalog state store, the gRPC
// endpoint that followers forward to, cluster formation with retry_join and
// bootstrap_expect, and the leader's duties. It implements the HTTP API's
// Backend. Only cli (and tests) import it.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"
	"google.golang.org/grpc"

	"github.com/warren-mesh/warren/catalog/state"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/internal/audit"
	"github.com/warren-mesh/warren/internal/limits"
	"github.com/warren-mesh/warren/internal/logging"
	"github.com/warren-mesh/warren/internal/task"
	"github.com/warren-mesh/warren/internal/tlscfg"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/pb"
	"github.com/warren-mesh/warren/server/fsm"
)

// Config is what a server needs; the CLI builds it from the runtime config.
type Config struct {
	NodeName string
	// NodeID is used for a new data dir; an existing one keeps its own.
	NodeID     string
	Datacenter string
	DataDir    string
	// BindAddr is the host:port the RPC (and Raft) listener binds.
	BindAddr string
	// AdvertiseAddr is the host:port other servers reach us at; defaults to
	// the bound address.
	AdvertiseAddr   string
	BootstrapExpect int
	// RetryJoin lists host:port RPC addresses of other servers.
	RetryJoin     []string
	RetryInterval time.Duration
	// Gossip is the LAN pool; with it, servers discover each other by
	// gossip and the leader reconciles members into the catalog.
	Gossip *gossip.Pool
	// ReconcileInterval is how often the leader reconciles every member;
	// 0 means one minute.
	ReconcileInterval time.Duration
	// Metrics gets the server's metrics; nil discards them.
	Metrics prometheus.Registerer
	// Raft timings; zero values take hashicorp/raft's production defaults.
	Raft RaftTimings
	// CSRMaxPerSecond limits leaf signing on the leader; 0 means
	// DefaultCSRMaxPerSecond (50, Consul's), negative means no limit.
	CSRMaxPerSecond float64
	// DefaultIntentionAllow is default_intention_policy: whether a
	// connection that no intention matches is allowed.
	DefaultIntentionAllow bool
	// ACL is the access control configuration (server/acl.go).
	ACL ACLConfig
	// Enrollment is what enrolling agents receive (server/enroll.go).
	Enrollment EnrollmentConfig
	// Audit records enrollments and refused enrollment tokens; nil
	// records nothing.
	Audit *audit.Log
	// TLS makes every RPC connection mutual TLS (server/tls.go); nil runs
	// plaintext, allowed only on a loopback address.
	TLS     *tlscfg.Configurator
	Version string
	Logger  *slog.Logger

	// RPCRate is rpc_rate: the calls per second one agent address may
	// make (0: no limit); RPCMaxBurst the burst (default 1000).
	// Rejections counts refusals (server/ratelimit.go); nil counts none.
	RPCRate     float64
	RPCMaxBurst int
	Rejections  *limits.Rejections
}

// RaftTimings tunes Raft; tests use short ones.
type RaftTimings struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	SnapshotThreshold  uint64
	TrailingLogs       uint64
	SnapshotInterval   time.Duration
}

// Server is one control-plane server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	meta  *dataDirMeta
	lock  *os.File
	store *state.Store
	fsm   *fsm.FSM
	raft  *raft.Raft
	trans *raft.NetworkTransport
	bolt  *raftboltdb.BoltStore
	mux   *mux
	grpc  *grpc.Server
	pool  *rpc.Pool
	// contacts wraps trans to record followers' last contact (metrics).
	contacts *contactTransport
	// bootOK is true when raft had state at start or we bootstrapped.
	bootOK atomic.Bool
	// metaMu guards meta.ClusterID, the one field that changes.
	metaMu sync.Mutex

	endpoints map[string]endpoint
	rpcRate   *limits.KeyedRate // rpc_rate buckets (server/ratelimit.go)
	metrics   *serverMetrics
	storeLogs prometheus.Histogram
	ca        *caState
	ixnMu     sync.Mutex // serializes intention writes on the leader
	acl       *aclState
	tlsRoots  connectRoots
	lastPrune time.Time     // leader loop only
	snapshots snapshotCache // encoded watch snapshots (watch.go)

	// leaderReady is true once this server is the leader and has applied
	// every entry committed before its term (a barrier), so its reads are
	// as fresh as the leader's writes.
	leaderReady atomic.Bool

	mu    sync.Mutex
	known map[string]*pb.ServerInfo // by node ID, ourselves included
	// targets are server RPC addresses to contact, true once contacted
	// while this server is part of a cluster.
	targets      map[string]bool
	discovered   chan struct{}
	reconcileNow chan struct{}
	// absentSince is when the membership loop first saw a registered node
	// missing from gossip (owned by that loop).
	absentSince map[string]time.Time
}

// New opens the data dir and the Raft stores and binds the RPC port. It
// starts nothing; Run does.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = logging.Discard()
	}
	if cfg.RetryInterval <= 0 {
		cfg.RetryInterval = 30 * time.Second
	}
	s := &Server{cfg: cfg, log: cfg.Logger, store: state.New(), pool: rpc.NewPool(), known: map[string]*pb.ServerInfo{},
		targets: map[string]bool{}, discovered: make(chan struct{}, 1), storeLogs: storeLogsHistogram(),
		reconcileNow: make(chan struct{}, 1), absentSince: map[string]time.Time{},
		rpcRate: limits.NewKeyedRate(cfg.RPCRate, cmp.Or(cfg.RPCMaxBurst, 1000), 0)}
	s.acl = newACLState(cfg.ACL)
	ok := false
	defer func() {
		if !ok {
			s.closeStores()
		}
	}()

	var err error
	s.meta, s.lock, err = openDataDir(cfg.DataDir, cfg.Datacenter, cfg.NodeID)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for server RPC on %s: %w", cfg.BindAddr, err)
	}
	if err := checkPlaintextBind(ln, cfg.TLS, s.log); err != nil {
		_ = ln.Close()
		return nil, err
	}
	if cfg.TLS != nil {
		s.pool = rpc.NewTLSPool(cfg.TLS.OutgoingRPC())
		cfg.TLS.SetConnectRoots(s.connectRootPool)
	}
	s.mux = newMux(ln, cfg.TLS, s.log)
	if s.cfg.AdvertiseAddr == "" {
		s.cfg.AdvertiseAddr = ln.Addr().String()
	}
	advertise, err := net.ResolveTCPAddr("tcp", s.cfg.AdvertiseAddr)
	if err != nil {
		return nil, fmt.Errorf("advertise address %q: %w", s.cfg.AdvertiseAddr, err)
	}
	if advertise.IP.IsUnspecified() {
		return nil, fmt.Errorf("advertise address %s is unspecified: set -advertise", s.cfg.AdvertiseAddr)
	}
	if err := s.setupRaft(advertise); err != nil {
		return nil, err
	}
	s.fsmReady()
	s.metrics = newServerMetrics(cfg.Metrics, s)
	s.fsm.OnBatch = func(n int) { s.metrics.batchSize.Observe(float64(n)) }
	s.ca = newCAState(cfg.Metrics, cfg.CSRMaxPerSecond)
	s.endpoints = s.buildEndpoints()
	gopts := []grpc.ServerOption{grpc.MaxRecvMsgSize(rpc.MaxMessageSize), grpc.MaxSendMsgSize(rpc.MaxMessageSize),
		grpc.ChainUnaryInterceptor(s.authorizeUnary), grpc.ChainStreamInterceptor(s.authorizeStream)} // server/tls.go
	if cfg.TLS != nil {
		gopts = append(gopts, grpc.Creds(preTLSCreds{}))
	}
	s.grpc = grpc.NewServer(gopts...)
	pb.RegisterServerServer(s.grpc, &grpcService{s: s})
	s.known[s.meta.NodeID] = s.selfInfo()
	ok = true
	return s, nil
}

func (s *Server) setupRaft(advertise net.Addr) error {
	dir := filepath.Join(s.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create raft dir: %w", err)
	}
	if err := protectRaftDir(dir, s.log); err != nil {
		return err
	}
	hclog := logging.HCLog(s.log.With("component", "raft"))
	boltPath := filepath.Join(dir, "raft.db")
	bolt, err := raftboltdb.New(raftboltdb.Options{
		Path:        boltPath,
		BoltOptions: &bbolt.Options{Timeout: 5 * time.Second},
	})
	if err != nil {
		return fmt.Errorf("open raft log %s (corrupt, or not a warren data dir?): %w", boltPath, err)
	}
	s.bolt = bolt
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog)
	if err != nil {
		return fmt.Errorf("open raft snapshots in %s: %w", dir, err)
	}
	logs, err := raft.NewLogCache(512, &timedLogStore{LogStore: bolt, h: s.storeLogs})
	if err != nil {
		return fmt.Errorf("raft log cache: %w", err)
	}
	layer := &raftLayer{chanListener: newChanListener(s.mux, s.mux.raftCh), advertise: advertise}
	if s.cfg.TLS != nil {
		layer.tls = s.cfg.TLS.OutgoingRPC()
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  layer,
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hclog,
	})
	s.contacts = newContactTransport(s.trans)

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(s.meta.NodeID)
	rc.Logger = hclog
	// Concurrent writes share one log append and one fsync; the FSM
	// applies each batch in one transaction.
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 512
	// Half of hashicorp/raft's (and Consul's raft_multiplier=1) timings: a
	// new leader is elected and writing within ~1 s of losing the old one
	// (make bench -only recovery prints it), still well above the round
	// trips of a LAN.
	rc.HeartbeatTimeout = 500 * time.Millisecond
	rc.ElectionTimeout = 500 * time.Millisecond
	rc.LeaderLeaseTimeout = 250 * time.Millisecond
	// Followers learn a new commit index on the next AppendEntries; with
	// no new entries that comes after CommitTimeout. 10 ms instead of 50
	// ms keeps followers' state stores (and the agent views and stale
	// reads they serve) within ~10 ms of the leader, for ~100 empty
	// AppendEntries a second per follower when idle. Measured with make
	// bench -only views: views on followers saw a change 75-106 ms after
	// the leader's at 50 ms.
	rc.CommitTimeout = 10 * time.Millisecond
	t := s.cfg.Raft
	setDur(&rc.HeartbeatTimeout, t.HeartbeatTimeout)
	setDur(&rc.ElectionTimeout, t.ElectionTimeout)
	setDur(&rc.LeaderLeaseTimeout, t.LeaderLeaseTimeout)
	setDur(&rc.CommitTimeout, t.CommitTimeout)
	setDur(&rc.SnapshotInterval, t.SnapshotInterval)
	if t.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = t.SnapshotThreshold
	}
	if t.TrailingLogs > 0 {
		rc.TrailingLogs = t.TrailingLogs
	}

	has, err := raft.HasExistingState(logs, bolt, snaps)
	if err != nil {
		return fmt.Errorf("read raft state: %w", err)
	}
	s.bootOK.Store(has)
	s.fsm = fsm.New(s.store)
	r, err := raft.NewRaft(rc, s.fsm, logs, bolt, snaps, s.contacts)
	if err != nil {
		return fmt.Errorf("start raft (is the data dir corrupt?): %w", err)
	}
	s.raft = r
	return nil
}

func setDur(dst *time.Duration, v time.Duration) {
	if v > 0 {
		*dst = v
	}
}

// fsmReady records a cluster ID restored from disk.
func (s *Server) fsmReady() {
	if id, ok := s.store.Meta(metaClusterID); ok {
		s.metaMu.Lock()
		s.meta.ClusterID = id
		s.metaMu.Unlock()
	}
}

// Run serves until ctx is done, then shuts down in order: stop taking RPCs,
// stop Raft (a leader steps down by stopping), close the stores, release the
// data dir. It returns the first error of any loop.
func (s *Server) Run(ctx context.Context) error {
	s.log.Info("server started", "node", s.cfg.NodeName, "id", s.meta.NodeID, "rpc", s.cfg.AdvertiseAddr, "bootstrap_expect", s.cfg.BootstrapExpect)
	// The mux outlives the other loops: Raft and gRPC connections ride on
	// it until shutdown has stopped them.
	muxDone := make(chan error, 1)
	go func() { muxDone <- s.mux.serve() }()
	loops := []task.Func{s.serveGRPC, s.joinLoop, s.leaderLoop}
	if s.cfg.Gossip != nil {
		loops = append(loops, s.membershipLoop)
	}
	err := task.Run(ctx, loops...)
	s.shutdown()
	if merr := <-muxDone; merr != nil && err == nil {
		err = merr
	}
	return err
}

func (s *Server) serveGRPC(ctx context.Context) error {
	gl := newChanListener(s.mux, s.mux.grpcCh)
	l := &gl
	errCh := make(chan error, 1)
	go func() { errCh <- s.grpc.Serve(l) }()
	select {
	case <-ctx.Done():
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			s.grpc.Stop()
		}
		<-errCh
		return nil
	case err := <-errCh:
		if err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("serve gRPC: %w", err)
		}
		return nil
	}
}

func (s *Server) shutdown() {
	s.leaderReady.Store(false)
	if s.raft != nil {
		if err := s.raft.Shutdown().Error(); err != nil {
			s.log.Warn("raft shutdown", "err", err)
		}
	}
	s.pool.Close()
	s.closeStores()
	s.log.Info("server stopped")
}

func (s *Server) closeStores() {
	if s.trans != nil {
		_ = s.trans.Close()
	}
	if s.bolt != nil {
		_ = s.bolt.Close()
		s.bolt = nil
	}
	if s.mux != nil {
		s.mux.close()
	}
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
}

// NodeID is this server's Raft ID.
func (s *Server) NodeID() string { return s.meta.NodeID }

// Addr is the address other servers reach this one at.
func (s *Server) Addr() string { return s.cfg.AdvertiseAddr }

// IsLeader reports whether this server is the ready leader.
func (s *Server) IsLeader() bool {
	return s.leaderReady.Load() && s.raft.State() == raft.Leader
}

// RaftStats are raft's counters (state, term, indexes, peers), as
// /v1/agent/self's raft section.
func (s *Server) RaftStats() map[string]string { return s.raft.Stats() }

// LeaderAddr is the current leader's address, "" if unknown.
func (s *Server) LeaderAddr() string {
	addr, _ := s.raft.LeaderWithID()
	return string(addr)
}

// Store is the server's state store, for tests that inspect it (read-only
// use).
func (s *Server) Store() *state.Store { return s.store }
