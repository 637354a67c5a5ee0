package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"
)

var metricName = regexp.MustCompile(`warren_[a-z0-9_]+`)

// multiServerOnly are metrics with series only in a cluster of several
// servers, which this test's single dev server cannot show, and the test
// that scrapes them from one.
var multiServerOnly = map[string]string{
	"warren_raft_follower_last_contact_seconds": "server.TestFollowerLastContactMetric",
}

// TestDashboardsUseRealMetrics checks that every metric a panel of the
// Grafana dashboards in docs/dashboards names is one a server or an agent
// exports, after driving each subsystem once.
func TestDashboardsUseRealMetrics(t *testing.T) {
	serf := testutil.FreePort(t)
	p := startDev(t, "-serf-lan-port", strconv.Itoa(serf))
	agentHTTP, agentDNS := testutil.FreePort(t), testutil.FreePort(t)
	a := exec.Command(warrenBin, "agent", "-node", "dash-agent", "-data-dir", t.TempDir(),
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(agentHTTP), "-dns-port", strconv.Itoa(agentDNS),
		"-server-port", strconv.Itoa(testutil.FreePort(t)), "-serf-lan-port", strconv.Itoa(testutil.FreePort(t)),
		"-grpc-port", "-1", "-retry-join", fmt.Sprintf("127.0.0.1:%d", serf), "-retry-interval", "1s")
	var alog bytes.Buffer
	a.Stdout, a.Stderr = &alog, &alog
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Process.Kill()
		_ = a.Wait()
		if t.Failed() {
			t.Logf("agent log:\n%s", alog.String())
		}
	})
	agentAddr := fmt.Sprintf("127.0.0.1:%d", agentHTTP)
	put := func(addr, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPut, "http://"+addr+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("PUT %s: %s %s", path, resp.Status, b)
		}
	}
	waitFor(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + agentAddr + "/v1/agent/health/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("agent not ready: %s", resp.Status)
		}
		return nil
	})
	// Drive every subsystem once: a service with a TTL check on the agent,
	// a check update, a blocking query, a DNS query, a leaf certificate.
	put(agentAddr, "/v1/agent/service/register", `{"Name":"dash","Port":80,"Check":{"CheckID":"dash-ttl","TTL":"30s"}}`)
	put(agentAddr, "/v1/agent/check/pass/dash-ttl", "")
	waitFor(t, 10*time.Second, func() error {
		resp, err := http.Get("http://" + p.HTTP + "/v1/health/service/dash?passing&index=1&wait=1s")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "dash") {
			return fmt.Errorf("dash not passing yet")
		}
		return nil
	})
	if resp, err := http.Get("http://" + agentAddr + "/v1/agent/connect/ca/leaf/dash"); err == nil {
		resp.Body.Close()
	}
	if _, err := exec.LookPath("dig"); err == nil {
		_ = exec.Command("dig", "+short", "+tries=1", "+time=2", "@127.0.0.1", "-p", strconv.Itoa(agentDNS), "dash.service.warren").Run()
	}

	exported := map[string]bool{}
	for _, addr := range []string{p.HTTP, agentAddr} {
		for name := range scrape(t, addr) {
			exported[name] = true
		}
	}
	files, err := filepath.Glob("../../docs/dashboards/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("dashboards: %v %v", files, err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range metricName.FindAllString(string(b), -1) {
			base := m
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if strings.HasSuffix(m, suffix) && exported[strings.TrimSuffix(m, suffix)] {
					base = strings.TrimSuffix(m, suffix)
				}
			}
			if !exported[base] && multiServerOnly[base] == "" {
				t.Errorf("%s: panel uses %s, which no server or agent exports", filepath.Base(f), m)
			}
		}
	}
	p.stop(t)
}
