package server_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/warren-mesh/warren/server"
	"github.com/warren-mesh/warren/server/servertest"
)

// followerContacts gathers warren_raft_follower_last_contact_seconds from
// a node's registry: follower ID -> seconds.
func followerContacts(t *testing.T, n *servertest.Node) map[string]float64 {
	t.Helper()
	return metricValues(t, n.Config.Metrics.(*prometheus.Registry), "warren_raft_follower_last_contact_seconds", "follower")
}

// metricValues gathers the series of metric name from g: each one's value
// (counter or gauge) by the value of its label.
func metricValues(t *testing.T, g prometheus.Gatherer, name, label string) map[string]float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			out[labelValue(m, label)] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return out
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestFollowerLastContactMetric: the leader of a 3-server cluster reports
// each follower's last contact, labelled by its server ID, fresh while it
// answers and growing once it is stopped; followers report none.
func TestFollowerLastContactMetric(t *testing.T) {
	c := servertest.New(t, 3, func(cfg *server.Config) { cfg.Metrics = prometheus.NewRegistry() })
	leader := c.WaitLeader()
	followers := c.Followers()
	ids := map[string]*servertest.Node{}
	for _, f := range followers {
		ids[f.Server.NodeID()] = f
	}
	servertest.WaitFor(t, 5*time.Second, func() error {
		got := followerContacts(t, leader)
		if len(got) != 2 {
			return fmt.Errorf("leader reports %v, want the 2 followers", got)
		}
		for id, v := range got {
			if ids[id] == nil {
				return fmt.Errorf("follower label %q is no follower's ID", id)
			}
			if v > 1 {
				return fmt.Errorf("follower %s last contact %.2fs ago", id, v)
			}
		}
		return nil
	})
	for _, f := range followers {
		if got := followerContacts(t, f); len(got) != 0 {
			t.Errorf("follower %s reports follower contacts %v", f.Name, got)
		}
	}
	stopped := followers[0]
	id := stopped.Server.NodeID()
	c.Stop(stopped)
	servertest.WaitFor(t, 10*time.Second, func() error {
		if v := followerContacts(t, leader)[id]; v < 1 {
			return errors.New("stopped follower's last contact still fresh")
		}
		return nil
	})
}
