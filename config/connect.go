package config

import (
	"fmt"
	"math"
)

// ConnectConfig is the connect block: the built-in CA's settings that are
// the servers' own (the rest of the CA configuration lives in the cluster
// state and changes through PUT /v1/connect/ca/configuration).
type ConnectConfig struct {
	// CSRMaxPerSecond is Consul's connect { ca_config {
	// csr_max_per_second } }: the leader's limit on leaf signing
	// requests, default 50; 0 means no limit. A CSRMaxPerSecond set
	// through the API takes precedence.
	CSRMaxPerSecond float64
}

// DefaultCSRMaxPerSecond is Consul's default signing rate limit.
const DefaultCSRMaxPerSecond = 50

func defaultConnect() ConnectConfig {
	return ConnectConfig{CSRMaxPerSecond: DefaultCSRMaxPerSecond}
}

// validateConnect checks the connect block.
func (b *builder) validateConnect() {
	const key = "connect.ca_config.csr_max_per_second"
	if r := b.cfg.Connect.CSRMaxPerSecond; r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		b.errs = append(b.errs, keyErr(b.src[key], key, "%v", fmt.Errorf("must be 0 (no limit) or more, got %v", r)))
	}
}
