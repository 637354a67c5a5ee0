package agent

import (
	"fmt"
	"time"

	"context"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/rpcapi"
)

// CARoots is the trust bundle, from the servers.
func (b Backend) CARoots(ctx context.Context, q catalog.QueryOptions) (*api.CARootList, catalog.QueryMeta, error) {
	var r rpc.CARootsReply
	if err := b.a.router.call(ctx, rpc.MethodCARoots, &rpc.ReadRequest{Options: q}, &r); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.RootsToAPI(&r), r.Meta, nil
}

// CAConfiguration is the CA configuration, from the servers.
func (b Backend) CAConfiguration(ctx context.Context, q catalog.QueryOptions) (*api.CAConfiguration, catalog.QueryMeta, error) {
	var r rpc.CAConfigReply
	if err := b.a.router.call(ctx, rpc.MethodCAConfigGet, &rpc.ReadRequest{Options: q}, &r); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.CAConfigToAPI(&r), r.Meta, nil
}

// SetCAConfiguration sends a CA configuration change to the leader.
func (b Backend) SetCAConfiguration(ctx context.Context, c *api.CAConfiguration) error {
	return b.a.router.call(ctx, rpc.MethodCAConfigSet, rpcapi.CAConfigFromAPI(c), &rpc.Empty{})
}

// IntentionApply sends an intention write to the leader.
func (b Backend) IntentionApply(ctx context.Context, op, source, destination string, ixn *api.Intention) error {
	return b.a.router.call(ctx, rpc.MethodIntentionApply, rpcapi.IntentionApplyFromAPI(op, source, destination, ixn), &rpc.Empty{})
}

// IntentionQuery asks the servers an intention read.
func (b Backend) IntentionQuery(ctx context.Context, q catalog.QueryOptions, iq *api.IntentionQuery) (*api.IntentionResult, catalog.QueryMeta, error) {
	var r rpc.IntentionReply
	if err := b.a.router.call(ctx, rpc.MethodIntentionQuery, rpcapi.IntentionQueryFromAPI(q, iq), &r); err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.IntentionResultToAPI(&r), r.Meta, nil
}

// ConnectCALeaf is the leaf certificate of a local service, by name or ID.
func (a *Agent) ConnectCALeaf(ctx context.Context, service string, q catalog.QueryOptions) (*api.LeafCert, catalog.QueryMeta, error) {
	name := ""
	for _, s := range a.Services() {
		if s.Name == service {
			name = s.Name
			break
		}
		if s.ID == service && name == "" {
			name = s.Name
		}
	}
	if name == "" {
		return nil, catalog.QueryMeta{}, fmt.Errorf("%w: service %q is not registered on this agent", catalog.ErrNotFound, service)
	}
	return a.leaves.Leaf(ctx, name, q)
}

func (a *Agent) hasService(name string) bool {
	for _, s := range a.Services() {
		if s.Name == name {
			return true
		}
	}
	return false
}

func (a *Agent) signLeaf(ctx context.Context, req *rpc.SignRequest) (*rpc.SignReply, error) {
	var r rpc.SignReply
	// Leaves are the agent's to sign, with its own token, whoever's
	// request asked first.
	if err := a.router.call(acl.WithoutSecret(ctx), rpc.MethodCASign, req, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (a *Agent) watchRoots(ctx context.Context, minIndex uint64) (string, string, uint64, error) {
	var r rpc.CARootsReply
	q := catalog.QueryOptions{MinIndex: minIndex, MaxWait: 5 * time.Minute}
	if err := a.router.call(ctx, rpc.MethodCARoots, &rpc.ReadRequest{Options: q}, &r); err != nil {
		return "", "", 0, err
	}
	return r.ActiveRootID, r.TrustDomain, r.Meta.Index, nil
}
