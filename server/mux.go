package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// raftByte is the first byte a Raft connection sends on the RPC port; gRPC
// connections start with the HTTP/2 preface ("PRI ..."), so one port serves
// both, as Consul's does.
const raftByte byte = 0x01

// mux splits one TCP listener into a Raft stream layer and a gRPC
// listener by the first byte of each connection.
type mux struct {
	ln     net.Listener
	raftCh chan net.Conn
	grpcCh chan net.Conn
	done   chan struct{}
	once   sync.Once
}

func newMux(ln net.Listener) *mux {
	return &mux{
		ln:     ln,
		raftCh: make(chan net.Conn),
		grpcCh: make(chan net.Conn),
		done:   make(chan struct{}),
	}
}

// serve accepts connections until close is called.
func (m *mux) serve() error {
	for {
		conn, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return nil
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept on %s: %w", m.ln.Addr(), err)
		}
		go m.route(conn)
	}
}

func (m *mux) route(conn net.Conn) {
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReaderSize(conn, 64)
	first, err := br.Peek(1)
	if err != nil {
		_ = conn.Close()
		return
	}
	_ = conn.SetReadDeadline(time.Time{})
	ch := m.grpcCh
	var c net.Conn = &peekedConn{Conn: conn, r: br}
	if first[0] == raftByte {
		_, _ = br.ReadByte()
		ch = m.raftCh
	}
	select {
	case ch <- c:
	case <-m.done:
		_ = conn.Close()
	}
}

func (m *mux) close() {
	m.once.Do(func() {
		close(m.done)
		_ = m.ln.Close()
	})
}

type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a net.Listener fed by the mux. Closing it stops its
// Accept only; the mux and the other listener keep running.
type chanListener struct {
	m      *mux
	ch     chan net.Conn
	once   sync.Once
	closed chan struct{}
}

func newChanListener(m *mux, ch chan net.Conn) chanListener {
	return chanListener{m: m, ch: ch, closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.m.done:
		return nil, net.ErrClosed
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}
func (l *chanListener) Addr() net.Addr { return l.m.ln.Addr() }

// raftLayer is the Raft stream layer on the mux: it dials with the Raft
// byte first and accepts the connections the mux routed to Raft.
type raftLayer struct {
	chanListener
	advertise net.Addr
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (l *raftLayer) Addr() net.Addr { return l.advertise }

func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write([]byte{raftByte}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
