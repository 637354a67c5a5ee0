//go:build !linux

package e2e

import "os/exec"

// dieWithParent is Linux-only (Pdeathsig); elsewhere the test's cleanup
// alone stops the processes.
func dieWithParent(*exec.Cmd) {}
