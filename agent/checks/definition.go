package checks

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/warren-mesh/warren/catalog"
)

// Check kinds, as returned by Definition.Kind.
const (
	KindHTTP   = "http"
	KindTCP    = "tcp"
	KindUDP    = "udp"
	KindGRPC   = "grpc"
	KindTTL    = "ttl"
	KindScript = "script"
)

// Defaults, Consul's.
const (
	// DefaultTimeout bounds one probe of a network check when Timeout is 0.
	DefaultTimeout = 10 * time.Second
	// DefaultScriptTimeout bounds one run of a script check when Timeout is 0.
	DefaultScriptTimeout = 30 * time.Second
	// DefaultMinInterval is the shortest interval a check runs at; shorter
	// intervals are raised to it (Consul does the same rather than refuse).
	DefaultMinInterval = time.Second
	// DefaultUDPPayload is sent by a UDP check whose UDPPayload is empty.
	DefaultUDPPayload = "warren health check"
)

// Source says where a definition came from. It decides whether a script
// check may run: never from the API, from config files only when
// enable_local_script_checks is set. The zero Source is the untrusted one.
type Source int

const (
	// SourceAPI is a definition registered through the HTTP API.
	SourceAPI Source = iota
	// SourceConfigFile is a definition read from the agent's config files.
	SourceConfigFile
)

func (s Source) String() string {
	switch s {
	case SourceAPI:
		return "api"
	case SourceConfigFile:
		return "config file"
	}
	return fmt.Sprintf("source(%d)", int(s))
}

// Definition is a check as configured, with Consul's fields. Exactly one of
// HTTP, TCP, UDP, GRPC, TTL and Args picks its kind.
type Definition struct {
	// ID identifies the check on this agent; it defaults to Name.
	ID        string
	Name      string
	ServiceID string // empty for a node-level check
	Notes     string

	// HTTP is the URL of an HTTP check (http or https). 2xx is passing, 429
	// is warning, anything else (including a redirect that is not followed)
	// is critical.
	HTTP   string
	Method string              // default GET
	Header map[string][]string // a "Host" entry sets the request's Host
	Body   string
	// FollowRedirects makes an HTTP check follow up to 5 redirects, of a
	// GET or HEAD only, without the definition's token headers
	// (checkRedirect in http.go). Unlike Consul (whose DisableRedirects
	// defaults to false), redirects are not followed by default: a 3xx
	// answer is reported as critical. Config key follow_redirects.
	FollowRedirects bool
	// TLSSkipVerify and TLSServerName apply to HTTPS checks and to gRPC
	// checks with GRPCUseTLS.
	TLSSkipVerify bool
	TLSServerName string

	// TCP is a host:port; a completed connect is passing.
	TCP string
	// UDP is a host:port. The check sends UDPPayload (DefaultUDPPayload if
	// empty) and reads: a reply or a read timeout is passing (Consul's
	// convention: UDP services often do not answer), an error such as an
	// ICMP port unreachable is critical.
	UDP        string
	UDPPayload string

	// GRPC is "host:port" or "host:port/service"; the check calls
	// grpc.health.v1.Health/Check and SERVING is passing.
	GRPC       string
	GRPCUseTLS bool

	// TTL makes a check whose status is pushed with Manager.SetTTL; it turns
	// critical when not updated within TTL. Thresholds do not apply.
	TTL time.Duration

	// Args is a script check's command line, run without a shell. Exit 0 is
	// passing, 1 warning, anything else critical.
	Args []string

	// Interval between probes; required for every kind but TTL.
	Interval time.Duration
	// Timeout of one probe; 0 means DefaultTimeout (DefaultScriptTimeout
	// for scripts). Probes of one check never overlap.
	Timeout time.Duration

	// SuccessBeforePassing is how many consecutive passing (or warning)
	// probes it takes to report them; 0 and 1 both mean at once.
	SuccessBeforePassing int
	// FailuresBeforeCritical is how many consecutive critical probes it
	// takes to report critical; 0 and 1 both mean at once.
	FailuresBeforeCritical int
	// DeregisterCriticalServiceAfter: once the check has been critical this
	// long, ManagerConfig.Reap is called for its service. Needs ServiceID.
	DeregisterCriticalServiceAfter time.Duration

	// Status is the initial status; empty means critical, as in Consul.
	Status string
}

// CheckID is the check's ID: ID, or Name when ID is empty (Consul's rule).
func (d *Definition) CheckID() string {
	if d.ID != "" {
		return d.ID
	}
	return d.Name
}

// Kind returns the check's kind (KindHTTP …), or "" when no kind is set.
// When several are set it returns the first in the order HTTP, TCP, UDP,
// GRPC, TTL, script; Validate refuses such a definition.
func (d *Definition) Kind() string {
	if k := d.kinds(); len(k) > 0 {
		return k[0].kind
	}
	return ""
}

type kindField struct{ kind, field string }

func (d *Definition) kinds() []kindField {
	var ks []kindField
	if d.HTTP != "" {
		ks = append(ks, kindField{KindHTTP, "HTTP"})
	}
	if d.TCP != "" {
		ks = append(ks, kindField{KindTCP, "TCP"})
	}
	if d.UDP != "" {
		ks = append(ks, kindField{KindUDP, "UDP"})
	}
	if d.GRPC != "" {
		ks = append(ks, kindField{KindGRPC, "GRPC"})
	}
	if d.TTL != 0 {
		ks = append(ks, kindField{KindTTL, "TTL"})
	}
	if len(d.Args) > 0 {
		ks = append(ks, kindField{KindScript, "Args"})
	}
	return ks
}

func fieldErr(field, format string, args ...any) error {
	return &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks a definition that came from src. enableLocalScriptChecks
// is the agent's enable_local_script_checks setting. A script check is
// refused from SourceAPI always, and from SourceConfigFile unless enabled.
// The error is a *catalog.FieldError naming the first wrong field.
func (d *Definition) Validate(src Source, enableLocalScriptChecks bool) error {
	if len(d.Args) > 0 {
		switch {
		case src != SourceConfigFile:
			return fieldErr("Args", "script checks may only be defined in config files, never through the %s", src)
		case !enableLocalScriptChecks:
			return fieldErr("Args", "script checks are disabled; set enable_local_script_checks to allow them in config files")
		}
	}
	return d.validate()
}

// validate checks everything but the script policy.
func (d *Definition) validate() error {
	id := d.CheckID()
	if id == "" {
		return fieldErr("ID", "missing (and no Name to derive it from)")
	}
	if len(id) > catalog.MaxIDLen {
		return fieldErr("ID", "longer than %d characters", catalog.MaxIDLen)
	}
	if strings.ContainsAny(id, "/\x00") {
		return fieldErr("ID", "%q may not contain '/' or NUL", id)
	}
	if d.Status != "" {
		if err := catalog.ValidateStatus("Status", d.Status); err != nil {
			return err
		}
	}

	ks := d.kinds()
	switch len(ks) {
	case 0:
		return fieldErr("HTTP|TCP|UDP|GRPC|TTL|Args", "a check needs exactly one kind; none is set")
	case 1:
	default:
		return fieldErr(ks[1].field, "%s and %s are both set; a check has exactly one kind", ks[0].field, ks[1].field)
	}
	kind := ks[0].kind

	if d.Interval < 0 {
		return fieldErr("Interval", "%s is negative", d.Interval)
	}
	if kind != KindTTL && d.Interval == 0 {
		return fieldErr("Interval", "required for a %s check", kind)
	}
	if d.Timeout < 0 {
		return fieldErr("Timeout", "%s is negative", d.Timeout)
	}
	if d.SuccessBeforePassing < 0 {
		return fieldErr("SuccessBeforePassing", "%d is negative", d.SuccessBeforePassing)
	}
	if d.FailuresBeforeCritical < 0 {
		return fieldErr("FailuresBeforeCritical", "%d is negative", d.FailuresBeforeCritical)
	}
	if d.DeregisterCriticalServiceAfter < 0 {
		return fieldErr("DeregisterCriticalServiceAfter", "%s is negative", d.DeregisterCriticalServiceAfter)
	}
	if d.DeregisterCriticalServiceAfter > 0 && d.ServiceID == "" {
		return fieldErr("DeregisterCriticalServiceAfter", "only a service check can deregister its service; ServiceID is empty")
	}

	switch kind {
	case KindHTTP:
		return d.validateHTTP()
	case KindTCP:
		return validateHostPort("TCP", d.TCP)
	case KindUDP:
		return validateHostPort("UDP", d.UDP)
	case KindGRPC:
		addr, _, _ := strings.Cut(d.GRPC, "/")
		return validateHostPort("GRPC", addr)
	case KindTTL:
		if d.TTL < 0 {
			return fieldErr("TTL", "%s is negative", d.TTL)
		}
	case KindScript:
		if d.Args[0] == "" {
			return fieldErr("Args", "the command (first argument) is empty")
		}
	}
	return nil
}

func (d *Definition) validateHTTP() error {
	u, err := url.Parse(d.HTTP)
	if err != nil {
		return fieldErr("HTTP", "%q is not a URL: %v", d.HTTP, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fieldErr("HTTP", "%q: scheme must be http or https", d.HTTP)
	}
	if u.Host == "" {
		return fieldErr("HTTP", "%q has no host", d.HTTP)
	}
	if d.Method != "" && !isToken(d.Method) {
		return fieldErr("Method", "%q is not a valid HTTP method", d.Method)
	}
	for k, vs := range d.Header {
		if !isToken(k) {
			return fieldErr("Header", "%q is not a valid header name", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return fieldErr("Header."+k, "value may not contain CR, LF or NUL")
			}
		}
	}
	return nil
}

func validateHostPort(field, s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fieldErr(field, "%q is not host:port: %v", s, err)
	}
	if host == "" || port == "" {
		return fieldErr(field, "%q needs both a host and a port", s)
	}
	return nil
}

// isToken reports whether s is an RFC 9110 token (method and header names).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// timeout returns the effective probe timeout.
func (d *Definition) timeout() time.Duration {
	switch {
	case d.Timeout > 0:
		return d.Timeout
	case len(d.Args) > 0:
		return DefaultScriptTimeout
	}
	return DefaultTimeout
}
