package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadConfig reads arbitrary HCL and JSON config files: loading must
// never panic, and each error must say where it comes from (the file, a
// flag, or a key). The seed corpus is the full-config fixtures plus the
// files under testdata/fuzz/FuzzLoadConfig.
func FuzzLoadConfig(f *testing.F) {
	for _, name := range []string{"testdata/full-config.hcl", "testdata/full-config.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.HasSuffix(name, ".json"), b)
	}
	for _, seed := range []string{
		`data_dir = "/d"` + "\nlimits {\n  rpc_rate = 1e308\n}\n",
		`audit { sink "file" { path = "/x" } sink "file" { path = "/y" } }`,
		`limits { limits { } }`,
		`service { name = "web" check { http = "http://x" } }`,
	} {
		f.Add(false, []byte(seed))
	}
	f.Add(true, []byte(`{"limits": {"http_max_conns_per_client": 1.5}, "audit": {"sink": {"file": [{"path": "/a"}]}}}`))
	f.Fuzz(func(t *testing.T, isJSON bool, body []byte) {
		name := "fuzz.hcl"
		if isJSON {
			name = "fuzz.json"
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatal(err)
		}
		b := newBuilder(ModeAgent, testHost())
		b.readFile(path)
		if _, err := b.finish(ModeAgent, testHost()); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if strings.TrimSpace(line) == "" {
					t.Fatalf("an empty error line in %q", err)
				}
			}
		}
	})
}
