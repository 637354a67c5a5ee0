package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestPackageVersion(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{in: "v1.2.3", want: "1.2.3"},
		{in: "1.2", want: "1.2"},
		{in: "v1.2.3-dirty", want: "1.2.3+dirty"},
		{in: "v1.2.3-4-gabc1234", want: "1.2.3+git4.gabc1234"},
		{in: "v1.2.3-14-gabc1234-dirty", want: "1.2.3+git14.gabc1234.dirty"},
		{in: "9a0053d", want: "0.0.0+g9a0053d"},
		{in: "e9c3804-dirty", want: "0.0.0+ge9c3804.dirty"},
		{in: "2.0~rc1", want: "2.0~rc1"},
		{in: "dev", err: `version "dev": want git describe output`},
		{in: "v1.2.3-rc1", err: `version "v1.2.3-rc1": want git describe output`},
		{in: "", err: `version "": want`},
	}
	for _, tt := range tests {
		got, err := packageVersion(tt.in)
		switch {
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.err)):
			t.Errorf("packageVersion(%q) = %q, %v; want error %q...", tt.in, got, err, tt.err)
		case tt.err == "" && (err != nil || got != tt.want):
			t.Errorf("packageVersion(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// The dates in the packages, fixed so that listings are stable.
var testMTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var built struct {
	once     sync.Once
	dir      string // holds the binaries and the packages
	deb, rpm string
	err      error
}

// buildPackages builds warren as make packages does (static PIE, stripped,
// the version stamped) and packages it as version; the packages of the
// first version are built once per test binary.
func buildPackages(t *testing.T, version string) (deb, rpm string) {
	t.Helper()
	const first = "v1.2.3-4-gabc1234"
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "warren-packaging-test-")
		if built.err == nil {
			built.deb, built.rpm, built.err = buildVersion(first)
		}
	})
	if built.err != nil {
		t.Fatalf("build packages: %v", built.err)
	}
	if version == first {
		return built.deb, built.rpm
	}
	deb, rpm, err := buildVersion(version)
	if err != nil {
		t.Fatalf("build packages: %v", err)
	}
	return deb, rpm
}

func buildVersion(version string) (deb, rpm string, err error) {
	bin := filepath.Join(built.dir, "warren-"+version)
	cmd := exec.Command("go", "build", "-tags", "grpcnotrace", "-trimpath", "-buildmode=pie",
		"-ldflags", "-s -w -X github.com/warren-mesh/warren/cli.Version="+version, "-o", bin, "../cmd/warren")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	paths, err := build(options{Version: version, Arch: "amd64", Binary: bin, Out: built.dir, Root: "..", MTime: testMTime})
	if err != nil {
		return "", "", err
	}
	return paths[0], paths[1], nil
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s is not installed (.ci/run installs it)", name)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// sizeRE blanks the sizes of files whose size changes with every build.
var sizeRE = regexp.MustCompile(` +[0-9]+ 2026-01-02 `)

func TestDeb(t *testing.T) {
	deb, _ := buildPackages(t, "v1.2.3-4-gabc1234")
	if got, want := filepath.Base(deb), "warren_1.2.3+git4.gabc1234_amd64.deb"; got != want {
		t.Errorf("file name %s, want %s", got, want)
	}
	t.Run("contents", func(t *testing.T) {
		got := sizeRE.ReplaceAllString(run(t, "dpkg-deb", "--contents", deb), " SIZE ")
		want := `drwxr-xr-x root/root SIZE 03:04 ./etc/
drwxr-xr-x root/root SIZE 03:04 ./etc/default/
-rw-r--r-- root/root SIZE 03:04 ./etc/default/warren
drwxr-xr-x root/root SIZE 03:04 ./etc/warren.d/
-rw-r--r-- root/root SIZE 03:04 ./etc/warren.d/warren.hcl
drwxr-xr-x root/root SIZE 03:04 ./lib/
drwxr-xr-x root/root SIZE 03:04 ./lib/systemd/
drwxr-xr-x root/root SIZE 03:04 ./lib/systemd/system/
-rw-r--r-- root/root SIZE 03:04 ./lib/systemd/system/warren-agent.service
-rw-r--r-- root/root SIZE 03:04 ./lib/systemd/system/warren-server.service
drwxr-xr-x root/root SIZE 03:04 ./usr/
drwxr-xr-x root/root SIZE 03:04 ./usr/bin/
-rwxr-xr-x root/root SIZE 03:04 ./usr/bin/warren
drwxr-xr-x root/root SIZE 03:04 ./usr/share/
drwxr-xr-x root/root SIZE 03:04 ./usr/share/doc/
drwxr-xr-x root/root SIZE 03:04 ./usr/share/doc/warren/
-rw-r--r-- root/root SIZE 03:04 ./usr/share/doc/warren/changelog.gz
-rw-r--r-- root/root SIZE 03:04 ./usr/share/doc/warren/copyright
drwxr-xr-x root/root SIZE 03:04 ./var/
drwxr-xr-x root/root SIZE 03:04 ./var/lib/
drwxr-xr-x root/root SIZE 03:04 ./var/lib/warren/
`
		if got != want {
			t.Errorf("dpkg-deb --contents:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("control", func(t *testing.T) {
		for field, want := range map[string]string{
			"Package":      "warren",
			"Version":      "1.2.3+git4.gabc1234",
			"Architecture": "amd64",
			"Depends":      "adduser, procps",
			"Section":      "net",
			"Priority":     "optional",
		} {
			if got := strings.TrimSpace(run(t, "dpkg-deb", "--field", deb, field)); got != want {
				t.Errorf("%s: %q, want %q", field, got, want)
			}
		}
		dir := t.TempDir()
		run(t, "dpkg-deb", "--control", deb, dir)
		conffiles, err := os.ReadFile(filepath.Join(dir, "conffiles"))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(conffiles), "/etc/default/warren\n/etc/warren.d/warren.hcl\n"; got != want {
			t.Errorf("conffiles %q, want %q", got, want)
		}
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			got, err := os.ReadFile(filepath.Join(dir, s))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("scripts/deb", s))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from scripts/deb/%s", s, s)
			}
			if fi, err := os.Stat(filepath.Join(dir, s)); err != nil || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, %v; want 0755", s, fi.Mode(), err)
			}
		}
		for _, s := range []string{"preinst"} {
			if _, err := os.Stat(filepath.Join(dir, s)); err == nil {
				t.Errorf("unexpected %s", s)
			}
		}
	})
	t.Run("files", func(t *testing.T) {
		dir := t.TempDir()
		run(t, "dpkg-deb", "--extract", deb, dir)
		for pkgPath, src := range map[string]string{
			"etc/warren.d/warren.hcl":                  "warren.hcl",
			"etc/default/warren":                       "../systemd/warren.default",
			"lib/systemd/system/warren-agent.service":  "../systemd/warren-agent.service",
			"lib/systemd/system/warren-server.service": "../systemd/warren-server.service",
			"usr/share/doc/warren/copyright":           "copyright",
		} {
			got, err := os.ReadFile(filepath.Join(dir, pkgPath))
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s", pkgPath, src)
			}
		}
		out, err := exec.Command(filepath.Join(dir, "usr/bin/warren"), "validate", filepath.Join(dir, "etc/warren.d")).CombinedOutput()
		if err != nil {
			t.Errorf("the packaged warren does not validate the packaged config: %v\n%s", err, out)
		}
	})
	t.Run("lintian", func(t *testing.T) {
		if _, err := exec.LookPath("lintian"); err != nil {
			t.Skip("lintian is not installed (.ci/run installs it)")
		}
		// lintian exits non-zero for warnings too; only errors fail.
		out, err := exec.Command("lintian", "--allow-root", "--tag-display-limit", "0", deb).CombinedOutput()
		t.Logf("lintian %s (%v):\n%s", deb, err, out)
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "E: ") {
				t.Errorf("lintian error: %s", line)
			}
		}
	})
}

func TestRPM(t *testing.T) {
	_, rpm := buildPackages(t, "v1.2.3-4-gabc1234")
	if got, want := filepath.Base(rpm), "warren-1.2.3+git4.gabc1234.x86_64.rpm"; got != want {
		t.Errorf("file name %s, want %s", got, want)
	}
	t.Run("files", func(t *testing.T) {
		got := run(t, "rpm", "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]`, rpm)
		want := `-rw-r--r-- root root cn /etc/default/warren
drwxr-xr-x root root  /etc/warren.d
-rw-r--r-- root root cn /etc/warren.d/warren.hcl
-rw-r--r-- root root  /lib/systemd/system/warren-agent.service
-rw-r--r-- root root  /lib/systemd/system/warren-server.service
-rwxr-xr-x root root  /usr/bin/warren
-rw-r--r-- root root  /usr/share/doc/warren/copyright
drwxr-xr-x root root  /var/lib/warren
`
		if got != want {
			t.Errorf("rpm files:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		got := run(t, "rpm", "-qp", "--qf", `%{NAME} %{VERSION} %{RELEASE} %{ARCH} %{LICENSE}\n`, rpm)
		if want := "warren 1.2.3+git4.gabc1234 1 x86_64 UNLICENSED\n"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		req := run(t, "rpm", "-qp", "--requires", rpm)
		if !strings.Contains(req, "shadow-utils") {
			t.Errorf("requires:\n%s\nwant shadow-utils", req)
		}
	})
	t.Run("scripts", func(t *testing.T) {
		got := run(t, "rpm", "-qp", "--scripts", rpm)
		for _, s := range []struct{ header, file string }{
			{"postinstall scriptlet (using /bin/sh):\n", "scripts/rpm/post"},
			{"preuninstall scriptlet (using /bin/sh):\n", "scripts/rpm/preun"},
			{"postuninstall scriptlet (using /bin/sh):\n", "scripts/rpm/postun"},
		} {
			body, err := os.ReadFile(s.file)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(got, s.header+string(body)) {
				t.Errorf("rpm --scripts lacks %s:\n%s", s.file, got)
			}
		}
		if strings.Contains(got, "preinstall scriptlet") {
			t.Errorf("unexpected preinstall scriptlet")
		}
	})
}

// TestMaintainerScriptsParse: every script is valid POSIX sh.
func TestMaintainerScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob("scripts/*/*")
	if len(scripts) != 6 {
		t.Fatalf("found %d scripts, want 6", len(scripts))
	}
	for _, s := range scripts {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", s, err, out)
		}
	}
}

// TestUnits checks what the issue asks of the units, then has systemd
// verify them (with /usr/bin/warren pointing at a built binary).
func TestUnits(t *testing.T) {
	common := []string{
		"Type=notify", "User=warren", "Group=warren", "EnvironmentFile=-/etc/default/warren",
		"ExecStartPre=/usr/bin/warren validate /etc/warren.d", "ExecReload=/bin/kill -HUP $MAINPID",
		"Restart=on-failure", "StateDirectory=warren", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ProtectHome=yes", "PrivateTmp=yes", "ProtectKernelTunables=yes",
		"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", "SystemCallFilter=@system-service",
		"LimitNOFILE=65536", "WantedBy=multi-user.target",
	}
	units := map[string][]string{
		"warren-agent.service":  {"ExecStart=/usr/bin/warren agent -config-dir /etc/warren.d $WARREN_AGENT_OPTS", "Conflicts=warren-server.service"},
		"warren-server.service": {"ExecStart=/usr/bin/warren server -config-dir /etc/warren.d $WARREN_SERVER_OPTS", "Conflicts=warren-agent.service"},
	}
	deb, _ := buildPackages(t, "v1.2.3-4-gabc1234")
	root := t.TempDir()
	run(t, "dpkg-deb", "--extract", deb, root)
	for name, extra := range units {
		b, err := os.ReadFile(filepath.Join("../systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]bool{}
		for _, l := range strings.Split(string(b), "\n") {
			lines[l] = true
		}
		for _, want := range append(common, extra...) {
			if !lines[want] {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if strings.Count(string(b), "AmbientCapabilities=") != 1 {
			t.Errorf("%s: more than one AmbientCapabilities line", name)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs systemd)")
	}
	// systemd-analyze verify checks that the commands exist on this
	// machine; point /usr/bin/warren at the packaged binary.
	bin, err := filepath.Abs(filepath.Join(root, "usr/bin/warren"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var paths []string
	for name := range units {
		b, err := os.ReadFile(filepath.Join("../systemd", name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.ReplaceAll(b, []byte("/usr/bin/warren"), []byte(bin)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	out, err := exec.Command("systemd-analyze", append([]string{"verify", "--man=no"}, paths...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
