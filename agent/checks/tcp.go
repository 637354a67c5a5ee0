package checks

import (
	"context"
	"fmt"
	"net"

	"github.com/warren-mesh/warren/catalog"
)

// tcpProber passes when a TCP connect to addr completes.
type tcpProber struct{ addr string }

func (p *tcpProber) probe(ctx context.Context) result {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return result{catalog.HealthCritical, err.Error()}
	}
	conn.Close()
	return result{catalog.HealthPassing, fmt.Sprintf("TCP connect %s: Success", p.addr)}
}
