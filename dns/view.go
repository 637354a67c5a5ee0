package dns

import "github.com/warren-mesh/warren/catalog"

// View is what DNS reads: the agent's local view of the catalog, for the
// agent's own datacenter. Implementations must be cheap, safe for concurrent
// use, and never block on the network: DNS calls them while answering.
//
// Names passed in come from DNS queries and are lowercased; implementations
// should match node and service names case-insensitively.
//
// Returned values are shared with the view and must not be modified; DNS
// never modifies them.
type View interface {
	// Generation changes whenever anything DNS may answer from changes.
	// DNS caches every answer it builds until the generation moves.
	Generation() uint64
	// ServiceInstances returns every instance of the named service with its
	// node and checks (its own and its node's), healthy or not; DNS filters
	// by health and tag.
	ServiceInstances(service string) []catalog.CheckServiceNode
	// Node returns the named node.
	Node(name string) (*catalog.Node, bool)
	// Nodes returns every node, for reverse lookups.
	Nodes() []*catalog.Node
	// ServiceNames returns the name of every service, for reverse lookups
	// of service addresses. DNS builds its reverse index from Nodes and
	// ServiceInstances at most once per generation, and only when a
	// reverse query arrives.
	ServiceNames() []string
}
