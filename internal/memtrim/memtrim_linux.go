//go:build linux

package memtrim

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Release unmaps the resident pages of the binary's read-only file
// mappings that hold no private (anonymous) pages. Safe to call at any
// time and more than once.
func Release() (Released, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return Released{}, fmt.Errorf("find the binary: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return Released{}, fmt.Errorf("read mappings: %w", err)
	}
	var r Released
	for _, m := range binaryMappings(smaps, exe) {
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, syscall.MADV_DONTNEED); errno != 0 {
			return r, fmt.Errorf("madvise %#x-%#x: %w", m.start, m.end, errno)
		}
		r.Mappings++
		r.Bytes += m.rss
	}
	return r, nil
}

// mapping is one /proc/self/smaps entry that Release may advise.
type mapping struct {
	start, end uintptr
	rss        int64
}

// binaryMappings parses smaps and returns exe's mappings that are private,
// not writable and hold no anonymous pages.
func binaryMappings(smaps []byte, exe string) []mapping {
	var out []mapping
	var cur *mapping // the current entry, when it is a candidate
	var anon int64
	flush := func() {
		if cur != nil && anon == 0 {
			out = append(out, *cur)
		}
		cur, anon = nil, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if start, end, ok := parseRange(f[0]); ok && len(f) >= 5 {
			flush()
			perms := f[1]
			path := strings.Join(f[5:], " ")
			if path == exe && len(perms) == 4 && perms[1] != 'w' && perms[3] == 'p' {
				cur = &mapping{start: start, end: end}
			}
			continue
		}
		if cur == nil || len(f) < 2 {
			continue
		}
		switch f[0] {
		case "Rss:":
			cur.rss = kB(f[1])
		case "Anonymous:":
			anon = kB(f[1])
		}
	}
	flush()
	return out
}

// parseRange parses "start-end" in hex, the first field of an entry line.
func parseRange(s string) (start, end uintptr, ok bool) {
	a, b, found := strings.Cut(s, "-")
	if !found {
		return 0, 0, false
	}
	x, err1 := strconv.ParseUint(a, 16, 64)
	y, err2 := strconv.ParseUint(b, 16, 64)
	if err1 != nil || err2 != nil || y <= x {
		return 0, 0, false
	}
	return uintptr(x), uintptr(y), true
}

func kB(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0
	}
	return n * 1024
}
