package checks

import (
	"errors"
	"testing"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

func TestValidate(t *testing.T) {
	http := func(f func(*Definition)) Definition {
		d := Definition{ID: "c", HTTP: "http://127.0.0.1:8080/health", Interval: 10 * time.Second}
		if f != nil {
			f(&d)
		}
		return d
	}
	script := Definition{ID: "s", Args: []string{"/usr/bin/check"}, Interval: 10 * time.Second}
	tests := []struct {
		name      string
		def       Definition
		src       Source
		scripts   bool   // enable_local_script_checks
		wantField string // "" means valid
	}{
		{name: "http", def: http(nil)},
		{name: "name as id", def: http(func(d *Definition) { d.ID, d.Name = "", "web" })},
		{name: "tcp", def: Definition{ID: "c", TCP: "db.internal:5432", Interval: time.Second}},
		{name: "udp", def: Definition{ID: "c", UDP: "[::1]:53", Interval: time.Second}},
		{name: "grpc with service", def: Definition{ID: "c", GRPC: "127.0.0.1:9090/billing", Interval: time.Second}},
		{name: "ttl without interval", def: Definition{ID: "c", TTL: 30 * time.Second}},
		{name: "script from file, enabled", def: script, src: SourceConfigFile, scripts: true},

		{name: "script from API refused", def: script, src: SourceAPI, scripts: true, wantField: "Args"},
		{name: "script from file, not enabled", def: script, src: SourceConfigFile, wantField: "Args"},
		{name: "empty command", def: Definition{ID: "s", Args: []string{""}, Interval: time.Second}, src: SourceConfigFile, scripts: true, wantField: "Args"},
		{name: "no kind", def: Definition{ID: "c", Interval: time.Second}, wantField: "HTTP|TCP|UDP|GRPC|TTL|Args"},
		{name: "two kinds", def: http(func(d *Definition) { d.TCP = "127.0.0.1:80" }), wantField: "TCP"},
		{name: "ttl and script", def: Definition{ID: "c", TTL: time.Second, Args: []string{"x"}}, src: SourceConfigFile, scripts: true, wantField: "Args"},
		{name: "missing interval", def: http(func(d *Definition) { d.Interval = 0 }), wantField: "Interval"},
		{name: "negative interval", def: http(func(d *Definition) { d.Interval = -time.Second }), wantField: "Interval"},
		{name: "negative timeout", def: http(func(d *Definition) { d.Timeout = -time.Second }), wantField: "Timeout"},
		{name: "negative ttl", def: Definition{ID: "c", TTL: -time.Second}, wantField: "TTL"},
		{name: "no id or name", def: http(func(d *Definition) { d.ID = "" }), wantField: "ID"},
		{name: "slash in id", def: http(func(d *Definition) { d.ID = "a/b" }), wantField: "ID"},
		{name: "bad status", def: http(func(d *Definition) { d.Status = "ok" }), wantField: "Status"},
		{name: "ftp url", def: http(func(d *Definition) { d.HTTP = "ftp://host/x" }), wantField: "HTTP"},
		{name: "url without host", def: http(func(d *Definition) { d.HTTP = "http:///x" }), wantField: "HTTP"},
		{name: "bad method", def: http(func(d *Definition) { d.Method = "GET /" }), wantField: "Method"},
		{name: "bad header name", def: http(func(d *Definition) { d.Header = map[string][]string{"X Bad": {"v"}} }), wantField: "Header"},
		{name: "header injection", def: http(func(d *Definition) { d.Header = map[string][]string{"X-A": {"v\r\nX-B: w"}} }), wantField: "Header.X-A"},
		{name: "tcp without port", def: Definition{ID: "c", TCP: "127.0.0.1", Interval: time.Second}, wantField: "TCP"},
		{name: "grpc without port", def: Definition{ID: "c", GRPC: "localhost/svc", Interval: time.Second}, wantField: "GRPC"},
		{name: "negative threshold", def: http(func(d *Definition) { d.FailuresBeforeCritical = -1 }), wantField: "FailuresBeforeCritical"},
		{name: "deregister without service", def: http(func(d *Definition) { d.DeregisterCriticalServiceAfter = time.Minute }), wantField: "DeregisterCriticalServiceAfter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.def.Validate(tt.src, tt.scripts)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			var fe *catalog.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate: %v, want a FieldError on %s", err, tt.wantField)
			}
			if fe.Field != tt.wantField {
				t.Fatalf("Validate: error on %q (%v), want %q", fe.Field, err, tt.wantField)
			}
			if !errors.Is(err, catalog.ErrInvalid) {
				t.Fatalf("error does not unwrap to catalog.ErrInvalid")
			}
		})
	}
}

func TestKind(t *testing.T) {
	for want, d := range map[string]Definition{
		KindHTTP:   {HTTP: "http://x"},
		KindTCP:    {TCP: "x:1"},
		KindUDP:    {UDP: "x:1"},
		KindGRPC:   {GRPC: "x:1"},
		KindTTL:    {TTL: time.Second},
		KindScript: {Args: []string{"true"}},
		"":         {},
	} {
		if got := d.Kind(); got != want {
			t.Errorf("Kind() = %q, want %q", got, want)
		}
	}
}
