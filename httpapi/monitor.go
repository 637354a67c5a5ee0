package httpapi

import (
	"io"
	"net/http"
	"time"

	"github.com/warren-mesh/warren/internal/logging"
)

// monitorWriteTimeout bounds one write of the log stream.
const monitorWriteTimeout = 10 * time.Second

// agentMonitor answers GET /v1/agent/monitor as Consul does: the process's
// log lines from now on, streamed as they are written, at ?loglevel
// (trace, debug, info, warn, error; info by default, whatever the
// process's own level) as text, or JSON lines with ?logjson. It needs
// agent:read, holds one of the client's blocking-query slots, and ends when
// the client goes away. Lines the client does not read fast enough are
// dropped, never held up.
func (h *handler) agentMonitor(w http.ResponseWriter, r *http.Request) {
	if h.monitor == nil {
		h.fail(w, r, &httpError{code: http.StatusNotFound, msg: "this process streams no logs"})
		return
	}
	if err := checkDatacenter(r.URL.Query().Get("dc"), h.dc); err != nil {
		h.fail(w, r, err)
		return
	}
	if err := h.mayAgent(r, false); err != nil {
		h.fail(w, r, err)
		return
	}
	v := r.URL.Query()
	level, err := logging.ParseLevel(v.Get("loglevel"))
	if err != nil {
		h.fail(w, r, badRequest("loglevel: %v; give trace, debug, info, warn or error", err))
		return
	}
	asJSON, err := boolParam(v, "logjson")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	release, ok := h.acquireBlocking(w, r)
	if !ok {
		return
	}
	defer release()

	sub := h.monitor.Subscribe(level, asJSON)
	defer sub.Close()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = rc.Flush() // the client waits for the headers before reading lines
	for {
		select {
		case <-r.Context().Done():
			return
		case line := <-sub.Lines():
			// A client that stops reading but keeps the connection
			// would block the write for good: it gets monitorWriteTimeout.
			_ = rc.SetWriteDeadline(time.Now().Add(monitorWriteTimeout))
			if writeQueued(w, line, sub.Lines()) != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// writeQueued writes line and whatever else is queued behind it, for one
// flush.
func writeQueued(w io.Writer, line []byte, queue <-chan []byte) error {
	for {
		if _, err := w.Write(line); err != nil {
			return err
		}
		select {
		case line = <-queue:
		default:
			return nil
		}
	}
}
