package dns

import "github.com/warren-mesh/warren/catalog"

// Filter decides what DNS may answer: acl.enable_token_for_dns wires it to
// the default token's authorizer.
type Filter interface {
	ServiceRead(service string) bool
	NodeRead(node string) bool
}

// FilteredView is v seen through f: services and nodes that f may not
// read do not exist. Answers are cached per generation of v, so a change
// to what f allows shows when the catalog next changes.
func FilteredView(v View, f func() Filter) View { return filteredView{v, f} }

type filteredView struct {
	View
	filter func() Filter
}

func (f filteredView) ServiceInstances(service string) []catalog.CheckServiceNode {
	a := f.filter()
	if !a.ServiceRead(service) {
		return nil
	}
	in := f.View.ServiceInstances(service)
	out := make([]catalog.CheckServiceNode, 0, len(in))
	for _, csn := range in {
		if csn.Node != nil && a.NodeRead(csn.Node.Name) {
			out = append(out, csn)
		}
	}
	return out
}

func (f filteredView) Node(name string) (*catalog.Node, bool) {
	if !f.filter().NodeRead(name) {
		return nil, false
	}
	return f.View.Node(name)
}

func (f filteredView) Nodes() []*catalog.Node {
	a := f.filter()
	var out []*catalog.Node
	for _, n := range f.View.Nodes() {
		if a.NodeRead(n.Name) {
			out = append(out, n)
		}
	}
	return out
}

func (f filteredView) ServiceNames() []string {
	a := f.filter()
	var out []string
	for _, s := range f.View.ServiceNames() {
		if a.ServiceRead(s) {
			out = append(out, s)
		}
	}
	return out
}
