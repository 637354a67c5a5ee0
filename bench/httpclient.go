package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// requestTimeout bounds every non-blocking request.
const requestTimeout = 30 * time.Second

// httpClient is an HTTP/1.1 keep-alive client for the loopback servers.
type httpClient struct {
	*http.Client
	transport *http.Transport
}

// newClient returns a keep-alive HTTP/1.1 client that keeps up to conns
// idle connections per server and never limits how many it opens.
func newClient(conns int) *httpClient {
	t := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          0, // no total limit
		MaxIdleConnsPerHost:   conns,
		MaxConnsPerHost:       0, // no limit
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     false,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // blocking queries set their own deadline
	}
	return &httpClient{Client: &http.Client{Transport: t}, transport: t}
}

// CloseIdleConnections closes the client's idle connections.
func (c *httpClient) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// statusError is a non-2xx answer.
type statusError struct {
	code int
	body string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.body) }

// do sends req and reads the whole body; a non-2xx status is an error.
func (c *httpClient) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, nil, fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return resp, body, &statusError{code: resp.StatusCode, body: string(bytes.TrimSpace(body))}
	}
	return resp, body, nil
}

// getJSON GETs url into out and returns the X-Consul-Index (0 if absent).
func (c *httpClient) getJSON(ctx context.Context, url string, out any) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, body, err := c.do(req)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(body, out); err != nil {
		return 0, fmt.Errorf("decode %s: %w", url, err)
	}
	return consulIndex(resp), nil
}

// put PUTs body (already JSON) to url.
func (c *httpClient) put(ctx context.Context, url string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	_, _, err = c.do(req)
	return err
}

// consulIndex parses X-Consul-Index; 0 when missing or malformed.
func consulIndex(resp *http.Response) uint64 {
	i, _ := strconv.ParseUint(resp.Header.Get("X-Consul-Index"), 10, 64)
	return i
}
