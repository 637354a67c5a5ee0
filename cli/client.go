package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// httpClient talks to a Warren agent's HTTP API.
type httpClient struct {
	base string
	hc   *http.Client
}

// clientFlags registers -http-addr (default from WARREN_HTTP_ADDR, then
// CONSUL_HTTP_ADDR, then 127.0.0.1:8500).
func clientFlags(fs *flag.FlagSet) *string {
	def := "127.0.0.1:8500"
	for _, env := range []string{"WARREN_HTTP_ADDR", "CONSUL_HTTP_ADDR"} {
		if v := os.Getenv(env); v != "" {
			def = v
			break
		}
	}
	return fs.String("http-addr", def, "address of the agent's HTTP API (env WARREN_HTTP_ADDR)")
}

func newHTTPClient(addr string) *httpClient {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return &httpClient{base: strings.TrimSuffix(addr, "/"), hc: &http.Client{Timeout: 5 * time.Minute, Transport: cliTransport()}} // cli/tls.go
}

// do sends a request and decodes a JSON answer into out (if non-nil); a
// non-2xx answer becomes an error carrying the server's message.
func (c *httpClient) do(ctx context.Context, method, path string, q url.Values, body io.Reader, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if w, ok := out.(io.Writer); ok {
		_, err := io.Copy(w, resp.Body)
		return err
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
