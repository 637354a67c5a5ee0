package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/warren-mesh/warren/xds"
)

const connectUsage = `usage: warren connect grpc-bootstrap -service NAME [-xds-addr 127.0.0.1:8502] [-o FILE]
       warren connect envoy -sidecar-for SERVICE_ID [-bootstrap] [-admin-bind 127.0.0.1:19000] [-xds-addr 127.0.0.1:8502] [-http-addr ADDR] [-- ENVOY_ARGS...]`

func runConnect(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) >= 1 && args[0] == "envoy" {
		return runConnectEnvoy(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 1 || args[0] != "grpc-bootstrap" {
		fmt.Fprintln(stderr, connectUsage)
		return ExitUsage
	}
	fs := flag.NewFlagSet("connect grpc-bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	service := fs.String("service", "", "the calling application's service name (for its node ID)")
	addr := fs.String("xds-addr", "127.0.0.1:8502", "the local agent's xDS address")
	out := fs.String("o", "", "write the bootstrap to this file instead of stdout")
	if err := fs.Parse(args[1:]); err != nil {
		return ExitUsage
	}
	if *service == "" {
		fmt.Fprintln(stderr, "warren connect grpc-bootstrap: -service is required")
		return ExitUsage
	}
	host, _ := os.Hostname()
	b, err := xds.GRPCBootstrap(*addr, fmt.Sprintf("%s/%s/%s", xds.GRPCNodePrefix, *service, host))
	if err != nil {
		fmt.Fprintf(stderr, "warren connect grpc-bootstrap: %v\n", err)
		return ExitError
	}
	if *out == "" {
		_, _ = stdout.Write(append(b, '\n'))
		return ExitOK
	}
	if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
		fmt.Fprintf(stderr, "warren connect grpc-bootstrap: %v\n", err)
		return ExitError
	}
	fmt.Fprintf(stderr, "wrote %s; run the application with GRPC_XDS_BOOTSTRAP=%s and dial xds:///SERVICE\n", *out, *out)
	return ExitOK
}
