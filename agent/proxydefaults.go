package agent

import (
	"fmt"
	"maps"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/xds"
)

// ProxyDefaults is the agent-wide proxy configuration that every local
// sidecar starts from (the agent's proxy_defaults stanza, Warren's
// counterpart of Consul's proxy-defaults config entry): the service's own
// Proxy.Config keys override these key by key, and the service's
// AccessLogs, when given, replace these whole.
type ProxyDefaults struct {
	Config     map[string]any
	AccessLogs *catalog.AccessLogs
}

// Validate checks the keys the xDS builders read.
func (d ProxyDefaults) Validate() error {
	if _, err := xds.ParseProxyOptions(d.Config, d.AccessLogs); err != nil {
		return fmt.Errorf("proxy_defaults: %w", err)
	}
	return nil
}

// options returns a sidecar's protocol and telemetry options: its own
// proxy config merged over the defaults.
func (d ProxyDefaults) options(p *catalog.ProxyConfig) (xds.ProxyOptions, error) {
	config := d.Config
	if len(p.Config) > 0 {
		config = maps.Clone(d.Config)
		if config == nil {
			config = map[string]any{}
		}
		maps.Copy(config, p.Config)
	}
	logs := d.AccessLogs
	if p.AccessLogs != nil {
		logs = p.AccessLogs
	}
	return xds.ParseProxyOptions(config, logs)
}

// checkProxyOptions rejects a connect-proxy registration whose own proxy
// config has a bad value for a key the xDS builders read.
func checkProxyOptions(svc *catalog.Service) error {
	if svc.Kind != catalog.KindConnectProxy || svc.Proxy == nil {
		return nil
	}
	if _, err := xds.ParseProxyOptions(svc.Proxy.Config, svc.Proxy.AccessLogs); err != nil {
		return &catalog.FieldError{Field: "Proxy.Config", Reason: err.Error()}
	}
	return nil
}
