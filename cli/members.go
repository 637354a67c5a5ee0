package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"text/tabwriter"

	"github.com/warren-mesh/warren/api"
)

var memberStatus = map[int]string{0: "none", 1: "alive", 2: "leaving", 3: "left", 4: "failed"}

// agentCommand parses the common flags of a command that talks to the
// local agent and returns its client and remaining arguments.
func agentCommand(name string, args []string, stderr io.Writer) (*httpClient, *flag.FlagSet, *bool, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, false
	}
	return addr.client(), fs, asJSON, true
}

func runMembers(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c, _, asJSON, ok := agentCommand("members", args, stderr)
	if !ok {
		return ExitUsage
	}
	var out []api.AgentMember
	if err := c.do(ctx, "GET", "/v1/agent/members", nil, nil, &out); err != nil {
		fmt.Fprintf(stderr, "warren members: %v\n", err)
		return ExitError
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	if *asJSON {
		_ = printJSON(stdout, out)
		return ExitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "Node\tAddress\tStatus\tType\tDC")
	for _, m := range out {
		typ := m.Tags["role"] // Consul's spelling: consul or node
		switch typ {
		case "consul":
			typ = "server"
		case "node":
			typ = "client"
		}
		fmt.Fprintf(tw, "%s\t%s:%d\t%s\t%s\t%s\n", m.Name, m.Addr, m.Port, memberStatus[m.Status], typ, m.Tags["dc"])
	}
	_ = tw.Flush()
	return ExitOK
}

// agentPut runs one PUT against the agent and reports the outcome.
func agentPut(ctx context.Context, name, path string, q url.Values, args []string, stderr io.Writer, done string) int {
	c, _, _, ok := agentCommand(name, args, stderr)
	if !ok {
		return ExitUsage
	}
	if err := c.do(ctx, "PUT", path, q, nil, nil); err != nil {
		fmt.Fprintf(stderr, "warren %s: %v\n", name, err)
		return ExitError
	}
	fmt.Fprintln(stderr, done)
	return ExitOK
}

func runJoin(ctx context.Context, args []string, _, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: warren join ADDRESS [-http-addr ADDR]")
		return ExitUsage
	}
	return agentPut(ctx, "join", "/v1/agent/join/"+url.PathEscape(args[0]), nil, args[1:], stderr, "joined through "+args[0])
}

func runLeave(ctx context.Context, args []string, _, stderr io.Writer) int {
	return agentPut(ctx, "leave", "/v1/agent/leave", nil, args, stderr, "left the gossip pool")
}

func runForceLeave(ctx context.Context, args []string, _, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprintln(stderr, "usage: warren force-leave NODE [-http-addr ADDR]")
		return ExitUsage
	}
	return agentPut(ctx, "force-leave", "/v1/agent/force-leave/"+url.PathEscape(args[0]), nil, args[1:], stderr, "forced "+args[0]+" to leave")
}

func runReload(ctx context.Context, args []string, _, stderr io.Writer) int {
	return agentPut(ctx, "reload", "/v1/agent/reload", nil, args, stderr, "configuration reloaded")
}

func runKeygen(_ context.Context, _ []string, stdout, stderr io.Writer) int {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		fmt.Fprintf(stderr, "warren keygen: %v\n", err)
		return ExitError
	}
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return ExitOK
}

// runMonitor streams /v1/agent/monitor to stdout until ctx ends (Ctrl-C),
// as `consul monitor` does.
func runMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	level := fs.String("log-level", "info", "the lowest level to stream: trace, debug, info, warn or error")
	asJSON := fs.Bool("log-json", false, "stream JSON lines")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	c := addr.client()
	c.hc = &http.Client{Transport: c.hc.Transport} // a stream: no overall timeout
	q := url.Values{"loglevel": {*level}}
	if *asJSON {
		q.Set("logjson", "true")
	}
	if err := c.do(ctx, "GET", "/v1/agent/monitor", q, nil, stdout); err != nil && ctx.Err() == nil {
		fmt.Fprintf(stderr, "warren monitor: %v\n", err)
		return ExitError
	}
	return ExitOK
}
