package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/warren-mesh/warren/internal/tlscfg"
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
	// TLS (server/tls.go): nil on a plaintext loopback cluster.
	tls     *tlscfg.Configurator
	tlsConf *tls.Config
	log     *slog.Logger
}

func newMux(ln net.Listener, tc *tlscfg.Configurator, log *slog.Logger) *mux {
	m := &mux{
		ln:     ln,
		raftCh: make(chan net.Conn),
		grpcCh: make(chan net.Conn),
		done:   make(chan struct{}),
		tls:    tc,
		log:    log,
	}
	if tc != nil {
		m.tlsConf = tc.IncomingRPC()
	}
	return m
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

func (m *mux) route(raw net.Conn) {
	// One deadline covers the TLS handshake and the first byte.
	_ = raw.SetReadDeadline(time.Now().Add(10 * time.Second))
	conn, state, peer, ok := m.handshake(raw)
	if !ok {
		_ = raw.Close()
		return
	}
	br := bufio.NewReaderSize(conn, 64)
	first, err := br.Peek(1)
	if err != nil {
		_ = conn.Close()
		return
	}
	_ = raw.SetReadDeadline(time.Time{})
	ch := m.grpcCh
	c := &rpcConn{peekedConn: peekedConn{Conn: conn, r: br}, state: state, peer: peer}
	if first[0] == raftByte {
		if m.tls != nil && peer != tlscfg.PeerServer {
			m.log.Warn("refused a Raft connection: it needs a server certificate ("+m.tls.ServerName()+") of the CA", "remote", raw.RemoteAddr().String(), "presented", describePeer(peer))
			_ = conn.Close()
			return
		}
		_, _ = br.ReadByte()
		ch = m.raftCh
	}
	select {
	case ch <- c:
	case <-m.done:
		_ = conn.Close()
	}
}

// handshake does the TLS handshake of a connection when the port has TLS;
// a client that speaks anything else is refused (and told so, if it speaks
// HTTP/2).
func (m *mux) handshake(raw net.Conn) (net.Conn, *tls.ConnectionState, tlscfg.Peer, bool) {
	if m.tls == nil {
		return raw, nil, tlscfg.PeerServer, true
	}
	br := bufio.NewReaderSize(raw, 64)
	first, err := br.Peek(1)
	if err != nil {
		return nil, nil, 0, false
	}
	if first[0] != tlsHandshakeRecord {
		m.log.Warn("refused a plaintext connection: the RPC port requires TLS", "remote", raw.RemoteAddr().String())
		if first[0] == 'P' { // the HTTP/2 preface of a plaintext gRPC client
			refuseGRPC(&peekedConn{Conn: raw, r: br})
		}
		return nil, nil, 0, false
	}
	tc := tls.Server(&peekedConn{Conn: raw, r: br}, m.tlsConf)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		m.log.Warn("refused an RPC connection: TLS handshake failed", "remote", raw.RemoteAddr().String(), "err", err)
		return nil, nil, 0, false
	}
	state := tc.ConnectionState()
	// The handshake verified the chain (VerifyConnection); this cannot
	// fail now, it only tells what the client is.
	peer, err := m.tls.Classify(state.PeerCertificates)
	if err != nil {
		return nil, nil, 0, false
	}
	return tc, &state, peer, true
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
	tls       *tls.Config // outgoing RPC TLS; nil without TLS
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (l *raftLayer) Addr() net.Addr { return l.advertise }

func (l *raftLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	conn, err := d.Dial("tcp", string(addr))
	if err != nil {
		return nil, err
	}
	if l.tls != nil {
		tc := tls.Client(conn, l.tls)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		err := tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("raft TLS handshake with %s: %w", addr, err)
		}
		conn = tc
	}
	if _, err := conn.Write([]byte{raftByte}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}
