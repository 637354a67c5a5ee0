package server

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/server/fsm"
)

// SerfCheckID is the check the leader keeps on every node for its gossip
// health; agents never touch it.
const (
	SerfCheckID      = catalog.SerfCheckID
	serfCheckName    = "Serf Health Status"
	serfAliveOutput  = "Agent alive and reachable"
	serfFailedOutput = "Agent not live or unreachable"
	// ServerServiceName is the service every server registers, as Consul's
	// servers register "consul".
	ServerServiceName = catalog.ServerServiceID
)

// membershipLoop follows the gossip pool: servers it reports are handed to
// the join loop, and the leader turns every member's state into its catalog
// node and serfHealth check. A full reconcile runs on leadership and every
// ReconcileInterval, so missed events heal.
func (s *Server) membershipLoop(ctx context.Context) error {
	pool := s.cfg.Gossip
	events := pool.Subscribe()
	for _, m := range pool.Members() {
		s.noteServer(m)
	}
	interval := s.cfg.ReconcileInterval
	if interval <= 0 {
		interval = time.Minute
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-events:
			me, ok := e.(serf.MemberEvent)
			if !ok {
				continue
			}
			for _, m := range me.Members {
				s.noteServer(m)
				if s.IsLeader() {
					s.reconcileMember(ctx, m, me.Type == serf.EventMemberReap)
				}
			}
		case <-s.reconcileNow:
			s.reconcileAll(ctx)
		case <-tick.C:
			s.reconcileAll(ctx)
		}
	}
}

func (s *Server) noteServer(m serf.Member) {
	if m.Status != serf.StatusAlive {
		return
	}
	if addr, ok := gossip.ServerRPCAddr(m, s.cfg.Datacenter); ok {
		s.Discovered(addr)
	}
}

// absentGrace is how long a node with a serfHealth check must stay unknown
// to gossip before the leader deregisters it as reaped. Right after servers
// restart their member lists are still filling in (found by the robustness
// tests: a freshly elected leader deregistered live agents).
const absentGrace = 3 * time.Minute

// reconcileAll reconciles every member, and deregisters nodes that carry a
// serfHealth check but have not been members for absentGrace (reaped while
// we were not the leader).
func (s *Server) reconcileAll(ctx context.Context) {
	if !s.IsLeader() || s.cfg.Gossip == nil {
		return
	}
	members := map[string]bool{}
	for _, m := range s.cfg.Gossip.Members() {
		if m.Tags[gossip.TagDatacenter] != s.cfg.Datacenter {
			continue
		}
		members[m.Name] = true
		s.reconcileMember(ctx, m, false)
	}
	_, checks, err := s.store.ChecksInState(nil, catalog.HealthAny)
	if err != nil {
		s.log.Error("reconcile: read checks", "err", err)
		return
	}
	now := time.Now()
	seen := map[string]bool{}
	for _, c := range checks {
		if c.CheckID != SerfCheckID || members[c.Node] {
			continue
		}
		seen[c.Node] = true
		first, ok := s.absentSince[c.Node]
		if !ok {
			s.absentSince[c.Node] = now
			continue
		}
		if now.Sub(first) >= absentGrace {
			s.deregisterMember(ctx, c.Node, "reaped")
			delete(s.absentSince, c.Node)
		}
	}
	for n := range s.absentSince {
		if !seen[n] {
			delete(s.absentSince, n)
		}
	}
}

// reconcileMember makes the catalog agree with one member's gossip state.
func (s *Server) reconcileMember(ctx context.Context, m serf.Member, reaped bool) {
	if m.Tags[gossip.TagDatacenter] != s.cfg.Datacenter || !catalog.ValidDNSLabel(m.Name) {
		return
	}
	switch {
	case reaped || m.Status == serf.StatusLeft:
		s.deregisterMember(ctx, m.Name, m.Status.String())
	case m.Status == serf.StatusAlive:
		s.registerMember(ctx, m, catalog.HealthPassing, serfAliveOutput)
	case m.Status == serf.StatusFailed:
		s.registerMember(ctx, m, catalog.HealthCritical, serfFailedOutput)
	}
}

func (s *Server) registerMember(ctx context.Context, m serf.Member, status, output string) {
	addr := m.Addr.String()
	_, node, services, err := s.store.NodeServices(nil, m.Name)
	if err != nil {
		s.log.Error("reconcile: read node", "node", m.Name, "err", err)
		return
	}
	rpcAddr, isServer := gossip.ServerRPCAddr(m, s.cfg.Datacenter)
	if node != nil && node.Address == addr && s.serfCheckIs(m.Name, status) && (!isServer || hasService(services, ServerServiceName)) {
		return
	}
	reg := &catalog.Registration{
		Node:           catalog.Node{ID: m.Tags[gossip.TagID], Name: m.Name, Address: addr, Datacenter: s.cfg.Datacenter},
		SkipNodeUpdate: node != nil && node.Address == addr,
		// The node's agent may register it between this read and the
		// apply: what it wrote about itself stays.
		KeepAgentNodeFields: true,
		Checks: []*catalog.Check{{
			Node: m.Name, CheckID: SerfCheckID, Name: serfCheckName, Status: status, Output: output, Type: "serf",
		}},
	}
	if node != nil {
		// Keep what the node's agent registered about itself.
		reg.Node.ID, reg.Node.TaggedAddresses, reg.Node.Meta = node.ID, node.TaggedAddresses, node.Meta
	}
	if isServer {
		_, portStr, _ := net.SplitHostPort(rpcAddr)
		port, _ := strconv.Atoi(portStr)
		reg.Service = &catalog.Service{ID: ServerServiceName, Name: ServerServiceName, Port: port}
	}
	reg.Normalize()
	if err := reg.Validate(); err != nil {
		s.log.Warn("reconcile: member cannot be registered", "node", m.Name, "err", err)
		return
	}
	if err := s.applyCommand(ctx, fsm.RegisterType, reg); err != nil {
		s.log.Warn("reconcile: register member", "node", m.Name, "err", err)
		return
	}
	s.log.Info("member health", "node", m.Name, "status", status)
}

func hasService(services []*catalog.Service, id string) bool {
	for _, svc := range services {
		if svc.ID == id {
			return true
		}
	}
	return false
}

func (s *Server) serfCheckIs(node, status string) bool {
	_, checks, err := s.store.NodeChecks(nil, node)
	if err != nil {
		return false
	}
	for _, c := range checks {
		if c.CheckID == SerfCheckID {
			return c.Status == status
		}
	}
	return false
}

func (s *Server) deregisterMember(ctx context.Context, node, why string) {
	_, n, _, err := s.store.NodeServices(nil, node)
	if err != nil || n == nil {
		return
	}
	if err := s.applyCommand(ctx, fsm.DeregisterType, &catalog.Deregistration{Node: node}); err != nil {
		s.log.Warn("reconcile: deregister member", "node", node, "err", err)
		return
	}
	s.log.Info("member deregistered", "node", node, "why", why)
}
