package acl

import (
	"fmt"
	"regexp"

	"github.com/google/uuid"

	"github.com/warren-mesh/warren/catalog"
)

// Limits on what a policy, role or token may hold, beyond Consul's name
// rules. They bound what one write can make the servers store and compile.
const (
	MaxDescriptionLen = 4096
	MaxLinks          = 256 // policies or roles linked from one token or role
	MaxIdentities     = 256 // service or node identities of one token or role
	MaxDatacenters    = 64
)

var (
	policyNameRe   = regexp.MustCompile(`^[A-Za-z0-9\-_]{1,128}$`)
	roleNameRe     = regexp.MustCompile(`^[A-Za-z0-9\-_]{1,256}$`)
	identityNameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9\-_]*[a-z0-9])?$`)
)

// maxIdentityNameLen is Consul's limit on service and node identity names.
const maxIdentityNameLen = 256

func fieldErr(field, format string, args ...any) error {
	return &catalog.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// ValidatePolicy checks a policy a client wants to write: its name,
// description, datacenters, and that its rules parse. Errors are
// *catalog.FieldError.
func ValidatePolicy(p *Policy) error {
	if !policyNameRe.MatchString(p.Name) {
		return fieldErr("Name", "%q must be 1-128 letters, digits, '-' or '_'", p.Name)
	}
	if err := validateDescription(p.Description); err != nil {
		return err
	}
	if err := validateDatacenters("Datacenters", p.Datacenters); err != nil {
		return err
	}
	if _, err := ParseRules(p.Rules); err != nil {
		return fieldErr("Rules", "%v", err)
	}
	return nil
}

// ValidateRole checks a role a client wants to write.
func ValidateRole(r *Role) error {
	if !roleNameRe.MatchString(r.Name) {
		return fieldErr("Name", "%q must be 1-256 letters, digits, '-' or '_'", r.Name)
	}
	if err := validateDescription(r.Description); err != nil {
		return err
	}
	if err := validatePolicyLinks(r.Policies); err != nil {
		return err
	}
	return validateIdentities(r.ServiceIdentities, r.NodeIdentities)
}

// ValidateToken checks a token a client wants to write: its AccessorID
// when the client chose one (a UUID, as Consul requires), description,
// links and identities. The secret is checked by ValidateSecretID (a
// Token holds only its hash).
func ValidateToken(t *Token) error {
	if t.AccessorID != "" {
		if err := validateUUID("AccessorID", t.AccessorID); err != nil {
			return err
		}
	}
	if err := validateDescription(t.Description); err != nil {
		return err
	}
	if err := validatePolicyLinks(t.Policies); err != nil {
		return err
	}
	if len(t.Roles) > MaxLinks {
		return fieldErr("Roles", "more than %d", MaxLinks)
	}
	for i, l := range t.Roles {
		if l.ID == "" && l.Name == "" {
			return fieldErr(fmt.Sprintf("Roles[%d]", i), "needs an ID or a Name")
		}
	}
	return validateIdentities(t.ServiceIdentities, t.NodeIdentities)
}

// ValidateSecretID checks a SecretID a client chose for a new token: a
// UUID, as Consul requires (which also keeps it from looking like the
// 64-hex-digit hash it is stored as).
func ValidateSecretID(secret string) error {
	return validateUUID("SecretID", secret)
}

func validateUUID(field, s string) error {
	if len(s) != 36 {
		return fieldErr(field, "must be a UUID (36 characters, got %d)", len(s))
	}
	if _, err := uuid.Parse(s); err != nil {
		return fieldErr(field, "%q is not a UUID", s)
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > MaxDescriptionLen {
		return fieldErr("Description", "longer than %d bytes", MaxDescriptionLen)
	}
	return nil
}

func validatePolicyLinks(links []PolicyLink) error {
	if len(links) > MaxLinks {
		return fieldErr("Policies", "more than %d", MaxLinks)
	}
	for i, l := range links {
		if l.ID == "" && l.Name == "" {
			return fieldErr(fmt.Sprintf("Policies[%d]", i), "needs an ID or a Name")
		}
	}
	return nil
}

func validateIdentities(sis []ServiceIdentity, nis []NodeIdentity) error {
	if len(sis) > MaxIdentities {
		return fieldErr("ServiceIdentities", "more than %d", MaxIdentities)
	}
	for i, si := range sis {
		field := fmt.Sprintf("ServiceIdentities[%d]", i)
		if err := validateIdentityName(field+".ServiceName", si.ServiceName); err != nil {
			return err
		}
		if err := validateDatacenters(field+".Datacenters", si.Datacenters); err != nil {
			return err
		}
	}
	if len(nis) > MaxIdentities {
		return fieldErr("NodeIdentities", "more than %d", MaxIdentities)
	}
	for i, ni := range nis {
		field := fmt.Sprintf("NodeIdentities[%d]", i)
		if err := validateIdentityName(field+".NodeName", ni.NodeName); err != nil {
			return err
		}
		if ni.Datacenter == "" {
			return fieldErr(field+".Datacenter", "missing: a node identity applies in one datacenter")
		}
		if !catalog.ValidDNSLabel(ni.Datacenter) {
			return fieldErr(field+".Datacenter", "%q is not a valid datacenter name", ni.Datacenter)
		}
	}
	return nil
}

func validateIdentityName(field, name string) error {
	if name == "" {
		return fieldErr(field, "missing")
	}
	if len(name) > maxIdentityNameLen || !identityNameRe.MatchString(name) {
		return fieldErr(field, "%q must be at most %d lowercase letters, digits, '-' or '_', starting and ending with a letter or digit", name, maxIdentityNameLen)
	}
	return nil
}

func validateDatacenters(field string, dcs []string) error {
	if len(dcs) > MaxDatacenters {
		return fieldErr(field, "more than %d", MaxDatacenters)
	}
	for i, dc := range dcs {
		if !catalog.ValidDNSLabel(dc) {
			return fieldErr(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid datacenter name", dc)
		}
	}
	return nil
}
