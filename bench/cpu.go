package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; it
// is 100 on every Linux build Go supports.
const clockTicks = 100

// cpuMeter measures how many cores each server and the bench itself used
// over an interval, to tell a slow server from a saturated machine.
type cpuMeter struct {
	names []string
	pids  []int
	start []float64
	t     time.Time
}

// newCPUMeter starts measuring every server of c (the leader marked) and
// this process.
func newCPUMeter(c *cluster, leader *proc) *cpuMeter {
	m := &cpuMeter{t: time.Now()}
	for _, p := range c.procs {
		name := p.name
		if p == leader {
			name += "(leader)"
		}
		m.names = append(m.names, name)
		m.pids = append(m.pids, p.pid())
	}
	m.names = append(m.names, "bench")
	m.pids = append(m.pids, os.Getpid())
	for _, pid := range m.pids {
		m.start = append(m.start, cpuSeconds(pid))
	}
	return m
}

// String reports the cores used by each process since the meter started.
func (m *cpuMeter) String() string {
	el := time.Since(m.t).Seconds()
	parts := make([]string, 0, len(m.pids)+1)
	total := 0.0
	for i, pid := range m.pids {
		cores := (cpuSeconds(pid) - m.start[i]) / el
		total += cores
		parts = append(parts, fmt.Sprintf("%s %.2f", m.names[i], cores))
	}
	return fmt.Sprintf("%s; total %.2f of %d cores", strings.Join(parts, ", "), total, runtime.NumCPU())
}

// serverSeconds is the CPU time the servers (not the bench) used since the
// meter started.
func (m *cpuMeter) serverSeconds() float64 {
	total := 0.0
	for i, pid := range m.pids {
		if m.names[i] != "bench" {
			total += cpuSeconds(pid) - m.start[i]
		}
	}
	return total
}

// cpuSeconds is a process's user+system CPU time; 0 if unreadable.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields start after its ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64) // field 14 of stat(5)
	stime, _ := strconv.ParseFloat(f[12], 64) // field 15
	return (utime + stime) / clockTicks
}
