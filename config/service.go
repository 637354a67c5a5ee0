package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// serviceDecl is a service definition as read, with where each of its
// fields is so that validation can point at them.
type serviceDecl struct {
	reg   api.AgentServiceRegistration
	label string            // "service[web]", or "service[3]" without a name
	where string            // "file:line" of the block
	pos   map[string]string // field ("port", "tags[1]") -> "file:line"
	// checks in registration order: reg.Check first, then reg.Checks.
	checks []checkDecl
}

type checkDecl struct {
	path  string // within the service: "check[0]", "checks[1]"
	where string
	pos   map[string]string // field ("interval") -> "file:line"
	c     *api.AgentServiceCheck
}

// serviceFields are the keys of a service definition that decode directly;
// weights, check and checks are decoded by decodeService.
var serviceFields = map[string]func(*api.AgentServiceRegistration) any{
	"name":                func(r *api.AgentServiceRegistration) any { return &r.Name },
	"id":                  func(r *api.AgentServiceRegistration) any { return &r.ID },
	"tags":                func(r *api.AgentServiceRegistration) any { return &r.Tags },
	"address":             func(r *api.AgentServiceRegistration) any { return &r.Address },
	"port":                func(r *api.AgentServiceRegistration) any { return &r.Port },
	"meta":                func(r *api.AgentServiceRegistration) any { return &r.Meta },
	"enable_tag_override": func(r *api.AgentServiceRegistration) any { return &r.EnableTagOverride },
}

// checkFields are the keys of a check definition. check_id is Consul's
// other spelling of id.
var checkFields = map[string]func(*api.AgentServiceCheck) any{
	"id":                                func(c *api.AgentServiceCheck) any { return &c.CheckID },
	"check_id":                          func(c *api.AgentServiceCheck) any { return &c.CheckID },
	"name":                              func(c *api.AgentServiceCheck) any { return &c.Name },
	"args":                              func(c *api.AgentServiceCheck) any { return &c.Args },
	"interval":                          func(c *api.AgentServiceCheck) any { return &c.Interval },
	"timeout":                           func(c *api.AgentServiceCheck) any { return &c.Timeout },
	"ttl":                               func(c *api.AgentServiceCheck) any { return &c.TTL },
	"http":                              func(c *api.AgentServiceCheck) any { return &c.HTTP },
	"header":                            func(c *api.AgentServiceCheck) any { return &c.Header },
	"method":                            func(c *api.AgentServiceCheck) any { return &c.Method },
	"body":                              func(c *api.AgentServiceCheck) any { return &c.Body },
	"disable_redirects":                 func(c *api.AgentServiceCheck) any { return &c.DisableRedirects },
	"tcp":                               func(c *api.AgentServiceCheck) any { return &c.TCP },
	"udp":                               func(c *api.AgentServiceCheck) any { return &c.UDP },
	"grpc":                              func(c *api.AgentServiceCheck) any { return &c.GRPC },
	"grpc_use_tls":                      func(c *api.AgentServiceCheck) any { return &c.GRPCUseTLS },
	"tls_server_name":                   func(c *api.AgentServiceCheck) any { return &c.TLSServerName },
	"tls_skip_verify":                   func(c *api.AgentServiceCheck) any { return &c.TLSSkipVerify },
	"status":                            func(c *api.AgentServiceCheck) any { return &c.Status },
	"notes":                             func(c *api.AgentServiceCheck) any { return &c.Notes },
	"success_before_passing":            func(c *api.AgentServiceCheck) any { return &c.SuccessBeforePassing },
	"failures_before_critical":          func(c *api.AgentServiceCheck) any { return &c.FailuresBeforeCritical },
	"deregister_critical_service_after": func(c *api.AgentServiceCheck) any { return &c.DeregisterCriticalServiceAfter },
}

// decodeService reads one service definition. Type errors are reported
// here; the rules that may depend on other files or flags (script checks,
// duplicate IDs) are checked by validateServices.
func (b *builder) decodeService(o object) {
	d := serviceDecl{where: pos(o.rng), pos: map[string]string{}}
	d.label = fmt.Sprintf("service[%d]", len(b.services))
	for _, m := range o.members {
		if m.name != "name" || m.expr == nil {
			continue
		}
		if v, diags := m.expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String && v.IsKnown() && !v.IsNull() && v.AsString() != "" {
			d.label = fmt.Sprintf("service[%s]", v.AsString())
		}
	}

	seen := map[string]string{}
	var first *checkDecl // the first `check`, which becomes reg.Check
	var others []checkDecl
	nCheck, nChecks := 0, 0
	for _, m := range o.members {
		path := d.label + "." + m.name
		where := pos(m.rng)
		if m.name != "check" && m.name != "checks" {
			if prev, dup := seen[m.name]; dup {
				b.errs = append(b.errs, keyErr(where, path, "set more than once (also at %s)", prev))
				continue
			}
			seen[m.name] = where
		}
		switch m.name {
		case "check":
			for _, co := range b.memberObjects(path, m) {
				cd := b.decodeCheck(d.label, fmt.Sprintf("check[%d]", nCheck), co)
				nCheck++
				if first == nil {
					first = &cd
				} else {
					others = append(others, cd)
				}
			}
		case "checks":
			for _, co := range b.memberObjects(path, m) {
				others = append(others, b.decodeCheck(d.label, fmt.Sprintf("checks[%d]", nChecks), co))
				nChecks++
			}
		case "weights":
			b.decodeWeights(&d, path, m)
		case "connect":
			b.decodeConnect(&d, path, m)
		case "identity":
			b.decodeIdentity(&d, path, m)
		default:
			f, known := serviceFields[m.name]
			if !known {
				b.errs = append(b.errs, keyErr(where, path, "unknown field"))
				continue
			}
			entries, ok := b.decodeValue(path, m, f(&d.reg))
			if !ok {
				continue
			}
			d.pos[m.name] = where
			for k, w := range entries {
				d.pos[m.name+k] = w
			}
		}
	}
	if first != nil {
		d.reg.Check = first.c
		d.checks = append(d.checks, *first)
	}
	for _, cd := range others {
		d.reg.Checks = append(d.reg.Checks, cd.c)
		d.checks = append(d.checks, cd)
	}
	b.services = append(b.services, d)
}

// decodeWeights reads weights { passing = 10, warning = 1 }; a weight not
// given is 1, as in Consul.
func (b *builder) decodeWeights(d *serviceDecl, path string, m member) {
	o, ok := b.memberObject(path, m)
	if !ok {
		return
	}
	w := &api.Weights{Passing: 1, Warning: 1}
	for _, e := range o.members {
		var ptr *int
		switch e.name {
		case "passing":
			ptr = &w.Passing
		case "warning":
			ptr = &w.Warning
		default:
			b.errs = append(b.errs, keyErr(pos(e.rng), path+"."+e.name, "unknown field (want passing or warning)"))
			continue
		}
		if b.scalar(path+"."+e.name, pos(e.rng), e.expr, ptr) {
			d.pos["weights."+e.name] = pos(e.rng)
		}
	}
	d.reg.Weights = w
	d.pos["weights"] = pos(m.rng)
}

// decodeIdentity reads identity { uid = 1001, path = "/usr/bin/web" }, the
// selectors of the processes the Workload API gives the service's SVID to
// (a Warren extension).
func (b *builder) decodeIdentity(d *serviceDecl, path string, m member) {
	o, ok := b.memberObject(path, m)
	if !ok {
		return
	}
	id := &api.AgentServiceIdentity{}
	for _, e := range o.members {
		epath := path + "." + e.name
		switch e.name {
		case "uid":
			var uid int
			if b.scalar(epath, pos(e.rng), e.expr, &uid) {
				id.UID = &uid
				d.pos["identity.uid"] = pos(e.rng)
			}
		case "path":
			if b.scalar(epath, pos(e.rng), e.expr, &id.Path) {
				d.pos["identity.path"] = pos(e.rng)
			}
		default:
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "unknown field (want uid or path)"))
		}
	}
	d.reg.Identity = id
	d.pos["identity"] = pos(m.rng)
}

// decodeConnect reads connect { native, sidecar_service { ... } }, Consul's
// form. A sidecar_service takes the service keys that make sense for a
// proxy (id, name, tags, meta, address, port, check, checks) and proxy {
// local_service_address, local_service_port, upstreams { destination_name,
// destination_type, local_bind_address, local_bind_port, datacenter } };
// the agent fills the rest from the service when it registers it.
func (b *builder) decodeConnect(d *serviceDecl, path string, m member) {
	o, ok := b.memberObject(path, m)
	if !ok {
		return
	}
	c := &api.AgentServiceConnect{}
	d.reg.Connect = c
	for _, e := range o.members {
		epath := path + "." + e.name
		switch e.name {
		case "native":
			b.decodeValue(epath, e, &c.Native)
		case "sidecar_service":
			so, ok := b.memberObject(epath, e)
			if !ok {
				continue
			}
			c.SidecarService = b.decodeSidecar(d.label, epath, so)
		default:
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "unknown field (want native or sidecar_service)"))
		}
	}
}

var sidecarFields = map[string]bool{"id": true, "name": true, "tags": true, "meta": true, "address": true, "port": true}

func (b *builder) decodeSidecar(label, path string, o object) *api.AgentServiceRegistration {
	r := &api.AgentServiceRegistration{}
	nCheck := 0
	for _, m := range o.members {
		mpath := path + "." + m.name
		switch {
		case m.name == "check" || m.name == "checks":
			for _, co := range b.memberObjects(mpath, m) {
				cd := b.decodeCheck(label, fmt.Sprintf("connect.sidecar_service.checks[%d]", nCheck), co)
				nCheck++
				b.validateCheck(label, cd)
				r.Checks = append(r.Checks, cd.c)
			}
		case m.name == "proxy":
			r.Proxy = b.decodeProxy(mpath, m)
		case sidecarFields[m.name]:
			b.decodeValue(mpath, m, serviceFields[m.name](r))
		default:
			b.errs = append(b.errs, keyErr(pos(m.rng), mpath, "unknown field"))
		}
	}
	if r.Port < 0 || r.Port > 65535 {
		b.errs = append(b.errs, keyErr(pos(o.rng), path+".port", "%d is out of range 0..65535", r.Port))
	}
	return r
}

func (b *builder) decodeProxy(path string, m member) *api.AgentServiceConnectProxyConfig {
	o, ok := b.memberObject(path, m)
	if !ok {
		return nil
	}
	p := &api.AgentServiceConnectProxyConfig{}
	for _, e := range o.members {
		epath := path + "." + e.name
		switch e.name {
		case "local_service_address":
			b.decodeValue(epath, e, &p.LocalServiceAddress)
		case "local_service_port":
			b.decodeValue(epath, e, &p.LocalServicePort)
		case "config":
			if cfg, ok := b.opaque(epath, e); ok {
				p.Config = cfg
			}
		case "access_logs":
			p.AccessLogs = b.decodeAccessLogs(epath, e, "")
		case "upstreams":
			for i, uo := range b.memberObjects(epath, e) {
				upath := fmt.Sprintf("%s[%d]", epath, i)
				var u api.Upstream
				for _, f := range uo.members {
					fpath := upath + "." + f.name
					var ptr any
					switch f.name {
					case "destination_name":
						ptr = &u.DestinationName
					case "destination_type":
						ptr = &u.DestinationType
					case "datacenter":
						ptr = &u.Datacenter
					case "local_bind_address":
						ptr = &u.LocalBindAddress
					case "local_bind_port":
						ptr = &u.LocalBindPort
					default:
						b.errs = append(b.errs, keyErr(pos(f.rng), fpath, "unknown field"))
						continue
					}
					b.decodeValue(fpath, f, ptr)
				}
				switch {
				case u.DestinationName == "":
					b.errs = append(b.errs, keyErr(pos(uo.rng), upath+".destination_name", "missing"))
				case u.LocalBindPort < 1 || u.LocalBindPort > 65535:
					b.errs = append(b.errs, keyErr(pos(uo.rng), upath+".local_bind_port", "missing or out of range 1..65535"))
				}
				p.Upstreams = append(p.Upstreams, u)
			}
		default:
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "unknown field (want local_service_address, local_service_port, upstreams, config or access_logs)"))
		}
	}
	return p
}

// decodeCheck reads one check of the service labelled label.
func (b *builder) decodeCheck(label, path string, o object) checkDecl {
	cd := checkDecl{path: path, where: pos(o.rng), pos: map[string]string{}, c: &api.AgentServiceCheck{}}
	seen := map[string]string{}
	for _, m := range o.members {
		full := label + "." + path + "." + m.name
		where := pos(m.rng)
		f, known := checkFields[m.name]
		if !known {
			b.errs = append(b.errs, keyErr(where, full, "unknown field"))
			continue
		}
		field := m.name
		if field == "check_id" {
			field = "id"
		}
		if prev, dup := seen[field]; dup {
			b.errs = append(b.errs, keyErr(where, full, "set more than once (also at %s; id and check_id are the same field)", prev))
			continue
		}
		seen[field] = where
		entries, ok := b.decodeValue(full, m, f(cd.c))
		if !ok {
			continue
		}
		cd.pos[field] = where
		for k, w := range entries {
			cd.pos[field+k] = w
		}
	}
	return cd
}

// validateServices checks the service definitions of all files, fills the
// IDs that default, and stores the result in b.cfg.Services.
func (b *builder) validateServices() {
	serviceIDs := map[string]string{} // ID -> where it is defined
	checkIDs := map[string]string{}
	b.cfg.Services = nil
	for i := range b.services {
		d := &b.services[i]
		r := &d.reg
		at := func(field string) string {
			if w := d.pos[field]; w != "" {
				return w
			}
			return d.where
		}
		fail := func(field, format string, args ...any) {
			b.errs = append(b.errs, keyErr(at(field), d.label+"."+field, format, args...))
		}

		switch {
		case r.Name == "":
			fail("name", "missing")
		case !catalog.ValidDNSLabel(r.Name):
			fail("name", "%q is not a valid DNS label (letters, digits and '-', at most 63, not starting or ending with '-')", r.Name)
		}
		if r.ID == "" {
			r.ID = r.Name
		} else if err := idErr(r.ID); err != nil {
			fail("id", "%v", err)
		}
		if len(r.Tags) > catalog.MaxTags {
			fail("tags", "more than %d tags", catalog.MaxTags)
		}
		for j, t := range r.Tags {
			if t == "" || len(t) > catalog.MaxTagLen {
				fail(fmt.Sprintf("tags[%d]", j), "a tag must be 1-%d characters", catalog.MaxTagLen)
			}
		}
		if r.Address != "" {
			if _, err := netip.ParseAddr(r.Address); err != nil && !validHostname(r.Address) {
				fail("address", "%q is neither an IP address nor a host name", r.Address)
			}
		}
		if r.Port < 0 || r.Port > 65535 {
			fail("port", "%d is out of range 0..65535", r.Port)
		}
		for _, e := range metaErrs(r.Meta) {
			fail("meta"+e.entry, "%s", e.msg)
		}
		if w := r.Weights; w != nil {
			if w.Passing < 1 {
				fail("weights.passing", "must be at least 1, got %d", w.Passing)
			}
			if w.Warning < 0 {
				fail("weights.warning", "must be 0 or more, got %d", w.Warning)
			}
		}
		if len(d.checks) > catalog.MaxChecks {
			fail("checks", "more than %d checks", catalog.MaxChecks)
		}
		if id := r.Identity; id != nil {
			switch {
			case id.UID == nil && id.Path == "":
				fail("identity", "set uid, path or both")
			case id.UID != nil && (*id.UID < 0 || *id.UID > 1<<32-2):
				fail("identity.uid", "%d is not a uid (0..%d)", *id.UID, 1<<32-2)
			}
			if id.Path != "" && (!filepath.IsAbs(id.Path) || filepath.Clean(id.Path) != id.Path) {
				fail("identity.path", "%q is not a clean absolute path", id.Path)
			}
		}

		if r.ID != "" {
			if prev, dup := serviceIDs[r.ID]; dup {
				fail("id", "duplicate service ID %q: also defined at %s", r.ID, prev)
			} else {
				serviceIDs[r.ID] = at("id")
			}
		}

		for j, cd := range d.checks {
			b.validateCheck(d.label, cd)
			if cd.c.CheckID == "" && r.ID != "" {
				// Consul's default check IDs.
				cd.c.CheckID = "service:" + r.ID
				if len(d.checks) > 1 {
					cd.c.CheckID += ":" + strconv.Itoa(j+1)
				}
			}
			if cd.c.CheckID == "" {
				continue
			}
			where := cd.pos["id"]
			if where == "" {
				where = cd.where
			}
			if prev, dup := checkIDs[cd.c.CheckID]; dup {
				b.errs = append(b.errs, keyErr(where, d.label+"."+cd.path+".id", "duplicate check ID %q: also used at %s", cd.c.CheckID, prev))
			} else {
				checkIDs[cd.c.CheckID] = where
			}
		}
		b.cfg.Services = append(b.cfg.Services, ServiceDefinition{Registration: *r, Source: d.where})
	}
}

var methodRe = regexp.MustCompile(`^[A-Za-z]+$`)

// validateCheck checks one check of the service labelled label.
func (b *builder) validateCheck(label string, cd checkDecl) {
	c := cd.c
	path := label + "." + cd.path
	fail := func(field, format string, args ...any) {
		where := cd.pos[field]
		if where == "" {
			where = cd.where
		}
		b.errs = append(b.errs, keyErr(where, path+"."+field, format, args...))
	}

	kinds := []struct {
		field, name string
		set         bool
	}{
		{"args", "script", len(c.Args) > 0},
		{"http", "http", c.HTTP != ""},
		{"tcp", "tcp", c.TCP != ""},
		{"udp", "udp", c.UDP != ""},
		{"grpc", "grpc", c.GRPC != ""},
		{"ttl", "ttl", c.TTL != ""},
	}
	var set []int
	for i, k := range kinds {
		if k.set {
			set = append(set, i)
		}
	}
	switch len(set) {
	case 0:
		b.errs = append(b.errs, keyErr(cd.where, path, "no check kind: set one of args, http, tcp, udp, grpc or ttl"))
	case 1:
		k := kinds[set[0]]
		if k.field == "args" && !b.cfg.EnableLocalScriptChecks {
			fail("args", "script checks are disabled: set enable_local_script_checks = true (or -enable-local-script-checks) to allow them")
		}
		if k.field != "ttl" && c.Interval == "" {
			fail("interval", "missing (required for %s checks)", k.name)
		}
	default:
		for _, i := range set[1:] {
			fail(kinds[i].field, "a check has exactly one kind, but this one also sets %s", kinds[set[0]].field)
		}
	}

	if c.CheckID != "" {
		if err := idErr(c.CheckID); err != nil {
			fail("id", "%v", err)
		}
	}
	for _, dur := range []struct{ field, val string }{
		{"interval", c.Interval},
		{"timeout", c.Timeout},
		{"ttl", c.TTL},
		{"deregister_critical_service_after", c.DeregisterCriticalServiceAfter},
	} {
		if dur.val == "" {
			continue
		}
		d, err := time.ParseDuration(dur.val)
		switch {
		case err != nil:
			fail(dur.field, "invalid duration %q: want e.g. \"10s\" or \"1m\"", dur.val)
		case d <= 0:
			fail(dur.field, "must be positive, got %s", dur.val)
		}
	}
	if c.HTTP != "" {
		if u, err := url.Parse(c.HTTP); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fail("http", "%q is not an http:// or https:// URL", c.HTTP)
		}
	}
	if c.TCP != "" {
		if err := hostPort(c.TCP); err != nil {
			fail("tcp", "%v", err)
		}
	}
	if c.UDP != "" {
		if err := hostPort(c.UDP); err != nil {
			fail("udp", "%v", err)
		}
	}
	if c.GRPC != "" {
		// host:port, or host:port/service to check one gRPC service.
		addr, _, _ := strings.Cut(c.GRPC, "/")
		if err := hostPort(addr); err != nil {
			fail("grpc", "%v (want host:port or host:port/service)", err)
		}
	}
	if c.Method != "" && !methodRe.MatchString(c.Method) {
		fail("method", "%q is not an HTTP method", c.Method)
	}
	for name := range c.Header {
		if name == "" || strings.ContainsAny(name, " \t\r\n:") {
			fail("header", "%q is not a header name", name)
		}
	}
	if c.Status != "" {
		switch c.Status {
		case catalog.HealthPassing, catalog.HealthWarning, catalog.HealthCritical:
		default:
			fail("status", "%q is not one of passing, warning, critical", c.Status)
		}
	}
	if c.SuccessBeforePassing < 0 {
		fail("success_before_passing", "must be 0 or more, got %d", c.SuccessBeforePassing)
	}
	if c.FailuresBeforeCritical < 0 {
		fail("failures_before_critical", "must be 0 or more, got %d", c.FailuresBeforeCritical)
	}
}

// idErr applies the catalog's rules for IDs.
func idErr(id string) error {
	if len(id) > catalog.MaxIDLen {
		return fmt.Errorf("longer than %d characters", catalog.MaxIDLen)
	}
	if strings.ContainsAny(id, "/\x00") {
		return fmt.Errorf("%q may not contain '/' or NUL", id)
	}
	return nil
}

// hostPort checks a "host:port" address.
func hostPort(s string) error {
	h, p, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port %q is not in 1..65535", s, p)
	}
	if _, err := netip.ParseAddr(h); err != nil && !validHostname(h) {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", s, h)
	}
	return nil
}

// metaErr is a problem with one entry of a meta map ("[key]") or with the
// whole map ("").
type metaErr struct{ entry, msg string }

// metaErrs applies the catalog's rules for node and service meta, in key
// order.
func metaErrs(m map[string]string) []metaErr {
	var errs []metaErr
	if len(m) > catalog.MaxMetaPairs {
		errs = append(errs, metaErr{"", fmt.Sprintf("more than %d pairs", catalog.MaxMetaPairs)})
	}
	for _, k := range sortedKeys(m) {
		v, entry := m[k], "["+k+"]"
		switch {
		case len(k) > catalog.MaxMetaKeyLen || !metaKeyRe.MatchString(k):
			errs = append(errs, metaErr{entry, fmt.Sprintf("key %q must be 1-%d letters, digits, '_' or '-'", k, catalog.MaxMetaKeyLen)})
		case strings.HasPrefix(k, "warren-") || strings.HasPrefix(k, "consul-"):
			errs = append(errs, metaErr{entry, fmt.Sprintf("key %q uses a reserved prefix", k)})
		case len(v) > catalog.MaxMetaValueLen:
			errs = append(errs, metaErr{entry, fmt.Sprintf("value longer than %d characters", catalog.MaxMetaValueLen)})
		}
	}
	return errs
}

var metaKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
