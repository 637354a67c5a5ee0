package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestValidate runs `warren validate DIR` on good and broken config dirs,
// including the config the package installs in /etc/warren.d, and checks
// the exact output and exit code.
func TestValidate(t *testing.T) {
	packaged, err := os.ReadFile("../packaging/warren.hcl")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		files    map[string]string // nil: the dir does not exist
		code     int
		stdout   string
		stderr   string // $DIR stands for the dir
		noDirArg bool
	}{
		{name: "packaged agent config", files: map[string]string{"warren.hcl": string(packaged)},
			code: ExitOK, stdout: "configuration in $DIR is valid\n"},
		{name: "packaged config plus a server file", files: map[string]string{
			"warren.hcl": string(packaged), "server.hcl": "server = true\nbootstrap_expect = 1\nbind_addr = \"127.0.0.1\"\n"},
			code: ExitOK, stdout: "configuration in $DIR is valid\n"},
		// A server without TLS binds RPC to loopback only, and validate
		// says so (the default bind_addr is 0.0.0.0).
		{name: "server without TLS off loopback", files: map[string]string{
			"warren.hcl": string(packaged), "server.hcl": "server = true\nbootstrap_expect = 1\n"},
			code: ExitError, stderr: "bind_addr: server RPC on 0.0.0.0 without TLS: refusing a non-loopback address; configure tls { defaults { ca_file, cert_file, key_file } } (`warren tls ca create`, `warren tls cert create -server`), or bind to 127.0.0.1\n"},
		{name: "no data_dir", files: map[string]string{"a.hcl": "log_level = \"info\"\n"},
			code: ExitError, stderr: "data_dir: required in agent mode: set data_dir in a config file or use -data-dir\n"},
		{name: "every error with file and line", files: map[string]string{
			"a.hcl":  "data_dir = \"/d\"\nports {\n  http = 99999\n}\nbogus = 1\n",
			"b.json": "{\"node_name\": \"bad_name\"}\n",
		}, code: ExitError, stderr: "$DIR/a.hcl:5: bogus: unknown key\n" +
			"$DIR/b.json:1: node_name: \"bad_name\" is not a valid DNS label (letters, digits and '-', at most 63, not starting or ending with '-')\n" +
			"$DIR/a.hcl:3: ports.http: port 99999 out of range (want 1..65535, or -1 to disable)\n"},
		{name: "agent with a server key", files: map[string]string{"a.hcl": "data_dir = \"/d\"\nbootstrap_expect = 3\n"},
			code: ExitError, stderr: "$DIR/a.hcl:2: bootstrap_expect: only a server may set it; the mode is agent\n"},
		{name: "missing dir", files: nil, code: ExitError,
			stderr: "config dir $DIR: open $DIR: no such file or directory\n" +
				"data_dir: required in agent mode: set data_dir in a config file or use -data-dir\n"},
		{name: "bad proxy_defaults value", files: map[string]string{"a.hcl": "data_dir = \"/d\"\nproxy_defaults {\n  config {\n    envoy_prometheus_bind_addr = \"nowhere\"\n  }\n}\n"},
			code: ExitError, stderr: "proxy_defaults: envoy_prometheus_bind_addr: \"nowhere\" is not ip:port\n"},
		{name: "no dir argument", noDirArg: true, code: ExitUsage, stderr: "usage: warren validate DIR\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "warren.d")
			if tt.files != nil {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, content := range tt.files {
					if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			args := []string{"validate", dir}
			if tt.noDirArg {
				args = args[:1]
			}
			var stdout, stderr bytes.Buffer
			code := Run(context.Background(), args, &stdout, &stderr)
			expand := func(s string) string { return string(bytes.ReplaceAll([]byte(s), []byte("$DIR"), []byte(dir))) }
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			if got, want := stdout.String(), expand(tt.stdout); got != want {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, want)
			}
			if got, want := stderr.String(), expand(tt.stderr); got != want {
				t.Errorf("stderr:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}
