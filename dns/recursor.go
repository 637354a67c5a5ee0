package dns

import (
	"context"

	"github.com/miekg/dns"
)

// forward sends a query for a name outside our zones to the recursors, in
// order, and relays the first usable answer (success or NXDOMAIN; a
// truncated UDP answer too, so the client retries over TCP). Without
// recursors the query is REFUSED; when every recursor fails, SERVFAIL.
func (s *Server) forward(w dns.ResponseWriter, r *dns.Msg, tcp bool, size int) {
	var opt *dns.OPT
	if o := r.IsEdns0(); o != nil && o.Version() == 0 {
		opt = o
	}
	if len(s.recursors) == 0 {
		s.replyRcode(w, r, dns.RcodeRefused, opt)
		return
	}
	network := "udp"
	if tcp {
		network = "tcp"
	}
	c := s.client(network)
	for _, addr := range s.recursors {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.RecursorTimeout)
		resp, _, err := c.ExchangeContext(ctx, r, addr)
		cancel()
		if err != nil {
			s.log.Debug("recursor failed", "recursor", addr, "err", err)
			continue
		}
		if resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError && !resp.Truncated {
			s.log.Debug("recursor answered", "recursor", addr, "rcode", dns.RcodeToString[resp.Rcode])
			continue
		}
		resp.Id = r.Id
		resp.RecursionAvailable = true
		resp.Compress = true
		if !tcp {
			resp.Truncate(size)
		}
		s.write(w, resp)
		return
	}
	s.replyRcode(w, r, dns.RcodeServerFailure, opt)
}
