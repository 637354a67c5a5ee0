package checks

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

func TestTTL(t *testing.T) {
	m, rec := startManager(t, ManagerConfig{})
	mustAdd(t, m, Definition{ID: "ttl", TTL: 100 * time.Millisecond})
	mustAdd(t, m, Definition{ID: "tcp", TCP: "127.0.0.1:1", Interval: time.Second})

	if err := m.SetTTL("ttl", catalog.HealthPassing, "all good"); err != nil {
		t.Fatal(err)
	}
	if s, out, _ := m.Status("ttl"); s != catalog.HealthPassing || out != "all good" {
		t.Fatalf("status %q %q after SetTTL", s, out)
	}
	out := waitStatus(t, m, "ttl", catalog.HealthCritical)
	if want := "TTL expired (last output before timeout follows): all good"; out != want {
		t.Errorf("output %q, want %q", out, want)
	}
	eventually(t, "the expiry reaches Notify", func() bool {
		u := rec.forCheck("ttl")
		return len(u) == 2 && u[1].Status == catalog.HealthCritical
	})

	// An update after expiry revives the check.
	if err := m.SetTTL("ttl", catalog.HealthWarning, strings.Repeat("x", 3*MaxOutputLen)); err != nil {
		t.Fatal(err)
	}
	if s, out, _ := m.Status("ttl"); s != catalog.HealthWarning || len(out) > MaxOutputLen {
		t.Fatalf("status %q, output of %d bytes", s, len(out))
	}

	var fe *catalog.FieldError
	if err := m.SetTTL("tcp", catalog.HealthPassing, ""); !errors.As(err, &fe) {
		t.Errorf("SetTTL on a TCP check: %v", err)
	}
	if err := m.SetTTL("nope", catalog.HealthPassing, ""); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("SetTTL on an unknown check: %v", err)
	}
	if err := m.SetTTL("ttl", "pass", ""); !errors.Is(err, catalog.ErrInvalid) {
		t.Errorf("SetTTL with a bad status: %v", err)
	}
}
