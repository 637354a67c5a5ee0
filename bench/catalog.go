package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"time"

	"github.com/warren-mesh/warren/api"
)

// instance names one service instance to register.
type instance struct {
	node      string
	nodeAddr  string
	service   string
	serviceID string
	port      int
}

// registration builds PUT /v1/catalog/register's body: the node, one
// service instance and a passing check on it.
func (in instance) registration() api.CatalogRegistration {
	return api.CatalogRegistration{
		Node:    in.node,
		Address: in.nodeAddr,
		Service: &api.AgentService{
			ID:      in.serviceID,
			Service: in.service,
			Tags:    []string{"bench"},
			Port:    in.port,
			Address: in.nodeAddr,
		},
		Check: &api.AgentCheck{
			Node:      in.node,
			CheckID:   "check-" + in.serviceID,
			Name:      "bench check",
			Status:    "passing",
			ServiceID: in.serviceID,
		},
	}
}

// body is the registration as JSON.
func (in instance) body() []byte {
	b, err := json.Marshal(in.registration())
	if err != nil {
		panic(err) // a fixed struct of strings and ints always encodes
	}
	return b
}

// register PUTs one instance to the server at base.
func register(ctx context.Context, hc *httpClient, base string, in instance) error {
	return hc.put(ctx, base+"/v1/catalog/register", in.body())
}

// registerRetry registers in, retrying for a while if the cluster is not
// ready yet (no leader, leader still settling).
func registerRetry(ctx context.Context, hc *httpClient, base string, in instance) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		err := register(ctx, hc, base, in)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register %s: %w", in.serviceID, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// staleServiceCount reads how many instances of service the server at base
// holds (a stale read, answered by that server itself) and the index.
func staleServiceCount(ctx context.Context, hc *httpClient, base, service string) (int, uint64, error) {
	var rows []json.RawMessage
	idx, err := hc.getJSON(ctx, base+"/v1/catalog/service/"+url.PathEscape(service)+"?stale", &rows)
	return len(rows), idx, err
}
