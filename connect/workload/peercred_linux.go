package workload

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
)

// readPeerCred reads SO_PEERCRED of a unix socket connection and the
// executable of the peer's pid. The pid may have exited, or exec'd another
// program, since it connected: the path is what it runs now, and a caller
// that cannot be looked at has no path (a path selector then fails closed).
func readPeerCred(conn net.Conn) (Caller, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return Caller{}, errNoPeerCred
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Caller{}, fmt.Errorf("workload API: peer credentials: %w", err)
	}
	var (
		cred *syscall.Ucred
		cerr error
	)
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return Caller{}, fmt.Errorf("workload API: peer credentials: %w", err)
	}
	if cerr != nil {
		return Caller{}, fmt.Errorf("workload API: SO_PEERCRED: %w", cerr)
	}
	c := Caller{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}
	if cred.Pid > 0 {
		if p, err := os.Readlink("/proc/" + strconv.Itoa(int(cred.Pid)) + "/exe"); err == nil {
			c.Path = p
		}
	}
	return c, nil
}
