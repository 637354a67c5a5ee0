//go:build unix

package checks

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the script in its own process group so that a
// timeout kills everything it started.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

func killProcessGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	// The group's ID is the script's PID (Setpgid with Pgid 0).
	return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}
