package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warren-mesh/warren/internal/testutil"
)

// The attack tests of issue 8 against a real `warren dev` process started
// from this test binary with small limits. One process serves every
// subtest; they run in order.
func TestLimitsAgainstDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a warren process")
	}
	tmp := t.TempDir()
	auditPath := filepath.Join(tmp, "log", "audit.json")
	cfgFile := filepath.Join(tmp, "limits.hcl")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
check_output_max_size = 128
limits {
  http_max_conns_per_client            = 250
  http_max_blocking_queries_per_client = 100
  http_read_header_timeout             = "2s"
}
audit {
  enabled = true
  sink "file" {
    path = %q
  }
}
`, auditPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	dataRoot := filepath.Join(tmp, "tmp") // the dev data dir is made here
	if err := os.Mkdir(dataRoot, 0o700); err != nil {
		t.Fatal(err)
	}
	ports := testutil.FreePorts(t, 5)
	cmd, _ := startDev(t, ports, []string{"-config-file", cfgFile, "-workload-socket", filepath.Join(tmp, "w.sock")},
		"TMPDIR="+dataRoot, "NOTIFY_SOCKET=")
	addr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	base := "http://" + addr
	waitReady(t, base)

	t.Run("audit", func(t *testing.T) { testAuditLog(t, base, auditPath) })
	t.Run("slowloris", func(t *testing.T) { testSlowloris(t, addr, base) })
	t.Run("conns per client", func(t *testing.T) { testConnsPerClient(t, addr, base) })
	t.Run("blocking queries per client", func(t *testing.T) { testBlockingPerClient(t, addr, base) })
	t.Run("absurd sizes", func(t *testing.T) { testAbsurdSizes(t, addr, base) })
	t.Run("path traversal", func(t *testing.T) { testPathTraversal(t, addr, base, dataRoot) })
	t.Run("check redirects", func(t *testing.T) { testCheckRedirects(t, base) })
	t.Run("metrics", func(t *testing.T) { testLimitMetrics(t, base) })
	t.Run("audit log after kill -9", func(t *testing.T) { testAuditKill9(t, base, auditPath, cmd.Process) })
}

// Writes keep coming when the process is killed with SIGKILL: the audit
// log keeps every write answered well before the kill (the writer takes
// events off its queue as they come), and no line is cut.
func testAuditKill9(t *testing.T, base, path string, proc *os.Process) {
	c := httpFrom("127.0.0.1")
	var (
		mu    sync.Mutex
		acked []time.Time
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"Node":"kill-%d-%d","Address":"10.0.0.1"}`, w, i)
				req, _ := http.NewRequest("PUT", base+"/v1/catalog/register", strings.NewReader(body))
				resp, err := c.Do(req)
				if err != nil {
					return // killed
				}
				resp.Body.Close()
				mu.Lock()
				acked = append(acked, time.Now())
				mu.Unlock()
			}
		})
	}
	time.Sleep(time.Second)
	killedAt := time.Now()
	if err := proc.Kill(); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		t.Fatal("the audit log ends in a cut line")
	}
	registers := 0
	for _, l := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if m["route"] == "PUT /v1/catalog/register" {
			registers++
		}
	}
	early := 0
	for _, at := range acked {
		if at.Before(killedAt.Add(-200 * time.Millisecond)) {
			early++
		}
	}
	t.Logf("%d writes answered, %d more than 200ms before the kill; %d in the audit log", len(acked), early, registers)
	if early == 0 || registers < early {
		t.Fatalf("%d register lines in the audit log, want at least the %d writes answered 200ms before the kill", registers, early)
	}
}

func waitReady(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/v1/status/leader")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && len(b) > 4 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren dev not ready in 60s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpFrom is a client whose connections come from the loopback address
// local.
func httpFrom(local string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true,
		ExpectContinueTimeout: 2 * time.Second}}
}

func send(t *testing.T, c *http.Client, method, url, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url[:min(len(url), 120)], err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b)
}

// quickly asserts that another client (127.0.0.2) is answered at once.
func quickly(t *testing.T, base string) {
	t.Helper()
	start := time.Now()
	if code, body := send(t, httpFrom("127.0.0.2"), "GET", base+"/v1/catalog/services", ""); code != 200 {
		t.Fatalf("another client: %d %q", code, body)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("another client waited %v", took)
	}
}

// dialFrom opens a raw TCP connection from local to addr.
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readStatus reads one response's status code and body from c within d;
// 0 with the error if none came.
func readStatus(c net.Conn, d time.Duration) (int, string, error) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(b), nil
}

// Every write is one JSON line with the accessor (anonymous without
// ACLs), route pattern, status and request ID, and no token secret.
func testAuditLog(t *testing.T, base, path string) {
	const secret = "b7c1e4f0-secret-token-do-not-log"
	c := httpFrom("127.0.0.1")
	if code, body := send(t, c, "PUT", base+"/v1/agent/service/register?token="+secret, `{"Name":"audited","ID":"audited-1","Port":80}`, "X-Consul-Token", secret); code != 200 {
		t.Fatalf("register: %d %q", code, body)
	}
	if code, body := send(t, c, "PUT", base+"/v1/agent/service/deregister/audited-1", "", "X-Consul-Token", secret); code != 200 {
		t.Fatalf("deregister: %d %q", code, body)
	}
	var lines []map[string]any
	var raw []byte
	deadline := time.Now().Add(10 * time.Second)
	for len(lines) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("audit log holds %d lines after 10s: %q", len(lines), raw)
		}
		time.Sleep(50 * time.Millisecond)
		raw, _ = os.ReadFile(path)
		lines = nil
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var m map[string]any
			if l != "" && json.Unmarshal([]byte(l), &m) == nil {
				lines = append(lines, m)
			}
		}
	}
	if strings.Contains(string(raw), secret) || strings.Contains(string(raw), "token=") {
		t.Fatalf("the token secret is in the audit log: %s", raw)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("audit file mode: %v %v", fi, err)
	}
	hexID := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for i, route := range []string{"PUT /v1/agent/service/register", "PUT /v1/agent/service/deregister/{id...}"} {
		m := lines[i]
		ts, _ := m["timestamp"].(string)
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
			t.Errorf("line %d: timestamp %q: %v", i, ts, err)
		}
		id, _ := m["request_id"].(string)
		if m["route"] != route || m["method"] != "PUT" || m["status"] != 200.0 || m["accessor_id"] != "anonymous" ||
			!hexID.MatchString(id) || !strings.HasPrefix(fmt.Sprint(m["client_addr"]), "127.0.0.1:") || !(m["duration_ms"].(float64) > 0) {
			t.Errorf("line %d: %v", i, m)
		}
	}
}

// A client sending its headers a byte at a time is cut off after
// http_read_header_timeout (2s), and others are served meanwhile.
func testSlowloris(t *testing.T, addr, base string) {
	c := dialFrom(t, "127.0.0.1", addr)
	defer c.Close()
	start := time.Now()
	if _, err := io.WriteString(c, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 512)
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		for {
			if _, err := c.Read(buf); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case took := <-closed:
			if took < 1500*time.Millisecond || took > 6*time.Second {
				t.Fatalf("slow connection closed after %v, want about 2s", took)
			}
			return
		case <-tick.C:
			_, _ = io.WriteString(c, "X") // a header that never ends
			if i%3 == 0 {
				quickly(t, base)
			}
		}
		if i > 75 {
			t.Fatal("slow connection still open after 15s")
		}
	}
}

// Over http_max_conns_per_client (250) a connection gets 429 naming the
// limit; another IP is served.
func testConnsPerClient(t *testing.T, addr, base string) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 250 {
		conns = append(conns, dialFrom(t, "127.0.0.3", addr))
	}
	over := dialFrom(t, "127.0.0.3", addr)
	defer over.Close()
	_, _ = io.WriteString(over, "GET /v1/agent/self HTTP/1.1\r\nHost: x\r\n\r\n")
	code, body, err := readStatus(over, 5*time.Second)
	if code != http.StatusTooManyRequests || !strings.Contains(body, "http_max_conns_per_client") {
		t.Fatalf("connection 251: %d %q %v, want 429 naming the limit", code, body, err)
	}
	quickly(t, base)
}

// 2,000 blocking queries from one client: 100 (the cap) are held, every
// other one is answered 429 at once, and another client is answered
// quickly throughout.
func testBlockingPerClient(t *testing.T, addr, base string) {
	resp, err := http.Get(base + "/v1/catalog/services")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	index := resp.Header.Get("X-Consul-Index")
	req := "GET /v1/catalog/services?index=" + index + "&wait=5m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

	var (
		mu       sync.Mutex
		held     []net.Conn
		refused  int
		otherErr []string
	)
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	const attempts, workers = 2000, 50
	next := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range next {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, Timeout: 5 * time.Second}
				c, err := d.Dial("tcp", addr)
				if err != nil {
					mu.Lock()
					otherErr = append(otherErr, err.Error())
					mu.Unlock()
					continue
				}
				_, _ = io.WriteString(c, req)
				code, body, err := readStatus(c, 1500*time.Millisecond)
				mu.Lock()
				switch {
				case err != nil && os.IsTimeout(err):
					held = append(held, c) // blocking: keep it open
				case code == http.StatusTooManyRequests && strings.Contains(body, "http_max_blocking_queries_per_client"):
					refused++
					c.Close()
				default:
					otherErr = append(otherErr, fmt.Sprintf("%d %q %v", code, body, err))
					c.Close()
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	for i := range attempts {
		next <- i
		if i%400 == 399 {
			quickly(t, base)
		}
	}
	close(next)
	wg.Wait()
	t.Logf("%d attempts in %v: %d held, %d refused", attempts, time.Since(start), len(held), refused)
	if len(otherErr) > 0 {
		t.Fatalf("%d unexpected answers, e.g. %s", len(otherErr), otherErr[0])
	}
	if len(held) != 100 || refused != attempts-100 {
		t.Fatalf("%d held, %d refused; want 100 held (the cap) and %d refused", len(held), refused, attempts-100)
	}
	quickly(t, base)
}

// Absurd sizes get a 4xx with a body, never a hang or a 5xx.
func testAbsurdSizes(t *testing.T, addr, base string) {
	c := httpFrom("127.0.0.1")
	huge := `{"Name":"` + strings.Repeat("a", 10<<20) + `"}`
	// Expect: 100-continue, so the refusal arrives before the body is
	// sent: without it, a refusal while the client is still writing
	// resets the connection under load.
	if code, body := send(t, c, "PUT", base+"/v1/agent/service/register", huge, "Expect", "100-continue"); code != 413 || !strings.Contains(body, "http_max_body_bytes") {
		t.Errorf("10 MiB body: %d %q, want 413 naming the limit", code, body[:min(len(body), 200)])
	}
	long := strings.Repeat("n", 100<<10)
	if code, body := send(t, c, "PUT", base+"/v1/agent/service/register", `{"Name":"`+long+`"}`); code != 400 || !strings.Contains(body, "Name") {
		t.Errorf("100 KiB name in a body: %d %q, want 400 naming the field", code, body[:min(len(body), 200)])
	}
	for _, p := range []string{"/v1/catalog/service/", "/v1/health/service/", "/v1/agent/service/deregister/", "/v1/catalog/node/"} {
		method := "GET"
		if strings.Contains(p, "deregister") {
			method = "PUT"
		}
		// 100 KiB is past the server's header limit: Go answers 431
		// with a body; 20 KiB reaches the API, which answers 400.
		for _, n := range []int{100 << 10, 20 << 10} {
			code, body := send(t, c, method, base+p+strings.Repeat("s", n), "")
			want := 400
			if n > 64<<10 {
				want = http.StatusRequestHeaderFieldsTooLarge
			}
			if code != want || strings.TrimSpace(body) == "" {
				t.Errorf("%s%d bytes: %d %q, want %d with a body", p, n, code, body[:min(len(body), 200)], want)
			}
		}
	}
	quickly(t, base)
}

// IDs with path traversal never reach the file system outside the data
// dir (persisted registrations are named by a hash of the ID) and never
// read a file.
func testPathTraversal(t *testing.T, addr, base, dataRoot string) {
	c := httpFrom("127.0.0.1")
	before := listTree(t, dataRoot)
	for _, id := range []string{"../../../../etc/passwd", "..%2f..%2fetc%2fpasswd", `..\..\x`} {
		body := fmt.Sprintf(`{"Name":"trav","ID":%q,"Port":1}`, id)
		code, resp := send(t, c, "PUT", base+"/v1/agent/service/register", body)
		if code != 200 && code != 400 {
			t.Errorf("register ID %q: %d %q", id, code, resp)
		}
	}
	for _, p := range []string{
		"/v1/agent/service/..%2F..%2F..%2Fetc%2Fpasswd",
		"/v1/agent/service/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/v1/catalog/service/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
		"/v1/agent/service/../../../../etc/passwd",
		"/v1/../../etc/passwd",
	} {
		conn := dialFrom(t, "127.0.0.1", addr)
		_, _ = io.WriteString(conn, "GET "+p+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		code, body, err := readStatus(conn, 5*time.Second)
		conn.Close()
		// The mux answers a path with ".." by a redirect to the cleaned
		// path (/etc/passwd), which is a 404.
		if err != nil || strings.Contains(body, "root:") || (code != 400 && code != 404 && code != 301 && code != 307 && code != 200) {
			t.Errorf("GET %s: %d %q %v", p, code, body, err)
		}
		if code == 200 && body != "[]\n" && !strings.Contains(body, `"trav"`) {
			t.Errorf("GET %s: 200 %q", p, body)
		}
	}
	if code, body := send(t, c, "GET", base+"/etc/passwd", ""); code != 404 || strings.Contains(body, "root:") {
		t.Errorf("GET /etc/passwd: %d %q", code, body)
	}
	for _, id := range []string{"..%2F..%2F..%2F..%2Fetc%2Fpasswd", "..%2F..%2Fx"} {
		code, _ := send(t, c, "PUT", base+"/v1/agent/service/deregister/"+id, "")
		if code != 200 && code != 404 && code != 400 {
			t.Errorf("deregister %s: %d", id, code)
		}
	}
	// Every file written since is under the dev data dir's local/ (the
	// persisted registrations), named by a hash.
	hashed := regexp.MustCompile(`/local/[a-z]+/[0-9a-f]{64}\.json(\.tmp[0-9]*)?$`)
	for p := range listTree(t, dataRoot) {
		if before[p] {
			continue
		}
		if !hashed.MatchString(p) && !strings.Contains(p, "/raft/") && !strings.Contains(p, "/serf/") {
			t.Errorf("new file %s", p)
		}
	}
}

func listTree(t *testing.T, root string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			out[p] = true
		}
		return nil
	})
	return out
}

// HTTP checks pointed, through redirects, at the agent's own write
// endpoints do not write; a redirect loop ends; long outputs are cut to
// check_output_max_size.
func testCheckRedirects(t *testing.T, base string) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/to-deregister": // a PUT replayed by a 307 would deregister the victim
			http.Redirect(w, r, base+"/v1/agent/service/deregister/victim", http.StatusTemporaryRedirect)
		case "/to-self":
			http.Redirect(w, r, base+"/v1/agent/self", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/big":
			io.WriteString(w, strings.Repeat("0123456789", 1000))
		}
	}))
	defer target.Close()
	c := httpFrom("127.0.0.1")
	// DisableRedirects false: follow them (Warren's default is not to).
	reg := fmt.Sprintf(`{"Name":"victim","ID":"victim","Port":1,"Checks":[
		{"CheckID":"put-redirect","HTTP":%q,"Method":"PUT","Interval":"1s","Timeout":"2s","DisableRedirects":false,
		 "Header":{"X-Consul-Token":["check-secret"]}},
		{"CheckID":"get-redirect","HTTP":%q,"Interval":"1s","Timeout":"2s","DisableRedirects":false},
		{"CheckID":"no-follow","HTTP":%q,"Interval":"1s","Timeout":"2s"},
		{"CheckID":"loop","HTTP":%q,"Interval":"1s","Timeout":"2s","DisableRedirects":false},
		{"CheckID":"big","HTTP":%q,"Interval":"1s","Timeout":"2s"}]}`,
		target.URL+"/to-deregister", target.URL+"/to-self", target.URL+"/to-self", target.URL+"/loop", target.URL+"/big")
	if code, body := send(t, c, "PUT", base+"/v1/agent/service/register", reg); code != 200 {
		t.Fatalf("register: %d %q", code, body)
	}
	type check struct{ Status, Output string }
	var checks map[string]check
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, body := send(t, c, "GET", base+"/v1/agent/checks", "")
		checks = nil
		_ = json.Unmarshal([]byte(body), &checks)
		ran := 0
		for _, id := range []string{"put-redirect", "get-redirect", "no-follow", "loop", "big"} {
			if checks[id].Output != "" {
				ran++
			}
		}
		if ran == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("checks did not run in 20s: %+v", checks)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, _ := send(t, c, "GET", base+"/v1/agent/service/victim", ""); code != 200 {
		t.Errorf("the victim service is gone (%d): a check replayed a PUT through a redirect", code)
	}
	if ck := checks["put-redirect"]; ck.Status != "critical" || !strings.Contains(ck.Output, "307") {
		t.Errorf("put-redirect: %+v, want critical reporting the 307", ck)
	}
	if ck := checks["get-redirect"]; ck.Status != "passing" {
		t.Errorf("get-redirect (to the agent's own read endpoint): %+v, want passing", ck)
	}
	if ck := checks["no-follow"]; ck.Status != "critical" || !strings.Contains(ck.Output, "302") {
		t.Errorf("no-follow: %+v, want critical reporting the 302", ck)
	}
	if ck := checks["loop"]; ck.Status != "critical" || !strings.Contains(ck.Output, "stopped after 5 redirects") {
		t.Errorf("loop: %+v, want critical after the redirect limit", ck)
	}
	if ck := checks["big"]; len(ck.Output) > 128 || !strings.Contains(ck.Output, "(output truncated)") {
		t.Errorf("big: %d bytes %q, want at most 128 with the marker", len(ck.Output), ck.Output)
	}
	send(t, c, "PUT", base+"/v1/agent/service/deregister/victim", "")
}

// Each limit that refused something counted it.
func testLimitMetrics(t *testing.T, base string) {
	_, body := send(t, httpFrom("127.0.0.2"), "GET", base+"/v1/agent/metrics?format=prometheus", "")
	got := map[string]float64{}
	re := regexp.MustCompile(`(?m)^warren_limits_rejections_total\{limit="([a-z_]+)"\} ([0-9.e+]+)$`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		got[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	for limit, least := range map[string]float64{
		"http_max_conns_per_client": 1, "http_max_blocking_queries_per_client": 1900,
		"http_max_body_bytes": 1, "check_output_max_size": 1,
	} {
		if got[limit] < least {
			t.Errorf("warren_limits_rejections_total{limit=%q} = %v, want at least %v (all: %v)", limit, got[limit], least, got)
		}
	}
	if _, ok := got["rpc_rate"]; !ok {
		t.Errorf("no rpc_rate series: %v", got)
	}
}
