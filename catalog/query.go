package catalog

import (
	"errors"
	"time"
)

// Errors that cross package and process boundaries. Wrap them with context;
// the HTTP layer maps them to status codes and the RPC layer to gRPC codes.
var (
	// ErrInvalid marks a request that is malformed or breaks a rule; nothing
	// was written. FieldError unwraps to it.
	ErrInvalid = errors.New("invalid request")
	// ErrNoLeader means the cluster has no leader to take the request.
	ErrNoLeader = errors.New("no cluster leader")
	// ErrNotFound means the named object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnknownDatacenter means a request named a datacenter we cannot reach.
	ErrUnknownDatacenter = errors.New("no path to datacenter")
	// ErrRateLimited means a rate limit refused the request; the caller
	// should back off and retry.
	ErrRateLimited = errors.New("rate limit exceeded, retry")
	// ErrMaybeApplied is a write whose outcome is unknown: the leader was
	// lost after it may have committed it. Retrying it could apply it
	// again after other clients' writes, so it is never retried for the
	// caller (HTTP 503 saying so).
	ErrMaybeApplied = errors.New("the write may or may not have been applied")
	// ErrPermissionDenied is a request its ACL token does not allow
	// (HTTP 403 "Permission denied", as Consul answers; Consul's clients
	// match that text).
	//lint:ignore ST1005 Consul's wire text, which clients match.
	ErrPermissionDenied = errors.New("Permission denied")
	// ErrACLNotFound is a request whose token matches no token (HTTP 403
	// "ACL not found", as Consul answers).
	ErrACLNotFound = errors.New("ACL not found")
)

// Unwrap makes every FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Consistency is the read consistency a query asks for.
type Consistency int

const (
	// ConsistencyDefault reads on the leader without checking leadership
	// with a quorum first.
	ConsistencyDefault Consistency = iota
	// ConsistencyStale reads on whichever server is asked.
	ConsistencyStale
	// ConsistencyConsistent reads on the leader after it has confirmed its
	// leadership with a quorum.
	ConsistencyConsistent
)

// QueryOptions are the options every read takes: blocking and consistency.
type QueryOptions struct {
	// MinIndex makes the query block until the result's index is above it.
	MinIndex uint64
	// MaxWait bounds how long a blocking query waits; 0 means the default.
	MaxWait     time.Duration
	Consistency Consistency
}

// QueryMeta is what a read reports beside its result.
type QueryMeta struct {
	// Index is the highest modify index among the rows in the query's scope
	// and the deletions in it; it moves only when the result may change.
	Index       uint64
	KnownLeader bool
	LastContact time.Duration
	// ResultsFilteredByACLs is set when the ACLs dropped something from
	// the result (header X-Consul-Results-Filtered-By-ACLs).
	ResultsFilteredByACLs bool `json:",omitempty"`
}

// Blocking query waits, as Consul defines them.
const (
	DefaultQueryWait = 5 * time.Minute
	MaxQueryWait     = 10 * time.Minute
)
