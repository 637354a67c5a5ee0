package main

import (
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// startPerf records a `perf record -g` CPU profile of pids for d starting
// at at, into dir/name.perf.data, when dir is set. The returned func waits for
// the recording to end (or stops it early if ctx is done).
func startPerf(ctx context.Context, dir, name string, pids []int, at time.Time, d time.Duration) (wait func()) {
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Printf("perf: %v", err)
		return func() {}
	}
	out := filepath.Join(dir, name+".perf.data")
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(at)):
		}
		cmd := exec.Command("perf", "record", "-F", "499", "-g", "-o", out,
			"-p", joinPids(pids), "--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if b, err := cmd.CombinedOutput(); err != nil {
			log.Printf("perf record: %v: %s", err, tail2(b))
			return
		}
		log.Printf("perf: wrote %s (perf report -i %s)", out, out)
	}()
	return func() { <-done }
}

func tail2(b []byte) string {
	if len(b) > 500 {
		b = b[len(b)-500:]
	}
	return string(b)
}

func joinPids(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}
