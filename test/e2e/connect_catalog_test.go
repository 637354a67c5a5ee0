package e2e

import (
	"fmt"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestConnectCatalogEndpoints: /v1/health/connect and /v1/catalog/connect
// list a service's sidecar proxies (not the service itself), as the
// official client's Health().Connect and Catalog().Connect read them, with
// health, tags and ?filter like their non-connect twins.
func TestConnectCatalogEndpoints(t *testing.T) {
	p := startDev(t)
	cl := consulClient(t, p)
	ag := cl.Agent()
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{ID: "web-1", Name: "web", Port: 8080,
		Check:   &consulapi.AgentServiceCheck{CheckID: "web-ttl", TTL: "1m", Status: consulapi.HealthPassing},
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{Port: 21000}}}); err != nil {
		t.Fatal(err)
	}
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{ID: "db-1", Name: "db", Port: 5432}); err != nil {
		t.Fatal(err)
	}

	var entries []*consulapi.ServiceEntry
	waitFor(t, 10*time.Second, func() error {
		var err error
		entries, _, err = cl.Health().Connect("web", "", false, nil)
		if err == nil && len(entries) != 1 {
			err = fmt.Errorf("health connect web: %d entries", len(entries))
		}
		return err
	})
	s := entries[0].Service
	if s.Kind != consulapi.ServiceKindConnectProxy || s.Service != "web-sidecar-proxy" || s.Port != 21000 ||
		s.Proxy == nil || s.Proxy.DestinationServiceName != "web" || s.Proxy.DestinationServiceID != "web-1" {
		t.Fatalf("the proxy of web: %+v (proxy %+v)", s, s.Proxy)
	}
	if len(entries[0].Checks) == 0 {
		t.Fatalf("the proxy of web has no checks: %+v", entries[0])
	}

	cs, _, err := cl.Catalog().Connect("web", "", nil)
	if err != nil || len(cs) != 1 || cs[0].ServiceProxy == nil || cs[0].ServiceProxy.DestinationServiceName != "web" || cs[0].ServicePort != 21000 {
		t.Fatalf("catalog connect web: %+v, %v", cs, err)
	}
	// A service without a proxy has no connect endpoints; a filter applies.
	if cs, _, err := cl.Catalog().Connect("db", "", nil); err != nil || len(cs) != 0 {
		t.Fatalf("catalog connect db: %+v, %v", cs, err)
	}
	if es, _, err := cl.Health().Connect("web", "", false, &consulapi.QueryOptions{Filter: `Service.Port == 1`}); err != nil || len(es) != 0 {
		t.Fatalf("health connect web, filtered out: %+v, %v", es, err)
	}
}
