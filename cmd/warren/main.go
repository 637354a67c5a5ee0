// Command warren is the Warren service mesh: server, agent and CLI in one
// binary. main only turns signals into context cancellation.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/warren-mesh/warren/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
