//go:build !unix

package checks

import "os/exec"

// Without process groups only the script itself is killed on timeout.
func setProcessGroup(*exec.Cmd) {}

func killProcessGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	return cmd.Process.Kill()
}
