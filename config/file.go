package config

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// fields maps every config key to the Config field it sets. Keys under
// "ports." live in the ports block. The pointer's type says how a value is
// decoded: *string, *int, *bool, *time.Duration or *[]string.
var fields = []struct {
	key string
	ptr func(*Config) any
}{
	{"node_name", func(c *Config) any { return &c.NodeName }},
	{"datacenter", func(c *Config) any { return &c.Datacenter }},
	{"data_dir", func(c *Config) any { return &c.DataDir }},
	{"log_level", func(c *Config) any { return &c.LogLevel }},
	{"bind_addr", func(c *Config) any { return &c.BindAddr }},
	{"advertise_addr", func(c *Config) any { return &c.AdvertiseAddr }},
	{"client_addr", func(c *Config) any { return &c.ClientAddr }},
	{"server", func(c *Config) any { return &c.Server }},
	{"bootstrap_expect", func(c *Config) any { return &c.BootstrapExpect }},
	{"retry_join", func(c *Config) any { return &c.RetryJoin }},
	{"retry_interval", func(c *Config) any { return &c.RetryInterval }},
	{"ports.http", func(c *Config) any { return &c.Ports.HTTP }},
	{"ports.dns", func(c *Config) any { return &c.Ports.DNS }},
	{"ports.server", func(c *Config) any { return &c.Ports.Server }},
	{"ports.serf_lan", func(c *Config) any { return &c.Ports.SerfLAN }},
	{"ports.grpc", func(c *Config) any { return &c.Ports.GRPC }},
}

const portsBlock = "ports"

// schema returns the body schema for the keys under prefix ("" for the top
// level, "ports." for the ports block).
func schema(prefix string) *hcl.BodySchema {
	s := &hcl.BodySchema{}
	if prefix == "" {
		s.Blocks = []hcl.BlockHeaderSchema{{Type: portsBlock}}
	}
	for _, f := range fields {
		if name, ok := strings.CutPrefix(f.key, prefix); ok && !strings.Contains(name, ".") {
			s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
		}
	}
	return s
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

	for _, a := range sch.Attributes {
		attr, ok := content.Attributes[a.Name]
		if !ok {
			continue
		}
		key := prefix + a.Name
		for _, f := range fields {
			if f.key == key {
				b.decodeAttr(key, attr, f.ptr(&b.cfg))
			}
		}
	}
	for i, blk := range content.Blocks {
		if i > 0 {
			b.errs = append(b.errs, keyErr(pos(blk.DefRange), portsBlock, "defined more than once in this file"))
			continue
		}
		b.decodeBody(blk.Body, portsBlock+".")
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

// decodeAttr decodes attr into ptr and records where it came from. A value
// of the wrong type is an error and leaves the previous value in place.
func (b *builder) decodeAttr(key string, attr *hcl.Attribute, ptr any) {
	where := pos(attr.NameRange)
	if list, ok := ptr.(*[]string); ok {
		b.decodeList(key, where, attr, list)
		return
	}
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		b.addDiags(key, diags, "")
		return
	}
	if err := assignValue(ptr, v); err != nil {
		b.errs = append(b.errs, keyErr(where, key, "%v", err))
		return
	}
	b.src[key] = where
}

// decodeList decodes a list of strings, remembering where each entry is so
// that its validation can point at it.
func (b *builder) decodeList(key, where string, attr *hcl.Attribute, list *[]string) {
	exprs, diags := hcl.ExprList(attr.Expr)
	if diags.HasErrors() {
		b.errs = append(b.errs, keyErr(where, key, "want a list of strings"))
		return
	}
	vals := make([]string, 0, len(exprs))
	srcs := make([]string, 0, len(exprs))
	for i, e := range exprs {
		v, diags := e.Value(nil)
		if diags.HasErrors() {
			b.addDiags(key, diags, "")
			return
		}
		var s string
		if err := assignValue(&s, v); err != nil {
			b.errs = append(b.errs, keyErr(pos(e.Range()), fmt.Sprintf("%s[%d]", key, i), "%v", err))
			return
		}
		vals = append(vals, s)
		srcs = append(srcs, pos(e.Range()))
	}
	*list, b.joinSrc = vals, srcs
	b.src[key] = where
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
