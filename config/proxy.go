package config

import (
	"encoding/json"
	"fmt"

	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/warren-mesh/warren/api"
)

// ProxyDefaults is the agent-wide proxy configuration (key proxy_defaults),
// Warren's counterpart of Consul's proxy-defaults config entry: every local
// sidecar's own proxy config is merged over it.
//
//	proxy_defaults {
//	  config {
//	    envoy_prometheus_bind_addr = "0.0.0.0:9102"
//	    protocol                   = "http"
//	    opentelemetry { collector_address = "127.0.0.1:4317" }
//	  }
//	  access_logs { enabled = true, type = "stdout" }
//	}
type ProxyDefaults struct {
	// Config is the opaque proxy config (proxy_defaults.config); a later
	// file overrides it key by key.
	Config map[string]any
	// AccessLogs is Consul's AccessLogs (proxy_defaults.access_logs); a
	// later file replaces it.
	AccessLogs *api.AccessLogsConfig
}

const proxyDefaultsKey = "proxy_defaults"

// accessLogFields are the keys of an access_logs object, Consul's.
var accessLogFields = map[string]func(*api.AccessLogsConfig) any{
	"enabled":               func(l *api.AccessLogsConfig) any { return &l.Enabled },
	"disable_listener_logs": func(l *api.AccessLogsConfig) any { return &l.DisableListenerLogs },
	"type":                  func(l *api.AccessLogsConfig) any { return &l.Type },
	"path":                  func(l *api.AccessLogsConfig) any { return &l.Path },
	"json_format":           func(l *api.AccessLogsConfig) any { return &l.JSONFormat },
	"text_format":           func(l *api.AccessLogsConfig) any { return &l.TextFormat },
}

// proxyDefaultsKeys are the keys TestFullConfigSetsEveryKey expects the
// full config to set.
func proxyDefaultsKeys() []string {
	keys := []string{proxyDefaultsKey + ".config"}
	for k := range accessLogFields {
		keys = append(keys, proxyDefaultsKey+".access_logs."+k)
	}
	return keys
}

// decodeProxyDefaults reads proxy_defaults { config { ... } access_logs {
// ... } } into b.cfg.ProxyDefaults.
func (b *builder) decodeProxyDefaults(o object) {
	d := &b.cfg.ProxyDefaults
	for _, m := range o.members {
		path := proxyDefaultsKey + "." + m.name
		switch m.name {
		case "config":
			cfg, ok := b.opaque(path, m)
			if !ok {
				continue
			}
			if d.Config == nil {
				d.Config = map[string]any{}
			}
			for k, v := range cfg {
				d.Config[k] = v
			}
			b.src[path] = pos(m.rng)
		case "access_logs":
			if l := b.decodeAccessLogs(path, m, proxyDefaultsKey+".access_logs."); l != nil {
				d.AccessLogs = l
			}
		default:
			b.errs = append(b.errs, keyErr(pos(m.rng), path, "unknown key (want config or access_logs)"))
		}
	}
}

// decodeAccessLogs reads an access_logs object. With srcPrefix set, where
// each key was set is recorded under srcPrefix+key.
func (b *builder) decodeAccessLogs(path string, m member, srcPrefix string) *api.AccessLogsConfig {
	o, ok := b.memberObject(path, m)
	if !ok {
		return nil
	}
	l := &api.AccessLogsConfig{}
	for _, f := range o.members {
		fpath := path + "." + f.name
		ptr, known := accessLogFields[f.name]
		if !known {
			b.errs = append(b.errs, keyErr(pos(f.rng), fpath, "unknown field (want enabled, disable_listener_logs, type, path, json_format or text_format)"))
			continue
		}
		if _, ok := b.decodeValue(fpath, f, ptr(l)); ok && srcPrefix != "" {
			b.src[srcPrefix+f.name] = pos(f.rng)
		}
	}
	return l
}

// opaque reads m as Consul's opaque config map: nested blocks and objects
// become maps, lists []any, numbers float64, as JSON would decode them.
func (b *builder) opaque(path string, m member) (map[string]any, bool) {
	o, ok := b.memberObject(path, m)
	if !ok {
		return nil, false
	}
	out := make(map[string]any, len(o.members))
	good := true
	for _, e := range o.members {
		epath := path + "." + e.name
		if _, dup := out[e.name]; dup {
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "set more than once"))
			good = false
			continue
		}
		if e.obj != nil {
			sub, ok := b.opaque(epath, e)
			good = good && ok
			out[e.name] = sub
			continue
		}
		v, diags := e.expr.Value(nil)
		if diags.HasErrors() {
			b.addDiags(epath, diags, "")
			good = false
			continue
		}
		raw, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "cannot be represented as JSON: %v", err))
			good = false
			continue
		}
		var val any
		if err := json.Unmarshal(raw, &val); err != nil {
			b.errs = append(b.errs, keyErr(pos(e.rng), epath, "%v", fmt.Errorf("decode: %w", err)))
			good = false
			continue
		}
		out[e.name] = val
	}
	return out, good
}
