package connect

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Intention actions, wildcard and source type, as in Consul.
const (
	IntentionActionAllow  = "allow"
	IntentionActionDeny   = "deny"
	WildcardSpecifier     = "*"
	IntentionSourceConsul = "consul"
)

// MaxIntentionDescriptionLen bounds an intention's description.
const MaxIntentionDescriptionLen = 1024

var intentionMetaKeyRe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Intention allows or denies connections from a source service to a
// destination service. Its JSON shape is Consul's api.Intention (without
// L7 permissions, partitions, peers and sameness groups). Namespaces are
// "default" unless given; either side may be the wildcard "*", whole
// values only.
type Intention struct {
	ID          string `json:",omitempty"`
	Description string `json:",omitempty"`

	SourceNS, SourceName           string
	DestinationNS, DestinationName string

	// SourceType is "consul" (the only kind of source Warren knows).
	SourceType string

	// Action is "allow" or "deny".
	Action string `json:",omitempty"`

	Meta map[string]string `json:",omitempty"`

	// Precedence is computed from the wildcards (see UpdatePrecedence);
	// higher applies first. Read-only in the API.
	Precedence int

	// CreatedAt and UpdatedAt are stamped by the leader.
	CreatedAt, UpdatedAt time.Time

	CreateIndex uint64
	ModifyIndex uint64
}

// String is Consul's "source => destination (action)".
func (x *Intention) String() string {
	return fmt.Sprintf("%s => %s (%s)", partString(x.SourceNS, x.SourceName), partString(x.DestinationNS, x.DestinationName), x.Action)
}

func partString(ns, name string) string {
	if ns != "" && ns != DefaultNamespace {
		return ns + "/" + name
	}
	return name
}

// Normalize fills the defaults: namespaces "default", source type
// "consul", and the precedence. Call it before Validate and before storing.
func (x *Intention) Normalize() {
	if x.SourceNS == "" {
		x.SourceNS = DefaultNamespace
	}
	if x.DestinationNS == "" {
		x.DestinationNS = DefaultNamespace
	}
	if x.SourceType == "" {
		x.SourceType = IntentionSourceConsul
	}
	x.UpdatePrecedence()
}

// UpdatePrecedence sets Precedence by Consul's table: exact destination
// before wildcard destination, then exact source before wildcard source,
// namespaces counting as the outer level.
//
//	src ns/name    dst ns/name    precedence
//	exact/exact    exact/exact    9
//	exact/*        exact/exact    8
//	*/*            exact/exact    7
//	exact/exact    exact/*        6
//	exact/*        exact/*        5
//	*/*            exact/*        4
//	exact/exact    */*            3
//	exact/*        */*            2
//	*/*            */*            1
func (x *Intention) UpdatePrecedence() { x.Precedence = precedence(x) }

func precedence(x *Intention) int {
	var max int
	switch countExact(x.DestinationNS, x.DestinationName) {
	case 2:
		max = 9
	case 1:
		max = 6
	default:
		max = 3
	}
	return max - (2 - countExact(x.SourceNS, x.SourceName))
}

// countExact counts the exact parts of ns/name; a wildcard may only follow
// exact parts, so "*/*" is 0, "ns/*" is 1 and "ns/name" is 2.
func countExact(ns, name string) int {
	if ns == WildcardSpecifier {
		return 0
	}
	if name == WildcardSpecifier {
		return 1
	}
	return 2
}

func ixnFieldErr(field, format string, args ...any) error {
	return &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks an intention as a user wrote it (empty namespaces stand
// for "default"). The error is a *catalog.FieldError, a 400 at the API.
func (x *Intention) Validate() error {
	if err := validateIxnPart("SourceNS", "SourceName", x.SourceNS, x.SourceName); err != nil {
		return err
	}
	if err := validateIxnPart("DestinationNS", "DestinationName", x.DestinationNS, x.DestinationName); err != nil {
		return err
	}
	switch x.Action {
	case IntentionActionAllow, IntentionActionDeny:
	case "":
		return ixnFieldErr("Action", "missing (allow or deny)")
	default:
		return ixnFieldErr("Action", "%q is not one of allow, deny", x.Action)
	}
	switch x.SourceType {
	case "", IntentionSourceConsul:
	default:
		return ixnFieldErr("SourceType", "%q is not supported (consul)", x.SourceType)
	}
	if len(x.Description) > MaxIntentionDescriptionLen {
		return ixnFieldErr("Description", "longer than %d characters", MaxIntentionDescriptionLen)
	}
	if len(x.Meta) > catalog.MaxMetaPairs {
		return ixnFieldErr("Meta", "more than %d pairs", catalog.MaxMetaPairs)
	}
	for k, v := range x.Meta {
		if len(k) > catalog.MaxMetaKeyLen || !intentionMetaKeyRe.MatchString(k) {
			return ixnFieldErr("Meta", "key %q must be 1-%d letters, digits, '_' or '-'", k, catalog.MaxMetaKeyLen)
		}
		if strings.HasPrefix(k, "warren-") || strings.HasPrefix(k, "consul-") {
			return ixnFieldErr("Meta", "key %q uses a reserved prefix", k)
		}
		if len(v) > catalog.MaxMetaValueLen {
			return ixnFieldErr("Meta."+k, "value longer than %d characters", catalog.MaxMetaValueLen)
		}
	}
	return nil
}

func validateIxnPart(nsField, nameField, ns, name string) error {
	if name == "" {
		return ixnFieldErr(nameField, "missing")
	}
	if name != WildcardSpecifier {
		if strings.Contains(name, WildcardSpecifier) {
			return ixnFieldErr(nameField, "%q: a wildcard must be the whole value", name)
		}
		if err := catalog.ValidateName(nameField, name); err != nil {
			return err
		}
	}
	switch ns {
	case "", DefaultNamespace:
	case WildcardSpecifier:
		if name != WildcardSpecifier {
			return ixnFieldErr(nameField, "%q with a wildcard namespace: the name must be a wildcard too", name)
		}
	default:
		if strings.Contains(ns, WildcardSpecifier) {
			return ixnFieldErr(nsField, "%q: a wildcard must be the whole value", ns)
		}
		if err := catalog.ValidateName(nsField, ns); err != nil {
			return err
		}
	}
	return nil
}

// splitName parses "ns/name" or "name" (namespace "default"), the forms
// Consul's intention check and match APIs take.
func splitName(s string) (ns, name string) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return DefaultNamespace, s
}

func partMatches(ixnNS, ixnName, ns, name string) bool {
	if ixnNS == "" {
		ixnNS = DefaultNamespace
	}
	if ixnNS == WildcardSpecifier {
		return true
	}
	return ixnNS == ns && (ixnName == WildcardSpecifier || ixnName == name)
}

// less orders intentions the way they apply: precedence descending; at
// equal precedence deny first (it is the safe answer to a duplicate), then
// by names and ID so the order never depends on the input order.
func less(a, b *Intention) int {
	if c := cmp.Compare(precedence(b), precedence(a)); c != 0 {
		return c
	}
	if a.Action != b.Action {
		if a.Action == IntentionActionDeny {
			return -1
		}
		if b.Action == IntentionActionDeny {
			return 1
		}
	}
	return cmp.Or(
		cmp.Compare(a.SourceNS, b.SourceNS),
		cmp.Compare(a.SourceName, b.SourceName),
		cmp.Compare(a.DestinationNS, b.DestinationNS),
		cmp.Compare(a.DestinationName, b.DestinationName),
		cmp.Compare(a.ID, b.ID),
	)
}

// SortByPrecedence sorts intentions in the order they apply, as Consul
// lists them.
func SortByPrecedence(ixns []*Intention) {
	slices.SortStableFunc(ixns, less)
}

// Match returns the intention that decides a connection from source to
// destination ("name" or "ns/name"): the matching one of highest
// precedence. ok is false if none matches.
func Match(ixns []*Intention, source, destination string) (ixn *Intention, ok bool) {
	sns, sname := splitName(source)
	dns, dname := splitName(destination)
	var best *Intention
	for _, x := range ixns {
		if x == nil || !partMatches(x.SourceNS, x.SourceName, sns, sname) || !partMatches(x.DestinationNS, x.DestinationName, dns, dname) {
			continue
		}
		if best == nil || less(x, best) < 0 {
			best = x
		}
	}
	return best, best != nil
}

// MatchBy selects which side of an intention Filter looks at.
type MatchBy string

// The sides of /v1/connect/intentions/match?by=.
const (
	MatchSource      MatchBy = "source"
	MatchDestination MatchBy = "destination"
)

// Filter returns the intentions whose source (or destination) matches
// name ("name" or "ns/name"), in precedence order: the answer of Consul's
// /v1/connect/intentions/match.
func Filter(ixns []*Intention, by MatchBy, name string) []*Intention {
	ns, n := splitName(name)
	var out []*Intention
	for _, x := range ixns {
		if x == nil {
			continue
		}
		var m bool
		switch by {
		case MatchSource:
			m = partMatches(x.SourceNS, x.SourceName, ns, n)
		case MatchDestination:
			m = partMatches(x.DestinationNS, x.DestinationName, ns, n)
		}
		if m {
			out = append(out, x)
		}
	}
	SortByPrecedence(out)
	return out
}

// Authorize decides whether source may connect to destination: by the
// matching intention of highest precedence, or by defaultAllow (the
// default_intention_policy) when none matches. reason says which, in the
// style of Consul's /v1/agent/connect/authorize.
func Authorize(ixns []*Intention, source, destination string, defaultAllow bool) (allowed bool, reason string) {
	if x, ok := Match(ixns, source, destination); ok {
		return x.Action == IntentionActionAllow, "Matched intention: " + x.String()
	}
	if defaultAllow {
		return true, "No matching intention, default_intention_policy is allow"
	}
	return false, "No matching intention, default_intention_policy is deny"
}
