package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// udpProber sends a datagram on a connected UDP socket and reads. Consul's
// convention: a reply or silence until the deadline is passing (a UDP
// service need not answer); an error, typically ECONNREFUSED from an ICMP
// port unreachable, is critical. So a probe of a silent service takes the
// whole timeout.
type udpProber struct {
	addr    string
	payload []byte
}

func newUDPProber(d *Definition) *udpProber {
	payload := d.UDPPayload
	if payload == "" {
		payload = DefaultUDPPayload
	}
	return &udpProber{addr: d.UDP, payload: []byte(payload)}
}

func (p *udpProber) probe(ctx context.Context) result {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", p.addr)
	if err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	defer conn.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(DefaultTimeout)
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	// Close the socket if the check is stopped before the deadline.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	if _, err := conn.Write(p.payload); err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	buf := make([]byte, 1)
	_, err = conn.Read(buf)
	switch {
	case err == nil:
	case errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != context.Canceled:
		// Silence: passing, as in Consul.
	default:
		return result{catalog.HealthCritical, err.Error()}
	}
	return result{catalog.HealthPassing, fmt.Sprintf("UDP connect %s: Success", p.addr)}
}
