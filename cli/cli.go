// Package cli implements warren's subcommands, one file each. Results go to
// stdout, information and errors to stderr. It wires config, server and the
// HTTP API; cmd/warren calls Run.
//
// Exit codes: 0 success, 1 the command failed, 2 bad usage.
package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"strings"
)

// Version and Commit are stamped by the build (-ldflags -X).
var (
	Version = "dev"
	Commit  = "unknown"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
)

type command struct {
	synopsis string
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() map[string]command {
	return map[string]command{
		"dev":         {"run a single-node server and agent with data in a temp dir", runDev},
		"server":      {"run a control-plane server (with the local agent)", runServer},
		"agent":       {"run the host agent", runAgent},
		"members":     {"list the members of the gossip pool", runMembers},
		"join":        {"join the gossip pool through an address", runJoin},
		"leave":       {"leave the gossip pool gracefully", runLeave},
		"force-leave": {"mark a failed member as left", runForceLeave},
		"reload":      {"re-read the agent's config files", runReload},
		"monitor":     {"stream the agent's log lines (-log-level, -log-json) until interrupted", runMonitor},
		"keygen":      {"print a new gossip encryption key", runKeygen},
		"connect":     {"mesh helpers (grpc-bootstrap for proxyless gRPC clients)", runConnect},
		"catalog":     {"list services and nodes in the catalog", runCatalog},
		"intention":   {"create, delete, check and list intentions", runIntention},
		"acl":         {"bootstrap ACLs; manage tokens, policies and roles", runACL},
		"operator":    {"operate the raft cluster (raft list-peers, raft remove-peer)", runOperator},
		"snapshot":    {"save or restore a snapshot of the whole state", runSnapshot},
		"tls":         {"create an operator CA and server or client certificates (tls ca create, tls cert create)", runTLS},
		"validate":    {"check a config dir without starting anything", runValidate},
		"debug":       {"collect metrics, profiles and logs of a running agent into one archive for a bug report", runDebug},
		"version":     {"print the version", runVersion},
	}
}

// Run runs the subcommand named by args[0] and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr, cmds)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "warren: unknown command %q\n\n", args[0])
		usage(stderr, cmds)
		return ExitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("Usage: warren <command> [flags]\n\nCommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %-10s %s\n", n, cmds[n].synopsis)
	}
	fmt.Fprint(w, b.String())
}

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) int {
	fmt.Fprintf(stdout, "warren %s (commit %s, %s)\n", Version, Commit, runtime.Version())
	return ExitOK
}
