package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/xds"
)

// Envoy versions the generated bootstrap and resources are known to work
// with: v3 xDS over ADS with SDS secrets, typed_extension_protocol_options
// for the ADS cluster, match_typed_subject_alt_names in upstream TLS, and
// the network RBAC filter on authenticated principals. Older versions
// lack match_typed_subject_alt_names or are out of upstream support.
const (
	envoyMinMinor = 28
	envoyMaxMinor = 36
)

// runConnectEnvoy writes the bootstrap of a local service's Envoy sidecar,
// or runs Envoy with it. As in Consul, -sidecar-for names the application
// service; the sidecar is the local connect-proxy whose destination
// service ID it is (the sidecar's own ID is accepted too).
func runConnectEnvoy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("connect envoy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	httpAddr := clientFlags(fs)
	sidecarFor := fs.String("sidecar-for", "", "ID of the local service whose sidecar this Envoy is")
	bootstrapOnly := fs.Bool("bootstrap", false, "print the Envoy bootstrap JSON instead of running Envoy")
	adminBind := fs.String("admin-bind", "127.0.0.1:19000", "Envoy's admin address (loopback only)")
	xdsAddr := fs.String("xds-addr", "127.0.0.1:8502", "the local agent's xDS address")
	envoyBin := fs.String("envoy-binary", "envoy", "the Envoy binary to run (looked up in PATH)")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if *sidecarFor == "" {
		fmt.Fprintln(stderr, "warren connect envoy: -sidecar-for is required\n"+connectUsage)
		return ExitUsage
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "warren connect envoy: "+format+"\n", a...)
		return ExitError
	}
	host, portStr, err := net.SplitHostPort(*adminBind)
	if err != nil {
		return fail("-admin-bind %q: %v", *adminBind, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.Equal(net.IPv4(127, 0, 0, 1))) {
		return fail("-admin-bind %q: the admin interface binds 127.0.0.1 only", *adminBind)
	}
	adminPort, err := strconv.Atoi(portStr)
	if err != nil {
		return fail("-admin-bind %q: bad port", *adminBind)
	}

	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	proxyID, dest, err := findSidecar(rctx, httpAddr.client(), *sidecarFor)
	if err != nil {
		return fail("%v", err)
	}
	b, err := xds.EnvoyBootstrap(*xdsAddr, proxyID, dest, adminPort, httpAddr.client().token)
	if err != nil {
		return fail("%v", err)
	}
	if *bootstrapOnly {
		_, _ = stdout.Write(b)
		return ExitOK
	}

	path, err := exec.LookPath(*envoyBin)
	if err != nil {
		return fail("Envoy not found (%v); install Envoy 1.%d to 1.%d, or use -bootstrap to write the configuration for an Envoy started another way",
			err, envoyMinMinor, envoyMaxMinor)
	}
	out, err := exec.CommandContext(rctx, path, "--version").CombinedOutput()
	if err != nil {
		return fail("%s --version: %v: %s", path, err, out)
	}
	major, minor, err := envoyVersion(string(out))
	if err != nil {
		return fail("%s --version: %v", path, err)
	}
	if major != 1 || minor < envoyMinMinor || minor > envoyMaxMinor {
		return fail("Envoy %d.%d at %s is not supported: this Warren supports Envoy 1.%d to 1.%d", major, minor, path, envoyMinMinor, envoyMaxMinor)
	}
	argv := append([]string{path, "--config-yaml", string(b), "--disable-hot-restart"}, fs.Args()...)
	fmt.Fprintf(stderr, "running Envoy %d.%d (%s) as the sidecar %s of %s\n", major, minor, path, proxyID, dest)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fail("exec %s: %v", path, err)
	}
	return ExitOK // not reached
}

var envoyVersionRe = regexp.MustCompile(`/(\d+)\.(\d+)\.(\d+)(?:-[A-Za-z0-9.]+)?/`)

// envoyVersion reads `envoy --version`, e.g. "envoy  version:
// 6b9db09c.../1.31.2/Clean/RELEASE/BoringSSL".
func envoyVersion(out string) (major, minor int, err error) {
	m := envoyVersionRe.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, fmt.Errorf("no version in %q", out)
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, nil
}

// findSidecar returns the ID of the local sidecar of service id (or of id
// itself if it is a sidecar) and the service it fronts.
func findSidecar(ctx context.Context, c *httpClient, id string) (proxyID, dest string, err error) {
	var services map[string]*api.AgentService
	if err := c.do(ctx, "GET", "/v1/agent/services", url.Values{}, nil, &services); err != nil {
		return "", "", err
	}
	if s, ok := services[id]; ok && s.Kind == "connect-proxy" && s.Proxy != nil {
		return s.ID, s.Proxy.DestinationServiceName, nil
	}
	var found []*api.AgentService
	for _, s := range services {
		if s.Kind == "connect-proxy" && s.Proxy != nil && s.Proxy.DestinationServiceID == id {
			found = append(found, s)
		}
	}
	switch {
	case len(found) == 1:
		return found[0].ID, found[0].Proxy.DestinationServiceName, nil
	case len(found) > 1:
		return "", "", fmt.Errorf("service %q has %d sidecars on this agent; give the sidecar's own ID", id, len(found))
	}
	if _, ok := services[id]; ok {
		return "", "", fmt.Errorf("service %q has no sidecar: register it with connect { sidecar_service {} }", id)
	}
	return "", "", errors.New("no service " + strconv.Quote(id) + " on this agent")
}
