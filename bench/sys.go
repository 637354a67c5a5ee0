package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// loopback is the only address the bench binds to or sends to.
const loopback = "127.0.0.1"

// tmpfsMagic is statfs's f_type of tmpfs.
const tmpfsMagic = 0x01021994

// dataBase picks where the servers' data dirs go: os.TempDir when it is on
// disk, otherwise the repository's git-ignored ./tmp (Raft's fsyncs must
// hit a disk for the write figures to mean anything).
func dataBase() (string, error) {
	tmp := os.TempDir()
	if !isTmpfs(tmp) {
		return tmp, nil
	}
	dir, err := filepath.Abs("tmp")
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("%s is tmpfs and %s cannot be created: %w", tmp, dir, err)
	}
	if isTmpfs(dir) {
		return "", fmt.Errorf("both %s and %s are tmpfs; the benchmarks need a disk", tmp, dir)
	}
	return dir, nil
}

func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == tmpfsMagic
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit (the Go
// runtime does this too, but say what we got).
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return err
		}
	}
	log.Printf("RLIMIT_NOFILE soft=%d hard=%d", lim.Cur, lim.Max)
	return nil
}

// fileLimit is the current soft RLIMIT_NOFILE.
func fileLimit() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1024
	}
	return int(min(lim.Cur, 1<<30))
}

// procStatusKB reads a "Key:   123 kB" field of /proc/PID/status.
func procStatusKB(pid int, key string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			break
		}
		return strconv.ParseInt(f[0], 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, key)
}

// openFiles counts a process's open descriptors.
func openFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1
	}
	return len(ents)
}
