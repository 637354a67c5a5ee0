package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/warren-mesh/warren/config"
	"github.com/warren-mesh/warren/connect/workload"
)

// devWorkloadSocket gives dev mode a Workload API socket in a temporary
// directory (0755, so workloads of other users reach it) unless one is
// configured; cleanup removes the directory.
func devWorkloadSocket(cfg *config.Config) (cleanup func(), err error) {
	if cfg.WorkloadSocket != "" {
		return func() {}, nil
	}
	dir, err := os.MkdirTemp("", "warren-workload-")
	if err != nil {
		return nil, fmt.Errorf("create workload socket dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("create workload socket dir: %w", err)
	}
	cfg.WorkloadSocket = filepath.Join(dir, "workload.sock")
	return func() { _ = os.RemoveAll(dir) }, nil
}

// listenWorkload creates the Workload API socket. A configured path must
// work; the default one (/run/warren/workload.sock) may be unavailable,
// when the process may not write /run or another warren process on the
// host serves it: then the Workload API is off, with a warning.
func (p *process) listenWorkload() error {
	path := p.cfg.WorkloadSocket
	if path == "" {
		return nil
	}
	ln, err := workload.Listen(path)
	if err != nil {
		if path == config.DefaultWorkloadSocket && (errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, workload.ErrInUse)) {
			p.log.Warn("SPIFFE Workload API disabled: cannot serve the default socket; set workload_socket (-workload-socket)", "path", path, "err", err)
			return nil
		}
		return fmt.Errorf("workload_socket: %w", err)
	}
	p.workloadLn = ln
	p.workload = p.agent.WorkloadAPI(ln, p.log.With("subsystem", "workload"))
	return nil
}

func (p *process) workloadSocket() string {
	if p.workloadLn == nil {
		return "disabled"
	}
	return p.cfg.WorkloadSocket
}
