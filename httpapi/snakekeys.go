package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// Consul's agent accepts a service or check registration with the
// snake_case keys of its config files as well as the API's CamelCase
// (`enable_tag_override`, `deregister_critical_service_after`,
// `tagged_addresses`, `service_id` …; Consul's TestAgent_RegisterService_
// TranslateKeys), and scripts written against the config-file docs send
// them. encoding/json matches keys without regard to case but not to
// underscores, so it would drop such a key without a word: a TTL check
// that never deregisters, a tag override never enabled. decodeSnakeJSON
// removes the underscores from keys before decoding, which makes them
// match (EqualFold), except in the maps whose keys are the user's own.

// userKeyed are the fields (underscores removed, lower case) whose values
// are maps keyed by the user: their keys are left as they are. Tagged
// addresses are keyed by the user too, but their values are objects of
// ours.
var userKeyed = map[string]bool{"meta": true, "config": true, "header": true}

const taggedAddresses = "taggedaddresses"

// decodeSnakeJSON is decodeJSON for a body that may use snake_case keys.
// Where a body has both spellings of a key, the CamelCase one wins, as in
// Consul.
func decodeSnakeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	var raw json.RawMessage
	if err := decodeJSON(w, r, &raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers travel through unchanged
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return badRequest("body: %v", err)
	}
	b, err := json.Marshal(unsnake(tree))
	if err != nil {
		return fmt.Errorf("re-encode body: %w", err)
	}
	return jsonError(json.Unmarshal(b, v))
}

// unsnake returns node with the underscores removed from its object keys,
// recursively, leaving the keys of user-keyed maps alone.
func unsnake(node any) any {
	switch n := node.(type) {
	case []any:
		for i, e := range n {
			n[i] = unsnake(e)
		}
		return n
	case map[string]any:
		out := make(map[string]any, len(n))
		// Keys without underscores first: a CamelCase key beats its
		// snake_case twin (seen holds the keys taken, in lower case).
		seen := make(map[string]bool, len(n))
		for k, v := range n {
			if !strings.Contains(k, "_") {
				out[k] = unsnakeField(k, v)
				seen[strings.ToLower(k)] = true
			}
		}
		for k, v := range n {
			if !strings.Contains(k, "_") {
				continue
			}
			nk := strings.ReplaceAll(k, "_", "")
			if lk := strings.ToLower(nk); !seen[lk] {
				seen[lk] = true
				out[nk] = unsnakeField(nk, v)
			}
		}
		return out
	}
	return node
}

// unsnakeField translates the value of field key.
func unsnakeField(key string, v any) any {
	lk := strings.ToLower(key)
	switch {
	case userKeyed[lk]:
		return v
	case lk == taggedAddresses:
		if m, ok := v.(map[string]any); ok {
			for k, a := range m {
				m[k] = unsnake(a)
			}
			return m
		}
	}
	return unsnake(v)
}
