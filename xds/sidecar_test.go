package xds

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbac "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilter "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/rbac/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
)

// TestValidateAll checks every built resource and every typed config in
// it independently of the builders' own checks.
func TestValidateAll(t *testing.T) {
	grpcRes, err := BuildGRPC(&GRPCInput{Services: map[string][]Endpoint{
		"greeter": {{Address: "127.0.0.1", Port: 1}},
		"empty":   nil,
	}})
	if err != nil {
		t.Fatal(err)
	}
	for name, build := range map[string]func() (map[resource.Type][]types.Resource, error){
		"sidecar":               func() (map[resource.Type][]types.Resource, error) { return BuildSidecar(representativeSidecar()) },
		"sidecar default allow": func() (map[resource.Type][]types.Resource, error) { return BuildSidecar(defaultAllowSidecar()) },
		"grpc":                  func() (map[resource.Type][]types.Resource, error) { return grpcRes, nil },
	} {
		res, err := build()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for typ, list := range res {
			for _, r := range list {
				n++
				if err := r.(validator).ValidateAll(); err != nil {
					t.Errorf("%s: %s %q: %v", name, typeNames[typ], resourceName(r), err)
				}
			}
		}
		if n == 0 {
			t.Errorf("%s: no resources", name)
		}
	}
}

func TestBuildSidecarRejectsBadInput(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(*SidecarInput)
		want   string
	}{
		"no roots":         {func(in *SidecarInput) { in.RootsPEM = nil }, "RootsPEM is empty"},
		"bad public port":  {func(in *SidecarInput) { in.PublicPort = 70000 }, "PublicPort: port 70000"},
		"no local port":    {func(in *SidecarInput) { in.LocalServicePort = 0 }, "LocalServicePort"},
		"no trust domain":  {func(in *SidecarInput) { in.TrustDomain = "" }, "TrustDomain is empty"},
		"duplicate bind":   {func(in *SidecarInput) { in.Upstreams[1].LocalBindAddress = ""; in.Upstreams[1].LocalBindPort = 9191 }, "both bind 127.0.0.1:9191"},
		"upstream no id":   {func(in *SidecarInput) { in.Upstreams[0].SpiffeID = "" }, `upstream "db": SpiffeID is empty`},
		"endpoint no ip":   {func(in *SidecarInput) { in.Upstreams[0].Endpoints[0].Address = "db.example" }, `upstream "db": endpoint address "db.example"`},
		"endpoint no port": {func(in *SidecarInput) { in.Upstreams[0].Endpoints[0].Port = 0 }, `upstream "db": endpoint 10.0.0.12`},
		"empty source":     {func(in *SidecarInput) { in.Intentions[0].Source = "" }, "intention 0: empty source"},
	} {
		t.Run(name, func(t *testing.T) {
			in := representativeSidecar()
			tc.mutate(in)
			_, err := BuildSidecar(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestValidationErrorNamesResource feeds checkResources an invalid
// resource, as a caller building its own would.
func TestValidationErrorNamesResource(t *testing.T) {
	l := &listener.Listener{Name: "broken", Address: socketAddress("127.0.0.1", 70000)}
	err := checkResources(map[resource.Type][]types.Resource{resource.ListenerType: {l}})
	if err == nil || !strings.Contains(err.Error(), `listener "broken"`) {
		t.Fatalf("err = %v, want it to name listener \"broken\"", err)
	}
}

// TestIntentionRulesMatchFirstMatchSemantics evaluates the RBAC filter the
// way Envoy does, for random intention lists, and compares it with the
// reference rule: the first intention whose source matches decides, else
// the default.
func TestIntentionRulesMatchFirstMatchSemantics(t *testing.T) {
	sources := []string{"a", "b", "c", "d"}
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 2000 {
		in := representativeSidecar()
		in.DefaultAllow = rng.IntN(2) == 0
		in.Intentions = nil
		for range rng.IntN(6) {
			src := sources[rng.IntN(len(sources))]
			if rng.IntN(5) == 0 {
				src = "*"
			}
			in.Intentions = append(in.Intentions, Intention{Source: src, Allow: rng.IntN(2) == 0})
		}
		rules := publicRBAC(t, in)
		for _, client := range sources {
			want := in.DefaultAllow
			for _, it := range in.Intentions {
				if it.Source == "*" || it.Source == client {
					want = it.Allow
					break
				}
			}
			if got := rbacAllows(rules, SpiffeID(in.TrustDomain, in.Datacenter, client)); got != want {
				t.Fatalf("round %d: intentions %+v default allow %v: client %q allowed = %v, want %v", round, in.Intentions, in.DefaultAllow, client, got, want)
			}
		}
	}
}

func publicRBAC(t *testing.T, in *SidecarInput) *rbac.RBAC {
	t.Helper()
	res, err := BuildSidecar(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res[resource.ListenerType] {
		l := r.(*listener.Listener)
		if !strings.HasPrefix(l.GetName(), "public_listener:") {
			continue
		}
		for _, f := range l.GetFilterChains()[0].GetFilters() {
			var cfg rbacfilter.RBAC
			if f.GetTypedConfig().UnmarshalTo(&cfg) == nil {
				return cfg.GetRules()
			}
		}
	}
	t.Fatal("no RBAC filter on the public listener")
	return nil
}

// rbacAllows evaluates rules for a peer with URI SAN id, for the principal
// kinds the builder emits.
func rbacAllows(rules *rbac.RBAC, id string) bool {
	matched := false
	for _, p := range rules.GetPolicies() {
		for _, pr := range p.GetPrincipals() {
			if principalMatches(pr, id) {
				matched = true
			}
		}
	}
	if rules.GetAction() == rbac.RBAC_ALLOW {
		return matched
	}
	return !matched
}

func principalMatches(p *rbac.Principal, id string) bool {
	switch v := p.GetIdentifier().(type) {
	case *rbac.Principal_Authenticated_:
		m := v.Authenticated.GetPrincipalName()
		if m.GetExact() != "" {
			return id == m.GetExact()
		}
		return strings.HasPrefix(id, m.GetPrefix())
	case *rbac.Principal_AndIds:
		for _, q := range v.AndIds.GetIds() {
			if !principalMatches(q, id) {
				return false
			}
		}
		return true
	case *rbac.Principal_OrIds:
		for _, q := range v.OrIds.GetIds() {
			if principalMatches(q, id) {
				return true
			}
		}
		return false
	case *rbac.Principal_NotId:
		return !principalMatches(v.NotId, id)
	}
	panic(fmt.Sprintf("unexpected principal %T", p.GetIdentifier()))
}
