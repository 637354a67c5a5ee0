package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/warren-mesh/warren/agent/checks"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// Sidecar registration, Consul's `connect { sidecar_service {} }`: a
// service that asks for a sidecar also registers "<name>-sidecar-proxy"
// (ID "<id>-sidecar-proxy"), a connect-proxy whose defaults come from the
// service: its address, tags and meta, a port from the sidecar range, the
// destination service, the local application on 127.0.0.1 and the
// service's port, and the upstreams given. The sidecar carries an alias
// check that mirrors the aggregated status of its service's checks (and
// the node's), updated by followAliases whenever a local check changes.
// Consul also adds a TCP check on the sidecar's port; Warren does not, so
// a sidecar is as healthy as its application, Envoy running or not.

const (
	sidecarSuffix = catalog.SidecarSuffix
	// The range sidecar ports are taken from when none is given
	// (Consul's sidecar_min_port and sidecar_max_port).
	sidecarPortMin = 21000
	sidecarPortMax = 21255
	// aliasCheckType is the Type of a sidecar's alias check.
	aliasCheckType = "alias"
)

// sidecarPlan is a sidecar validated and ready to add.
type sidecarPlan struct {
	svc  *catalog.Service
	cats []*catalog.Check
	defs []checks.Definition
	port int // the port chosen, to persist with the parent's registration
}

// planSidecar builds the sidecar of parent (already converted to svc),
// validating it, or returns nil when r asks for none. Callers hold regMu.
func (a *Agent) planSidecar(r *api.AgentServiceRegistration, parent *catalog.Service, src checks.Source) (*sidecarPlan, error) {
	if r.Connect == nil || r.Connect.SidecarService == nil {
		return nil, nil
	}
	ss := r.Connect.SidecarService
	if ss.Connect != nil && ss.Connect.SidecarService != nil {
		return nil, &catalog.FieldError{Field: "Connect.SidecarService.Connect", Reason: "a sidecar cannot have a sidecar"}
	}
	if ss.Kind != "" && ss.Kind != catalog.KindConnectProxy {
		return nil, &catalog.FieldError{Field: "Connect.SidecarService.Kind", Reason: fmt.Sprintf("%q: a sidecar is a %s", ss.Kind, catalog.KindConnectProxy)}
	}
	sr := *ss
	sr.Kind = catalog.KindConnectProxy
	if sr.ID == "" {
		sr.ID = parent.ID + sidecarSuffix
	}
	if sr.Name == "" {
		sr.Name = parent.Name + sidecarSuffix
	}
	if sr.ID == parent.ID {
		return nil, &catalog.FieldError{Field: "Connect.SidecarService.ID", Reason: "the sidecar's ID is the service's own"}
	}
	if sr.Address == "" {
		sr.Address = parent.Address
	}
	if sr.Tags == nil {
		sr.Tags = slices.Clone(parent.Tags)
	}
	if sr.Meta == nil {
		sr.Meta = maps.Clone(parent.Meta)
	}
	proxy := api.AgentServiceConnectProxyConfig{}
	if ss.Proxy != nil {
		proxy = *ss.Proxy
		proxy.Upstreams = slices.Clone(ss.Proxy.Upstreams)
	}
	proxy.DestinationServiceName = parent.Name
	proxy.DestinationServiceID = parent.ID
	if proxy.LocalServiceAddress == "" {
		proxy.LocalServiceAddress = "127.0.0.1"
	}
	if proxy.LocalServicePort == 0 {
		proxy.LocalServicePort = parent.Port
	}
	for i := range proxy.Upstreams {
		u := &proxy.Upstreams[i]
		if u.DestinationType != "" && u.DestinationType != "service" {
			return nil, &catalog.FieldError{Field: fmt.Sprintf("Connect.SidecarService.Proxy.Upstreams[%d].DestinationType", i),
				Reason: fmt.Sprintf("%q is not supported (only service)", u.DestinationType)}
		}
	}
	sr.Proxy = &proxy
	sr.Connect = nil
	if sr.Port == 0 {
		port, err := a.sidecarPort(sr.ID)
		if err != nil {
			return nil, err
		}
		sr.Port = port
	}
	svc, cats, defs, err := serviceFromRegistration(&sr, src, a.cfg.EnableLocalScriptChecks)
	if err != nil {
		return nil, fmt.Errorf("sidecar %q: %w", sr.ID, err)
	}
	if svc.Proxy.LocalServicePort == 0 {
		return nil, &catalog.FieldError{Field: "Connect.SidecarService.Proxy.LocalServicePort", Reason: "the service has no port to proxy to"}
	}
	alias := &catalog.Check{
		CheckID:   "service:" + svc.ID + ":alias",
		Name:      "Connect Sidecar Aliasing " + parent.ID,
		ServiceID: svc.ID,
		Type:      aliasCheckType,
		Notes:     "Mirrors the health of service " + parent.ID + " on this node.",
		Status:    catalog.HealthCritical,
		Output:    "waiting for the service's checks",
	}
	for _, c := range cats {
		if c.CheckID == alias.CheckID {
			return nil, &catalog.FieldError{Field: "Connect.SidecarService.Checks", Reason: fmt.Sprintf("check ID %q is the alias check's", c.CheckID)}
		}
	}
	cats = append(cats, alias)
	return &sidecarPlan{svc: svc, cats: cats, defs: defs, port: sr.Port}, nil
}

// sidecarPort returns the port of the existing sidecar id, or the first
// port of the sidecar range that no other local connect-proxy uses.
func (a *Agent) sidecarPort(id string) (int, error) {
	used := map[int]bool{}
	for _, s := range a.local.Services() {
		if s.ID == id && s.Kind == catalog.KindConnectProxy && s.Port >= sidecarPortMin && s.Port <= sidecarPortMax {
			return s.Port, nil
		}
		if s.Kind == catalog.KindConnectProxy {
			used[s.Port] = true
		}
	}
	for p := sidecarPortMin; p <= sidecarPortMax; p++ {
		if !used[p] {
			return p, nil
		}
	}
	return 0, &catalog.FieldError{Field: "Connect.SidecarService.Port",
		Reason: fmt.Sprintf("every port of the sidecar range %d-%d is taken; give one", sidecarPortMin, sidecarPortMax)}
}

// withSidecarPort returns r with the sidecar's chosen port written in, so
// that the persisted registration brings the same port back at restart.
func withSidecarPort(r *api.AgentServiceRegistration, port int) *api.AgentServiceRegistration {
	if r.Connect == nil || r.Connect.SidecarService == nil || r.Connect.SidecarService.Port != 0 {
		return r
	}
	out := *r
	c := *r.Connect
	ss := *r.Connect.SidecarService
	ss.Port = port
	c.SidecarService = &ss
	out.Connect = &c
	return &out
}

// sidecarIDOf returns the ID of the sidecar a registration defines, or "".
func sidecarIDOf(r *api.AgentServiceRegistration) string {
	if r.Connect == nil || r.Connect.SidecarService == nil {
		return ""
	}
	if id := r.Connect.SidecarService.ID; id != "" {
		return id
	}
	id := r.ID
	if id == "" {
		id = r.Name
	}
	return id + sidecarSuffix
}

// followAliases keeps every local sidecar's alias check equal to the
// aggregated status of its service's checks and the node's, on every
// local change. Setting an alias is itself a change; the next pass finds
// nothing to do.
func (a *Agent) followAliases(ctx context.Context) error {
	for {
		changed := a.local.Changed()
		a.syncAliases()
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

func (a *Agent) syncAliases() {
	services := a.local.Services()
	all := a.local.Checks()
	for _, s := range services {
		if s.Kind != catalog.KindConnectProxy || s.Proxy == nil {
			continue
		}
		for _, c := range all {
			if c.ServiceID != s.ID || c.Type != aliasCheckType {
				continue
			}
			status, output := a.aliasStatus(s.Proxy.DestinationServiceID, services, all)
			if c.Status != status || c.Output != output {
				if err := a.local.UpdateCheck(c.CheckID, status, output); err != nil {
					a.log.Debug("alias check update", "check", c.CheckID, "err", err)
				}
			}
		}
	}
}

// aliasStatus is the aggregated status of a local service's checks and
// the node's checks; critical when the service is not registered.
func (a *Agent) aliasStatus(serviceID string, services []*catalog.Service, all []*catalog.Check) (string, string) {
	if !slices.ContainsFunc(services, func(s *catalog.Service) bool { return s.ID == serviceID }) {
		return catalog.HealthCritical, fmt.Sprintf("Service %q is not registered on this node", serviceID)
	}
	var mine []*catalog.Check
	for _, c := range all {
		if c.ServiceID == serviceID || c.ServiceID == "" {
			mine = append(mine, c)
		}
	}
	status := catalog.AggregatedStatus(mine)
	if status == catalog.HealthPassing {
		return status, "All checks passing."
	}
	for _, c := range mine {
		if c.Status == status {
			return status, fmt.Sprintf("Check %q of service %q is %s", c.CheckID, serviceID, status)
		}
	}
	return status, ""
}
