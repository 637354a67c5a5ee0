package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"
)

// TestAgentMonitor streams warren dev's logs with the official client's
// Agent().Monitor and MonitorJSON: debug lines arrive though the process
// logs at info, as they are written, and a bad level is a 400.
func TestAgentMonitor(t *testing.T) {
	p := startDev(t)
	cl := consulClient(t, p)
	stop := make(chan struct{})
	defer close(stop)
	lines, err := cl.Agent().Monitor("debug", stop, nil)
	if err != nil {
		t.Fatal(err)
	}
	jsonLines, err := cl.Agent().MonitorJSON("debug", stop, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 80}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for seen := false; !seen; {
		select {
		case l := <-lines:
			seen = strings.Contains(l, "level=DEBUG") && strings.Contains(l, "PUT /v1/agent/service/register")
		case <-deadline:
			t.Fatal("no debug line for the registration within 10 s")
		}
	}
	for seen := false; !seen; {
		select {
		case l := <-jsonLines:
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("a JSON monitor line is not JSON: %q", l)
			}
			seen = rec["level"] == "DEBUG" && rec["path"] == "PUT /v1/agent/service/register"
		case <-deadline:
			t.Fatal("no JSON debug line for the registration within 10 s")
		}
	}
	resp, err := http.Get("http://" + p.HTTP + "/v1/agent/monitor?loglevel=loud")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("loglevel=loud: %d, want 400", resp.StatusCode)
	}
}
