package cli

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxCPUProfile caps the CPU profile `warren debug` takes.
const maxCPUProfile = 30 * time.Second

// debugEntry is one line of the archive's index.json: a file that was
// collected, or one that was not and why.
type debugEntry struct {
	File   string `json:"file,omitempty"`
	Source string `json:"source"`
	Bytes  int    `json:"bytes,omitempty"`
	// Missing says why the item is not in the archive ("" when it is).
	Missing string `json:"missing,omitempty"`
}

// debugIndex is index.json, the archive's table of contents.
type debugIndex struct {
	Version     string       `json:"version"`
	HTTPAddr    string       `json:"http_addr"`
	MetricsAddr string       `json:"metrics_addr,omitempty"`
	Started     string       `json:"started"`
	Finished    string       `json:"finished"`
	Duration    string       `json:"duration"`
	Redaction   string       `json:"redaction"`
	Files       []debugEntry `json:"files"`
}

// runDebug collects what a bug report needs from a running agent into one
// tar.gz: /v1/agent/self and /v1/agent/members, metrics at the start and
// the end, goroutine and heap profiles and a CPU profile from the metrics
// listener's pprof (enable_debug), and the agent's recent logs. Every text
// is redacted (redactSecrets) before it is written.
func runDebug(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("debug", flag.ContinueOnError)
	fs.SetOutput(stderr)
	httpAddr := clientFlags(fs)
	metricsAddr := fs.String("metrics-addr", os.Getenv("WARREN_METRICS_ADDR"),
		"address of the agent's metrics listener (its metrics_addr), where pprof and the recent logs are served with enable_debug (env WARREN_METRICS_ADDR)")
	duration := fs.Duration("duration", 30*time.Second, "how long to collect: metrics are sampled at the start and the end; the CPU profile runs for min(duration, 30s)")
	output := fs.String("output", "", "archive to write (.tar.gz); default warren-debug-TIMESTAMP.tar.gz")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "warren debug: unexpected argument %q\n", fs.Arg(0))
		return ExitUsage
	}
	if *duration <= 0 {
		fmt.Fprintln(stderr, "warren debug: -duration must be positive")
		return ExitUsage
	}
	start := time.Now()
	out := *output
	if out == "" {
		out = "warren-debug-" + start.UTC().Format("20060102T150405Z") + ".tar.gz"
	}
	d := &debugRun{api: httpAddr.client(), files: map[string][]byte{}}
	d.index = debugIndex{Version: Version, HTTPAddr: httpAddr.addr, MetricsAddr: *metricsAddr,
		Started: start.UTC().Format(time.RFC3339), Duration: duration.String(),
		Redaction: "every text file is redacted: encrypt keys and 32-byte base64 keys, tokens, secrets and passwords, PEM private key blocks; binary pprof profiles hold no configuration values"}
	if *metricsAddr != "" {
		d.metrics = newHTTPClient(*metricsAddr)
	}
	// The agent must answer at all, else there is nothing to report.
	if err := d.api.do(ctx, "GET", "/v1/agent/self", nil, nil, nil); err != nil {
		fmt.Fprintf(stderr, "warren debug: the agent does not answer: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stderr, "warren debug: collecting for %s into %s\n", duration, out)

	d.fetch(ctx, "agent/self.json", d.api, "/v1/agent/self")
	d.fetch(ctx, "agent/members.json", d.api, "/v1/agent/members")
	d.fetchMetrics(ctx, "metrics/start.prom")
	pprofOK := d.pprofAvailable(ctx)
	cpuDone := make(chan struct{})
	if pprofOK == "" {
		d.fetch(ctx, "pprof/cmdline.txt", d.metrics, "/debug/pprof/cmdline")
		d.fetch(ctx, "pprof/goroutine.txt", d.metrics, "/debug/pprof/goroutine?debug=2")
		d.fetch(ctx, "pprof/goroutine.pb.gz", d.metrics, "/debug/pprof/goroutine")
		d.fetch(ctx, "pprof/heap.pb.gz", d.metrics, "/debug/pprof/heap")
		secs := int(min(*duration, maxCPUProfile).Round(time.Second) / time.Second)
		secs = max(secs, 1)
		go func() {
			defer close(cpuDone)
			d.fetch(ctx, "pprof/cpu.pb.gz", d.metrics, "/debug/pprof/profile?seconds="+strconv.Itoa(secs))
		}()
	} else {
		close(cpuDone)
		for _, f := range []string{"pprof/goroutine", "pprof/heap", "pprof/cpu"} {
			d.missing(f, "metrics listener /debug/pprof/", pprofOK)
		}
	}

	select {
	case <-ctx.Done():
		fmt.Fprintln(stderr, "warren debug: interrupted; writing what was collected")
	case <-time.After(*duration):
	}
	<-cpuDone
	// The end sample gets its own context: an interrupt should still
	// leave a usable archive.
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	d.fetchMetrics(endCtx, "metrics/end.prom")
	if pprofOK == "" {
		d.fetch(endCtx, "pprof/heap-end.pb.gz", d.metrics, "/debug/pprof/heap")
		if err := d.fetchTo(endCtx, "logs/agent.log", d.metrics, "/debug/logs"); err != nil {
			d.missing("logs/agent.log", "metrics listener /debug/logs", "not collected: "+err.Error())
		}
	} else {
		d.missing("logs/agent.log", "metrics listener /debug/logs",
			"not collected: the recent logs are served only on the metrics listener with enable_debug ("+pprofOK+"); read them with journalctl -u warren or from the agent's stderr")
	}
	d.index.Finished = time.Now().UTC().Format(time.RFC3339)

	if err := d.write(out); err != nil {
		fmt.Fprintf(stderr, "warren debug: %v\n", err)
		return ExitError
	}
	for _, e := range d.index.Files {
		if e.Missing != "" {
			fmt.Fprintf(stderr, "warren debug: %s: %s\n", strings.TrimSuffix(e.File, "/"), e.Missing)
		}
	}
	fmt.Fprintln(stdout, out)
	return ExitOK
}

// debugRun accumulates the archive's files in memory.
type debugRun struct {
	api     *httpClient
	metrics *httpClient // nil without -metrics-addr
	mu      sync.Mutex
	files   map[string][]byte
	order   []string
	index   debugIndex
}

func (d *debugRun) add(name, source string, b []byte) {
	if !strings.HasSuffix(name, ".pb.gz") {
		b = redactSecrets(b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.files[name] = b
	d.order = append(d.order, name)
	d.index.Files = append(d.index.Files, debugEntry{File: name, Source: source, Bytes: len(b)})
}

func (d *debugRun) missing(name, source, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.index.Files = append(d.index.Files, debugEntry{File: name, Source: source, Missing: why})
}

// fetch GETs path from c into the archive as name, or records why not.
func (d *debugRun) fetch(ctx context.Context, name string, c *httpClient, path string) {
	if err := d.fetchTo(ctx, name, c, path); err != nil {
		d.missing(name, path, "not collected: "+err.Error())
	}
}

func (d *debugRun) fetchTo(ctx context.Context, name string, c *httpClient, path string) error {
	if c == nil {
		return errors.New("no -metrics-addr given")
	}
	var buf bytes.Buffer
	if err := c.do(ctx, "GET", path, nil, nil, &buf); err != nil {
		return err
	}
	d.add(name, c.base+path, buf.Bytes())
	return nil
}

// fetchMetrics samples Prometheus text from the metrics listener if given,
// else from the HTTP API.
func (d *debugRun) fetchMetrics(ctx context.Context, name string) {
	c := d.metrics
	if c == nil {
		c = d.api
	}
	d.fetch(ctx, name, c, "/v1/agent/metrics?format=prometheus")
}

// pprofAvailable returns "" when the metrics listener serves pprof, else
// why it does not.
func (d *debugRun) pprofAvailable(ctx context.Context) string {
	if d.metrics == nil {
		return "no -metrics-addr given, and pprof is served only on the metrics listener"
	}
	req, err := http.NewRequestWithContext(ctx, "GET", d.metrics.base+"/debug/pprof/", nil)
	if err != nil {
		return err.Error()
	}
	resp, err := d.metrics.hc.Do(req)
	if err != nil {
		return "metrics listener unreachable: " + err.Error()
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return "enable_debug is off on the agent, so its metrics listener serves no pprof"
	}
	if resp.StatusCode != http.StatusOK {
		return "metrics listener /debug/pprof/: " + resp.Status
	}
	return ""
}

// write writes the archive: index.json first, then the files in the
// order they were collected, all under one directory.
func (d *debugRun) write(path string) error {
	dir := strings.TrimSuffix(strings.TrimSuffix(baseName(path), ".gz"), ".tar") + "/"
	idx, err := json.MarshalIndent(d.index, "", "  ")
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	now := time.Now()
	put := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: dir + name, Mode: 0o600, Size: int64(len(b)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := put("index.json", redactSecrets(append(idx, '\n'))); err != nil {
		return err
	}
	for _, name := range d.order {
		if err := put(name, d.files[name]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := gz.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("write archive: %w", err)
	}
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

// Secret-looking text that redactSecrets replaces.
var (
	// PEM private key blocks, whole.
	pemPrivateKey = regexp.MustCompile(`-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z0-9 ]*PRIVATE KEY-----`)
	// key = "value", "key": "value", key=value, -flag value and
	// -flag=value where the key names a secret (encrypt, token, secret,
	// password, private key, accessor).
	secretKeyName = `[A-Za-z0-9_.\-]*(?i:encrypt|token|secret|passw(?:or)?d|private_?key|accessor)[A-Za-z0-9_.\-]*`
	secretQuoted  = regexp.MustCompile(`("?` + secretKeyName + `"?\s*[:=]\s*)"(?:[^"\\]|\\.)*"`)
	secretFlag    = regexp.MustCompile(`((?:^|[\s\x00])--?` + secretKeyName + `(?:=|\s+|\x00))([^\s"\x00]+)`)
	secretBare    = regexp.MustCompile(`((?:^|[\s\x00&?;,{])` + secretKeyName + `=)([^\s"\x00&,;}]+)`)
	// HTTP credentials.
	secretHeader = regexp.MustCompile(`(?i)((?:X-Consul-Token|X-Warren-Token|Authorization)\s*:\s*)[^\r\n"]+`)
	// A 32-byte key in base64 (a gossip encryption key) wherever it is.
	base64Key = regexp.MustCompile(`(?:^|[^A-Za-z0-9+/])([A-Za-z0-9+/]{43}=)`)
)

const redacted = "[REDACTED]"

// redactSecrets replaces secret-looking values in b: encrypt keys and
// any 32-byte base64 key, values of keys and flags named like tokens,
// secrets and passwords, token headers, and PEM private key blocks.
func redactSecrets(b []byte) []byte {
	b = pemPrivateKey.ReplaceAll(b, []byte("[REDACTED PRIVATE KEY]"))
	b = secretQuoted.ReplaceAll(b, []byte(`${1}"`+redacted+`"`))
	b = secretFlag.ReplaceAll(b, []byte(`${1}`+redacted))
	b = secretBare.ReplaceAll(b, []byte(`${1}`+redacted))
	b = secretHeader.ReplaceAll(b, []byte(`${1}`+redacted))
	b = base64Key.ReplaceAllFunc(b, func(m []byte) []byte {
		// Keep the character before the key.
		return append(m[:len(m)-44:len(m)-44], redacted...)
	})
	return b
}
