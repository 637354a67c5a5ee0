package server

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/server/fsm"
)

const metaClusterID = "cluster_id"

func (s *Server) clusterID() string {
	if id, ok := s.store.Meta(metaClusterID); ok {
		return id
	}
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	return s.meta.ClusterID
}

// leaderLoop follows leadership changes: on gaining it, wait until every
// earlier entry is applied, then serve reads and stamp a cluster ID if the
// cluster has none; on losing it, stop serving leader reads at once. It also
// records the cluster ID in the data dir once it is known.
func (s *Server) leaderLoop(ctx context.Context) error {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case isLeader := <-s.raft.LeaderCh():
			s.leaderReady.Store(false)
			if isLeader {
				s.establishLeadership(ctx)
			}
		case <-tick.C:
			if s.raft.State() != raft.Leader {
				s.leaderReady.Store(false)
			}
			if err := s.recordClusterID(); err != nil {
				return err
			}
			if s.IsLeader() {
				s.leaderCATick(ctx)
			}
		}
	}
}

func (s *Server) establishLeadership(ctx context.Context) {
	if err := s.raft.Barrier(time.Minute).Error(); err != nil {
		s.log.Error("leader barrier failed; not serving as leader", "err", err)
		return
	}
	s.leaderReady.Store(true)
	s.log.Info("cluster leadership acquired", "term", s.raft.Stats()["term"])
	select {
	case s.reconcileNow <- struct{}{}:
	default:
	}
	if _, ok := s.store.Meta(metaClusterID); !ok {
		id := s.clusterID()
		if id == "" {
			id = uuid.NewString()
		}
		if err := s.applyCommand(ctx, fsm.SetMetaType, fsm.SetMeta{Key: metaClusterID, Value: id}); err != nil {
			s.log.Error("record cluster ID", "err", err)
		}
	}
	// After the cluster ID: the trust domain derives from it.
	if err := s.ensureCA(ctx); err != nil {
		s.log.Error("initialize CA", "err", err)
	}
	if err := s.ensureInitialManagementToken(ctx); err != nil {
		s.log.Error("create the initial management token", "err", err)
	}
}

// leaderCATick keeps the CA whole on the leader: a root if there is none
// with keys (after a failed first attempt, or a restore of an archive
// without keys), and no root that left the trust bundle.
func (s *Server) leaderCATick(ctx context.Context) {
	if err := s.ensureCA(ctx); err != nil {
		s.log.Error("initialize CA", "err", err)
		return
	}
	if time.Since(s.lastPrune) > time.Minute {
		s.lastPrune = time.Now()
		if err := s.pruneCA(ctx); err != nil {
			s.log.Warn("prune CA roots", "err", err)
		}
	}
}

func (s *Server) recordClusterID() error {
	id, ok := s.store.Meta(metaClusterID)
	s.metaMu.Lock()
	defer s.metaMu.Unlock()
	if !ok || id == s.meta.ClusterID {
		return nil
	}
	if s.meta.ClusterID != "" {
		// Only a snapshot restore can do this; follow the restored state.
		s.log.Warn("cluster ID changed", "old", s.meta.ClusterID, "new", id)
	}
	s.meta.ClusterID = id
	if err := s.meta.save(s.cfg.DataDir); err != nil {
		return fmt.Errorf("record cluster ID: %w", err)
	}
	return nil
}
