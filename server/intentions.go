package server

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-memdb"

	"github.com/warren-mesh/warren/catalog"
	"github.com/warren-mesh/warren/connect"
	"github.com/warren-mesh/warren/rpc"
	"github.com/warren-mesh/warren/server/fsm"
)

// Intentions live in the cluster metadata, one key per source/destination
// pair: "intention/<src ns>/<src>/<dst ns>/<dst>", the value a JSON
// connect.Intention. Deletions leave a tombstone for the "intention/"
// scope, so a blocking list sees them.
const metaIntentionPrefix = "intention/"

func intentionKey(x *connect.Intention) string {
	return metaIntentionPrefix + x.SourceNS + "/" + x.SourceName + "/" + x.DestinationNS + "/" + x.DestinationName
}

// parseIxnName splits "name" or "ns/name" as Consul's intention APIs take
// them and checks the parts like an intention's.
func parseIxnName(field, s string) (ns, name string, err error) {
	if s == "" {
		return "", "", &catalog.FieldError{Field: field, Reason: "missing"}
	}
	ns, name = connect.DefaultNamespace, s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		ns, name = s[:i], s[i+1:]
	}
	probe := &connect.Intention{SourceNS: ns, SourceName: name, DestinationName: "x", Action: connect.IntentionActionAllow}
	if err := probe.Validate(); err != nil {
		if fe, ok := err.(*catalog.FieldError); ok {
			return "", "", &catalog.FieldError{Field: field, Reason: fe.Reason}
		}
		return "", "", err
	}
	return ns, name, nil
}

// loadIntentions reads every intention, with its indexes.
func (s *Server) loadIntentions(ws memdb.WatchSet) (uint64, []*connect.Intention, error) {
	idx, entries, err := s.store.MetaPrefix(ws, metaIntentionPrefix)
	if err != nil {
		return 0, nil, err
	}
	out := make([]*connect.Intention, 0, len(entries))
	for _, e := range entries {
		var x connect.Intention
		if err := json.Unmarshal([]byte(e.Value), &x); err != nil {
			return 0, nil, fmt.Errorf("decode intention %s: %w", e.Key, err)
		}
		x.CreateIndex, x.ModifyIndex = e.CreateIndex, e.ModifyIndex
		x.UpdatePrecedence()
		out = append(out, &x)
	}
	return idx, out, nil
}

// localIntentionApply upserts or deletes one intention on the leader. The
// leader stamps the ID and times; the FSM stores the result.
func (s *Server) localIntentionApply(ctx context.Context, req *rpc.IntentionApplyRequest) (*rpc.Empty, error) {
	sns, sname, err := parseIxnName("source", req.Source)
	if err != nil {
		return nil, err
	}
	dns, dname, err := parseIxnName("destination", req.Destination)
	if err != nil {
		return nil, err
	}
	x := &connect.Intention{}
	if req.Intention != nil {
		x = (*connect.Intention)(req.Intention)
	}
	x.SourceNS, x.SourceName, x.DestinationNS, x.DestinationName = sns, sname, dns, dname
	x.Normalize()
	key := intentionKey(x)
	switch req.Op {
	case rpc.IntentionOpDelete:
		if err := s.applyCommand(ctx, fsm.MetaBatchType, fsm.MetaBatch{Delete: []string{key}}); err != nil {
			return nil, fmt.Errorf("delete intention %s: %w", x, err)
		}
		return &rpc.Empty{}, nil
	case rpc.IntentionOpUpsert:
	default:
		return nil, &catalog.FieldError{Field: "Op", Reason: fmt.Sprintf("%q is not one of upsert, delete", req.Op)}
	}
	if err := x.Validate(); err != nil {
		return nil, err
	}
	// One writer at a time keeps the ID and CreatedAt of an update.
	s.ixnMu.Lock()
	defer s.ixnMu.Unlock()
	now := time.Now().UTC()
	x.ID, x.CreatedAt = uuid.NewString(), now
	if _, old, err := s.store.MetaEntry(nil, key); err != nil {
		return nil, err
	} else if old != nil {
		var o connect.Intention
		if json.Unmarshal([]byte(old.Value), &o) == nil {
			x.ID, x.CreatedAt = o.ID, o.CreatedAt
		}
	}
	x.UpdatedAt = now
	x.CreateIndex, x.ModifyIndex = 0, 0
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("encode intention: %w", err)
	}
	if err := s.applyCommand(ctx, fsm.MetaBatchType, fsm.MetaBatch{Set: []fsm.SetMeta{{Key: key, Value: string(b)}}}); err != nil {
		return nil, fmt.Errorf("write intention %s: %w", x, err)
	}
	return &rpc.Empty{}, nil
}

func toRPCIntentions(xs []*connect.Intention) []*rpc.Intention {
	out := make([]*rpc.Intention, len(xs))
	for i, x := range xs {
		out[i] = (*rpc.Intention)(x)
	}
	return out
}

// readIntentions answers every intention read; check and authorize apply
// this server's default_intention_policy when nothing matches.
func (s *Server) readIntentions(ctx context.Context, q *rpc.IntentionQuery) (*rpc.IntentionReply, error) {
	var ssrc, sdst string
	switch q.Query {
	case rpc.IntentionQueryList:
	case rpc.IntentionQueryExact, rpc.IntentionQueryCheck:
		sns, sname, err := parseIxnName("source", q.Source)
		if err != nil {
			return nil, err
		}
		dns, dname, err := parseIxnName("destination", q.Destination)
		if err != nil {
			return nil, err
		}
		ssrc, sdst = sns+"/"+sname, dns+"/"+dname
	case rpc.IntentionQueryMatch:
		if q.By != string(connect.MatchSource) && q.By != string(connect.MatchDestination) {
			return nil, &catalog.FieldError{Field: "by", Reason: fmt.Sprintf("%q is not one of source, destination", q.By)}
		}
		if len(q.Names) == 0 {
			return nil, &catalog.FieldError{Field: "name", Reason: "missing"}
		}
		for _, n := range q.Names {
			if _, _, err := parseIxnName("name", n); err != nil {
				return nil, err
			}
		}
	case rpc.IntentionQueryAuthorize:
		dns, dname, err := parseIxnName("Target", q.Destination)
		if err != nil {
			return nil, err
		}
		sdst = dns + "/" + dname
		if q.ClientCertURI == "" {
			return nil, &catalog.FieldError{Field: "ClientCertURI", Reason: "missing"}
		}
		if _, err := connect.ParseServiceID(q.ClientCertURI); err != nil {
			return nil, &catalog.FieldError{Field: "ClientCertURI", Reason: err.Error()}
		}
	default:
		return nil, &catalog.FieldError{Field: "Query", Reason: fmt.Sprintf("%q is not a known intention query", q.Query)}
	}
	reply := &rpc.IntentionReply{}
	meta, err := s.blockingQuery(ctx, q.Options, func(ws memdb.WatchSet) (uint64, error) {
		idx, all, err := s.loadIntentions(ws)
		if err != nil {
			return 0, err
		}
		*reply = rpc.IntentionReply{}
		switch q.Query {
		case rpc.IntentionQueryList:
			connect.SortByPrecedence(all)
			reply.Intentions = toRPCIntentions(all)
		case rpc.IntentionQueryExact:
			for _, x := range all {
				if x.SourceNS+"/"+x.SourceName == ssrc && x.DestinationNS+"/"+x.DestinationName == sdst {
					reply.Intentions = toRPCIntentions([]*connect.Intention{x})
				}
			}
		case rpc.IntentionQueryCheck:
			reply.Allowed, reply.Reason = connect.Authorize(all, ssrc, sdst, s.cfg.DefaultIntentionAllow)
		case rpc.IntentionQueryMatch:
			reply.Match = map[string][]*rpc.Intention{}
			for _, n := range q.Names {
				reply.Match[n] = toRPCIntentions(connect.Filter(all, connect.MatchBy(q.By), n))
			}
		case rpc.IntentionQueryAuthorize:
			id, _ := connect.ParseServiceID(q.ClientCertURI)
			roots, _, _, err := s.loadCA(ws)
			if err != nil {
				return 0, err
			}
			if a := connect.ActiveRoot(roots); a == nil || a.TrustDomain != id.TrustDomain {
				reply.Allowed, reply.Reason = false, fmt.Sprintf("Client certificate is from trust domain %q, not this cluster's", id.TrustDomain)
				return idx, nil
			}
			reply.Allowed, reply.Reason = connect.Authorize(all, id.Namespace+"/"+id.Service, sdst, s.cfg.DefaultIntentionAllow)
		}
		return idx, nil
	})
	if err != nil {
		return nil, err
	}
	if q.Query == rpc.IntentionQueryExact && len(reply.Intentions) == 0 {
		return nil, fmt.Errorf("%w: no intention from %s to %s", catalog.ErrNotFound, q.Source, q.Destination)
	}
	reply.Meta = meta
	reply.DefaultAllow = s.cfg.DefaultIntentionAllow
	return reply, nil
}
