package config

import (
	"fmt"
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// An object is a set of keys read from a file, whichever way it was
// written: a block (service { ... }), an object value (check = { ... }) or
// a JSON object. Service definitions and maps are decoded from objects so
// that every form reads the same and every key keeps its line.
type object struct {
	rng     hcl.Range // where the object starts
	members []member  // in file order
}

// member is one key of an object: a value (expr) or a nested block (obj).
type member struct {
	name string
	rng  hcl.Range // the key's range
	expr hcl.Expression
	obj  *object
}

// bodyObject reads the keys of a block's body. path names the block in
// errors.
func (b *builder) bodyObject(rng hcl.Range, body hcl.Body, path string) object {
	o := object{rng: rng}
	if syn, ok := body.(*hclsyntax.Body); ok {
		for _, a := range syn.Attributes {
			o.members = append(o.members, member{name: a.Name, rng: a.NameRange, expr: a.Expr})
		}
		for _, blk := range syn.Blocks {
			if len(blk.Labels) > 0 {
				b.errs = append(b.errs, keyErr(pos(blk.LabelRanges[0]), path+"."+blk.Type, "takes no labels: write %s { ... }", blk.Type))
				continue
			}
			nested := b.bodyObject(blk.TypeRange, blk.Body, path+"."+blk.Type)
			o.members = append(o.members, member{name: blk.Type, rng: blk.TypeRange, obj: &nested})
		}
	} else {
		// JSON: every property is a value; objects and arrays are read with
		// hcl.ExprMap and hcl.ExprList.
		attrs, diags := body.JustAttributes()
		b.addDiags(path, diags, "")
		for _, a := range attrs {
			o.members = append(o.members, member{name: a.Name, rng: a.NameRange, expr: a.Expr})
		}
	}
	sort.SliceStable(o.members, func(i, j int) bool { return o.members[i].rng.Start.Byte < o.members[j].rng.Start.Byte })
	return o
}

// exprObject reads an object value ({ key = value } or a JSON object). It
// fails only if expr is not an object; bad keys are reported and skipped.
func (b *builder) exprObject(path string, expr hcl.Expression) (object, bool) {
	pairs, diags := hcl.ExprMap(expr)
	if diags.HasErrors() {
		b.errs = append(b.errs, keyErr(pos(expr.Range()), path, "want an object { key = value, ... }"))
		return object{}, false
	}
	o := object{rng: expr.Range()}
	seen := map[string]bool{}
	for _, p := range pairs {
		k, kdiags := p.Key.Value(nil)
		if kdiags.HasErrors() || k.IsNull() || !k.IsWhollyKnown() || k.Type() != cty.String {
			b.errs = append(b.errs, keyErr(pos(p.Key.Range()), path, "a key must be a name or a string"))
			continue
		}
		name := k.AsString()
		if seen[name] {
			b.errs = append(b.errs, keyErr(pos(p.Key.Range()), fmt.Sprintf("%s.%s", path, name), "set more than once"))
			continue
		}
		seen[name] = true
		o.members = append(o.members, member{name: name, rng: p.Key.Range(), expr: p.Value})
	}
	return o, true
}

// exprObjects reads an object value or a list of them.
func (b *builder) exprObjects(expr hcl.Expression, path string) []object {
	if _, diags := hcl.ExprMap(expr); !diags.HasErrors() {
		o, _ := b.exprObject(path, expr)
		return []object{o}
	}
	elems, diags := hcl.ExprList(expr)
	if diags.HasErrors() {
		b.errs = append(b.errs, keyErr(pos(expr.Range()), path, "want an object or a list of objects"))
		return nil
	}
	var objs []object
	for i, e := range elems {
		if o, ok := b.exprObject(fmt.Sprintf("%s[%d]", path, i), e); ok {
			objs = append(objs, o)
		}
	}
	return objs
}

// memberObject reads m as an object, written as a block or as a value.
func (b *builder) memberObject(path string, m member) (object, bool) {
	if m.obj != nil {
		return *m.obj, true
	}
	return b.exprObject(path, m.expr)
}

// memberObjects reads m as one object or a list of them.
func (b *builder) memberObjects(path string, m member) []object {
	if m.obj != nil {
		return []object{*m.obj}
	}
	return b.exprObjects(m.expr, path)
}
