package config

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// fields maps every config key to the Config field it sets. Keys with a
// dot live in a section block ("ports.http" in ports { }). The pointer's
// type says how a value is decoded: *string, *int, *float64, *bool, *time.Duration,
// *[]string, *map[string]string or *map[string]time.Duration. Service
// definitions (service, services) are decoded apart, by decodeService.
var fields = []struct {
	key string
	ptr func(*Config) any
}{
	{"node_name", func(c *Config) any { return &c.NodeName }},
	{"datacenter", func(c *Config) any { return &c.Datacenter }},
	{"data_dir", func(c *Config) any { return &c.DataDir }},
	{"log_level", func(c *Config) any { return &c.LogLevel }},
	{"log_json", func(c *Config) any { return &c.LogJSON }},
	{"bind_addr", func(c *Config) any { return &c.BindAddr }},
	{"advertise_addr", func(c *Config) any { return &c.AdvertiseAddr }},
	{"client_addr", func(c *Config) any { return &c.ClientAddr }},
	{"server", func(c *Config) any { return &c.Server }},
	{"bootstrap_expect", func(c *Config) any { return &c.BootstrapExpect }},
	{"retry_join", func(c *Config) any { return &c.RetryJoin }},
	{"retry_interval", func(c *Config) any { return &c.RetryInterval }},
	{"encrypt", func(c *Config) any { return &c.Encrypt }},
	{"reconnect_timeout", func(c *Config) any { return &c.ReconnectTimeout }},
	{"enable_local_script_checks", func(c *Config) any { return &c.EnableLocalScriptChecks }},
	{"node_meta", func(c *Config) any { return &c.NodeMeta }},
	{"leave_on_terminate", func(c *Config) any { return &c.LeaveOnTerminate }},
	{"domain", func(c *Config) any { return &c.DNS.Domain }},
	{"alt_domain", func(c *Config) any { return &c.DNS.AltDomain }},
	{"recursors", func(c *Config) any { return &c.DNS.Recursors }},
	{"metrics_addr", func(c *Config) any { return &c.MetricsAddr }},
	{"enable_debug", func(c *Config) any { return &c.EnableDebug }},
	{"workload_socket", func(c *Config) any { return &c.WorkloadSocket }},
	{"ports.http", func(c *Config) any { return &c.Ports.HTTP }},
	{"ports.dns", func(c *Config) any { return &c.Ports.DNS }},
	{"ports.server", func(c *Config) any { return &c.Ports.Server }},
	{"ports.serf_lan", func(c *Config) any { return &c.Ports.SerfLAN }},
	{"ports.grpc", func(c *Config) any { return &c.Ports.GRPC }},
	{"ports.https", func(c *Config) any { return &c.Ports.HTTPS }},
	{"dns_config.node_ttl", func(c *Config) any { return &c.DNS.NodeTTL }},
	{"dns_config.service_ttl", func(c *Config) any { return &c.DNS.ServiceTTL }},
	{"dns_config.only_passing", func(c *Config) any { return &c.DNS.OnlyPassing }},
	{"dns_config.udp_answer_limit", func(c *Config) any { return &c.DNS.UDPAnswerLimit }},
	{"dns_config.recursor_timeout", func(c *Config) any { return &c.DNS.RecursorTimeout }},
	{"enroll", func(c *Config) any { return &c.Enroll }},
	{"acl.enabled", func(c *Config) any { return &c.ACL.Enabled }},
	{"acl.default_policy", func(c *Config) any { return &c.ACL.DefaultPolicy }},
	{"acl.enable_token_for_dns", func(c *Config) any { return &c.ACL.EnableTokenForDNS }},
	{"acl.tokens.initial_management", func(c *Config) any { return &c.ACL.Tokens.InitialManagement }},
	{"acl.tokens.agent", func(c *Config) any { return &c.ACL.Tokens.Agent }},
	{"acl.tokens.default", func(c *Config) any { return &c.ACL.Tokens.Default }},
	// TLS (config/tls.go).
	{"tls.defaults.ca_file", func(c *Config) any { return &c.TLS.CAFile }},
	{"tls.defaults.ca_path", func(c *Config) any { return &c.TLS.CAPath }},
	{"tls.defaults.cert_file", func(c *Config) any { return &c.TLS.CertFile }},
	{"tls.defaults.key_file", func(c *Config) any { return &c.TLS.KeyFile }},
	{"tls.defaults.verify_incoming", func(c *Config) any { return &c.TLS.VerifyIncoming }},
	{"tls.defaults.verify_outgoing", func(c *Config) any { return &c.TLS.VerifyOutgoing }},
	{"tls.internal_rpc.verify_server_hostname", func(c *Config) any { return &c.TLS.VerifyServerHostname }},
	{"tls.https.verify_incoming", func(c *Config) any { return &c.TLS.HTTPSVerifyIncoming }},
	{"auto_encrypt.tls", func(c *Config) any { return &c.TLS.AutoEncrypt }},
	{"auto_encrypt.allow_tls", func(c *Config) any { return &c.TLS.AutoEncryptAllowTLS }},
	{"connect.ca_config.csr_max_per_second", func(c *Config) any { return &c.Connect.CSRMaxPerSecond }},
	// Limits and audit (config/limits.go).
	{"check_output_max_size", func(c *Config) any { return &c.CheckOutputMaxSize }},
	{"limits.http_max_conns_per_client", func(c *Config) any { return &c.Limits.HTTPMaxConnsPerClient }},
	{"limits.http_max_blocking_queries_per_client", func(c *Config) any { return &c.Limits.HTTPMaxBlockingQueriesPerClient }},
	{"limits.http_max_body_bytes", func(c *Config) any { return &c.Limits.HTTPMaxBodyBytes }},
	{"limits.http_read_header_timeout", func(c *Config) any { return &c.Limits.HTTPReadHeaderTimeout }},
	{"limits.rpc_rate", func(c *Config) any { return &c.Limits.RPCRate }},
	{"limits.rpc_max_burst", func(c *Config) any { return &c.Limits.RPCMaxBurst }},
	{"audit.enabled", func(c *Config) any { return &c.Audit.Enabled }},
	{"audit.sink.file.path", func(c *Config) any { return &c.Audit.Path }},
}

// fieldPtr returns the pointer for key into c, or nil for an unknown key.
func fieldPtr(c *Config, key string) any {
	for _, f := range fields {
		if f.key == key {
			return f.ptr(c)
		}
	}
	return nil
}

// sections are the blocks that group keys: ports { http = 8500 }. A
// section inside another is named by its path ("acl.tokens"); one listed
// in sectionLabels takes a label, which becomes part of its keys' path:
// audit { sink "file" { path = "..." } } sets audit.sink.file.path (in JSON,
// "sink": {"file": {"path": "..."}}).
var sections = []string{"ports", "dns_config", "acl", "acl.tokens", "tls", "tls.defaults", "tls.internal_rpc", "tls.https",
	"auto_encrypt", "connect", "connect.ca_config", "limits", "audit", "audit.sink"}

// sectionLabels are the labels each labeled section accepts.
var sectionLabels = map[string][]string{"audit.sink": {"file"}}

// Top-level keys that fields does not list.
const (
	serviceKey  = "service"  // one service definition (repeatable)
	servicesKey = "services" // a list of them
	nodeMetaKey = "node_meta"
)

// schema returns the body schema for the keys under prefix ("" for the top
// level, "ports." for the ports block).
func schema(prefix string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, sec := range sections {
		if name, ok := strings.CutPrefix(sec, prefix); ok && !strings.Contains(name, ".") {
			hdr := hcl.BlockHeaderSchema{Type: name}
			if sectionLabels[sec] != nil {
				hdr.LabelNames = []string{"name"}
			}
			s.Blocks = append(s.Blocks, hdr)
		}
	}
	if prefix == "" {
		// These may be written as blocks (node_meta { rack = "a" },
		// service { ... }) or as values (node_meta = { ... }, services =
		// [{ ... }]). JSON takes the value form, which covers both
		// "service": {...} and "service": [{...}, ...].
		for _, k := range []string{nodeMetaKey, serviceKey, servicesKey, proxyDefaultsKey} {
			s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: k})
		}
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: serviceKey}, hcl.AttributeSchema{Name: servicesKey}, hcl.AttributeSchema{Name: proxyDefaultsKey})
	}
	for _, f := range fields {
		if name, ok := strings.CutPrefix(f.key, prefix); ok && !strings.Contains(name, ".") {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	return s
}

// readHCL merges an inline HCL fragment (-hcl) into b; name stands for
// the file in errors.
func (b *builder) readHCL(name, src string) {
	file, diags := hclparse.NewParser().ParseHCL([]byte(src), name)
	if file == nil || diags.HasErrors() {
		b.addDiags("", diags, name)
		return
	}
	b.cfg.Files = append(b.cfg.Files, name)
	b.decodeBody(file.Body, "")
}

// readFile merges one HCL or JSON file into b, key by key.
func (b *builder) readFile(path string) {
	p := hclparse.NewParser()
	var (
		file  *hcl.File
		diags hcl.Diagnostics
	)
	switch filepath.Ext(path) {
	case ".hcl":
		file, diags = p.ParseHCLFile(path)
	case ".json":
		file, diags = p.ParseJSONFile(path)
	default:
		b.errs = append(b.errs, fmt.Errorf("config file %s: unknown format: want a .hcl or .json file", path))
		return
	}
	if file == nil || diags.HasErrors() {
		b.addDiags("", diags, path)
		return
	}
	b.cfg.Files = append(b.cfg.Files, path)
	b.decodeBody(file.Body, "")
}

// decodeBody decodes the keys under prefix from body.
func (b *builder) decodeBody(body hcl.Body, prefix string) {
	sch := schema(prefix)
	content, remain, diags := body.PartialContent(sch)
	b.addDiags("", diags, "")
	b.unknownKeys(remain, sch, prefix)

	var services []object
	for _, a := range sch.Attributes {
		attr, ok := content.Attributes[a.Name]
		if !ok {
			continue
		}
		key := prefix + a.Name
		if key == serviceKey || key == servicesKey {
			services = append(services, b.exprObjects(attr.Expr, key)...)
			continue
		}
		if key == proxyDefaultsKey {
			if o, ok := b.exprObject(key, attr.Expr); ok {
				b.decodeProxyDefaults(o)
			}
			continue
		}
		b.decodeAttr(key, attr, fieldPtr(&b.cfg, key))
	}
	seen := map[string]bool{}
	for _, blk := range content.Blocks {
		switch blk.Type {
		case serviceKey, servicesKey:
			services = append(services, b.bodyObject(blk.DefRange, blk.Body, blk.Type))
		case proxyDefaultsKey:
			b.decodeProxyDefaults(b.bodyObject(blk.DefRange, blk.Body, proxyDefaultsKey))
		case nodeMetaKey:
			o := b.bodyObject(blk.DefRange, blk.Body, nodeMetaKey)
			b.decodeMember(nodeMetaKey, member{name: nodeMetaKey, rng: blk.TypeRange, obj: &o}, &b.cfg.NodeMeta)
		default:
			path := prefix + blk.Type
			if labels := sectionLabels[path]; labels != nil {
				if len(blk.Labels) != 1 {
					continue // HCL reported the missing label
				}
				if !slices.Contains(labels, blk.Labels[0]) {
					b.errs = append(b.errs, keyErr(pos(blk.LabelRanges[0]), path, "unknown kind %q: want one of %s", blk.Labels[0], strings.Join(labels, ", ")))
					continue
				}
				path += "." + blk.Labels[0]
			}
			if seen[path] {
				b.errs = append(b.errs, keyErr(pos(blk.DefRange), path, "defined more than once in this file"))
				continue
			}
			seen[path] = true
			b.decodeBody(blk.Body, path+".")
		}
	}
	sort.SliceStable(services, func(i, j int) bool { return services[i].rng.Start.Byte < services[j].rng.Start.Byte })
	for _, o := range services {
		b.decodeService(o)
	}
}

// unknownKeys reports every key in remain, the part of a body the schema
// did not claim.
func (b *builder) unknownKeys(remain hcl.Body, sch *hcl.BodySchema, prefix string) {
	type unknown struct {
		rng   hcl.Range
		name  string
		block bool
	}
	var found []unknown
	if syn, ok := remain.(*hclsyntax.Body); ok {
		// Native syntax: look at the AST so that every unknown block is
		// reported, not only the first. PartialContent hides the attributes
		// it consumed but not the blocks, so skip known block types here.
		attrs, _ := syn.JustAttributes()
		for _, a := range attrs {
			found = append(found, unknown{a.NameRange, a.Name, false})
		}
		for _, blk := range syn.Blocks {
			if !knownBlock(sch, blk.Type) {
				found = append(found, unknown{blk.TypeRange, blk.Type, true})
			}
		}
	} else {
		attrs, diags := remain.JustAttributes()
		b.addDiags("", diags, "")
		for _, a := range attrs {
			found = append(found, unknown{a.NameRange, a.Name, false})
		}
	}
	sort.Slice(found, func(i, j int) bool { return found[i].rng.Start.Byte < found[j].rng.Start.Byte })
	for _, u := range found {
		msg := "unknown key"
		if !u.block && knownBlock(sch, u.name) {
			msg = fmt.Sprintf("is a block, not a setting: write %s { ... }", u.name)
		}
		if u.block {
			msg = "unknown block"
			if knownAttr(sch, u.name) {
				msg = fmt.Sprintf("is a setting, not a block: write %s = value", u.name)
			}
		}
		b.errs = append(b.errs, keyErr(pos(u.rng), prefix+u.name, "%s", msg))
	}
}

func knownBlock(sch *hcl.BodySchema, name string) bool {
	for _, s := range sch.Blocks {
		if s.Type == name {
			return true
		}
	}
	return false
}

func knownAttr(sch *hcl.BodySchema, name string) bool {
	for _, s := range sch.Attributes {
		if s.Name == name {
			return true
		}
	}
	return false
}

// decodeAttr decodes attr into ptr and records where it came from, and
// where each entry of a list or map came from. A value of the wrong type is
// an error and leaves the previous value in place.
func (b *builder) decodeAttr(key string, attr *hcl.Attribute, ptr any) {
	b.decodeMember(key, member{name: attr.Name, rng: attr.NameRange, expr: attr.Expr}, ptr)
}

func (b *builder) decodeMember(key string, m member, ptr any) {
	entries, ok := b.decodeValue(key, m, ptr)
	if !ok {
		return
	}
	b.src[key] = pos(m.rng)
	for k, where := range entries {
		b.src[key+k] = where
	}
}

// decodeValue decodes m's value into ptr. path names the value in errors.
// It returns where each entry of a list ("[0]") or map ("[name]") is. Maps
// are merged into the map ptr holds: a later file overrides key by key.
func (b *builder) decodeValue(path string, m member, ptr any) (entries map[string]string, ok bool) {
	where := pos(m.rng)
	switch p := ptr.(type) {
	case *[]string:
		vals, entries, ok := b.decodeList(path, where, m.expr)
		if ok {
			*p = vals
		}
		return entries, ok
	case *map[string]string, *map[string]time.Duration, *map[string][]string:
		o, ok := b.memberObject(path, m)
		if !ok {
			return nil, false
		}
		entries = map[string]string{}
		for _, e := range o.members {
			ekey := fmt.Sprintf("[%s]", e.name)
			ewhere := pos(e.rng)
			if e.expr == nil {
				b.errs = append(b.errs, keyErr(ewhere, path+ekey, "want a value, not a block"))
				ok = false
				continue
			}
			switch p := p.(type) {
			case *map[string]string:
				var s string
				if !b.scalar(path+ekey, ewhere, e.expr, &s) {
					ok = false
					continue
				}
				if *p == nil {
					*p = map[string]string{}
				}
				(*p)[e.name] = s
			case *map[string]time.Duration:
				var d time.Duration
				if !b.scalar(path+ekey, ewhere, e.expr, &d) {
					ok = false
					continue
				}
				if *p == nil {
					*p = map[string]time.Duration{}
				}
				(*p)[e.name] = d
			case *map[string][]string:
				// A single string stands for a list of one.
				var vals []string
				var s string
				if v, diags := e.expr.Value(nil); !diags.HasErrors() && v.Type() == cty.String {
					if !b.scalar(path+ekey, ewhere, e.expr, &s) {
						ok = false
						continue
					}
					vals = []string{s}
				} else if vals, _, ok = b.decodeList(path+ekey, ewhere, e.expr); !ok {
					continue
				}
				if *p == nil {
					*p = map[string][]string{}
				}
				(*p)[e.name] = vals
			}
			entries[ekey] = ewhere
		}
		return entries, ok
	case **bool:
		var v bool
		if !b.scalar(path, where, m.expr, &v) {
			return nil, false
		}
		*p = &v
		return nil, true
	}
	if m.expr == nil {
		b.errs = append(b.errs, keyErr(where, path, "is a setting, not a block: write %s = value", m.name))
		return nil, false
	}
	return nil, b.scalar(path, where, m.expr, ptr)
}

// scalar decodes a string, bool, number or duration.
func (b *builder) scalar(path, where string, expr hcl.Expression, ptr any) bool {
	if expr == nil {
		b.errs = append(b.errs, keyErr(where, path, "want a value, not a block"))
		return false
	}
	v, diags := expr.Value(nil)
	if diags.HasErrors() {
		b.addDiags(path, diags, "")
		return false
	}
	if err := assignValue(ptr, v); err != nil {
		b.errs = append(b.errs, keyErr(where, path, "%v", err))
		return false
	}
	return true
}

// decodeList decodes a list of strings, and where each entry is so that
// its validation can point at it.
func (b *builder) decodeList(path, where string, expr hcl.Expression) ([]string, map[string]string, bool) {
	if expr == nil {
		b.errs = append(b.errs, keyErr(where, path, "want a list of strings, not a block"))
		return nil, nil, false
	}
	exprs, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		b.errs = append(b.errs, keyErr(where, path, "want a list of strings"))
		return nil, nil, false
	}
	vals := make([]string, 0, len(exprs))
	entries := make(map[string]string, len(exprs))
	for i, e := range exprs {
		ekey := fmt.Sprintf("[%d]", i)
		var s string
		if !b.scalar(path+ekey, pos(e.Range()), e, &s) {
			return nil, nil, false
		}
		vals = append(vals, s)
		entries[ekey] = pos(e.Range())
	}
	return vals, entries, true
}

// assignValue stores v in ptr if v has the matching type. It does not
// convert between types: bootstrap_expect = "3" is an error, as in JSON.
func assignValue(ptr any, v cty.Value) error {
	if v.IsNull() {
		return fmt.Errorf("must not be null")
	}
	if !v.IsWhollyKnown() {
		return fmt.Errorf("value is not known")
	}
	switch p := ptr.(type) {
	case *string:
		if v.Type() != cty.String {
			return fmt.Errorf("want a string, got %s", v.Type().FriendlyName())
		}
		*p = v.AsString()
	case *bool:
		if v.Type() != cty.Bool {
			return fmt.Errorf("want a bool, got %s", v.Type().FriendlyName())
		}
		*p = v.True()
	case *int:
		if v.Type() != cty.Number {
			return fmt.Errorf("want a whole number, got %s", v.Type().FriendlyName())
		}
		bf := v.AsBigFloat()
		n, acc := bf.Int64()
		if !bf.IsInt() || acc != 0 || n < math.MinInt32 || n > math.MaxInt32 {
			return fmt.Errorf("want a whole number, got %s", bf.Text('g', -1))
		}
		*p = int(n)
	case *float64:
		if v.Type() != cty.Number {
			return fmt.Errorf("want a number, got %s", v.Type().FriendlyName())
		}
		f, _ := v.AsBigFloat().Float64()
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return fmt.Errorf("want a finite number")
		}
		*p = f
	case *time.Duration:
		if v.Type() != cty.String {
			return fmt.Errorf("want a duration string such as \"30s\", got %s", v.Type().FriendlyName())
		}
		d, err := time.ParseDuration(v.AsString())
		if err != nil {
			return fmt.Errorf("invalid duration %q: want e.g. \"30s\" or \"1m\"", v.AsString())
		}
		*p = d
	default:
		return fmt.Errorf("internal error: no decoder for %T", ptr)
	}
	return nil
}

// addDiags turns HCL diagnostics into "file:line: [key: ]summary: detail"
// errors. path names the file when a diagnostic has no position.
func (b *builder) addDiags(key string, diags hcl.Diagnostics, path string) {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		where := path
		if d.Subject != nil {
			where = pos(*d.Subject)
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if key != "" {
			msg = key + ": " + msg
		}
		b.errs = append(b.errs, fmt.Errorf("%s: %s", where, msg))
	}
}

func pos(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }
