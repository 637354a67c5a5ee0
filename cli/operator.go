package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"text/tabwriter"

	"github.com/warren-mesh/warren/api"
)

const operatorUsage = `usage: warren operator raft list-peers [-json] | warren operator raft remove-peer (-id ID | -address ADDR)`

func runOperator(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "raft" {
		fmt.Fprintln(stderr, operatorUsage)
		return ExitUsage
	}
	sub := args[1]
	fs := flag.NewFlagSet("operator raft "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := clientFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	id := fs.String("id", "", "remove-peer: the server's raft ID")
	address := fs.String("address", "", "remove-peer: the server's RPC address")
	if err := fs.Parse(args[2:]); err != nil {
		return ExitUsage
	}
	c := addr.client()
	switch sub {
	case "list-peers":
		var out api.RaftConfiguration
		if err := c.do(ctx, "GET", "/v1/operator/raft/configuration", nil, nil, &out); err != nil {
			fmt.Fprintf(stderr, "warren operator raft list-peers: %v\n", err)
			return ExitError
		}
		if *asJSON {
			_ = printJSON(stdout, out)
			return ExitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "Node\tID\tAddress\tState\tVoter")
		for _, s := range out.Servers {
			state := "follower"
			if s.Leader {
				state = "leader"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", s.Node, s.ID, s.Address, state, s.Voter)
		}
		_ = tw.Flush()
		return ExitOK
	case "remove-peer":
		if (*id == "") == (*address == "") {
			fmt.Fprintln(stderr, "warren operator raft remove-peer: give exactly one of -id or -address")
			return ExitUsage
		}
		q := url.Values{}
		if *id != "" {
			q.Set("id", *id)
		} else {
			q.Set("address", *address)
		}
		if err := c.do(ctx, "DELETE", "/v1/operator/raft/peer", q, nil, nil); err != nil {
			fmt.Fprintf(stderr, "warren operator raft remove-peer: %v\n", err)
			return ExitError
		}
		fmt.Fprintf(stderr, "removed peer %s%s\n", *id, *address)
		return ExitOK
	}
	fmt.Fprintln(stderr, operatorUsage)
	return ExitUsage
}
