package cli

import (
	"context"
	"encoding/json"
	"errors"
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
	// token is sent in X-Consul-Token when set; tokenErr, when set, is
	// returned by every request (an unreadable -token-file).
	token    string
	tokenErr error
}

// clientConfig is how a command reaches the agent: the flags clientFlags
// registers.
type clientConfig struct {
	addr      string
	token     string
	tokenFile string
}

// clientFlags registers -http-addr (default from WARREN_HTTP_ADDR, then
// CONSUL_HTTP_ADDR, then 127.0.0.1:8500), -token and -token-file.
func clientFlags(fs *flag.FlagSet) *clientConfig {
	c := &clientConfig{}
	fs.StringVar(&c.addr, "http-addr", firstEnv("127.0.0.1:8500", "WARREN_HTTP_ADDR", "CONSUL_HTTP_ADDR"),
		"address of the agent's HTTP API (env WARREN_HTTP_ADDR)")
	fs.StringVar(&c.token, "token", "", "ACL token to send (env WARREN_HTTP_TOKEN, CONSUL_HTTP_TOKEN)")
	fs.StringVar(&c.tokenFile, "token-file", "", "file holding the ACL token to send (env WARREN_HTTP_TOKEN_FILE, CONSUL_HTTP_TOKEN_FILE)")
	return c
}

func firstEnv(def string, names ...string) string {
	for _, env := range names {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	return def
}

// client returns the HTTP client of c. The token is the first set of
// -token, -token-file, WARREN_HTTP_TOKEN, CONSUL_HTTP_TOKEN,
// WARREN_HTTP_TOKEN_FILE and CONSUL_HTTP_TOKEN_FILE: flags beat the
// environment, and a token beats a file at the same level.
func (c *clientConfig) client() *httpClient {
	hc := newHTTPClient(c.addr)
	file := c.tokenFile
	switch {
	case c.token != "":
		hc.token = c.token
	case file != "":
	case firstEnv("", "WARREN_HTTP_TOKEN", "CONSUL_HTTP_TOKEN") != "":
		hc.token = firstEnv("", "WARREN_HTTP_TOKEN", "CONSUL_HTTP_TOKEN")
	default:
		file = firstEnv("", "WARREN_HTTP_TOKEN_FILE", "CONSUL_HTTP_TOKEN_FILE")
	}
	if hc.token == "" && file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			hc.tokenErr = fmt.Errorf("read token file: %w", err)
		} else if hc.token = strings.TrimSpace(string(b)); hc.token == "" {
			hc.tokenErr = fmt.Errorf("token file %s is empty", file)
		}
	}
	if strings.ContainsAny(hc.token, "\r\n") {
		hc.token, hc.tokenErr = "", errors.New("the ACL token contains a line break")
	}
	return hc
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
	if c.tokenErr != nil {
		return c.tokenErr
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if c.token != "" {
		req.Header.Set("X-Consul-Token", c.token)
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
