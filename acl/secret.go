package acl

import "context"

type secretKey struct{}

// WithSecret returns ctx carrying the token secret a request was made
// with, so that calls made on its behalf (an agent forwarding to a server)
// carry it on. "" is the anonymous token.
func WithSecret(ctx context.Context, secret string) context.Context {
	return context.WithValue(ctx, secretKey{}, secret)
}

// SecretFrom returns the token secret ctx carries and whether it carries
// one.
func SecretFrom(ctx context.Context) (string, bool) {
	s, ok := ctx.Value(secretKey{}).(string)
	return s, ok
}

type noSecret struct{}

// WithoutSecret returns ctx without the request's token secret: calls made
// with it use the caller's own token (an agent's), not the request's.
func WithoutSecret(ctx context.Context) context.Context {
	return context.WithValue(ctx, secretKey{}, noSecret{})
}
