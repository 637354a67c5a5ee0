package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/miekg/dns"
)

// notifier tells systemd how the daemon is doing (sd_notify(3)), for
// Type=notify units: READY=1 once it serves HTTP and DNS and, if it has
// retry_join addresses, has joined the gossip pool; RELOADING=1 and READY=1
// around a SIGHUP reload; STOPPING=1 when shutdown starts; WATCHDOG=1 at
// half of WatchdogSec. Without NOTIFY_SOCKET every send is a no-op.
type notifier struct {
	log      *slog.Logger
	send     func(state string) error
	joined   chan struct{} // closed once the first join succeeded
	joinOnce sync.Once
	ready    atomic.Bool
	// watchdog is the unit's WatchdogSec (0: none).
	watchdog time.Duration
	// onReady, if set, runs once, right after the first READY=1.
	onReady func()
}

func newNotifier(log *slog.Logger, needJoin bool) *notifier {
	n := &notifier{
		log:    log,
		joined: make(chan struct{}),
		send: func(state string) error {
			_, err := daemon.SdNotify(false, state)
			return err
		},
	}
	if !needJoin {
		n.joinOnce.Do(func() { close(n.joined) })
	}
	if d, err := daemon.SdWatchdogEnabled(false); err != nil {
		log.Warn("systemd watchdog settings ignored", "err", err)
	} else {
		n.watchdog = d
	}
	return n
}

func (n *notifier) notify(state string) {
	if err := n.send(state); err != nil {
		n.log.Warn("notify systemd", "state", strings.ReplaceAll(state, "\n", " "), "err", err)
	}
}

// Joined records that the node joined the gossip pool.
func (n *notifier) Joined() { n.joinOnce.Do(func() { close(n.joined) }) }

// Reloading goes before a reload; systemd 253+ wants MONOTONIC_USEC with it.
func (n *notifier) Reloading() {
	n.notify("RELOADING=1\n" + daemon.SdNotifyMonotonicUsec() + "\nSTATUS=reloading the configuration")
}

// Reloaded goes after a reload, failed or not (the old configuration stays
// in force on failure). Before the first READY=1 it sends nothing.
func (n *notifier) Reloaded() {
	if n.ready.Load() {
		n.notify("READY=1\nSTATUS=serving")
	}
}

// Run waits until the process serves HTTP on httpAddr and DNS on dnsAddr
// ("" when DNS is off) and has joined, sends READY=1, then pets the
// watchdog until ctx ends, and sends STOPPING=1.
func (n *notifier) Run(ctx context.Context, httpAddr, dnsAddr string) error {
	var pet <-chan time.Time
	if n.watchdog > 0 {
		t := time.NewTicker(n.watchdog / 2)
		defer t.Stop()
		pet = t.C
	}
	probe := time.NewTimer(0)
	defer probe.Stop()
	wait := 20 * time.Millisecond
	for {
		select {
		case <-ctx.Done():
			n.notify("STOPPING=1\nSTATUS=stopping")
			return nil
		case <-pet:
			n.notify("WATCHDOG=1")
		case <-probe.C:
			if n.ready.Load() {
				continue
			}
			err := serving(ctx, httpAddr, dnsAddr)
			if err == nil {
				select {
				case <-n.joined:
				default:
					err = errors.New("waiting to join the gossip pool (retry_join)")
				}
			}
			if err != nil {
				n.log.Debug("not ready yet", "err", err)
				n.notify("STATUS=" + err.Error())
				wait = min(2*wait, time.Second)
				probe.Reset(wait)
				continue
			}
			n.ready.Store(true)
			n.notify("READY=1\nSTATUS=serving")
			n.log.Debug("ready: serving HTTP and DNS")
			if n.onReady != nil {
				n.onReady()
			}
		}
	}
}

// serving checks that the HTTP API and DNS answer, whatever they answer.
func serving(ctx context.Context, httpAddr, dnsAddr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/v1/agent/self", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("HTTP on %s does not answer: %w", httpAddr, err)
	}
	resp.Body.Close()
	if dnsAddr == "" {
		return nil
	}
	m := new(dns.Msg)
	m.SetQuestion("warren.", dns.TypeSOA)
	c := &dns.Client{Net: "udp", Timeout: time.Second}
	if _, _, err := c.ExchangeContext(ctx, m, dnsAddr); err != nil {
		return fmt.Errorf("DNS on %s does not answer: %w", dnsAddr, err)
	}
	return nil
}

// restartMarker is created by the package's maintainer scripts around the
// restart of an upgrade: an agent stopping while it exists does not leave
// the gossip pool, so that its node and services stay in the catalog for
// the second it is away.
var restartMarker = "/run/warren/restart-without-leave"

// skipLeaveOnRestart shuts gossip down without a graceful leave if the
// package is restarting the daemon. Call it after the loops stopped and
// before gossip stops.
func skipLeaveOnRestart(leaveOnTerminate bool, closeGossip func(), log *slog.Logger) {
	if !leaveOnTerminate {
		return
	}
	if _, err := os.Stat(restartMarker); err != nil {
		return
	}
	log.Info("restarted by a package upgrade: not leaving the gossip pool", "marker", restartMarker)
	closeGossip()
}

// dialable turns a listener's address into one a client can dial: an
// unspecified IP (0.0.0.0, ::) becomes loopback.
func dialable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if ip.To4() != nil {
			host = "127.0.0.1"
		} else {
			host = "::1"
		}
	}
	return net.JoinHostPort(host, port)
}
