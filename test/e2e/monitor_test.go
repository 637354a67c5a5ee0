package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
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

	// warren monitor streams the same lines until interrupted.
	cmd := exec.Command(warrenBin, "monitor", "-log-level", "debug", "-http-addr", p.HTTP)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "PUT /v1/agent/service/register") {
				got <- sc.Text()
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, func() error {
		// Registering again until the line shows: the command may not
		// have subscribed yet when the first one is logged.
		if err := cl.Agent().ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: 80}); err != nil {
			return err
		}
		select {
		case <-got:
			return nil
		case <-time.After(500 * time.Millisecond):
			return fmt.Errorf("warren monitor printed no line for the registration")
		}
	})
	if _, errOut, code := run(t, "monitor", "-log-level", "loud", "-http-addr", p.HTTP); code == 0 || !strings.Contains(errOut, "loglevel") {
		t.Fatalf("warren monitor -log-level loud: code %d, stderr %q", code, errOut)
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
