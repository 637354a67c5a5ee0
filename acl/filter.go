package acl

import "github.com/warren-mesh/warren/catalog"

// The filters drop what authz may not read, as Consul's read endpoints do.
// Each returns the kept elements and whether it dropped any (the HTTP layer
// then sets X-Consul-Results-Filtered-By-ACLs: true). They filter in place:
// the caller must own the slice or map (not share it with the state store
// or another request). When nothing is dropped the input comes back as is,
// with no allocation.

// FilterNodes keeps the nodes authz may read (node read).
func FilterNodes(authz Authorizer, nodes []*catalog.Node) ([]*catalog.Node, bool) {
	return filterSlice(nodes, func(n *catalog.Node) bool { return authz.NodeRead(n.Name) })
}

// FilterServiceTags keeps the services of a name→tags map authz may read
// (service read), as /v1/catalog/services answers.
func FilterServiceTags(authz Authorizer, services map[string][]string) (map[string][]string, bool) {
	dropped := false
	for name := range services {
		if !authz.ServiceRead(name) {
			delete(services, name)
			dropped = true
		}
	}
	return services, dropped
}

// FilterServiceNodes keeps the rows whose service and node authz may both
// read.
func FilterServiceNodes(authz Authorizer, rows []catalog.ServiceNode) ([]catalog.ServiceNode, bool) {
	return filterSlice(rows, func(r catalog.ServiceNode) bool { return canReadInstance(authz, r.Node, r.Service) })
}

// FilterCheckServiceNodes keeps the rows whose service and node authz may
// both read (the health endpoints).
func FilterCheckServiceNodes(authz Authorizer, rows []catalog.CheckServiceNode) ([]catalog.CheckServiceNode, bool) {
	return filterSlice(rows, func(r catalog.CheckServiceNode) bool { return canReadInstance(authz, r.Node, r.Service) })
}

func canReadInstance(authz Authorizer, n *catalog.Node, s *catalog.Service) bool {
	if n == nil || s == nil {
		return false
	}
	return authz.NodeRead(n.Name) && authz.ServiceRead(s.Name)
}

// FilterChecks keeps the checks authz may read: node read on the check's
// node, and for a service check service read on its service.
func FilterChecks(authz Authorizer, checks []*catalog.Check) ([]*catalog.Check, bool) {
	return filterSlice(checks, func(c *catalog.Check) bool {
		if !authz.NodeRead(c.Node) {
			return false
		}
		return c.ServiceName == "" || authz.ServiceRead(c.ServiceName)
	})
}

// FilterNodeServices keeps the services of one node authz may read: node
// read on the node they run on and service read on each.
func FilterNodeServices(authz Authorizer, services []*catalog.Service) ([]*catalog.Service, bool) {
	return filterSlice(services, func(s *catalog.Service) bool {
		return authz.NodeRead(s.Node) && authz.ServiceRead(s.Name)
	})
}

// filterSlice compacts s to the elements keep accepts, clearing the tail
// so dropped rows are not kept alive by the backing array.
func filterSlice[T any](s []T, keep func(T) bool) ([]T, bool) {
	i := 0
	for i < len(s) && keep(s[i]) {
		i++
	}
	if i == len(s) {
		return s, false
	}
	n := i
	for _, v := range s[i+1:] {
		if keep(v) {
			s[n] = v
			n++
		}
	}
	clear(s[n:])
	return s[:n], true
}
