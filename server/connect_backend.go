package server

import (
	"context"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/rpc/rpcapi"
)

// CARoots is the trust bundle.
func (s *Server) CARoots(ctx context.Context, q catalog.QueryOptions) (*api.CARootList, catalog.QueryMeta, error) {
	r, err := call[rpc.ReadRequest, rpc.CARootsReply](ctx, s, rpc.MethodCARoots, &rpc.ReadRequest{Options: q})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.RootsToAPI(r), r.Meta, nil
}

// CAConfiguration is the CA configuration.
func (s *Server) CAConfiguration(ctx context.Context, q catalog.QueryOptions) (*api.CAConfiguration, catalog.QueryMeta, error) {
	r, err := call[rpc.ReadRequest, rpc.CAConfigReply](ctx, s, rpc.MethodCAConfigGet, &rpc.ReadRequest{Options: q})
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.CAConfigToAPI(r), r.Meta, nil
}

// SetCAConfiguration changes the CA configuration on the leader.
func (s *Server) SetCAConfiguration(ctx context.Context, c *api.CAConfiguration) error {
	_, err := call[rpc.CAConfigSetRequest, rpc.Empty](ctx, s, rpc.MethodCAConfigSet, rpcapi.CAConfigFromAPI(c))
	return err
}

// IntentionApply upserts or deletes an intention on the leader.
func (s *Server) IntentionApply(ctx context.Context, op, source, destination string, ixn *api.Intention) error {
	_, err := call[rpc.IntentionApplyRequest, rpc.Empty](ctx, s, rpc.MethodIntentionApply, rpcapi.IntentionApplyFromAPI(op, source, destination, ixn))
	return err
}

// IntentionQuery answers an intention read.
func (s *Server) IntentionQuery(ctx context.Context, q catalog.QueryOptions, iq *api.IntentionQuery) (*api.IntentionResult, catalog.QueryMeta, error) {
	r, err := call[rpc.IntentionQuery, rpc.IntentionReply](ctx, s, rpc.MethodIntentionQuery, rpcapi.IntentionQueryFromAPI(q, iq))
	if err != nil {
		return nil, catalog.QueryMeta{}, err
	}
	return rpcapi.IntentionResultToAPI(r), r.Meta, nil
}
