package agent

import (
	"errors"
	"slices"
	"testing"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect/workload"
)

func uidp(n int) *int { return &n }

func TestValidateIdentity(t *testing.T) {
	ok := []*api.AgentServiceIdentity{
		nil,
		{UID: uidp(0)},
		{UID: uidp(1001)},
		{Path: "/usr/bin/web"},
		{UID: uidp(1001), Path: "/usr/bin/web"},
		{UID: uidp(maxUID)},
	}
	for _, id := range ok {
		if err := validateIdentity(id); err != nil {
			t.Errorf("%+v: %v", id, err)
		}
	}
	bad := []struct {
		field string
		id    *api.AgentServiceIdentity
	}{
		{"Identity", &api.AgentServiceIdentity{}},
		{"Identity.UID", &api.AgentServiceIdentity{UID: uidp(-1)}},
		{"Identity.UID", &api.AgentServiceIdentity{UID: uidp(maxUID + 1)}},
		{"Identity.Path", &api.AgentServiceIdentity{Path: "bin/web"}},
		{"Identity.Path", &api.AgentServiceIdentity{Path: "/usr/../bin/web"}},
	}
	for _, tc := range bad {
		err := validateIdentity(tc.id)
		var fe *catalog.FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: %v, want a FieldError on %s", tc.id, err, tc.field)
		}
		if !errors.Is(err, catalog.ErrInvalid) {
			t.Errorf("%+v: %v is not ErrInvalid (400)", tc.id, err)
		}
	}
	// The registration path validates it too.
	_, _, _, err := serviceFromRegistration(&api.AgentServiceRegistration{Name: "web", Identity: &api.AgentServiceIdentity{}}, 0, false)
	if err == nil {
		t.Fatal("registration with an empty Identity accepted")
	}
}

func TestWorkloadSelectors(t *testing.T) {
	a := &Agent{identities: map[string]workloadSelector{}, identitiesChanged: make(chan struct{})}
	_, ch0 := a.workloadServices(workload.Caller{})
	a.setIdentity(&catalog.Service{ID: "web-1", Name: "web"}, &api.AgentServiceIdentity{UID: uidp(1001)})
	select {
	case <-ch0:
	default:
		t.Fatal("adding a selector did not signal")
	}
	a.setIdentity(&catalog.Service{ID: "web-2", Name: "web"}, &api.AgentServiceIdentity{UID: uidp(1001)})
	a.setIdentity(&catalog.Service{ID: "tool", Name: "tool"}, &api.AgentServiceIdentity{UID: uidp(1001), Path: "/usr/bin/tool"})
	a.setIdentity(&catalog.Service{ID: "any-uid", Name: "anyuid"}, &api.AgentServiceIdentity{Path: "/usr/bin/anyuid"})
	a.setIdentity(&catalog.Service{ID: "root", Name: "root"}, &api.AgentServiceIdentity{UID: uidp(0)})

	cases := []struct {
		c    workload.Caller
		want []string
	}{
		{workload.Caller{UID: 1001, Path: "/usr/bin/other"}, []string{"web"}}, // two instances, one name
		{workload.Caller{UID: 1001, Path: "/usr/bin/tool"}, []string{"tool", "web"}},
		{workload.Caller{UID: 1002, Path: "/usr/bin/tool"}, nil},
		{workload.Caller{UID: 1002, Path: "/usr/bin/anyuid"}, []string{"anyuid"}},
		{workload.Caller{UID: 0}, []string{"root"}},
		{workload.Caller{UID: 1003}, nil},
	}
	for _, tc := range cases {
		got, _ := a.workloadServices(tc.c)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.c, got, tc.want)
		}
	}

	// The same selectors again change nothing; removing one signals.
	_, ch := a.workloadServices(workload.Caller{})
	a.setIdentity(&catalog.Service{ID: "root", Name: "root"}, &api.AgentServiceIdentity{UID: uidp(0)})
	select {
	case <-ch:
		t.Fatal("unchanged selectors signalled")
	default:
	}
	a.setIdentity(&catalog.Service{ID: "root"}, nil)
	select {
	case <-ch:
	default:
		t.Fatal("removing a selector did not signal")
	}
	if got, _ := a.workloadServices(workload.Caller{UID: 0}); got != nil {
		t.Errorf("root still selected: %v", got)
	}
}
