package limits

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// maxRejecting bounds the goroutines that answer refused connections; past
// it a refused connection is closed without an answer.
const maxRejecting = 64

// rejectLinger is how long a refused connection may take to receive its
// 429 before it is closed.
const rejectLinger = time.Second

// ConnLimitListener caps the open connections per client IP of a listener,
// as Consul's http_max_conns_per_client does. A connection over the cap is
// answered "429 Too Many Requests" (a plain HTTP/1.1 response naming the
// limit), counted, and closed; Accept never returns it. The caller owns
// the listener: Close stops Accept and waits for the refusals in flight.
type ConnLimitListener struct {
	net.Listener
	max  int
	rej  *Rejections
	name string

	mu     sync.Mutex
	open   map[string]int
	closed bool
	wg     sync.WaitGroup // refusal goroutines
	sem    chan struct{}
}

// LimitConnsPerIP wraps ln so that each client IP holds at most max
// connections (max <= 0: no cap, ln is returned unwrapped).
func LimitConnsPerIP(ln net.Listener, max int, rej *Rejections) net.Listener {
	if max <= 0 || ln == nil {
		return ln
	}
	return &ConnLimitListener{Listener: ln, max: max, rej: rej, name: HTTPConnsPerClient,
		open: map[string]int{}, sem: make(chan struct{}, maxRejecting)}
}

// Accept returns the next connection whose client is under the cap.
func (l *ConnLimitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := ClientIP(c.RemoteAddr().String())
		l.mu.Lock()
		if l.open[ip] < l.max {
			l.open[ip]++
			l.mu.Unlock()
			return &limitedConn{Conn: c, l: l, ip: ip}, nil
		}
		// Over the cap. The refusal goroutine is counted under mu, so
		// that Close, which sets closed under mu, waits for every one.
		answer := false
		if !l.closed {
			select {
			case l.sem <- struct{}{}:
				answer = true
				l.wg.Add(1)
			default:
			}
		}
		l.mu.Unlock()
		l.rej.Inc(l.name)
		if !answer {
			_ = c.Close()
			continue
		}
		go l.refuse(c)
	}
}

// refuse answers c with 429 and closes it. The answer is written, the
// write side shut (FIN), and what the client sent read and dropped for up
// to rejectLinger, so that the client reads the 429 rather than a reset.
func (l *ConnLimitListener) refuse(c net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.sem }()
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rejectLinger))
	body := fmt.Sprintf("Too many connections from this client: the limit %s is %d\n", l.name, l.max)
	_, err := fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	if err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// Close closes the listener and waits for the refusals in flight (each
// ends within rejectLinger).
func (l *ConnLimitListener) Close() error {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	err := l.Listener.Close()
	l.wg.Wait()
	return err
}

// Open returns the number of open connections of ip (for tests).
func (l *ConnLimitListener) Open(ip string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open[ip]
}

func (l *ConnLimitListener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
	}
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	l    *ConnLimitListener
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.ip) })
	return err
}

// ErrTooMany is what PerKey.Acquire's callers wrap when a key is at its
// cap.
var ErrTooMany = errors.New("too many concurrent requests from this client")

// PerKey caps the concurrent holders per key (blocking queries per client
// IP). The map holds only keys with a holder, so it is bounded by the
// number of requests in flight.
type PerKey struct {
	max int
	mu  sync.Mutex
	n   map[string]int
}

// NewPerKey returns a cap of max holders per key; max <= 0 means no cap
// (Acquire always succeeds).
func NewPerKey(max int) *PerKey { return &PerKey{max: max, n: map[string]int{}} }

// Acquire takes a slot for key and returns its release func, or false when
// key holds max slots already.
func (p *PerKey) Acquire(key string) (release func(), ok bool) {
	if p == nil || p.max <= 0 {
		return func() {}, true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n[key] >= p.max {
		return nil, false
	}
	p.n[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.n[key]--; p.n[key] <= 0 {
				delete(p.n, key)
			}
		})
	}, true
}

// Max is the cap (<= 0: none).
func (p *PerKey) Max() int {
	if p == nil {
		return 0
	}
	return p.max
}
