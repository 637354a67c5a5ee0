package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/hashicorp/serf/serf"

	"github.com/warren-mesh/warren/agent/checks"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/gossip"
	"github.com/warren-mesh/warren/httpapi"
)

// Services are the local services.
func (a *Agent) Services() []*catalog.Service { return a.local.Services() }

// Checks are the local checks.
func (a *Agent) Checks() []*catalog.Check { return a.local.Checks() }

// RegisterService registers a service from the HTTP API; it persists.
func (a *Agent) RegisterService(_ context.Context, r *api.AgentServiceRegistration) error {
	return a.addService(r, checks.SourceAPI)
}

// DeregisterService removes a local service, its checks and their
// runners, and the sidecar its registration defined.
func (a *Agent) DeregisterService(_ context.Context, id string) error {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	if err := a.removeService(id); err != nil {
		return err
	}
	a.mu.Lock()
	sidecar := a.sidecars[id]
	delete(a.sidecars, id)
	a.mu.Unlock()
	if sidecar != "" {
		if err := a.removeService(sidecar); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return err
		}
	}
	return nil
}

func (a *Agent) removeService(id string) error {
	for _, c := range a.local.Checks() {
		if c.ServiceID == id {
			a.checks.Remove(c.CheckID)
		}
	}
	if err := a.local.RemoveService(id); err != nil {
		return fmt.Errorf("deregister service %q: %w", id, err)
	}
	a.mu.Lock()
	delete(a.fromConfig, id)
	a.mu.Unlock()
	a.setIdentity(&catalog.Service{ID: id}, nil)
	return nil
}

// RegisterCheck registers a check from the HTTP API; it persists.
func (a *Agent) RegisterCheck(_ context.Context, r *api.AgentCheckRegistration) error {
	return a.addCheck(r, true)
}

func (a *Agent) addCheck(r *api.AgentCheckRegistration, persist bool) error {
	c := r.AgentServiceCheck
	c.CheckID = r.ID
	if c.CheckID == "" {
		c.CheckID = c.Name
	}
	c.ServiceID = r.ServiceID
	def, cat, err := checkFromDefinition(&c, checks.SourceAPI, a.cfg.EnableLocalScriptChecks)
	if err != nil {
		return err
	}
	var blob []byte
	if persist {
		if blob, err = json.Marshal(r); err != nil {
			return fmt.Errorf("encode check: %w", err)
		}
	}
	if err := a.local.AddCheck(cat, blob); err != nil {
		return err
	}
	if def.Kind() == checks.KindTTL || def.Interval > 0 {
		if err := a.checks.Add(def); err != nil {
			return fmt.Errorf("start check %q: %w", def.ID, err)
		}
	}
	return nil
}

// DeregisterCheck removes a local check.
func (a *Agent) DeregisterCheck(_ context.Context, id string) error {
	a.checks.Remove(id)
	if err := a.local.RemoveCheck(id); err != nil {
		return fmt.Errorf("deregister check %q: %w", id, err)
	}
	return nil
}

// UpdateTTL sets a TTL check's status.
func (a *Agent) UpdateTTL(_ context.Context, id, status, output string) error {
	if err := catalog.ValidateStatus("Status", status); err != nil {
		return err
	}
	if err := a.checks.SetTTL(id, status, output); err != nil {
		if _, ok := a.local.Check(id); !ok {
			return fmt.Errorf("%w: check %q", catalog.ErrNotFound, id)
		}
		return fmt.Errorf("%w: check %q: %v", catalog.ErrInvalid, id, err)
	}
	return nil
}

// NodeMaintenance puts the whole node in or out of maintenance.
func (a *Agent) NodeMaintenance(ctx context.Context, enable bool, reason string) error {
	return a.maintenance(ctx, catalog.NodeMaintenanceCheckID, "", "Node Maintenance Mode", enable, reason)
}

// ServiceMaintenance puts one service in or out of maintenance.
func (a *Agent) ServiceMaintenance(ctx context.Context, serviceID string, enable bool, reason string) error {
	if _, ok := a.local.Service(serviceID); !ok {
		return fmt.Errorf("%w: service %q", catalog.ErrNotFound, serviceID)
	}
	return a.maintenance(ctx, catalog.ServiceMaintenanceCheckPrefix+serviceID, serviceID, "Service Maintenance Mode", enable, reason)
}

func (a *Agent) maintenance(_ context.Context, id, serviceID, name string, enable bool, reason string) error {
	if !enable {
		if _, ok := a.local.Check(id); !ok {
			return nil
		}
		return a.local.RemoveCheck(id)
	}
	if reason == "" {
		reason = "Maintenance mode is enabled for this node, but no reason was provided. This is a default message."
	}
	return a.local.AddCheck(&catalog.Check{
		CheckID: id, Name: name, ServiceID: serviceID, Status: catalog.HealthCritical, Notes: reason, Type: "maintenance",
	}, []byte(nil))
}

// Reload re-reads the config files. Config services that are unchanged
// keep running; on any error nothing changes.
func (a *Agent) Reload(_ context.Context) error {
	if a.cfg.Reload == nil {
		return fmt.Errorf("%w: this agent has no config files to reload", catalog.ErrInvalid)
	}
	defs, err := a.cfg.Reload()
	if err != nil {
		return fmt.Errorf("%w: reload: %v (the running configuration is unchanged)", catalog.ErrInvalid, err)
	}
	// Check every definition before touching anything.
	for _, d := range defs {
		r := d.Registration
		if _, _, _, err := serviceFromRegistration(&r, checks.SourceConfigFile, a.cfg.EnableLocalScriptChecks); err != nil {
			return fmt.Errorf("%w: reload: %s: %v (the running configuration is unchanged)", catalog.ErrInvalid, d.Source, err)
		}
	}
	keep := map[string]bool{}
	for _, d := range defs {
		id := d.Registration.ID
		if id == "" {
			id = d.Registration.Name
		}
		keep[id] = true
		if sc := sidecarIDOf(&d.Registration); sc != "" {
			keep[sc] = true
		}
	}
	a.mu.Lock()
	var drop []string
	for id, cfg := range a.fromConfig {
		if cfg && !keep[id] {
			drop = append(drop, id)
		}
	}
	a.mu.Unlock()
	for _, id := range drop {
		_ = a.DeregisterService(context.Background(), id)
	}
	if err := a.loadServices(defs); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	// A reload also compares the whole node with the catalog at once.
	a.local.SyncFull()
	a.log.Info("configuration reloaded", "services", len(defs), "removed", len(drop))
	return nil
}

// Members lists the gossip pool.
func (a *Agent) Members() []api.AgentMember {
	ms := a.cfg.Gossip.Members()
	out := make([]api.AgentMember, 0, len(ms))
	for _, m := range ms {
		out = append(out, member(m))
	}
	return out
}

// member is a gossip member as the HTTP API reports it. The tags are the
// member's own, except role, which is spelt as Consul's members spell it
// ("consul" for a server, "node" for any other agent): the consul CLI,
// the Consul UI and tooling that tell servers from clients read that tag.
func member(m serf.Member) api.AgentMember {
	tags := maps.Clone(m.Tags)
	if tags[gossip.TagRole] == gossip.RoleServer {
		tags[gossip.TagRole] = "consul"
	}
	return api.AgentMember{Name: m.Name, Addr: m.Addr.String(), Port: m.Port, Tags: tags, Status: int(m.Status)}
}

// Join joins the gossip pool through addr.
func (a *Agent) Join(_ context.Context, addr string) error {
	if _, err := a.cfg.Gossip.Join([]string{addr}); err != nil {
		return fmt.Errorf("%w: %v", catalog.ErrInvalid, err)
	}
	return nil
}

// Leave leaves the gossip pool gracefully: the servers deregister this node.
func (a *Agent) Leave(_ context.Context) error { return a.cfg.Gossip.Leave() }

// ForceLeave marks a failed member as left.
func (a *Agent) ForceLeave(_ context.Context, node string, prune bool) error {
	if err := a.cfg.Gossip.ForceLeave(node, prune); err != nil {
		return fmt.Errorf("%w: force-leave %q: %v", catalog.ErrInvalid, node, err)
	}
	return nil
}

// SelfInfo describes this agent for /v1/agent/self.
func (a *Agent) SelfInfo() httpapi.AgentSelfInfo {
	lm := a.cfg.Gossip.LocalMember()
	info := httpapi.AgentSelfInfo{
		Self: httpapi.Self{
			NodeName: a.cfg.NodeName, NodeID: a.cfg.NodeID, Datacenter: a.cfg.Datacenter,
			Server: a.cfg.ServerRPCAddr != "", Version: a.cfg.Version,
			MemberAddr: lm.Addr.String(), MemberPort: int(lm.Port),
		},
		Member: member(lm),
		Meta:   a.cfg.NodeMeta,
	}
	ok, err := a.local.LastSync()
	if !ok.IsZero() {
		info.LastSync = ok.UTC().Format(time.RFC3339)
	}
	if err != nil {
		info.LastSyncError = err.Error()
	}
	if lm.Tags[gossip.TagRole] == "" {
		info.Member.Tags = map[string]string{}
	}
	return info
}
