package rpc

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/rpc/pb"
)

// MaxMessageSize bounds one RPC message; snapshots travel in one message.
const MaxMessageSize = 512 << 20

// Pool keeps one gRPC connection per server address.
type Pool struct {
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
	// token is the ACL token secret of calls whose context carries none
	// (acl.WithSecret): an agent's own token.
	token atomic.Pointer[string]
	creds credentials.TransportCredentials
}

// SetToken sets the ACL token secret sent with calls whose context carries
// none, and with watch streams.
func (p *Pool) SetToken(secret string) { p.token.Store(&secret) }

// tokenFor is the secret a call made with ctx carries.
func (p *Pool) tokenFor(ctx context.Context) string {
	if s, ok := acl.SecretFrom(ctx); ok {
		return s
	}
	if t := p.token.Load(); t != nil {
		return *t
	}
	return ""
}

// NewPool returns an empty pool of plaintext connections (loopback
// clusters without TLS). Close it to release its connections.
func NewPool() *Pool {
	return &Pool{conns: map[string]*grpc.ClientConn{}, creds: insecure.NewCredentials()}
}

// NewTLSPool returns an empty pool whose connections use cfg (the
// client side of mutual TLS: it verifies the server's name and presents
// our certificate).
func NewTLSPool(cfg *tls.Config) *Pool {
	return &Pool{conns: map[string]*grpc.ClientConn{}, creds: credentials.NewTLS(cfg)}
}

func (p *Pool) client(addr string) (pb.ServerClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return nil, fmt.Errorf("rpc pool is closed")
	}
	if c, ok := p.conns[addr]; ok {
		return pb.NewServerClient(c), nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(p.creds),
		// Servers come and go; reconnect quickly once a peer is back.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageSize), grpc.MaxCallSendMsgSize(MaxMessageSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.conns[addr] = c
	return pb.NewServerClient(c), nil
}

// Call runs method on the server at addr, with req and reply as JSON; the
// server forwards it to the leader if it must.
func (p *Pool) Call(ctx context.Context, addr, method string, req, reply any) error {
	return p.call(ctx, addr, method, req, reply, false)
}

// Forward runs method on the leader at addr, which must not forward it
// again: servers use it to forward their requests.
func (p *Pool) Forward(ctx context.Context, addr, method string, req, reply any) error {
	return p.call(ctx, addr, method, req, reply, true)
}

func (p *Pool) call(ctx context.Context, addr, method string, req, reply any, forwarded bool) error {
	c, err := p.client(addr)
	if err != nil {
		return err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", method, err)
	}
	out, err := c.Call(ctx, &pb.CallRequest{Method: method, Body: body, Forwarded: forwarded, Token: p.tokenFor(ctx)})
	if err != nil {
		return FromStatus(err)
	}
	if err := json.Unmarshal(out.Body, reply); err != nil {
		return fmt.Errorf("decode %s reply: %w", method, err)
	}
	return nil
}

// Join sends our server info to the server at addr. Errors are gRPC
// status errors.
func (p *Pool) Join(ctx context.Context, addr string, self *pb.ServerInfo) (*pb.JoinReply, error) {
	c, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	// The caller reads the gRPC status: FailedPrecondition means the
	// receiver belongs to another cluster.
	return c.Join(ctx, &pb.JoinRequest{Self: self})
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

// Watch opens a catalog watch stream to the server at addr.
func (p *Pool) Watch(ctx context.Context, addr string) (grpc.ServerStreamingClient[pb.WatchEvent], error) {
	c, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	return c.Watch(ctx, &pb.WatchRequest{Token: p.tokenFor(ctx)})
}
