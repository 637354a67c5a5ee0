package dns

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/warren-mesh/warren/catalog"
)

// fakeView is an in-memory View. It counts calls, so tests can check that
// answers are served from the cache.
type fakeView struct {
	gen      atomic.Uint64
	mu       sync.Mutex
	nodes    map[string]*catalog.Node
	services map[string][]catalog.CheckServiceNode
	calls    atomic.Int64
}

func newFakeView() *fakeView {
	v := &fakeView{nodes: map[string]*catalog.Node{}, services: map[string][]catalog.CheckServiceNode{}}
	v.gen.Store(7)
	return v
}

func (v *fakeView) Generation() uint64 { return v.gen.Load() }

func (v *fakeView) ServiceInstances(name string) []catalog.CheckServiceNode {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, s := range v.services {
		if strings.EqualFold(k, name) {
			return s
		}
	}
	return nil
}

func (v *fakeView) Node(name string) (*catalog.Node, bool) {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, n := range v.nodes {
		if strings.EqualFold(k, name) {
			return n, true
		}
	}
	return nil, false
}

func (v *fakeView) Nodes() []*catalog.Node {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []*catalog.Node
	for _, n := range v.nodes {
		out = append(out, n)
	}
	return out
}

func (v *fakeView) ServiceNames() []string {
	v.calls.Add(1)
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []string
	for k := range v.services {
		out = append(out, k)
	}
	return out
}

func (v *fakeView) addNode(name, addr string, meta map[string]string) *catalog.Node {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := &catalog.Node{Name: name, Address: addr, Datacenter: "dc1", Meta: meta}
	v.nodes[name] = n
	v.gen.Add(1)
	return n
}

// addService registers an instance on an existing node with the given
// aggregated status ("" for no checks).
func (v *fakeView) addService(node string, svc catalog.Service, status string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := v.nodes[node]
	svc.Node = node
	if svc.ID == "" {
		svc.ID = fmt.Sprintf("%s-%d", svc.Name, len(v.services[svc.Name]))
	}
	if svc.Weights == (catalog.Weights{}) {
		svc.Weights = catalog.Weights{Passing: 1, Warning: 1}
	}
	var checks []*catalog.Check
	if status != "" {
		checks = append(checks, &catalog.Check{Node: node, CheckID: "c-" + svc.ID, Status: status, ServiceID: svc.ID})
	}
	v.services[svc.Name] = append(v.services[svc.Name], catalog.CheckServiceNode{Node: n, Service: &svc, Checks: checks})
	v.gen.Add(1)
}

// testView is the catalog most tests answer from.
func testView() *fakeView {
	v := newFakeView()
	v.addNode("node1", "10.0.0.1", map[string]string{"rack": "r1", "env": "prod"})
	v.addNode("node2", "10.0.0.2", nil)
	v.addNode("node3", "10.0.0.3", nil)
	v.addNode("node4", "2001:db8::4", nil)
	v.addNode("node5", "10.0.0.5", nil)
	v.addNode("hostnode", "host.example.com", nil)

	v.addService("node1", catalog.Service{Name: "web", Tags: []string{"v1", "primary"}, Port: 8080, Weights: catalog.Weights{Passing: 10, Warning: 1}}, catalog.HealthPassing)
	v.addService("node2", catalog.Service{Name: "web", Tags: []string{"v2"}, Port: 8080, Weights: catalog.Weights{Passing: 10, Warning: 1}}, catalog.HealthWarning)
	v.addService("node3", catalog.Service{Name: "web", Tags: []string{"v1"}, Port: 8080}, catalog.HealthCritical)
	v.addService("node4", catalog.Service{Name: "web", Tags: []string{"v2"}, Port: 8080}, catalog.HealthPassing)

	v.addService("node5", catalog.Service{Name: "db", Address: "db.example.com", Port: 5432}, catalog.HealthPassing)
	v.addService("node1", catalog.Service{Name: "api", Address: "10.1.0.9", Port: 9000}, "")
	v.addService("node1", catalog.Service{Name: "web-sidecar-proxy", Kind: "connect-proxy", Port: 21000}, catalog.HealthPassing)
	v.addService("node2", catalog.Service{Name: "web-sidecar-proxy", Port: 21001}, catalog.HealthPassing) // not a proxy kind
	v.addService("node3", catalog.Service{Name: "down", Port: 1}, catalog.HealthCritical)
	// Two instances of one service on one node, same address: SRV shares
	// the additional A record.
	v.addService("node5", catalog.Service{Name: "multi", ID: "m1", Port: 7001}, "")
	v.addService("node5", catalog.Service{Name: "multi", ID: "m2", Port: 7002}, "")
	for i := 1; i <= 40; i++ {
		n := fmt.Sprintf("big%02d", i)
		v.addNode(n, fmt.Sprintf("10.2.0.%d", i), nil)
		v.addService(n, catalog.Service{Name: "big", Port: 80}, catalog.HealthPassing)
	}
	for i := 1; i <= 10; i++ {
		n := fmt.Sprintf("ten%02d", i)
		v.addNode(n, fmt.Sprintf("10.3.0.%d", i), nil)
		v.addService(n, catalog.Service{Name: "ten", Port: 80}, catalog.HealthPassing)
	}
	return v
}
