package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/warren-mesh/warren/api"
)

func (h *handler) leader(r *http.Request) (any, error) {
	return h.backend.Leader(r.Context())
}

func (h *handler) peers(r *http.Request) (any, error) {
	peers, err := h.backend.Peers(r.Context())
	return emptyIfNil(peers), err
}

// self answers /v1/agent/self with the part of Consul's answer clients read:
// Config (NodeName above all) and Member. With a local agent the answer is
// the fuller one of agentSelf.
func (h *handler) self(r *http.Request) (any, error) {
	if err := h.mayAgent(r, false); err != nil {
		return nil, err
	}
	if h.agent != nil {
		return h.agentSelf(r)
	}
	config, member := h.selfSections(h.backend.Self())
	return &api.AgentSelf{Config: config, Member: member}, nil
}

// selfSections builds the Config and Member sections of /v1/agent/self. The
// member tags are the ones Consul's tooling looks at to tell servers
// ("consul") from clients.
func (h *handler) selfSections(s Self) (api.AgentConfig, api.AgentMember) {
	dc := s.Datacenter
	if dc == "" {
		dc = h.dc
	}
	role := "node"
	if s.Server {
		role = "consul"
	}
	return api.AgentConfig{Datacenter: dc, PrimaryDatacenter: dc, NodeName: s.NodeName, NodeID: s.NodeID, Server: s.Server, Version: s.Version},
		api.AgentMember{
			Name:   s.NodeName,
			Addr:   s.MemberAddr,
			Port:   uint16(s.MemberPort),
			Tags:   map[string]string{"dc": dc, "id": s.NodeID, "role": role, "build": s.Version},
			Status: api.MemberAlive,
		}
}

func (h *handler) raftConfiguration(r *http.Request) (any, error) {
	c, err := h.backend.RaftConfiguration(r.Context())
	if err != nil {
		return nil, err
	}
	return &api.RaftConfiguration{Servers: mapSlice(c.Servers, fromRaftServer), Index: c.Index}, nil
}

// removePeer handles DELETE /v1/operator/raft/peer?id=… or ?address=…;
// like Consul it answers 200 with an empty body.
func (h *handler) removePeer(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	if err := checkDatacenter(v.Get("dc"), h.dc); err != nil {
		h.fail(w, r, err)
		return
	}
	id, address := v.Get("id"), v.Get("address")
	if id == "" && address == "" {
		h.fail(w, r, badRequest("id: missing; give ?id with the server's ID or ?address with its IP:port"))
		return
	}
	if err := h.backend.RemovePeer(r.Context(), id, address); err != nil {
		h.fail(w, r, err)
	}
}

// snapshotSave streams the backend's snapshot as it is written. Headers go
// out with the first byte, so an error before then is answered normally;
// an error after it aborts the connection, so the client sees a failed
// transfer instead of a short snapshot that looks whole.
func (h *handler) snapshotSave(w http.ResponseWriter, r *http.Request) {
	if _, err := parseQueryOptions(r, h.dc); err != nil {
		h.fail(w, r, err)
		return
	}
	sw := &streamWriter{w: w}
	err := h.backend.SnapshotSave(r.Context(), sw)
	switch {
	case err != nil && !sw.started:
		h.fail(w, r, err)
	case err != nil:
		h.log.LogAttrs(r.Context(), slog.LevelError, "snapshot save failed mid-stream",
			slog.Int64("bytes_sent", sw.n), slog.Any("error", err))
		panic(http.ErrAbortHandler)
	default:
		sw.start()
	}
}

// snapshotRestore hands the request body, up to maxSnapshotBytes, to the
// backend; like Consul it answers 200 with an empty body.
func (h *handler) snapshotRestore(w http.ResponseWriter, r *http.Request) {
	if err := checkDatacenter(r.URL.Query().Get("dc"), h.dc); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.backend.SnapshotRestore(r.Context(), http.MaxBytesReader(w, r.Body, maxSnapshotBytes)); err != nil {
		h.fail(w, r, err)
	}
}

// streamWriter sends the success headers on the first write.
type streamWriter struct {
	w       http.ResponseWriter
	started bool
	n       int64
}

func (s *streamWriter) start() {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/octet-stream")
		s.w.Header().Set("X-Content-Type-Options", "nosniff")
		s.w.WriteHeader(http.StatusOK)
	}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.start()
	n, err := s.w.Write(p)
	s.n += int64(n)
	return n, err
}

// agentVersion answers GET /v1/agent/version as Consul does, with Warren's
// version as HumanVersion. It needs no token: the version is already in
// every member's gossip tags.
func (h *handler) agentVersion(*http.Request) (any, error) {
	return map[string]string{"HumanVersion": h.backend.Self().Version, "SHA": "", "BuildDate": "", "FIPS": ""}, nil
}
