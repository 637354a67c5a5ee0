package catalog

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"

	"github.com/google/uuid"
)

// Limits on what a registration may hold. They bound memory per request and
// keep names usable in DNS.
const (
	MaxLabelLen     = 63
	MaxIDLen        = 256
	MaxTags         = 64
	MaxTagLen       = 512
	MaxMetaPairs    = 64
	MaxMetaKeyLen   = 128
	MaxMetaValueLen = 512
	MaxChecks       = 64
	MaxOutputLen    = 4096
)

var (
	dnsLabelRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	metaKeyRe  = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// FieldError names the field of a request that is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidDNSLabel reports whether s can stand as one DNS label.
func ValidDNSLabel(s string) bool { return dnsLabelRe.MatchString(s) }

// ValidateName checks a node or service name: it is used as a DNS label.
func ValidateName(field, s string) error {
	if s == "" {
		return fieldErr(field, "missing")
	}
	if !ValidDNSLabel(s) {
		return fieldErr(field, "%q is not a valid DNS label (letters, digits and '-', at most 63, not starting or ending with '-')", s)
	}
	return nil
}

func validateID(field, s string) error {
	if len(s) > MaxIDLen {
		return fieldErr(field, "longer than %d characters", MaxIDLen)
	}
	if strings.ContainsAny(s, "/\x00") {
		return fieldErr(field, "%q may not contain '/' or NUL", s)
	}
	return nil
}

func validateMeta(field string, m map[string]string) error {
	if len(m) > MaxMetaPairs {
		return fieldErr(field, "more than %d pairs", MaxMetaPairs)
	}
	for k, v := range m {
		if len(k) > MaxMetaKeyLen || !metaKeyRe.MatchString(k) {
			return fieldErr(field, "key %q must be 1-%d letters, digits, '_' or '-'", k, MaxMetaKeyLen)
		}
		if strings.HasPrefix(k, "warren-") || strings.HasPrefix(k, "consul-") {
			return fieldErr(field, "key %q uses a reserved prefix", k)
		}
		if len(v) > MaxMetaValueLen {
			return fieldErr(field+"."+k, "value longer than %d characters", MaxMetaValueLen)
		}
	}
	return nil
}

func validateAddress(field, s string) error {
	if s == "" {
		return nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return nil
	}
	// A hostname is allowed: each label must be a DNS label.
	for _, l := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if !ValidDNSLabel(l) {
			return fieldErr(field, "%q is neither an IP address nor a host name", s)
		}
	}
	return nil
}

// ValidateStatus checks a health status written to a check.
func ValidateStatus(field, s string) error {
	switch s {
	case HealthPassing, HealthWarning, HealthCritical:
		return nil
	}
	return fieldErr(field, "%q is not one of passing, warning, critical", s)
}

// ValidateNode checks a node as given in a registration.
func ValidateNode(n *Node) error {
	if err := ValidateName("Node", n.Name); err != nil {
		return err
	}
	if n.ID != "" {
		if _, err := uuid.Parse(n.ID); err != nil {
			return fieldErr("ID", "%q is not a UUID", n.ID)
		}
	}
	if n.Address == "" {
		return fieldErr("Address", "missing")
	}
	if err := validateAddress("Address", n.Address); err != nil {
		return err
	}
	for k, v := range n.TaggedAddresses {
		if err := validateAddress("TaggedAddresses."+k, v); err != nil {
			return err
		}
	}
	return validateMeta("NodeMeta", n.Meta)
}

// ValidateService checks a service instance as given in a registration.
func ValidateService(s *Service) error {
	if err := ValidateName("Service.Service", s.Name); err != nil {
		return err
	}
	if err := validateID("Service.ID", s.ID); err != nil {
		return err
	}
	switch s.Kind {
	case "":
	case KindConnectProxy:
		if err := validateProxy(s); err != nil {
			return err
		}
	default:
		return fieldErr("Service.Kind", "%q is not a known kind", s.Kind)
	}
	if len(s.Tags) > MaxTags {
		return fieldErr("Service.Tags", "more than %d tags", MaxTags)
	}
	for _, t := range s.Tags {
		if t == "" || len(t) > MaxTagLen {
			return fieldErr("Service.Tags", "tag %q must be 1-%d characters", t, MaxTagLen)
		}
	}
	if err := validateAddress("Service.Address", s.Address); err != nil {
		return err
	}
	if s.Port < 0 || s.Port > 65535 {
		return fieldErr("Service.Port", "%d is out of range 0-65535", s.Port)
	}
	for k, a := range s.TaggedAddresses {
		if err := validateAddress("Service.TaggedAddresses."+k, a.Address); err != nil {
			return err
		}
	}
	if s.Weights.Passing < 0 || s.Weights.Warning < 0 {
		return fieldErr("Service.Weights", "weights may not be negative")
	}
	return validateMeta("Service.Meta", s.Meta)
}

// ValidateCheck checks a health check as given in a registration.
func ValidateCheck(field string, c *Check) error {
	if c.CheckID == "" && c.Name == "" {
		return fieldErr(field+".CheckID", "missing (and no Name to derive it from)")
	}
	if err := validateID(field+".CheckID", c.CheckID); err != nil {
		return err
	}
	if c.Status != "" {
		if err := ValidateStatus(field+".Status", c.Status); err != nil {
			return err
		}
	}
	if len(c.Output) > MaxOutputLen {
		return fieldErr(field+".Output", "longer than %d bytes", MaxOutputLen)
	}
	return nil
}

// Normalize fills the defaults of a registration the way Consul does: a
// service ID defaults to its name, a check ID to its name, a check status to
// critical, and checks name their node. Call it before Validate.
func (r *Registration) Normalize() {
	if s := r.Service; s != nil {
		s.Node = r.Node.Name
		if s.ID == "" {
			s.ID = s.Name
		}
		if s.Weights == (Weights{}) {
			s.Weights = Weights{Passing: 1, Warning: 1}
		}
	}
	for _, c := range r.Checks {
		if c == nil {
			continue
		}
		if c.Node == "" {
			c.Node = r.Node.Name
		}
		if c.CheckID == "" {
			c.CheckID = c.Name
		}
		if c.Status == "" {
			c.Status = HealthCritical
		}
	}
}

// Validate checks the whole registration; the error names the first wrong
// field. A registration that fails validation must not be written at all.
func (r *Registration) Validate() error {
	if err := ValidateNode(&r.Node); err != nil {
		return err
	}
	if r.Service != nil {
		if err := ValidateService(r.Service); err != nil {
			return err
		}
	}
	if len(r.Checks) > MaxChecks {
		return fieldErr("Checks", "more than %d checks", MaxChecks)
	}
	seen := map[string]bool{}
	for i, c := range r.Checks {
		field := fmt.Sprintf("Checks[%d]", i)
		if c == nil {
			return fieldErr(field, "null")
		}
		if c.Node != r.Node.Name {
			return fieldErr(field+".Node", "%q does not match the registered node %q", c.Node, r.Node.Name)
		}
		if err := ValidateCheck(field, c); err != nil {
			return err
		}
		if seen[c.CheckID] {
			return fieldErr(field+".CheckID", "%q appears twice", c.CheckID)
		}
		seen[c.CheckID] = true
	}
	return nil
}

// Validate checks a deregistration.
func (d *Deregistration) Validate() error {
	if err := ValidateName("Node", d.Node); err != nil {
		return err
	}
	if d.ServiceID != "" && d.CheckID != "" {
		return fieldErr("CheckID", "give ServiceID or CheckID, not both")
	}
	return nil
}

// validateProxy checks a connect-proxy instance as Consul does: it needs a
// port and a destination service, and each upstream a name and a port.
func validateProxy(s *Service) error {
	if s.Port < 1 || s.Port > 65535 {
		return fieldErr("Service.Port", "a connect-proxy needs a port in 1-65535, got %d", s.Port)
	}
	p := s.Proxy
	if p == nil || p.DestinationServiceName == "" {
		return fieldErr("Service.Proxy.DestinationServiceName", "missing (required for a connect-proxy)")
	}
	if err := ValidateName("Service.Proxy.DestinationServiceName", p.DestinationServiceName); err != nil {
		return err
	}
	if p.LocalServicePort < 0 || p.LocalServicePort > 65535 {
		return fieldErr("Service.Proxy.LocalServicePort", "%d is out of range 0-65535", p.LocalServicePort)
	}
	if err := validateAddress("Service.Proxy.LocalServiceAddress", p.LocalServiceAddress); err != nil {
		return err
	}
	for i, u := range p.Upstreams {
		field := fmt.Sprintf("Service.Proxy.Upstreams[%d]", i)
		if err := ValidateName(field+".DestinationName", u.DestinationName); err != nil {
			return err
		}
		if u.LocalBindPort < 1 || u.LocalBindPort > 65535 {
			return fieldErr(field+".LocalBindPort", "%d is out of range 1-65535", u.LocalBindPort)
		}
		if err := validateAddress(field+".LocalBindAddress", u.LocalBindAddress); err != nil {
			return err
		}
	}
	return nil
}
