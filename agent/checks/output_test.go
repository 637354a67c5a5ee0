package checks

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestOutputCaps(t *testing.T) {
	for _, s := range []string{
		"short",
		strings.Repeat("a", MaxOutputLen),
		strings.Repeat("a", MaxOutputLen+1),
		strings.Repeat("日本", MaxOutputLen),
	} {
		for name, got := range map[string]string{"head": capHead(s), "tail": capTail(s)} {
			if len(s) <= MaxOutputLen && got != s {
				t.Errorf("%s: output that fits was changed", name)
			}
			if len(got) > MaxOutputLen {
				t.Errorf("%s: %d bytes, over %d", name, len(got), MaxOutputLen)
			}
			if !utf8.ValidString(got) {
				t.Errorf("%s: cut inside a rune", name)
			}
		}
	}
	if got := capHead("x" + strings.Repeat("a", MaxOutputLen)); !strings.HasPrefix(got, "x") || !strings.HasSuffix(got, truncatedSuffix) {
		t.Errorf("capHead kept the wrong end")
	}
	if got := capTail(strings.Repeat("a", MaxOutputLen) + "z"); !strings.HasSuffix(got, "z") || !strings.HasPrefix(got, truncatedPrefix) {
		t.Errorf("capTail kept the wrong end")
	}
}

func TestTailBuffer(t *testing.T) {
	b := &tailBuffer{max: MaxOutputLen}
	for i := 0; i < 1000; i++ {
		b.Write([]byte("0123456789"))
	}
	b.Write([]byte("END"))
	got := b.String()
	if len(got) > MaxOutputLen || !strings.HasPrefix(got, truncatedPrefix) || !strings.HasSuffix(got, "END") {
		t.Fatalf("tail buffer: %d bytes, %q…%q", len(got), got[:25], got[len(got)-5:])
	}
	small := &tailBuffer{max: MaxOutputLen}
	small.Write([]byte("hi"))
	if small.String() != "hi" {
		t.Fatalf("small output changed: %q", small.String())
	}
}
