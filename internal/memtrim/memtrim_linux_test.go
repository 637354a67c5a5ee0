//go:build linux

package memtrim

import (
	"encoding/json"
	"os"
	"testing"
)

const fixture = `00400000-01082000 r-xp 00000000 fd:01 123 /opt/warren/bin/warren
Size:              13064 kB
Rss:               10752 kB
Anonymous:             0 kB
VmFlags: rd ex mr mw me dw sd
01082000-01e6d000 r--p 00c82000 fd:01 123 /opt/warren/bin/warren
Rss:               10604 kB
Anonymous:             0 kB
01e6d000-01f00000 r--p 01a6d000 fd:01 123 /opt/warren/bin/warren
Rss:                 400 kB
Anonymous:           400 kB
01f00000-01f8e000 rw-p 01b00000 fd:01 123 /opt/warren/bin/warren
Rss:                 572 kB
Anonymous:           100 kB
01f8e000-01fa0000 r--s 00000000 fd:01 124 /opt/warren/bin/warren
Rss:                   4 kB
Anonymous:             0 kB
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 828 kB
Anonymous:             0 kB
7f0000200000-7f0000300000 rw-p 00000000 00:00 0
Rss:                4200 kB
Anonymous:          4200 kB
`

// TestBinaryMappings: only the binary's private read-only mappings without
// private copies are candidates: not its writable data, not relocated
// read-only data, not a shared mapping, not another file, not anonymous
// memory.
func TestBinaryMappings(t *testing.T) {
	got := binaryMappings([]byte(fixture), "/opt/warren/bin/warren")
	want := []mapping{
		{start: 0x400000, end: 0x1082000, rss: 10752 * 1024},
		{start: 0x1082000, end: 0x1e6d000, rss: 10604 * 1024},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d mappings %+v, want %+v", len(got), got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("mapping %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if got := binaryMappings([]byte(fixture), "/opt/warren/bin/warren (deleted)"); len(got) != 0 {
		t.Errorf("another path matched: %+v", got)
	}
}

// TestReleaseShrinksResidentSet runs Release in this test binary: the
// binary's resident code and data shrink, and the process keeps running
// the code it unmapped (it is mapped back on demand).
func TestReleaseShrinksResidentSet(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	before := residentOf(t, exe)
	if before == 0 {
		t.Fatal("no resident pages of the binary before Release")
	}
	r, err := Release()
	if err != nil {
		t.Fatal(err)
	}
	if r.Mappings < 2 || r.Bytes <= 0 {
		t.Fatalf("Release = %+v, want the text and read-only data mappings", r)
	}
	after := residentOf(t, exe)
	t.Logf("binary's read-only mappings: %d KiB resident before, %d KiB after (%+v)", before>>10, after>>10, r)
	// What the test itself runs between the two reads (reading smaps,
	// parsing it, the race detector's runtime) is mapped back at once, 64
	// KiB at a time, so only a clear drop is asked for.
	if after > before*3/4 {
		t.Errorf("resident %d bytes after Release, want at most 3/4 of %d", after, before)
	}
	// Code and data that were unmapped still work.
	b, err := json.Marshal(map[string]any{"a": []int{1, 2}})
	if err != nil || string(b) != `{"a":[1,2]}` {
		t.Fatalf("json after Release: %s, %v", b, err)
	}
	if _, err := Release(); err != nil {
		t.Fatalf("second Release: %v", err)
	}
}

func residentOf(t *testing.T, exe string) int64 {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, m := range binaryMappings(smaps, exe) {
		n += m.rss
	}
	return n
}
