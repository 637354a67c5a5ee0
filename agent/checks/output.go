package checks

import (
	"unicode/utf8"

	"github.com/warren-mesh/warren/catalog"
)

// MaxOutputLen is the most output a check reports, marker included; it is
// the catalog's limit, so a reported output always passes validation.
const MaxOutputLen = catalog.MaxOutputLen

// Markers that show an output was cut.
const (
	truncatedSuffix = "\n... (output truncated)"
	truncatedPrefix = "(output truncated) ...\n"
)

// capHead keeps the beginning of s (for HTTP bodies and TTL output).
func capHead(s string) string {
	if len(s) <= MaxOutputLen {
		return s
	}
	n := MaxOutputLen - len(truncatedSuffix)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncatedSuffix
}

// capTail keeps the end of s (for scripts: the last lines say why they
// failed, which is also what Consul keeps).
func capTail(s string) string { return keepTail(s, false) }

// keepTail is capTail that adds the marker when dropped says bytes before s
// were already lost.
func keepTail(s string, dropped bool) string {
	if !dropped && len(s) <= MaxOutputLen {
		return s
	}
	start := max(0, len(s)-(MaxOutputLen-len(truncatedPrefix)))
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return truncatedPrefix + s[start:]
}

// tailBuffer is an io.Writer that keeps the last max bytes written to it.
// The script's stdout and stderr share one; exec serializes writes only when
// both are the same writer, which they are.
type tailBuffer struct {
	max   int
	buf   []byte
	total int
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.total += len(p)
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String returns what was kept, with the truncation marker if bytes were
// dropped, never longer than MaxOutputLen when max is MaxOutputLen.
func (b *tailBuffer) String() string {
	return keepTail(string(b.buf), b.total > len(b.buf))
}
