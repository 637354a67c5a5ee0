package httpapi

import (
	"context"
	"fmt"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

// The fakes' mesh identity methods: enough for the handlers' tests, which
// check decoding, routing and bad input; the real behaviour is tested
// against servers (server/connect_test.go, test/e2e).

func (f *fakeBackend) CARoots(context.Context, catalog.QueryOptions) (*api.CARootList, catalog.QueryMeta, error) {
	return &api.CARootList{ActiveRootID: "r1", TrustDomain: "x.warren", Roots: []*api.CARoot{{ID: "r1", Active: true}}}, catalog.QueryMeta{Index: 7}, nil
}

func (f *fakeBackend) CAConfiguration(context.Context, catalog.QueryOptions) (*api.CAConfiguration, catalog.QueryMeta, error) {
	return &api.CAConfiguration{Provider: "consul"}, catalog.QueryMeta{Index: 3}, nil
}

func (f *fakeBackend) SetCAConfiguration(_ context.Context, c *api.CAConfiguration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastCAConfig = c
	return nil
}

func (f *fakeBackend) IntentionApply(_ context.Context, op, source, destination string, ixn *api.Intention) error {
	if source == "" {
		return &catalog.FieldError{Field: "source", Reason: "missing"}
	}
	if destination == "" {
		return &catalog.FieldError{Field: "destination", Reason: "missing"}
	}
	if op == "upsert" && ixn.Action != "allow" && ixn.Action != "deny" {
		return &catalog.FieldError{Field: "Action", Reason: fmt.Sprintf("%q is not one of allow, deny", ixn.Action)}
	}
	return nil
}

func (f *fakeBackend) IntentionQuery(_ context.Context, _ catalog.QueryOptions, iq *api.IntentionQuery) (*api.IntentionResult, catalog.QueryMeta, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastIntentionQuery = iq
	switch iq.Query {
	case "authorize":
		return &api.IntentionResult{Allowed: true, Reason: "fake"}, catalog.QueryMeta{Index: 1}, nil
	case "exact":
		return nil, catalog.QueryMeta{}, fmt.Errorf("%w: none", catalog.ErrNotFound)
	}
	return &api.IntentionResult{}, catalog.QueryMeta{Index: 1}, nil
}

func (f *fakeAgent) ConnectCALeaf(_ context.Context, service string, _ catalog.QueryOptions) (*api.LeafCert, catalog.QueryMeta, error) {
	return nil, catalog.QueryMeta{}, fmt.Errorf("%w: service %q is not registered on this agent", catalog.ErrNotFound, service)
}
