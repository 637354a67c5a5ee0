package checks

import (
	"strings"
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
func capHead(s string) string { return capHeadN(s, MaxOutputLen, false) }

// capHeadN keeps the beginning of s in at most limit bytes, marking the
// cut; cut says s was already cut (the marker is added whatever its
// length).
func capHeadN(s string, limit int, cut bool) string {
	if !cut && len(s) <= limit {
		return s
	}
	n := min(len(s), limit-len(truncatedSuffix))
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncatedSuffix
}

// capTail keeps the end of s (for scripts: the last lines say why they
// failed, which is also what Consul keeps).
func capTail(s string) string { return keepTail(s, false) }

// keepTail is capTail that adds the marker when dropped says bytes before s
// were already lost.
func keepTail(s string, dropped bool) string { return keepTailN(s, MaxOutputLen, dropped) }

// keepTailN keeps the end of s in at most limit bytes.
func keepTailN(s string, limit int, dropped bool) string {
	if !dropped && len(s) <= limit {
		return s
	}
	start := max(0, len(s)-(limit-len(truncatedPrefix)))
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

// capOutput applies check_output_max_size (ManagerConfig.OutputMaxSize)
// to an output the prober already capped at MaxOutputLen, keeping the
// end a kind reports its reason in, and reports each cut output to
// OnTruncate (the limits metric).
func (m *Manager) capOutput(kind, s string) string {
	limit := m.cfg.OutputMaxSize
	headCut := strings.HasSuffix(s, truncatedSuffix)
	tailCut := strings.HasPrefix(s, truncatedPrefix)
	if len(s) > limit {
		if kind == KindScript {
			s = keepTailN(strings.TrimPrefix(s, truncatedPrefix), limit, true)
			tailCut = true
		} else {
			s = capHeadN(strings.TrimSuffix(s, truncatedSuffix), limit, true)
			headCut = true
		}
	}
	if (headCut || tailCut) && m.cfg.OnTruncate != nil {
		m.cfg.OnTruncate()
	}
	return s
}
