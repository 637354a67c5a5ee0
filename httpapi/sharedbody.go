package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/catalog"
)

// sharedBodies lets the blocking queries that one change wakes share one
// encoding of their (identical) answer: the first encodes, the others
// reuse its bytes. Entries are keyed by the request (without index and
// wait) and the answer's index, so a cached body is exactly what encoding
// would produce again.
type sharedBodies struct {
	group singleflight.Group
	mu    sync.Mutex
	m     map[string][]byte
	order []string
}

const sharedBodiesMax = 512

func newSharedBodies() *sharedBodies { return &sharedBodies{m: map[string][]byte{}} }

// sharedKey identifies an answer at meta's index to the query queryKey
// named qk.
func sharedKey(qk string, meta catalog.QueryMeta) string {
	return qk + "#" + strconv.FormatUint(meta.Index, 10) + "#" + strconv.FormatBool(meta.KnownLeader)
}

// queryKey identifies what a request asks for, whatever its index and wait:
// the path, every other option, and (with ACLs) the token's accessor, since
// the answer is what that token may see.
func queryKey(r *http.Request) string {
	q := r.URL.Query()
	q.Del("index")
	q.Del("wait")
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(r.URL.Path)
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		b.WriteString("&" + url.QueryEscape(k) + "=" + url.QueryEscape(strings.Join(vs, "\x00")))
	}
	if id := acl.FromContext(r.Context()); id != nil {
		b.WriteString("#" + id.AccessorID)
	}
	return b.String()
}

// encode returns the JSON of body for this request and index, shared with
// other requests for the same result.
func (s *sharedBodies) encode(key string, body any, pretty bool) ([]byte, error) {
	s.mu.Lock()
	b, ok := s.m[key]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	v, err, _ := s.group.Do(key, func() (any, error) {
		var b []byte
		var err error
		if pretty {
			b, err = json.MarshalIndent(body, "", "    ")
		} else {
			b, err = json.Marshal(body)
		}
		if err != nil {
			return nil, err
		}
		b = append(b, '\n')
		s.mu.Lock()
		if _, ok := s.m[key]; !ok {
			s.m[key] = b
			s.order = append(s.order, key)
			if len(s.order) > sharedBodiesMax {
				delete(s.m, s.order[0])
				s.order = s.order[1:]
			}
		}
		s.mu.Unlock()
		return b, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]byte), nil
}
