package httpapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// fakeAgent is an in-memory local agent. It records every call it receives,
// with its arguments, so tests can assert both what the client sent and that
// bad input never reached it.
type fakeAgent struct {
	mu         sync.Mutex
	services   map[string]*catalog.Service
	checks     map[string]*catalog.Check
	serviceReg []*api.AgentServiceRegistration
	checkReg   []*api.AgentCheckRegistration
	calls      []string
	members    []api.AgentMember
	// err, when set, is returned by every call that can fail.
	err error
}

func newFakeAgent() *fakeAgent {
	return &fakeAgent{
		services: map[string]*catalog.Service{},
		checks:   map[string]*catalog.Check{},
		members: []api.AgentMember{
			{Name: "agent1", Addr: "10.0.0.1", Port: 8301, Tags: map[string]string{"role": "consul", "dc": "dc1"}, Status: api.MemberAlive},
			{Name: "agent2", Addr: "10.0.0.2", Port: 8301, Tags: map[string]string{"role": "node", "dc": "dc1"}, Status: api.MemberAlive},
		},
	}
}

// record logs a call; the caller holds f.mu.
func (f *fakeAgent) record(format string, args ...any) error {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.err
}

func (f *fakeAgent) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeAgent) Services() []*catalog.Service {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*catalog.Service
	for _, id := range slices.Sorted(maps.Keys(f.services)) {
		s := *f.services[id]
		out = append(out, &s)
	}
	return out
}

func (f *fakeAgent) Checks() []*catalog.Check {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*catalog.Check
	for _, id := range slices.Sorted(maps.Keys(f.checks)) {
		c := *f.checks[id]
		out = append(out, &c)
	}
	return out
}

// toLocalCheck applies Consul's defaults to a check definition.
func toLocalCheck(id, name string, c *api.AgentServiceCheck, serviceID, serviceName string) *catalog.Check {
	out := &catalog.Check{
		Node: "agent1", CheckID: id, Name: name, Status: c.Status, Notes: c.Notes,
		ServiceID: serviceID, ServiceName: serviceName,
		Definition: catalog.CheckDefinition{HTTP: c.HTTP, TCP: c.TCP, Interval: c.Interval, Timeout: c.Timeout,
			DeregisterCriticalServiceAfter: c.DeregisterCriticalServiceAfter},
	}
	switch {
	case c.TTL != "":
		out.Type = "ttl"
	case c.HTTP != "":
		out.Type = "http"
	case c.TCP != "":
		out.Type = "tcp"
	}
	if out.Status == "" {
		out.Status = catalog.HealthCritical
	}
	return out
}

func (f *fakeAgent) RegisterService(_ context.Context, r *api.AgentServiceRegistration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serviceReg = append(f.serviceReg, r)
	if err := f.record("RegisterService %s", r.Name); err != nil {
		return err
	}
	id := r.ID
	if id == "" {
		id = r.Name
	}
	s := &catalog.Service{Node: "agent1", ID: id, Name: r.Name, Kind: r.Kind, Tags: r.Tags, Address: r.Address,
		Meta: r.Meta, Port: r.Port, Weights: catalog.Weights{Passing: 1, Warning: 1}, EnableTagOverride: r.EnableTagOverride,
		TaggedAddresses: mapValues(r.TaggedAddresses, func(a api.ServiceAddress) catalog.ServiceAddress { return catalog.ServiceAddress(a) })}
	if r.Weights != nil {
		s.Weights = catalog.Weights(*r.Weights)
	}
	f.services[id] = s
	maps.DeleteFunc(f.checks, func(_ string, c *catalog.Check) bool { return c.ServiceID == id })
	defs := r.Checks
	if r.Check != nil {
		defs = append([]*api.AgentServiceCheck{r.Check}, defs...)
	}
	for i, c := range defs {
		cid := c.CheckID
		if cid == "" {
			cid = "service:" + id
			if len(defs) > 1 {
				cid += fmt.Sprintf(":%d", i+1)
			}
		}
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("Service '%s' check", r.Name)
		}
		f.checks[cid] = toLocalCheck(cid, name, c, id, r.Name)
	}
	return nil
}

func (f *fakeAgent) DeregisterService(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("DeregisterService %s", id); err != nil {
		return err
	}
	if f.services[id] == nil {
		return fmt.Errorf("service %q: %w", id, catalog.ErrNotFound)
	}
	delete(f.services, id)
	maps.DeleteFunc(f.checks, func(_ string, c *catalog.Check) bool { return c.ServiceID == id })
	return nil
}

func (f *fakeAgent) RegisterCheck(_ context.Context, r *api.AgentCheckRegistration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.checkReg = append(f.checkReg, r)
	if err := f.record("RegisterCheck %s", r.Name); err != nil {
		return err
	}
	id := r.ID
	if id == "" {
		id = r.Name
	}
	var serviceName string
	if r.ServiceID != "" {
		s := f.services[r.ServiceID]
		if s == nil {
			return &catalog.FieldError{Field: "ServiceID", Reason: fmt.Sprintf("%q is not a local service", r.ServiceID)}
		}
		serviceName = s.Name
	}
	f.checks[id] = toLocalCheck(id, r.Name, &r.AgentServiceCheck, r.ServiceID, serviceName)
	return nil
}

func (f *fakeAgent) DeregisterCheck(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("DeregisterCheck %s", id); err != nil {
		return err
	}
	if f.checks[id] == nil {
		return fmt.Errorf("check %q: %w", id, catalog.ErrNotFound)
	}
	delete(f.checks, id)
	return nil
}

func (f *fakeAgent) UpdateTTL(_ context.Context, checkID, status, output string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("UpdateTTL %s %s %q", checkID, status, output); err != nil {
		return err
	}
	c := f.checks[checkID]
	if c == nil {
		return fmt.Errorf("check %q: %w", checkID, catalog.ErrNotFound)
	}
	if c.Type != "ttl" {
		return &catalog.FieldError{Field: "CheckID", Reason: fmt.Sprintf("%q is not a TTL check", checkID)}
	}
	c.Status, c.Output = status, output
	return nil
}

func (f *fakeAgent) NodeMaintenance(_ context.Context, enable bool, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("NodeMaintenance %t %q", enable, reason); err != nil {
		return err
	}
	if enable {
		f.checks["_node_maintenance"] = &catalog.Check{Node: "agent1", CheckID: "_node_maintenance", Name: "Node Maintenance Mode",
			Status: catalog.HealthCritical, Notes: reason}
	} else {
		delete(f.checks, "_node_maintenance")
	}
	return nil
}

func (f *fakeAgent) ServiceMaintenance(_ context.Context, serviceID string, enable bool, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("ServiceMaintenance %s %t %q", serviceID, enable, reason); err != nil {
		return err
	}
	if f.services[serviceID] == nil {
		return fmt.Errorf("service %q: %w", serviceID, catalog.ErrNotFound)
	}
	id := "_service_maintenance:" + serviceID
	if enable {
		f.checks[id] = &catalog.Check{Node: "agent1", CheckID: id, Name: "Service Maintenance Mode",
			Status: catalog.HealthCritical, Notes: reason, ServiceID: serviceID}
	} else {
		delete(f.checks, id)
	}
	return nil
}

func (f *fakeAgent) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("Reload")
}

func (f *fakeAgent) Members() []api.AgentMember {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.members)
}

func (f *fakeAgent) Join(_ context.Context, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("Join %s", addr)
}

func (f *fakeAgent) Leave(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("Leave")
}

func (f *fakeAgent) ForceLeave(_ context.Context, node string, prune bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.record("ForceLeave %s %t", node, prune)
}

func (f *fakeAgent) SelfInfo() AgentSelfInfo {
	return AgentSelfInfo{
		Self: Self{NodeName: "agent1", NodeID: "8d2c5f0e-3f7e-4c47-9d4a-0e3f3c2b1a00", Datacenter: "dc1",
			Server: false, Version: "0.2.0", MemberAddr: "10.0.0.1", MemberPort: 8301},
		Member:        api.AgentMember{Name: "agent1", Addr: "10.0.0.1", Port: 8301, Tags: map[string]string{"role": "node", "dc": "dc1"}, Status: api.MemberAlive},
		Meta:          map[string]string{"rack": "r1"},
		LastSync:      "2026-01-02T03:04:05Z",
		LastSyncError: "rpc error: no cluster leader",
	}
}
