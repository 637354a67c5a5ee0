package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/warren-mesh/warren/api"
)

const intentionUsage = `Usage: warren intention <subcommand> [flags] [args]

  create [-allow|-deny] [-description TEXT] SRC DST   create or replace the intention from SRC to DST
  delete SRC DST                                       delete the intention from SRC to DST
  check SRC DST                                        may SRC connect to DST? exit 0 allowed, 2 denied
  list [-json]                                         list intentions in precedence order

SRC and DST are service names, "ns/name", or "*".`

// runIntention manages intentions through the agent's HTTP API.
func runIntention(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, intentionUsage)
		return ExitUsage
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("intention "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	var allow, deny, asJSON *bool
	var desc *string
	switch sub {
	case "create":
		allow = fs.Bool("allow", false, "allow the connection (the default)")
		deny = fs.Bool("deny", false, "deny the connection")
		desc = fs.String("description", "", "a description of the intention")
	case "list":
		asJSON = fs.Bool("json", false, "print JSON")
	case "delete", "check":
	default:
		fmt.Fprintf(stderr, "warren intention: unknown subcommand %q\n\n%s\n", sub, intentionUsage)
		return ExitUsage
	}
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	c := addr.client()
	pair := func() (url.Values, bool) {
		if fs.NArg() != 2 {
			fmt.Fprintf(stderr, "warren intention %s: want SRC and DST, got %d arguments\n", sub, fs.NArg())
			return nil, false
		}
		return url.Values{"source": {fs.Arg(0)}, "destination": {fs.Arg(1)}}, true
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "warren intention %s: %v\n", sub, err)
		return ExitError
	}
	switch sub {
	case "create":
		q, ok := pair()
		if !ok {
			return ExitUsage
		}
		if *allow && *deny {
			fmt.Fprintln(stderr, "warren intention create: -allow and -deny are exclusive")
			return ExitUsage
		}
		action := "allow"
		if *deny {
			action = "deny"
		}
		body, _ := json.Marshal(&api.Intention{Action: action, Description: *desc})
		if err := c.do(ctx, "PUT", "/v1/connect/intentions/exact", q, bytes.NewReader(body), nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "Created: %s => %s (%s)\n", fs.Arg(0), fs.Arg(1), action)
	case "delete":
		q, ok := pair()
		if !ok {
			return ExitUsage
		}
		if err := c.do(ctx, "DELETE", "/v1/connect/intentions/exact", q, nil, nil); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "Intention deleted: %s => %s\n", fs.Arg(0), fs.Arg(1))
	case "check":
		q, ok := pair()
		if !ok {
			return ExitUsage
		}
		var out api.IntentionCheckResult
		if err := c.do(ctx, "GET", "/v1/connect/intentions/check", q, nil, &out); err != nil {
			return fail(err)
		}
		if !out.Allowed {
			fmt.Fprintln(stdout, "Denied")
			return ExitUsage // Consul's exit code for a denied check
		}
		fmt.Fprintln(stdout, "Allowed")
	case "list":
		if fs.NArg() != 0 {
			fmt.Fprintln(stderr, "warren intention list: takes no arguments")
			return ExitUsage
		}
		var out []*api.Intention
		if err := c.do(ctx, "GET", "/v1/connect/intentions", nil, nil, &out); err != nil {
			return fail(err)
		}
		if *asJSON {
			_ = printJSON(stdout, out)
			return ExitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSource\tAction\tDestination\tPrecedence")
		for _, x := range out {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", x.ID, nsName(x.SourceNS, x.SourceName), x.Action, nsName(x.DestinationNS, x.DestinationName), x.Precedence)
		}
		_ = tw.Flush()
	}
	return ExitOK
}

func nsName(ns, name string) string {
	if ns == "" || ns == "default" {
		return name
	}
	return ns + "/" + name
}
