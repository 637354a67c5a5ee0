package agent

import (
	"fmt"
	"time"

	"github.com/warren-mesh/warren/agent/checks"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/httpapi"
)

// serviceFromRegistration turns an agent service registration (from the
// API or a config file) into the catalog service, its checks as the
// catalog holds them, and their runner definitions, validating all of it.
func serviceFromRegistration(r *api.AgentServiceRegistration, src checks.Source, scripts bool) (*catalog.Service, []*catalog.Check, []checks.Definition, error) {
	svc := &catalog.Service{
		ID: r.ID, Name: r.Name, Kind: r.Kind, Tags: r.Tags, Address: r.Address, Port: r.Port,
		Meta: r.Meta, EnableTagOverride: r.EnableTagOverride,
		Weights: catalog.Weights{Passing: 1, Warning: 1},
		Proxy:   httpapi.ToProxyConfig(r.Proxy),
	}
	if svc.ID == "" {
		svc.ID = svc.Name
	}
	if r.Weights != nil {
		svc.Weights = catalog.Weights{Passing: r.Weights.Passing, Warning: r.Weights.Warning}
	}
	if len(r.TaggedAddresses) > 0 {
		svc.TaggedAddresses = make(map[string]catalog.ServiceAddress, len(r.TaggedAddresses))
		for k, a := range r.TaggedAddresses {
			svc.TaggedAddresses[k] = catalog.ServiceAddress{Address: a.Address, Port: a.Port}
		}
	}
	if err := catalog.ValidateService(svc); err != nil {
		return nil, nil, nil, err
	}
	if err := checkProxyOptions(svc); err != nil {
		return nil, nil, nil, err
	}
	if err := validateIdentity(r.Identity); err != nil {
		return nil, nil, nil, err
	}
	all := r.Checks
	if r.Check != nil {
		all = append([]*api.AgentServiceCheck{r.Check}, all...)
	}
	var cats []*catalog.Check
	var defs []checks.Definition
	seen := map[string]bool{}
	for i, c := range all {
		if c == nil {
			continue
		}
		cc := *c
		cc.ServiceID = svc.ID
		if cc.CheckID == "" {
			cc.CheckID = "service:" + svc.ID
			if len(all) > 1 {
				cc.CheckID = fmt.Sprintf("service:%s:%d", svc.ID, i+1)
			}
		}
		if cc.Name == "" {
			cc.Name = fmt.Sprintf("Service '%s' check", svc.Name)
		}
		if seen[cc.CheckID] {
			return nil, nil, nil, &catalog.FieldError{Field: fmt.Sprintf("Checks[%d].CheckID", i), Reason: fmt.Sprintf("%q appears twice", cc.CheckID)}
		}
		seen[cc.CheckID] = true
		def, cat, err := checkFromDefinition(&cc, src, scripts)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("check %q: %w", cc.CheckID, err)
		}
		defs = append(defs, def)
		cats = append(cats, cat)
	}
	return svc, cats, defs, nil
}

// checkFromDefinition turns a check definition into its runner definition
// and its catalog row, validating it.
func checkFromDefinition(c *api.AgentServiceCheck, src checks.Source, scripts bool) (checks.Definition, *catalog.Check, error) {
	d := checks.Definition{
		ID: c.CheckID, Name: c.Name, ServiceID: c.ServiceID, Notes: c.Notes,
		HTTP: c.HTTP, Method: c.Method, Header: c.Header, Body: c.Body,
		TLSSkipVerify: c.TLSSkipVerify, TLSServerName: c.TLSServerName,
		TCP: c.TCP, UDP: c.UDP, GRPC: c.GRPC, GRPCUseTLS: c.GRPCUseTLS,
		Args: c.Args, Status: c.Status,
		SuccessBeforePassing: c.SuccessBeforePassing, FailuresBeforeCritical: c.FailuresBeforeCritical,
	}
	if c.DisableRedirects != nil {
		d.FollowRedirects = !*c.DisableRedirects
	}
	for _, f := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"Interval", c.Interval, &d.Interval},
		{"Timeout", c.Timeout, &d.Timeout},
		{"TTL", c.TTL, &d.TTL},
		{"DeregisterCriticalServiceAfter", c.DeregisterCriticalServiceAfter, &d.DeregisterCriticalServiceAfter},
	} {
		if f.s == "" {
			continue
		}
		v, err := time.ParseDuration(f.s)
		if err != nil {
			return d, nil, &catalog.FieldError{Field: f.name, Reason: fmt.Sprintf("%q is not a duration", f.s)}
		}
		*f.dst = v
	}
	if d.ID == "" {
		d.ID = d.Name
	}
	if err := d.Validate(src, scripts); err != nil {
		return d, nil, err
	}
	status := d.Status
	if status == "" {
		status = catalog.HealthCritical
	}
	cat := &catalog.Check{
		CheckID: d.ID, Name: d.Name, Status: status, Notes: d.Notes, ServiceID: d.ServiceID, Type: d.Kind(),
		Definition: catalog.CheckDefinition{HTTP: d.HTTP, TCP: d.TCP, Interval: c.Interval, Timeout: c.Timeout,
			DeregisterCriticalServiceAfter: c.DeregisterCriticalServiceAfter},
	}
	if cat.Name == "" {
		cat.Name = d.ID
	}
	return d, cat, nil
}
