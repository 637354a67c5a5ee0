package server

import (
	"sort"
	"strings"
	"sync"

	"github.com/warren-mesh/warren/catalog"
)

// LocalView reads the catalog straight from this server's state store, for
// the DNS server of a process that runs a server: it holds the whole catalog
// already, so a second copy fed by a watch stream would only cost memory.
// It implements the same read interface as the agent's view.
type LocalView struct {
	s *Server

	mu    sync.Mutex
	gen   uint64
	lower map[string]string // lowercased service name -> name, per gen
}

// LocalView returns a view over this server's state store.
func (s *Server) LocalView() *LocalView { return &LocalView{s: s} }

// Generation moves whenever anything in the store changes.
func (v *LocalView) Generation() uint64 { return v.s.store.LastIndex() }

// ServiceInstances returns a service's instances; the name matches
// case-insensitively.
func (v *LocalView) ServiceInstances(name string) []catalog.CheckServiceNode {
	_, csns, err := v.s.store.CheckServiceNodes(nil, name, nil)
	if err == nil && len(csns) > 0 {
		return csns
	}
	if exact, ok := v.fold(name); ok && exact != name {
		_, csns, _ = v.s.store.CheckServiceNodes(nil, exact, nil)
	}
	return csns
}

// fold finds the stored spelling of a service name.
func (v *LocalView) fold(name string) (string, bool) {
	gen := v.Generation()
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.lower == nil || v.gen != gen {
		_, names, err := v.s.store.Services(nil, nil)
		if err != nil {
			return "", false
		}
		v.lower = make(map[string]string, len(names))
		for n := range names {
			v.lower[strings.ToLower(n)] = n
		}
		v.gen = gen
	}
	exact, ok := v.lower[strings.ToLower(name)]
	return exact, ok
}

// Node returns a node by name, matched case-insensitively.
func (v *LocalView) Node(name string) (*catalog.Node, bool) {
	_, n, _, err := v.s.store.NodeServices(nil, name)
	if err == nil && n != nil {
		return n, true
	}
	for _, n := range v.Nodes() {
		if strings.EqualFold(n.Name, name) {
			return n, true
		}
	}
	return nil, false
}

// Nodes returns every node, sorted by name.
func (v *LocalView) Nodes() []*catalog.Node {
	_, nodes, _ := v.s.store.Nodes(nil, nil)
	return nodes
}

// ServiceNames returns every service name, lowercased and sorted.
func (v *LocalView) ServiceNames() []string {
	_, names, _ := v.s.store.Services(nil, nil)
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, strings.ToLower(n))
	}
	sort.Strings(out)
	return out
}

// Changed returns a channel closed at the next commit to the store.
func (v *LocalView) Changed() <-chan struct{} {
	_, next, _ := v.s.store.ChangesSince(v.s.store.ChangeCursor())
	return next
}
