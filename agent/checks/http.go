package checks

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/warren-mesh/warren/catalog"
)

// userAgent is sent unless the definition sets its own.
const userAgent = "Warren Health Check"

// httpProber runs an HTTP check with Consul's conventions: 2xx passing, 429
// warning, anything else critical; output "HTTP GET url: 200 OK Output: body".
type httpProber struct {
	client *http.Client
	method string
	url    string
	header http.Header
	body   string
}

func newHTTPProber(d *Definition) *httpProber {
	tr := &http.Transport{
		// Never a proxy from the environment: a check goes where it says.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   d.timeout(),
			KeepAlive: -1,
		}).DialContext,
		TLSClientConfig: &tls.Config{
			InsecureSkipVerify: d.TLSSkipVerify, //nolint:gosec // the operator asked for it
			ServerName:         d.TLSServerName,
		},
		TLSHandshakeTimeout: d.timeout(),
		// A fresh connection per probe, as Consul does: the check measures
		// whether the service accepts connections now, and an idle pool per
		// check would hold sockets open between probes.
		DisableKeepAlives: true,
		ForceAttemptHTTP2: true,
	}
	// No client Timeout: the probe's context bounds the whole request, body
	// included.
	client := &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	if !d.FollowRedirects {
		client.CheckRedirect = func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}
	}
	method := d.Method
	if method == "" {
		method = http.MethodGet
	}
	header := http.Header{}
	for k, vs := range d.Header {
		for _, v := range vs {
			header.Add(k, v)
		}
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", userAgent)
	}
	if header.Get("Accept") == "" {
		header.Set("Accept", "text/plain, text/*, */*")
	}
	return &httpProber{client: client, method: method, url: d.HTTP, header: header, body: d.Body}
}

// maxRedirects bounds the redirects a check follows; a loop ends there
// (critical, "stopped after 5 redirects").
const maxRedirects = 5

// checkRedirect is the redirect policy of HTTP checks, which may be
// pointed (by anyone who may register a check) at any URL, the agent's
// own API included: at most maxRedirects hops; only a GET or HEAD is
// followed, so a 307 or 308 never replays a PUT, POST or DELETE on the
// redirect's target (the check reports the redirect itself); and the
// token headers a definition set are not sent on to the redirect's
// target. The agent never adds a token of its own to a check request.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return http.ErrUseLastResponse
	}
	req.Header.Del("X-Consul-Token")
	req.Header.Del("Authorization")
	return nil
}

func (p *httpProber) probe(ctx context.Context) result {
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, p.url, body)
	if err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	req.Header = p.header.Clone()
	if host := req.Header.Get("Host"); host != "" {
		req.Host = host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	defer resp.Body.Close()
	// One byte more than fits tells capHead to mark the cut.
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxOutputLen+1))
	output := fmt.Sprintf("HTTP %s %s: %s Output: %s", p.method, p.url, resp.Status, b)
	if err != nil {
		output = fmt.Sprintf("HTTP %s %s: %s (reading body: %v) Output: %s", p.method, p.url, resp.Status, err, b)
	}
	status := catalog.HealthCritical
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode <= 299:
		status = catalog.HealthPassing
	case resp.StatusCode == http.StatusTooManyRequests:
		status = catalog.HealthWarning
	}
	return result{status, capHead(output)}
}
