package main

// Instrumentation cost: `-only dns` and `-only reg` run Warren with and
// without metrics and report what instrumentation costs.
const (
	// disableMetricsEnv turns off warren's instrumentation (cli/telemetry.go).
	disableMetricsEnv = "WARREN_DISABLE_METRICS"
	// metricsCostTarget is the most instrumentation may cost of DNS QPS
	// or of registration throughput.
	metricsCostTarget = 0.03
)

// metricsCost is 1 - with/without: the share of throughput metrics cost
// (negative when the run with metrics was faster, i.e. noise).
func metricsCost(with, without float64) float64 {
	if without <= 0 {
		return 0
	}
	return 1 - with/without
}

func ratioOf(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func envOrDefault(env string) string {
	if env == "" {
		return "with metrics"
	}
	return env
}
