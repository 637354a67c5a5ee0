// Package memtrim gives back the pages of the warren binary that only
// start-up used.
//
// The kernel maps a binary's code and read-only data page by page as they
// are first touched, and with fault-around it maps the neighbouring pages
// that are in the page cache too (64 KiB at a time by default). Package
// initialisation (some 500 packages, most of them Envoy's protobuf
// descriptors), configuration parsing and start-up touch code and data all
// over the binary that a running agent never uses again; those pages stay
// in its resident set until it exits. Once the process is serving, Release
// unmaps them (madvise MADV_DONTNEED on the binary's read-only, unmodified
// file mappings): nothing is lost, since those pages are clean copies of the
// file, and what the running process still uses is mapped back from the
// page cache at its next touch (a minor fault). Writable mappings and
// read-only ones holding private copies (a PIE's relocated data) are never
// touched.
package memtrim

// Released is what Release unmapped.
type Released struct {
	Mappings int   // binary mappings advised
	Bytes    int64 // resident bytes of those mappings before the advice
}
