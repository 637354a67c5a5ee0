package checks

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// scriptWaitDelay is how long a script's output pipes may stay open after
// it was killed (a grandchild outside its process group can hold them).
const scriptWaitDelay = time.Second

// scriptProber runs a command (no shell) with Consul's exit code convention:
// 0 passing, 1 warning, anything else critical. Output is stdout and stderr
// together, its last MaxOutputLen bytes kept. On timeout the whole process
// group is killed, so a script's children do not outlive it.
type scriptProber struct {
	args    []string
	timeout time.Duration
}

func (p *scriptProber) probe(ctx context.Context) result {
	cmd := exec.CommandContext(ctx, p.args[0], p.args[1:]...)
	out := &tailBuffer{max: MaxOutputLen}
	cmd.Stdout = out
	cmd.Stderr = out
	setProcessGroup(cmd)
	cmd.Cancel = func() error { return killProcessGroup(cmd) }
	cmd.WaitDelay = scriptWaitDelay

	err := cmd.Run()
	if ctx.Err() != nil {
		// Whatever Run says, the context ended it: report the timeout.
		// The reason goes last, where capTail keeps it.
		return result{catalog.HealthCritical, capTail(withLine(out.String(), fmt.Sprintf("Timed out (%s) running check", p.timeout)))}
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return result{catalog.HealthPassing, out.String()}
	case errors.As(err, &exitErr):
		status := catalog.HealthCritical
		if exitErr.ExitCode() == 1 {
			status = catalog.HealthWarning
		}
		return result{status, out.String()}
	default:
		return result{catalog.HealthCritical, capTail(withLine(out.String(), fmt.Sprintf("running %q: %v", p.args[0], err)))}
	}
}

// withLine appends line to output on a line of its own.
func withLine(output, line string) string {
	if output == "" || strings.HasSuffix(output, "\n") {
		return output + line
	}
	return output + "\n" + line
}
