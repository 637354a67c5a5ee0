package acl

import (
	"bytes"
	"fmt"

	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	hcljson "github.com/hashicorp/hcl/v2/json"
	"github.com/zclconf/go-cty/cty"
)

// MaxRulesSize bounds the rules text of one policy. Consul has no limit;
// real policies are a few hundred bytes, and the bound keeps one request
// from making a server parse megabytes on every token resolution.
const MaxRulesSize = 64 << 10

// Access is a rule's level. The zero value means no rule.
type Access uint8

// Access levels, in Consul's words.
const (
	AccessUnset Access = iota
	AccessDeny
	AccessRead
	// AccessList is valid in key and key_prefix rules only (Consul's KV
	// listing); Warren parses and keeps it.
	AccessList
	AccessWrite
)

func (a Access) String() string {
	switch a {
	case AccessDeny:
		return "deny"
	case AccessRead:
		return "read"
	case AccessList:
		return "list"
	case AccessWrite:
		return "write"
	}
	return ""
}

// mergeAccess is how two rules for the same name or prefix combine when
// several policies give one, as Consul merges policies: deny wins, then
// the most permissive (write, list, read).
func mergeAccess(a, b Access) Access {
	if a == AccessDeny || b == AccessDeny {
		return AccessDeny
	}
	return max(a, b)
}

// ServiceRule is a service or service_prefix block.
type ServiceRule struct {
	Name   string
	Policy Access
	// Intentions is AccessUnset when the block does not set it; the
	// authorizer then derives it as Consul does (read for a read or write
	// service rule, deny for a deny rule).
	Intentions Access
}

// NameRule is a block of any other resource: node, agent, key, session,
// event, query and their _prefix forms. Name is the block's label.
type NameRule struct {
	Name   string
	Policy Access
}

// Rules is one policy's parsed rules. Exact-name rules and prefix rules of
// a resource are kept apart; the order of blocks does not matter.
type Rules struct {
	Services, ServicePrefixes []ServiceRule
	Nodes, NodePrefixes       []NameRule
	Agents, AgentPrefixes     []NameRule
	// Keys through QueryPrefixes are parsed and kept for compatibility;
	// Warren has no KV store, sessions, events or prepared queries yet.
	Keys, KeyPrefixes         []NameRule
	Sessions, SessionPrefixes []NameRule
	Events, EventPrefixes     []NameRule
	Queries, QueryPrefixes    []NameRule

	ACL, Operator, Keyring, Mesh Access
}

// resource describes one block type of the language.
type resource struct {
	service bool // has "intentions"
	list    bool // accepts "list"
	names   func(r *Rules) *[]NameRule
	svcs    func(r *Rules) *[]ServiceRule
}

var resources = map[string]resource{
	"service":        {service: true, svcs: func(r *Rules) *[]ServiceRule { return &r.Services }},
	"service_prefix": {service: true, svcs: func(r *Rules) *[]ServiceRule { return &r.ServicePrefixes }},
	"node":           {names: func(r *Rules) *[]NameRule { return &r.Nodes }},
	"node_prefix":    {names: func(r *Rules) *[]NameRule { return &r.NodePrefixes }},
	"agent":          {names: func(r *Rules) *[]NameRule { return &r.Agents }},
	"agent_prefix":   {names: func(r *Rules) *[]NameRule { return &r.AgentPrefixes }},
	"key":            {list: true, names: func(r *Rules) *[]NameRule { return &r.Keys }},
	"key_prefix":     {list: true, names: func(r *Rules) *[]NameRule { return &r.KeyPrefixes }},
	"session":        {names: func(r *Rules) *[]NameRule { return &r.Sessions }},
	"session_prefix": {names: func(r *Rules) *[]NameRule { return &r.SessionPrefixes }},
	"event":          {names: func(r *Rules) *[]NameRule { return &r.Events }},
	"event_prefix":   {names: func(r *Rules) *[]NameRule { return &r.EventPrefixes }},
	"query":          {names: func(r *Rules) *[]NameRule { return &r.Queries }},
	"query_prefix":   {names: func(r *Rules) *[]NameRule { return &r.QueryPrefixes }},
}

var topLevel = []string{"acl", "operator", "keyring", "mesh"}

var (
	rulesSchema   = buildRulesSchema()
	serviceSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "policy", Required: true}, {Name: "intentions"}}}
	nameSchema    = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "policy", Required: true}}}
)

func buildRulesSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{}
	for _, name := range topLevel {
		s.Attributes = append(s.Attributes, hcl.AttributeSchema{Name: name})
	}
	for _, name := range []string{"service", "service_prefix", "node", "node_prefix", "agent", "agent_prefix",
		"key", "key_prefix", "session", "session_prefix", "event", "event_prefix", "query", "query_prefix"} {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: name, LabelNames: []string{"name"}})
	}
	return s
}

// ParseRules parses a policy's rules, in Consul's HCL or JSON form (JSON
// when the text starts with '{'). Errors name the line and column:
//
//	rules:3,12: invalid policy "wirte" for service "web": want read, write or deny
//
// Consul reads rules as HCL 1, which also takes several attributes on one
// line (`service "web" { policy = "read" intentions = "write" }`, commas
// allowed); HCL 2 does not, so such text is split into lines before it is
// parsed again, and error positions still refer to the text as written.
//
// An empty text is a policy with no rules. A block with an empty label,
// Consul's legacy `service "" { ... }`, is kept as an exact rule for the
// empty name (which no service has), as current Consul reads it; write
// `service_prefix ""` to cover every service.
func ParseRules(src string) (*Rules, error) {
	if len(src) > MaxRulesSize {
		return nil, fmt.Errorf("rules: %d bytes, more than the limit of %d", len(src), MaxRulesSize)
	}
	p := &rulesParser{src: []byte(src)}
	if bytes.HasPrefix(bytes.TrimSpace(p.src), []byte("{")) {
		file, diags := hcljson.Parse(p.src, "rules")
		if diags.HasErrors() {
			return nil, p.diagError(diags)
		}
		return p.decode(file.Body)
	}
	file, diags := hclsyntax.ParseConfig(p.src, "rules", hcl.InitialPos)
	if diags.HasErrors() {
		split, inserted := splitOneLineBlocks(p.src)
		if inserted == nil {
			return nil, p.diagError(diags)
		}
		file2, diags2 := hclsyntax.ParseConfig(split, "rules", hcl.InitialPos)
		if diags2.HasErrors() {
			return nil, p.diagError(diags)
		}
		file, p.inserted = file2, inserted
	}
	return p.decode(file.Body)
}

// rulesParser decodes one text. inserted holds the offsets in src at which
// splitOneLineBlocks inserted a newline, to map positions back.
type rulesParser struct {
	src      []byte
	inserted []int
}

func (p *rulesParser) decode(b hcl.Body) (*Rules, error) {
	content, diags := b.Content(rulesSchema)
	if diags.HasErrors() {
		return nil, p.diagError(diags)
	}
	r := &Rules{}
	for _, name := range topLevel {
		attr, ok := content.Attributes[name]
		if !ok {
			continue
		}
		a, err := p.accessAttr(attr, name, "", false)
		if err != nil {
			return nil, err
		}
		switch name {
		case "acl":
			r.ACL = a
		case "operator":
			r.Operator = a
		case "keyring":
			r.Keyring = a
		case "mesh":
			r.Mesh = a
		}
	}
	for _, b := range content.Blocks {
		res := resources[b.Type]
		where := fmt.Sprintf(" for %s %q", b.Type, b.Labels[0])
		schema := nameSchema
		if res.service {
			schema = serviceSchema
		}
		body, diags := b.Body.Content(schema)
		if diags.HasErrors() {
			return nil, p.diagError(diags)
		}
		policy, err := p.accessAttr(body.Attributes["policy"], "policy", where, res.list)
		if err != nil {
			return nil, err
		}
		if !res.service {
			names := res.names(r)
			*names = append(*names, NameRule{Name: b.Labels[0], Policy: policy})
			continue
		}
		var intentions Access
		if attr, ok := body.Attributes["intentions"]; ok {
			if intentions, err = p.accessAttr(attr, "intentions", where, false); err != nil {
				return nil, err
			}
		}
		svcs := res.svcs(r)
		*svcs = append(*svcs, ServiceRule{Name: b.Labels[0], Policy: policy, Intentions: intentions})
	}
	return r, nil
}

// accessAttr evaluates an attribute that must be a literal access level.
func (p *rulesParser) accessAttr(attr *hcl.Attribute, field, where string, allowList bool) (Access, error) {
	v, diags := attr.Expr.Value(nil)
	if diags.HasErrors() {
		return 0, p.diagError(diags)
	}
	pos := p.pos(attr.Expr.Range())
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.String {
		return 0, fmt.Errorf("%s: %s%s must be a string", pos, field, where)
	}
	want := "read, write or deny"
	if allowList {
		want = "read, list, write or deny"
	}
	switch s := v.AsString(); s {
	case "deny":
		return AccessDeny, nil
	case "read":
		return AccessRead, nil
	case "write":
		return AccessWrite, nil
	case "list":
		if allowList {
			return AccessList, nil
		}
		fallthrough
	default:
		return 0, fmt.Errorf("%s: invalid %s %q%s: want %s", pos, field, s, where, want)
	}
}

// pos names where r starts in the text as written: "rules:LINE,COLUMN",
// the column counted in characters from 1.
func (p *rulesParser) pos(r hcl.Range) string {
	off := r.Start.Byte
	for _, ins := range p.inserted {
		if ins < off {
			off--
		}
	}
	off = min(max(off, 0), len(p.src))
	line := 1 + bytes.Count(p.src[:off], []byte("\n"))
	lineStart := bytes.LastIndexByte(p.src[:off], '\n') + 1
	col := 1 + utf8.RuneCount(p.src[lineStart:off])
	return fmt.Sprintf("rules:%d,%d", line, col)
}

// diagError turns HCL's diagnostics into one error naming the position of
// the first.
func (p *rulesParser) diagError(diags hcl.Diagnostics) error {
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		msg := d.Summary
		if d.Detail != "" {
			msg += ": " + d.Detail
		}
		if d.Subject == nil {
			return fmt.Errorf("rules: %s", msg)
		}
		return fmt.Errorf("%s: %s", p.pos(*d.Subject), msg)
	}
	return fmt.Errorf("rules: %s", diags.Error())
}

// splitOneLineBlocks rewrites HCL 1 one-line blocks into HCL 2: a newline
// after each block's '{', before its '}', and between attributes, whose
// separating commas become spaces. It returns the new text and the
// offsets in src where it inserted newlines (in order); nil offsets when
// there is nothing to split or src does not lex.
func splitOneLineBlocks(src []byte) ([]byte, []int) {
	toks, diags := hclsyntax.LexConfig(src, "rules", hcl.InitialPos)
	if diags.HasErrors() {
		return nil, nil
	}
	var (
		out      []byte
		inserted []int
		last     int
		blocks   []bool // per open bracket: is it a block body?
	)
	// The top level is a body too.
	inBlock := func() bool { return len(blocks) == 0 || blocks[len(blocks)-1] }
	insertAt := func(off int) {
		out = append(out, src[last:off]...)
		out = append(out, '\n')
		inserted = append(inserted, off)
		last = off
	}
	for i, tok := range toks {
		prev := hclsyntax.TokenNil
		if i > 0 {
			prev = toks[i-1].Type
		}
		switch tok.Type {
		case hclsyntax.TokenOBrace:
			block := prev == hclsyntax.TokenCQuote || prev == hclsyntax.TokenIdent
			blocks = append(blocks, block)
			if block && i+1 < len(toks) && toks[i+1].Type != hclsyntax.TokenNewline {
				insertAt(tok.Range.End.Byte)
			}
		case hclsyntax.TokenOBrack, hclsyntax.TokenOParen, hclsyntax.TokenTemplateInterp, hclsyntax.TokenTemplateControl:
			blocks = append(blocks, false)
		case hclsyntax.TokenCBrace, hclsyntax.TokenCBrack, hclsyntax.TokenCParen, hclsyntax.TokenTemplateSeqEnd:
			if tok.Type == hclsyntax.TokenCBrace && inBlock() && prev != hclsyntax.TokenNewline && prev != hclsyntax.TokenOBrace {
				insertAt(tok.Range.Start.Byte)
			}
			if len(blocks) > 0 {
				blocks = blocks[:len(blocks)-1]
			}
		case hclsyntax.TokenComma:
			if inBlock() {
				out = append(out, src[last:tok.Range.Start.Byte]...)
				out = append(out, ' ')
				last = tok.Range.End.Byte
			}
		case hclsyntax.TokenIdent:
			next := hclsyntax.TokenNil
			if i+1 < len(toks) {
				next = toks[i+1].Type
			}
			if inBlock() && next == hclsyntax.TokenEqual && prev != hclsyntax.TokenNil &&
				prev != hclsyntax.TokenNewline && prev != hclsyntax.TokenOBrace {
				insertAt(tok.Range.Start.Byte)
			}
		}
	}
	if inserted == nil {
		return nil, nil
	}
	return append(out, src[last:]...), inserted
}
