package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestCSRRateLimitAgainstDev: with connect { ca_config { csr_max_per_second
// = 2 } } in a config file, a burst of leaf requests for eight services is
// partly refused by the leader (counted as rate_limited), and the agent
// backs off and retries until every leaf is signed; no HTTP client sees an
// error.
func TestCSRRateLimitAgainstDev(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "connect.hcl")
	if err := os.WriteFile(cfg, []byte("connect {\n  ca_config {\n    csr_max_per_second = 2\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, "-config-file", cfg)
	cl, err := consulapi.NewClient(&consulapi.Config{Address: p.HTTP})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		c, _, err := cl.Connect().CAGetConfig(nil)
		if err != nil {
			return err
		}
		if c.Config["CSRMaxPerSecond"] != float64(2) {
			return fmt.Errorf("CSRMaxPerSecond %v, want 2 from the config file", c.Config["CSRMaxPerSecond"])
		}
		return nil
	})
	const n = 8
	for i := range n {
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: fmt.Sprintf("svc%d", i), Port: 8080 + i}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leaf, _, err := cl.Agent().ConnectCALeaf(fmt.Sprintf("svc%d", i), nil)
			if err == nil && leaf.CertPEM == "" {
				err = fmt.Errorf("svc%d: empty leaf", i)
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("leaf request: %v", err)
		}
	}
	took := time.Since(start)
	fams := scrape(t, p.HTTP)
	limited := value(fams, "warren_connect_csr_refused_total", map[string]string{"reason": "rate_limited"})
	signed := value(fams, "warren_connect_leaves_signed_total", nil)
	if limited < 1 || signed < n {
		t.Fatalf("%v rate-limited refusals and %v leaves signed, want some refusals and %d leaves", limited, signed, n)
	}
	// At 2/s (burst 2), eight leaves take at least three seconds.
	if took < 3*time.Second {
		t.Fatalf("%d leaves in %s at 2/s", n, took)
	}
	t.Logf("%d leaves in %s, %v refusals", n, took, limited)
}
