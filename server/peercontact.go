package server

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// contactTransport wraps the Raft transport to record, on the leader, when
// each follower last answered an AppendEntries (heartbeats included): what
// raft keeps privately as each follower's last contact, and exports to
// go-metrics only as an unlabelled sample. It forwards the optional
// interfaces raft looks for (pre-vote, close), so wrapping changes nothing
// else.
type contactTransport struct {
	*raft.NetworkTransport

	mu   sync.Mutex
	last map[raft.ServerID]time.Time
}

func newContactTransport(t *raft.NetworkTransport) *contactTransport {
	return &contactTransport{NetworkTransport: t, last: map[raft.ServerID]time.Time{}}
}

func (t *contactTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		now := time.Now()
		t.mu.Lock()
		t.last[id] = now
		t.mu.Unlock()
	}
	return err
}

// lastContact returns when id last answered, zero if never.
func (t *contactTransport) lastContact(id raft.ServerID) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last[id]
}

var (
	_ raft.WithPreVote = (*contactTransport)(nil)
	_ raft.WithClose   = (*contactTransport)(nil)
)

var descFollowerContact = prometheus.NewDesc("warren_raft_follower_last_contact_seconds",
	"On the leader: seconds since each follower last answered an AppendEntries or heartbeat, by follower server ID (bounded by the cluster size).",
	[]string{"follower"}, nil)

// followerContacts emits one sample per server of the Raft configuration
// other than this one, on the leader only; a follower that never answered
// this leader is left out.
func (c *raftCollector) followerContacts(ch chan<- prometheus.Metric) {
	s := c.s
	if s.raft.State() != raft.Leader || s.contacts == nil {
		return
	}
	f := s.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	self := raft.ServerID(s.meta.NodeID)
	for _, srv := range f.Configuration().Servers {
		if srv.ID == self {
			continue
		}
		if last := s.contacts.lastContact(srv.ID); !last.IsZero() {
			ch <- prometheus.MustNewConstMetric(descFollowerContact, prometheus.GaugeValue, time.Since(last).Seconds(), string(srv.ID))
		}
	}
}
