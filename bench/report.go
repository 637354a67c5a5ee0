package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// line is one row of the summary: a figure beside its target.
type line struct {
	name   string
	value  string
	target string // "" for a figure reported without a target
	pass   bool
}

// report collects the summary rows and notes of every benchmark.
type report struct {
	lines []line
	notes []string
}

// check adds a figure with its target.
func (r *report) check(name, value, target string, pass bool) {
	r.lines = append(r.lines, line{name: name, value: value, target: target, pass: pass})
}

// info adds a figure without a target.
func (r *report) info(name, value string) {
	r.lines = append(r.lines, line{name: name, value: value})
}

// note adds a sentence printed under the table.
func (r *report) note(format string, args ...any) {
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
}

// failed records a benchmark that could not run.
func (r *report) failed(name string, err error) {
	r.lines = append(r.lines, line{name: name, value: "ERROR", target: err.Error()})
}

func (r *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tvalue\ttarget\tresult")
	for _, l := range r.lines {
		verdict := ""
		switch {
		case l.value == "ERROR":
			verdict = "ERROR"
		case l.target == "":
			verdict = "-"
		case l.pass:
			verdict = "PASS"
		default:
			verdict = "MISS"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.name, l.value, l.target, verdict)
	}
	tw.Flush()
	for _, n := range r.notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// percentile returns the p-th percentile (0..100) of sorted durations by
// the nearest-rank method; 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

// ms formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }
