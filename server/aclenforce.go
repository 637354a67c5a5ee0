package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
)

// ACL enforcement of Server.Call. The server that receives a request from
// outside the server set (an agent, or this process's HTTP API) checks it
// before running or forwarding it, and filters the reply of a read before
// returning it; a forwarded request was checked by the forwarding server,
// which is trusted (mutual TLS with server certificates authenticates it
// where TLS is on). The ACL methods check their own permissions, and run
// on whichever server serves them, forwarded or not.
//
// Each method's rule follows Consul's: writes need write on what they
// touch, reads are filtered to what the token may read (a dropped row sets
// QueryMeta.ResultsFilteredByACLs), operator and snapshot calls need
// operator or acl permissions, and the status calls are open.

// denied is the refusal of a permission, on name if there is one.
func denied(perm, name string) error {
	if name == "" {
		return fmt.Errorf("%w: token lacks permission '%s'", catalog.ErrPermissionDenied, perm)
	}
	return fmt.Errorf("%w: token lacks permission '%s' on %q", catalog.ErrPermissionDenied, perm, name)
}

// authorizeCall checks req against the caller's identity; the returned
// authorizer filters the reply (nil when the method filters nothing).
func (s *Server) authorizeCall(ctx context.Context, method string, req any) (acl.Authorizer, error) {
	if !s.acl.cfg.Enabled || strings.HasPrefix(method, "ACL.") {
		return nil, nil
	}
	id, err := s.identity(ctx)
	if err != nil {
		return nil, err
	}
	a := id.Authorizer
	switch method {
	case rpc.MethodStatus, rpc.MethodCARoots:
		return nil, nil
	case rpc.MethodRegister:
		return nil, s.vetRegister(a, &req.(*rpc.RegisterRequest).Registration)
	case rpc.MethodDeregister:
		return nil, s.vetDeregister(a, &req.(*rpc.DeregisterRequest).Deregistration)
	case rpc.MethodNodes, rpc.MethodServices, rpc.MethodServiceNodes, rpc.MethodNodeServices,
		rpc.MethodCheckServiceNodes, rpc.MethodServiceChecks, rpc.MethodNodeChecks, rpc.MethodChecksInState:
		return a, nil
	case rpc.MethodRaftConfiguration, rpc.MethodCAConfigGet:
		if !a.OperatorRead() {
			return nil, denied("operator:read", "")
		}
		return nil, nil
	case rpc.MethodRemovePeer, rpc.MethodCAConfigSet:
		if !a.OperatorWrite() {
			return nil, denied("operator:write", "")
		}
		return nil, nil
	case rpc.MethodSnapshotSave, rpc.MethodSnapshotRestore:
		// A snapshot holds every ACL object: management only, as Consul.
		if !a.ACLWrite() {
			return nil, denied("acl:write", "")
		}
		return nil, nil
	case rpc.MethodAutoEncryptSign:
		// Consul's rule: the agent token, with node:write on its node.
		node := req.(*rpc.AutoEncryptSignRequest).Node
		if !a.NodeWrite(node) {
			return nil, denied("node:write", node)
		}
		return nil, nil
	case rpc.MethodCASign:
		// An agent gets leaves for the services on its node; the
		// signer checks the service is registered there.
		node := req.(*rpc.SignRequest).Node
		if !a.NodeWrite(node) {
			return nil, denied("node:write", node)
		}
		return nil, nil
	case rpc.MethodCASignJWT:
		// Likewise for JWT-SVIDs.
		node := req.(*rpc.SignJWTRequest).Node
		if !a.NodeWrite(node) {
			return nil, denied("node:write", node)
		}
		return nil, nil
	case rpc.MethodIntentionApply:
		dst := intentionDestination(req.(*rpc.IntentionApplyRequest).Destination)
		if !a.IntentionWrite(dst) {
			return nil, denied("intention:write", dst)
		}
		return nil, nil
	case rpc.MethodIntentionQuery:
		q := req.(*rpc.IntentionQuery)
		switch q.Query {
		case rpc.IntentionQueryExact, rpc.IntentionQueryCheck:
			if dst := intentionDestination(q.Destination); !a.IntentionRead(dst) {
				return nil, denied("intention:read", dst)
			}
		case rpc.IntentionQueryAuthorize:
			// Consul: authorizing a connection to a service needs
			// write on it (the proxy in front of it asks).
			if dst := intentionDestination(q.Destination); !a.ServiceWrite(dst) {
				return nil, denied("service:write", dst)
			}
		}
		return a, nil
	}
	// A method without a rule is refused, so a new method cannot slip
	// through unchecked.
	if !a.ACLWrite() {
		return nil, denied("acl:write", "")
	}
	return nil, nil
}

// intentionDestination is the service name of "name" or "ns/name".
func intentionDestination(s string) string {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// vetRegister checks a catalog registration: write on each service it
// touches, and write on the node when it creates or changes the node or
// one of its checks is a node check.
func (s *Server) vetRegister(a acl.Authorizer, r *catalog.Registration) error {
	_, node, svcs, err := s.store.NodeServices(nil, r.Node.Name)
	if err != nil {
		return err
	}
	if !r.SkipNodeUpdate && (node == nil || !sameNodeFields(node, &r.Node)) && !a.NodeWrite(r.Node.Name) {
		return denied("node:write", r.Node.Name)
	}
	if r.Service != nil && !a.ServiceWrite(r.Service.Name) {
		return denied("service:write", r.Service.Name)
	}
	for _, c := range r.Checks {
		if c.ServiceID == "" {
			if !a.NodeWrite(r.Node.Name) {
				return denied("node:write", r.Node.Name)
			}
			continue
		}
		name := serviceNameOf(c.ServiceID, r.Service, svcs)
		if !a.ServiceWrite(name) {
			return denied("service:write", name)
		}
	}
	return nil
}

// vetDeregister checks a deregistration: write on the service (or the
// service of the check) it removes, write on the node for a whole node or
// a node check.
func (s *Server) vetDeregister(a acl.Authorizer, d *catalog.Deregistration) error {
	_, _, svcs, err := s.store.NodeServices(nil, d.Node)
	if err != nil {
		return err
	}
	switch {
	case d.ServiceID != "":
		name := serviceNameOf(d.ServiceID, nil, svcs)
		if !a.ServiceWrite(name) {
			return denied("service:write", name)
		}
	case d.CheckID != "":
		_, checks, err := s.store.NodeChecks(nil, d.Node)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID != d.CheckID {
				continue
			}
			if c.ServiceID != "" {
				name := serviceNameOf(c.ServiceID, nil, svcs)
				if !a.ServiceWrite(name) {
					return denied("service:write", name)
				}
				return nil
			}
		}
		if !a.NodeWrite(d.Node) {
			return denied("node:write", d.Node)
		}
	default:
		if !a.NodeWrite(d.Node) {
			return denied("node:write", d.Node)
		}
	}
	return nil
}

// serviceNameOf is the name of the service instance id: the one being
// registered, or one already on the node; the ID itself if unknown (a
// token with write on that name may touch it).
func serviceNameOf(id string, reg *catalog.Service, svcs []*catalog.Service) string {
	if reg != nil && reg.ID == id {
		return reg.Name
	}
	for _, s := range svcs {
		if s.ID == id {
			return s.Name
		}
	}
	return id
}

func sameNodeFields(old, n *catalog.Node) bool {
	if old.Address != n.Address || len(old.Meta) != len(n.Meta) || len(old.TaggedAddresses) != len(n.TaggedAddresses) {
		return false
	}
	for k, v := range n.Meta {
		if old.Meta[k] != v {
			return false
		}
	}
	for k, v := range n.TaggedAddresses {
		if old.TaggedAddresses[k] != v {
			return false
		}
	}
	return true
}

// filterReply drops from a read's reply what a may not read.
func filterReply(a acl.Authorizer, reply any) {
	if a == nil {
		return
	}
	switch r := reply.(type) {
	case *rpc.ReadReply:
		var f, g bool
		if r.Nodes != nil {
			r.Nodes, f = acl.FilterNodes(a, r.Nodes)
		}
		if r.Services != nil {
			r.Services, g = acl.FilterServiceTags(a, r.Services)
			f = f || g
		}
		if r.ServiceNodes != nil {
			r.ServiceNodes, g = acl.FilterServiceNodes(a, r.ServiceNodes)
			f = f || g
		}
		if r.CheckServiceNodes != nil {
			r.CheckServiceNodes, g = acl.FilterCheckServiceNodes(a, r.CheckServiceNodes)
			f = f || g
		}
		if r.Checks != nil {
			r.Checks, g = acl.FilterChecks(a, r.Checks)
			f = f || g
		}
		if r.Node != nil && !a.NodeRead(r.Node.Name) {
			r.Node, r.NodeServices, f = nil, nil, true
		}
		if r.NodeServices != nil {
			r.NodeServices, g = acl.FilterNodeServices(a, r.NodeServices)
			f = f || g
		}
		r.Meta.ResultsFilteredByACLs = r.Meta.ResultsFilteredByACLs || f
	case *rpc.IntentionReply:
		keep := func(xs []*rpc.Intention) []*rpc.Intention {
			out := xs[:0]
			for _, x := range xs {
				if a.IntentionRead(x.DestinationName) {
					out = append(out, x)
				} else {
					r.Meta.ResultsFilteredByACLs = true
				}
			}
			return out
		}
		if r.Intentions != nil {
			r.Intentions = keep(r.Intentions)
		}
		for k, xs := range r.Match {
			r.Match[k] = keep(xs)
		}
	}
}
