// Command bench runs Warren's load and scale benchmarks against a real
// 3-server cluster of the built binary, on loopback only, and prints every
// figure beside its target. It exits non-zero only when it cannot set up or
// run a benchmark; a missed target is printed as MISS.
//
//	go run ./bench -warren ./bin/warren [-only reg,fanout,mem] [-duration 10s]
//
// Each benchmark gets a fresh cluster so that one's data does not skew
// another's figures. Progress goes to stderr, the summary table to stdout.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	warren     string
	only       map[string]bool
	duration   time.Duration
	warmup     time.Duration
	runs       int
	clients    int
	watchers   int
	instances  int
	keep       bool
	cpuProfile string
	perfDir    string
}

// benchmark is one measurement; it starts and stops its own cluster.
type benchmark struct {
	name string
	desc string
	run  func(ctx context.Context, o *options, rep *report) error
}

// benchmarks in the order they run.
var benchmarks = []benchmark{
	{"reg", "catalog registrations per second", runRegistrations},
	{"fanout", "blocking-query fan-out", runFanout},
	{"mem", "server resident memory", runMemory},
	{"dns", "DNS queries per second (dnsperf) vs a bare miekg/dns server", runDNS},
	{"agent", "client agent resident memory and failure detection", runAgentBench},
	{"recovery", "recovery from leader loss, partition and agent kill, in network namespaces (root)", runRecovery},
	{"connect", "leaf signing throughput (in-process servers, no rate limit) and registration to first leaf", runConnect},
	{"views", "catalog change to 1,000 agent views (agent/view over gRPC)", runViews}, {"sidecars", "upstream change to 50 sidecars' EDS, agent RSS", runSidecars},
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("bench: ")
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "bench:", err)
		}
		os.Exit(2)
	}
	os.Exit(run(o, os.Stdout))
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	only := fs.String("only", "reg,fanout,mem,agent,recovery", "comma-separated benchmarks to run: reg, fanout, mem, dns, agent, recovery")
	fs.StringVar(&o.warren, "warren", "", "path to the built warren binary (required)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured duration of each registration run")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each registration run")
	fs.IntVar(&o.runs, "runs", 3, "registration runs (the median is reported)")
	fs.IntVar(&o.clients, "clients", 64, "concurrent registration clients")
	fs.IntVar(&o.watchers, "watchers", 10000, "blocking-query watchers in the fan-out benchmark")
	fs.IntVar(&o.instances, "instances", 10000, "service instances registered for the memory benchmark")
	fs.BoolVar(&o.keep, "keep", false, "keep the data dirs and server logs after the run")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write the bench process's own CPU profile to this file")
	fs.StringVar(&o.perfDir, "perf", "", "record `perf` CPU profiles of the leader during each registration run into this dir")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if o.warren == "" {
		return nil, errors.New("-warren PATH is required")
	}
	o.only = map[string]bool{}
	for _, n := range strings.Split(*only, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.ContainsFunc(benchmarks, func(b benchmark) bool { return b.name == n }) {
			return nil, fmt.Errorf("-only: unknown benchmark %q (want reg, fanout, mem, dns, agent, recovery)", n)
		}
		o.only[n] = true
	}
	if o.duration <= 0 || o.warmup < 0 || o.runs < 1 || o.clients < 1 || o.watchers < 1 || o.instances < 1 {
		return nil, errors.New("-duration, -runs, -clients, -watchers and -instances must be positive")
	}
	return o, nil
}

// run runs the selected benchmarks and prints the summary. Ctrl-C and
// SIGTERM cancel the context; every cluster is torn down by the benchmark
// that started it (deferred, so a panic does too).
func run(o *options, stdout io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			log.Printf("cpuprofile: %v", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Printf("cpuprofile: %v", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if err := raiseFileLimit(); err != nil {
		log.Printf("raise RLIMIT_NOFILE: %v", err)
	}

	rep := &report{}
	base, err := dataBase()
	if err != nil {
		log.Printf("data dir: %v", err)
		return 1
	}
	rep.note("servers' data dirs under %s (on disk, not tmpfs); every server binds 127.0.0.1 only, except in recovery, which runs in network namespaces it creates (TLS on RPC and HTTPS there)", base)
	code := 0
	for _, b := range benchmarks {
		if !o.only[b.name] {
			continue
		}
		log.Printf("=== %s: %s", b.name, b.desc)
		start := time.Now()
		if err := b.run(ctx, o, rep); err != nil {
			log.Printf("%s: %v", b.name, err)
			rep.failed(b.name, err)
			code = 1
		}
		log.Printf("=== %s done in %s", b.name, time.Since(start).Round(100*time.Millisecond))
		if ctx.Err() != nil {
			log.Printf("interrupted")
			code = 1
			break
		}
	}
	rep.print(stdout)
	return code
}
