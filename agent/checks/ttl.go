package checks

import (
	"context"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// A TTL check is not probed: its status is pushed with Manager.SetTTL, and
// it turns critical when no push came within TTL. Thresholds do not apply.

// runTTL turns the check critical when SetTTL has not been called for TTL.
func (c *check) runTTL(ctx context.Context) {
	timer := time.NewTimer(c.def.TTL)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.ttlPoke:
		case <-timer.C:
		}
		c.mu.Lock()
		wait := time.Until(c.ttlUpdated.Add(c.def.TTL))
		if wait <= 0 && !c.ttlExpired {
			c.ttlExpired = true
			c.setLocked(catalog.HealthCritical, ttlExpiredOutput(c.output))
		}
		c.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
		} else {
			timer.Stop() // expired: wait for the next SetTTL
		}
	}
}

// ttlExpiredOutput is Consul's wording, keeping the last output.
func ttlExpiredOutput(last string) string {
	const prefix = "TTL expired"
	if last == "" {
		return prefix
	}
	return capHead(prefix + " (last output before timeout follows): " + last)
}

func (c *check) setTTL(status, output string) {
	c.mu.Lock()
	c.ttlUpdated = time.Now()
	c.ttlExpired = false
	c.setLocked(status, capHead(output))
	c.mu.Unlock()
	poke(c.ttlPoke)
}
