package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/warren-mesh/warren/internal/testutil"
)

// get returns the status code and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsAddrServesPprofOnlyThere: with -metrics-addr and
// -enable-debug, the metrics listener serves both metrics formats and
// pprof; the main API answers 404 for pprof; the metrics listener serves
// nothing of the main API.
func TestMetricsAddrServesPprofOnlyThere(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := startDev(t, "-metrics-addr", metricsAddr, "-enable-debug")

	scrape(t, metricsAddr) // parses with the Prometheus text parser
	code, body := get(t, "http://"+metricsAddr+"/v1/agent/metrics")
	var js struct{ Gauges, Counters []json.RawMessage }
	if code != 200 || json.Unmarshal([]byte(body), &js) != nil || len(js.Gauges) == 0 {
		t.Fatalf("JSON metrics on the metrics listener: %d %.200s", code, body)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/heap", "/debug/pprof/cmdline", "/debug/logs"} {
		if code, body := get(t, "http://"+metricsAddr+path); code != 200 || body == "" {
			t.Errorf("metrics listener %s: %d", path, code)
		}
		if code, _ := get(t, "http://"+p.HTTP+path); code != 404 {
			t.Errorf("main listener %s: %d, want 404", path, code)
		}
	}
	if code, _ := get(t, "http://"+metricsAddr+"/v1/catalog/services"); code != 404 {
		t.Errorf("metrics listener serves the catalog: %d, want 404", code)
	}
	// The main listener still serves metrics too.
	scrape(t, p.HTTP)
	p.stop(t)
}

// TestMetricsAddrWithoutDebugHasNoPprof: without -enable-debug the
// metrics listener serves metrics but no pprof.
func TestMetricsAddrWithoutDebugHasNoPprof(t *testing.T) {
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p := startDev(t, "-metrics-addr", metricsAddr)
	scrape(t, metricsAddr)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/logs"} {
		if code, _ := get(t, "http://"+metricsAddr+path); code != 404 {
			t.Errorf("metrics listener %s: %d, want 404", path, code)
		}
	}
	p.stop(t)
}

// readArchive returns the files of a tar.gz by name (without the top
// directory).
func readArchive(t *testing.T, path string) map[string][]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	files := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		_, name, _ := strings.Cut(h.Name, "/")
		files[name] = b
	}
	return files
}

type debugIndex struct {
	Files []struct{ File, Source, Missing string }
}

// TestDebugArchiveRedactsSecrets: `warren debug` against an agent with
// enable_debug collects self, members, metrics at start and end, the
// profiles and the recent logs into one tar.gz; the gossip key set in the
// config file appears in none of its files, compressed profiles included.
func TestDebugArchiveRedactsSecrets(t *testing.T) {
	const key = "c2VjcmV0LWdvc3NpcC1rZXktZm9yLWUyZS10ZXN0cyE="
	dir := t.TempDir()
	cfg := filepath.Join(dir, "secret.hcl")
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("encrypt = %q\nmetrics_addr = %q\nenable_debug = true\nlog_level = \"debug\"\n", key, metricsAddr)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, "-config-file", cfg)
	out := filepath.Join(dir, "debug.tar.gz")
	stdout, stderr, code := run(t, "debug", "-http-addr", p.HTTP, "-metrics-addr", metricsAddr, "-duration", "2s", "-output", out)
	if code != 0 {
		t.Fatalf("warren debug: exit %d\n%s%s", code, stdout, stderr)
	}
	files := readArchive(t, out)
	for _, want := range []string{"index.json", "agent/self.json", "agent/members.json", "metrics/start.prom", "metrics/end.prom",
		"pprof/goroutine.txt", "pprof/goroutine.pb.gz", "pprof/heap.pb.gz", "pprof/cpu.pb.gz", "pprof/cmdline.txt", "logs/agent.log"} {
		if len(files[want]) == 0 {
			t.Errorf("archive lacks %s (has %d files); stderr:\n%s\nindex:\n%s", want, len(files), stderr, files["index.json"])
		}
	}
	if !bytes.Contains(files["logs/agent.log"], []byte("warren running")) {
		t.Errorf("logs/agent.log lacks the start line:\n%.500s", files["logs/agent.log"])
	}
	for name, b := range files {
		if strings.HasSuffix(name, ".gz") {
			if zr, err := gzip.NewReader(bytes.NewReader(b)); err == nil {
				if u, err := io.ReadAll(zr); err == nil {
					b = u
				}
			}
		}
		if bytes.Contains(b, []byte(key)) {
			t.Errorf("%s contains the gossip key", name)
		}
	}
	p.stop(t)
}

// TestDebugWithoutEnableDebugNotesMissingProfiles: against an agent
// without enable_debug the archive still has self, members and metrics,
// and its index says why profiles and logs are missing.
func TestDebugWithoutEnableDebugNotesMissingProfiles(t *testing.T) {
	p := startDev(t)
	out := filepath.Join(t.TempDir(), "debug.tar.gz")
	_, stderr, code := run(t, "debug", "-http-addr", p.HTTP, "-duration", "1s", "-output", out)
	if code != 0 {
		t.Fatalf("warren debug: exit %d\n%s", code, stderr)
	}
	files := readArchive(t, out)
	for _, want := range []string{"agent/self.json", "agent/members.json", "metrics/start.prom", "metrics/end.prom"} {
		if len(files[want]) == 0 {
			t.Errorf("archive lacks %s", want)
		}
	}
	var idx debugIndex
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		t.Fatalf("index.json: %v", err)
	}
	missing := map[string]string{}
	for _, f := range idx.Files {
		if f.Missing != "" {
			missing[f.File] = f.Missing
		}
	}
	for _, want := range []string{"pprof/goroutine", "pprof/heap", "pprof/cpu", "logs/agent.log"} {
		if missing[want] == "" {
			t.Errorf("index does not say why %s is missing: %s", want, files["index.json"])
		}
	}
	p.stop(t)
}
