package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

type options struct {
	Version string // as git describe prints it
	Arch    string // GOARCH
	Binary  string // path of the warren binary
	Out     string // output directory
	Root    string // repository root
	// MTime stamps every file and the changelog; zero means now (or
	// SOURCE_DATE_EPOCH).
	MTime time.Time

	changelog string // the .deb's changelog.gz, written by build
}

// The architectures we ship, in each format's spelling.
var arches = map[string]struct{ deb, rpm string }{
	"amd64": {"amd64", "x86_64"},
	"arm64": {"arm64", "aarch64"},
}

// Host layout. The units read /etc/default/warren and /etc/warren.d; the
// data dir is the units' StateDirectory.
const (
	binPath     = "/usr/bin/warren"
	configDir   = "/etc/warren.d"
	configFile  = "/etc/warren.d/warren.hcl"
	defaultFile = "/etc/default/warren"
	unitDir     = "/lib/systemd/system"
	dataDir     = "/var/lib/warren"
	docDir      = "/usr/share/doc/warren"

	maintainer = "Warren maintainers <warren@warren-mesh.dev>"
)

// build writes the .deb and the .rpm for o and returns their paths.
func build(o options) ([]string, error) {
	arch, ok := arches[o.Arch]
	if !ok {
		return nil, fmt.Errorf("arch %q: want amd64 or arm64", o.Arch)
	}
	version, err := packageVersion(o.Version)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(o.Binary); err != nil {
		return nil, fmt.Errorf("binary: %w", err)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	if o.MTime.IsZero() {
		o.MTime = time.Now()
		if sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
			o.MTime = time.Unix(sec, 0)
		}
	}
	// A native Debian package carries its changelog (lintian: no-changelog).
	o.changelog = filepath.Join(o.Out, ".changelog.gz")
	defer os.Remove(o.changelog)
	if err := writeChangelog(o.changelog, version, o.Version, o.MTime); err != nil {
		return nil, err
	}
	var out []string
	for _, f := range []struct {
		format string
		name   string
		p      nfpm.Packager
	}{
		{"deb", fmt.Sprintf("warren_%s_%s.deb", version, arch.deb), deb.Default},
		{"rpm", fmt.Sprintf("warren-%s.%s.rpm", version, arch.rpm), rpm.DefaultRPM},
	} {
		info := packageInfo(o, version, f.format)
		path := filepath.Join(o.Out, f.name)
		if err := writePackage(f.p, info, path); err != nil {
			return nil, fmt.Errorf("build %s: %w", f.name, err)
		}
		out = append(out, path)
	}
	return out, nil
}

func writePackage(p nfpm.Packager, info *nfpm.Info, path string) (err error) {
	if err := nfpm.PrepareForPackager(info, info.Target); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := p.Package(info, f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// packageInfo describes the package in format ("deb" or "rpm").
func packageInfo(o options, version, format string) *nfpm.Info {
	arch := arches[o.Arch]
	src := func(rel string) string { return filepath.Join(o.Root, rel) }
	file := func(from, to string, mode os.FileMode, typ string) *files.Content {
		return &files.Content{Source: from, Destination: to, Type: typ,
			FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	dir := func(to string, mode os.FileMode) *files.Content {
		return &files.Content{Destination: to, Type: files.TypeDir,
			FileInfo: &files.ContentFileInfo{Mode: mode, Owner: "root", Group: "root"}}
	}
	contents := files.Contents{
		file(o.Binary, binPath, 0o755, ""),
		// postinst hands these to the warren user and group, which do
		// not exist when the files are unpacked.
		dir(configDir, 0o755),
		dir(dataDir, 0o755),
		file(src("packaging/warren.hcl"), configFile, 0o644, files.TypeConfigNoReplace),
		file(src("systemd/warren.default"), defaultFile, 0o644, files.TypeConfigNoReplace),
		file(src("systemd/warren-agent.service"), unitDir+"/warren-agent.service", 0o644, ""),
		file(src("systemd/warren-server.service"), unitDir+"/warren-server.service", 0o644, ""),
		file(src("packaging/copyright"), docDir+"/copyright", 0o644, ""),
	}
	info := &nfpm.Info{
		Name:          "warren",
		Arch:          o.Arch,
		Platform:      "linux",
		Version:       version,
		VersionSchema: "none",
		Section:       "net",
		Priority:      "optional",
		Maintainer:    maintainer,
		Vendor:        "Warren",
		Homepage:      "https://github.com/warren-mesh/warren",
		License:       "UNLICENSED",
		Description: "service mesh for virtual machines and bare-metal hosts\n" +
			"Warren is a service mesh in one binary: servers hold the service\n" +
			"catalog (replicated with Raft); agents on every host register\n" +
			"services, run health checks and answer DNS, with an HTTP API in\n" +
			"Consul's v1 wire format. The package ships the warren-agent and\n" +
			"warren-server systemd units; it starts neither.",
		MTime:  o.MTime,
		Target: format,
		Overridables: nfpm.Overridables{
			Contents: contents,
			Umask:    0o022,
		},
	}
	switch format {
	case "deb":
		info.Release = ""
		info.Deb.Arch = arch.deb
		// /bin/kill (ExecReload) is in procps; the user is made with
		// adduser, or useradd from passwd.
		info.Depends = []string{"adduser", "procps"}
		info.Contents = append(info.Contents, file(o.changelog, docDir+"/changelog.gz", 0o644, ""))
		info.Deb.Compression = "xz"
		info.Scripts = nfpm.Scripts{
			PostInstall: src("packaging/scripts/deb/postinst"),
			PreRemove:   src("packaging/scripts/deb/prerm"),
			PostRemove:  src("packaging/scripts/deb/postrm"),
		}
	case "rpm":
		info.Release = "1"
		info.RPM.Arch = arch.rpm
		info.RPM.Group = "System Environment/Daemons"
		info.RPM.Summary = "Service mesh for virtual machines and bare-metal hosts"
		info.RPM.Compression = "xz"
		info.RPM.Requires.Post = []string{"shadow-utils"}
		info.Scripts = nfpm.Scripts{
			PostInstall: src("packaging/scripts/rpm/post"),
			PreRemove:   src("packaging/scripts/rpm/preun"),
			PostRemove:  src("packaging/scripts/rpm/postun"),
		}
	}
	return nfpm.WithDefaults(info)
}

// writeChangelog writes a one-entry Debian changelog, gzipped without a
// name or time in the header so that builds are reproducible.
func writeChangelog(path, version, describe string, when time.Time) error {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return err
	}
	fmt.Fprintf(zw, "warren (%s) stable; urgency=medium\n\n  * Built from git %s.\n\n -- %s  %s\n",
		version, describe, maintainer, when.UTC().Format(time.RFC1123Z))
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

var (
	// v1.2.3, v1.2.3-4-gabc1234, 1.2.3-dirty ...
	describeTag = regexp.MustCompile(`^v?([0-9]+(?:\.[0-9]+)*)(?:-([0-9]+)-g([0-9a-f]+))?(-dirty)?$`)
	// abc1234 or abc1234-dirty: no tag yet.
	describeHash = regexp.MustCompile(`^([0-9a-f]{4,40})(-dirty)?$`)
	// Anything else must already be a version both dpkg and rpm take.
	plainVersion = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~]*$`)
)

// packageVersion turns git describe's output into a version that dpkg and
// rpm order correctly: commits after a tag sort after it (1.2.3+git4.gabc),
// a tree without tags is 0.0.0+gHASH, and a dirty tree gets ".dirty".
func packageVersion(describe string) (string, error) {
	if m := describeTag.FindStringSubmatch(describe); m != nil {
		v := m[1]
		var extra []string
		if m[2] != "" {
			extra = append(extra, "git"+m[2], "g"+m[3])
		}
		if m[4] != "" {
			extra = append(extra, "dirty")
		}
		if len(extra) > 0 {
			v += "+" + strings.Join(extra, ".")
		}
		return v, nil
	}
	if m := describeHash.FindStringSubmatch(describe); m != nil {
		v := "0.0.0+g" + m[1]
		if m[2] != "" {
			v += ".dirty"
		}
		return v, nil
	}
	if plainVersion.MatchString(describe) {
		return describe, nil
	}
	return "", errors.New("version " + fmt.Sprintf("%q", describe) + ": want git describe output (v1.2.3, v1.2.3-4-gabc1234, abc1234, with -dirty) or a version starting with a digit made of [0-9A-Za-z.+~]")
}
