package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/warren-mesh/warren/acl"
	"github.com/warren-mesh/warren/api"
	"github.com/warren-mesh/warren/catalog"
)

const aclUsage = `Usage: warren acl <subcommand> [flags]

  bootstrap                                  create the initial management token (once per cluster)
  token  create|read|update|delete|list      manage tokens
  policy create|read|update|delete|list      manage policies
  role   create|read|update|delete|list      manage roles
  enrollment-token create|list               make one-line host enrollment tokens (warren agent -enroll TOKEN)

Every subcommand takes -http-addr, -token, -token-file and -format json
(or -json); run one with -h for its flags. Warren stores only a hash of a
token's secret, so a SecretID is shown once: when the token is created.`

// stdin is what "-rules -" reads; tests replace it.
var stdin io.Reader = os.Stdin

// maxRulesFile bounds what -rules @FILE or - reads: a little more than a
// policy may hold, so the server's limit is the one that answers.
const maxRulesFile = acl.MaxRulesSize + 1

// runACL manages ACL tokens, policies and roles through Consul's
// /v1/acl/* endpoints.
func runACL(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, aclUsage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	if args[0] == "bootstrap" {
		return aclBootstrap(ctx, args[1:], stdout, stderr)
	}
	if args[0] == "enrollment-token" {
		return aclEnrollmentToken(ctx, args[1:], stdout, stderr)
	}
	if len(args) < 2 {
		fmt.Fprintf(stderr, "warren acl %s: want a subcommand (create, read, update, delete, list)\n\n%s\n", args[0], aclUsage)
		return ExitUsage
	}
	kinds := map[string]func(ctx context.Context, c *aclCmd, args []string) int{
		"token": aclToken, "policy": aclPolicy, "role": aclRole,
	}
	run, ok := kinds[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "warren acl: unknown subcommand %q\n\n%s\n", args[0], aclUsage)
		return ExitUsage
	}
	switch args[1] {
	case "create", "read", "update", "delete", "list":
	default:
		fmt.Fprintf(stderr, "warren acl %s: unknown subcommand %q (want create, read, update, delete or list)\n", args[0], args[1])
		return ExitUsage
	}
	return run(ctx, newACLCmd("acl "+args[0]+" "+args[1], args[1], stdout, stderr), args[2:])
}

// aclCmd holds what every acl subcommand shares: its flags, its client and
// its output.
type aclCmd struct {
	name   string // "acl token create"
	verb   string // "create"
	fs     *flag.FlagSet
	conn   *clientConfig
	format *string
	json   *bool
	set    map[string]bool // the flags given on the command line
	c      *httpClient
	stdout io.Writer
	stderr io.Writer
}

func newACLCmd(name, verb string, stdout, stderr io.Writer) *aclCmd {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return &aclCmd{
		name: name, verb: verb, fs: fs, conn: clientFlags(fs),
		format: fs.String("format", "pretty", "output format: pretty or json"),
		json:   fs.Bool("json", false, "print JSON (same as -format json)"),
		stdout: stdout, stderr: stderr,
	}
}

// parse parses args; false means a usage error was printed.
func (a *aclCmd) parse(args []string) bool {
	if err := a.fs.Parse(args); err != nil {
		return false
	}
	if a.fs.NArg() != 0 {
		a.usageErr("takes no arguments, got %q", a.fs.Args())
		return false
	}
	if *a.format != "pretty" && *a.format != "json" {
		a.usageErr("-format %q: want pretty or json", *a.format)
		return false
	}
	a.set = map[string]bool{}
	a.fs.Visit(func(f *flag.Flag) { a.set[f.Name] = true })
	a.c = a.conn.client()
	return true
}

func (a *aclCmd) usageErr(format string, args ...any) int {
	fmt.Fprintf(a.stderr, "warren %s: %s\n", a.name, fmt.Sprintf(format, args...))
	return ExitUsage
}

func (a *aclCmd) fail(err error) int {
	fmt.Fprintf(a.stderr, "warren %s: %v\n", a.name, err)
	return ExitError
}

// output prints v as JSON or with pretty.
func (a *aclCmd) output(v any, pretty func(io.Writer)) int {
	if *a.json || *a.format == "json" {
		_ = printJSON(a.stdout, v)
	} else {
		pretty(a.stdout)
	}
	return ExitOK
}

// send does one request with a JSON body (nil for none).
func (a *aclCmd) send(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return a.c.do(ctx, method, path, nil, body, out)
}

// stringList is a flag that may be given many times.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func aclBootstrap(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := newACLCmd("acl bootstrap", "bootstrap", stdout, stderr)
	if !a.parse(args) {
		return ExitUsage
	}
	var tok api.ACLToken
	if err := a.send(ctx, "PUT", "/v1/acl/bootstrap", nil, &tok); err != nil {
		return a.fail(err)
	}
	return a.output(&tok, func(w io.Writer) { printToken(w, &tok) })
}

// linkFlags are the flags of a token or role that link policies, roles and
// identities.
type linkFlags struct {
	policyIDs, policyNames, roleIDs, roleNames stringList
	serviceIdentities, nodeIdentities          stringList
}

func (l *linkFlags) register(fs *flag.FlagSet, roles bool) {
	fs.Var(&l.policyIDs, "policy-id", "ID of a policy to link (repeatable)")
	fs.Var(&l.policyNames, "policy-name", "name of a policy to link (repeatable)")
	if roles {
		fs.Var(&l.roleIDs, "role-id", "ID of a role to link (repeatable)")
		fs.Var(&l.roleNames, "role-name", "name of a role to link (repeatable)")
	}
	fs.Var(&l.serviceIdentities, "service-identity", "a service identity, NAME or NAME:DC1,DC2 (repeatable)")
	fs.Var(&l.nodeIdentities, "node-identity", "a node identity, NAME:DC (repeatable)")
}

func (l *linkFlags) policies() []*api.ACLLink { return links(l.policyIDs, l.policyNames) }
func (l *linkFlags) roles() []*api.ACLLink    { return links(l.roleIDs, l.roleNames) }

func links(ids, names []string) []*api.ACLLink {
	var out []*api.ACLLink
	for _, id := range ids {
		out = append(out, &api.ACLLink{ID: id})
	}
	for _, n := range names {
		out = append(out, &api.ACLLink{Name: n})
	}
	return out
}

func (l *linkFlags) identities() ([]*api.ACLServiceIdentity, []*api.ACLNodeIdentity, error) {
	var sis []*api.ACLServiceIdentity
	for _, v := range l.serviceIdentities {
		name, dcs, _ := strings.Cut(v, ":")
		if name == "" {
			return nil, nil, fmt.Errorf("-service-identity %q: want NAME or NAME:DC1,DC2", v)
		}
		si := &api.ACLServiceIdentity{ServiceName: name}
		if dcs != "" {
			si.Datacenters = strings.Split(dcs, ",")
		}
		sis = append(sis, si)
	}
	var nis []*api.ACLNodeIdentity
	for _, v := range l.nodeIdentities {
		name, dc, _ := strings.Cut(v, ":")
		if name == "" || dc == "" {
			return nil, nil, fmt.Errorf("-node-identity %q: want NAME:DC", v)
		}
		nis = append(nis, &api.ACLNodeIdentity{NodeName: name, Datacenter: dc})
	}
	return sis, nis, nil
}

func aclToken(ctx context.Context, a *aclCmd, args []string) int {
	var (
		lf                 linkFlags
		id, description    *string
		self, local        *bool
		expiresTTL         *time.Duration
		creating, updating = a.verb == "create", a.verb == "update"
	)
	if creating || updating {
		description = a.fs.String("description", "", "a description of the token")
		lf.register(a.fs, true)
	}
	if creating {
		local = a.fs.Bool("local", false, "make the token local to this datacenter")
		expiresTTL = a.fs.Duration("expires-ttl", 0, "the token expires after this long (e.g. 24h); never by default")
	}
	if a.verb != "create" && a.verb != "list" {
		id = a.fs.String("id", "", "the token's AccessorID")
	}
	if a.verb == "read" {
		self = a.fs.Bool("self", false, "read the token the request is made with")
	}
	if !a.parse(args) {
		return ExitUsage
	}
	sis, nis, err := lf.identities()
	if err != nil {
		return a.usageErr("%v", err)
	}
	switch a.verb {
	case "create":
		if *expiresTTL < 0 {
			return a.usageErr("-expires-ttl %v: must be positive", *expiresTTL)
		}
		in := &api.ACLToken{Description: *description, Policies: lf.policies(), Roles: lf.roles(),
			ServiceIdentities: sis, NodeIdentities: nis, Local: *local, ExpirationTTL: api.Duration(*expiresTTL)}
		return aclPut(ctx, a, "/v1/acl/token", in, printToken)
	case "read":
		path := "/v1/acl/token/self"
		switch {
		case *self && *id != "":
			return a.usageErr("-id and -self are exclusive")
		case !*self && *id == "":
			return a.usageErr("want -id ACCESSOR_ID or -self")
		case !*self:
			path = "/v1/acl/token/" + url.PathEscape(*id)
		}
		var tok api.ACLToken
		if err := a.send(ctx, "GET", path, nil, &tok); err != nil {
			return a.fail(err)
		}
		return a.output(&tok, func(w io.Writer) { printToken(w, &tok) })
	case "update":
		if *id == "" {
			return a.usageErr("want -id ACCESSOR_ID")
		}
		path := "/v1/acl/token/" + url.PathEscape(*id)
		var tok api.ACLToken
		if err := a.send(ctx, "GET", path, nil, &tok); err != nil {
			return a.fail(err)
		}
		// A list is replaced when its flags are given, kept otherwise.
		if a.set["description"] {
			tok.Description = *description
		}
		if a.set["policy-id"] || a.set["policy-name"] {
			tok.Policies = lf.policies()
		}
		if a.set["role-id"] || a.set["role-name"] {
			tok.Roles = lf.roles()
		}
		if a.set["service-identity"] {
			tok.ServiceIdentities = sis
		}
		if a.set["node-identity"] {
			tok.NodeIdentities = nis
		}
		tok.AccessorID = *id
		var out api.ACLToken
		if err := a.send(ctx, "PUT", path, &tok, &out); err != nil {
			return a.fail(err)
		}
		return a.output(&out, func(w io.Writer) {
			fmt.Fprintln(w, "Token updated successfully.")
			printToken(w, &out)
		})
	case "delete":
		if *id == "" {
			return a.usageErr("want -id ACCESSOR_ID")
		}
		if err := a.send(ctx, "DELETE", "/v1/acl/token/"+url.PathEscape(*id), nil, nil); err != nil {
			return a.fail(err)
		}
		fmt.Fprintf(a.stdout, "Token %q deleted successfully\n", *id)
		return ExitOK
	}
	var list []*api.ACLTokenListEntry
	if err := a.send(ctx, "GET", "/v1/acl/tokens", nil, &list); err != nil {
		return a.fail(err)
	}
	return a.output(list, func(w io.Writer) {
		for i, e := range list {
			if i > 0 {
				fmt.Fprintln(w)
			}
			printToken(w, &api.ACLToken{AccessorID: e.AccessorID, SecretID: e.SecretID, Description: e.Description,
				Policies: e.Policies, Roles: e.Roles, ServiceIdentities: e.ServiceIdentities, NodeIdentities: e.NodeIdentities,
				Local: e.Local, ExpirationTime: e.ExpirationTime, CreateTime: e.CreateTime})
		}
	})
}

func aclPolicy(ctx context.Context, a *aclCmd, args []string) int {
	var (
		id, name, description, rules *string
		datacenters                  stringList
		writing                      = a.verb == "create" || a.verb == "update"
	)
	if a.verb != "list" {
		name = a.fs.String("name", "", "the policy's name")
	}
	if a.verb != "create" && a.verb != "list" {
		id = a.fs.String("id", "", "the policy's ID")
	}
	if writing {
		description = a.fs.String("description", "", "a description of the policy")
		rules = a.fs.String("rules", "", "the policy's rules in HCL or JSON; @FILE reads a file, - reads stdin")
		a.fs.Var(&datacenters, "datacenter", "a datacenter the policy applies in (repeatable; all by default)")
	}
	if !a.parse(args) {
		return ExitUsage
	}
	var src string
	if writing && a.set["rules"] {
		var err error
		if src, err = readRules(*rules); err != nil {
			return a.fail(err)
		}
	}
	switch a.verb {
	case "create":
		if *name == "" {
			return a.usageErr("want -name")
		}
		in := &api.ACLPolicy{Name: *name, Description: *description, Rules: src, Datacenters: datacenters}
		if err := checkPolicy(in, *rules); err != nil {
			return a.fail(err)
		}
		return aclPut(ctx, a, "/v1/acl/policy", in, printPolicy)
	case "read":
		return aclRead(ctx, a, "policy", *id, *name, printPolicy)
	case "update":
		p, code := aclFind[api.ACLPolicy](ctx, a, "policy", *id, *name)
		if p == nil {
			return code
		}
		if *id != "" && a.set["name"] {
			p.Name = *name
		}
		if a.set["description"] {
			p.Description = *description
		}
		if a.set["rules"] {
			p.Rules = src
		}
		if a.set["datacenter"] {
			p.Datacenters = datacenters
		}
		if err := checkPolicy(p, *rules); err != nil {
			return a.fail(err)
		}
		return aclUpdate(ctx, a, "policy", p.ID, p, printPolicy)
	case "delete":
		return aclDelete(ctx, a, "policy", *id, *name, func(p *api.ACLPolicy) string { return p.ID })
	}
	var list []*api.ACLPolicyListEntry
	if err := a.send(ctx, "GET", "/v1/acl/policies", nil, &list); err != nil {
		return a.fail(err)
	}
	return a.output(list, func(w io.Writer) {
		for _, p := range list {
			fmt.Fprintf(w, "%s:\n", p.Name)
			fmt.Fprintf(w, "   ID:           %s\n", p.ID)
			fmt.Fprintf(w, "   Description:  %s\n", p.Description)
			fmt.Fprintf(w, "   Datacenters:  %s\n", strings.Join(p.Datacenters, ", "))
		}
	})
}

// aclFind reads a policy or a role (kind) by ID, else by name; nil with
// an exit code when it cannot.
func aclFind[T any](ctx context.Context, a *aclCmd, kind, id, name string) (*T, int) {
	path := "/v1/acl/" + kind + "/" + url.PathEscape(id)
	switch {
	case id == "" && name == "":
		return nil, a.usageErr("want -id or -name")
	case id == "":
		path = "/v1/acl/" + kind + "/name/" + url.PathEscape(name)
	}
	var v T
	if err := a.send(ctx, "GET", path, nil, &v); err != nil {
		return nil, a.fail(err)
	}
	return &v, ExitOK
}

// aclRead reads a policy or a role (kind) by ID, else by name, and prints
// it.
func aclRead[T any](ctx context.Context, a *aclCmd, kind, id, name string, print func(io.Writer, *T)) int {
	v, code := aclFind[T](ctx, a, kind, id, name)
	if v == nil {
		return code
	}
	return a.output(v, func(w io.Writer) { print(w, v) })
}

// aclPut creates (PUT path) and prints the answer.
func aclPut[T any](ctx context.Context, a *aclCmd, path string, in *T, print func(io.Writer, *T)) int {
	var out T
	if err := a.send(ctx, "PUT", path, in, &out); err != nil {
		return a.fail(err)
	}
	return a.output(&out, func(w io.Writer) { print(w, &out) })
}

// aclUpdate writes a policy or a role (kind) back and prints the answer.
func aclUpdate[T any](ctx context.Context, a *aclCmd, kind, id string, v *T, print func(io.Writer, *T)) int {
	return aclPut(ctx, a, "/v1/acl/"+kind+"/"+url.PathEscape(id), v, func(w io.Writer, out *T) {
		fmt.Fprintf(w, "%s%s updated successfully.\n", strings.ToUpper(kind[:1]), kind[1:])
		print(w, out)
	})
}

// aclDelete deletes a policy or a role (kind) by ID, or by name (read
// first for its ID, as Consul's CLI does).
func aclDelete[T any](ctx context.Context, a *aclCmd, kind, id, name string, idOf func(*T) string) int {
	if id == "" {
		v, code := aclFind[T](ctx, a, kind, "", name)
		if v == nil {
			return code
		}
		id = idOf(v)
	}
	if err := a.send(ctx, "DELETE", "/v1/acl/"+kind+"/"+url.PathEscape(id), nil, nil); err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(a.stdout, "%s%s %q deleted successfully\n", strings.ToUpper(kind[:1]), kind[1:], id)
	return ExitOK
}

// readRules returns the text of -rules: the value itself, @FILE's content,
// or stdin's for "-".
func readRules(v string) (string, error) {
	var r io.Reader
	switch {
	case v == "-":
		r = stdin
	case strings.HasPrefix(v, "@"):
		f, err := os.Open(v[1:])
		if err != nil {
			return "", fmt.Errorf("-rules: %w", err)
		}
		defer f.Close()
		r = f
	default:
		return v, nil
	}
	b, err := io.ReadAll(io.LimitReader(r, maxRulesFile))
	if err != nil {
		return "", fmt.Errorf("-rules %s: %w", v, err)
	}
	return string(b), nil
}

// checkPolicy validates a policy before sending it, so a typo in the rules
// is reported with the file it came from.
func checkPolicy(p *api.ACLPolicy, rulesFlag string) error {
	err := acl.ValidatePolicy(&acl.Policy{Name: p.Name, Description: p.Description, Rules: p.Rules, Datacenters: p.Datacenters})
	if err == nil {
		return nil
	}
	var fe *catalog.FieldError
	if errors.As(err, &fe) && fe.Field == "Rules" && rulesFlag != "" {
		where := "-rules"
		if rulesFlag == "-" {
			where = "rules from stdin"
		} else if strings.HasPrefix(rulesFlag, "@") {
			where = rulesFlag[1:]
		}
		return fmt.Errorf("%s: %s", where, fe.Reason)
	}
	return err
}

func aclRole(ctx context.Context, a *aclCmd, args []string) int {
	var (
		lf                    linkFlags
		id, name, description *string
		writing               = a.verb == "create" || a.verb == "update"
	)
	if a.verb != "list" {
		name = a.fs.String("name", "", "the role's name")
	}
	if a.verb != "create" && a.verb != "list" {
		id = a.fs.String("id", "", "the role's ID")
	}
	if writing {
		description = a.fs.String("description", "", "a description of the role")
		lf.register(a.fs, false)
	}
	if !a.parse(args) {
		return ExitUsage
	}
	sis, nis, err := lf.identities()
	if err != nil {
		return a.usageErr("%v", err)
	}
	switch a.verb {
	case "create":
		if *name == "" {
			return a.usageErr("want -name")
		}
		in := &api.ACLRole{Name: *name, Description: *description, Policies: lf.policies(), ServiceIdentities: sis, NodeIdentities: nis}
		return aclPut(ctx, a, "/v1/acl/role", in, printRole)
	case "read":
		return aclRead(ctx, a, "role", *id, *name, printRole)
	case "update":
		r, code := aclFind[api.ACLRole](ctx, a, "role", *id, *name)
		if r == nil {
			return code
		}
		if *id != "" && a.set["name"] {
			r.Name = *name
		}
		if a.set["description"] {
			r.Description = *description
		}
		if a.set["policy-id"] || a.set["policy-name"] {
			r.Policies = lf.policies()
		}
		if a.set["service-identity"] {
			r.ServiceIdentities = sis
		}
		if a.set["node-identity"] {
			r.NodeIdentities = nis
		}
		return aclUpdate(ctx, a, "role", r.ID, r, printRole)
	case "delete":
		return aclDelete(ctx, a, "role", *id, *name, func(r *api.ACLRole) string { return r.ID })
	}
	var list []*api.ACLRole
	if err := a.send(ctx, "GET", "/v1/acl/roles", nil, &list); err != nil {
		return a.fail(err)
	}
	return a.output(list, func(w io.Writer) {
		for i, r := range list {
			if i > 0 {
				fmt.Fprintln(w)
			}
			printRole(w, r)
		}
	})
}

// printToken prints a token as Consul's CLI does.
func printToken(w io.Writer, t *api.ACLToken) {
	secret := t.SecretID
	if secret == "" {
		secret = "<hidden: Warren stores only its hash; it was shown when the token was created>"
	}
	fmt.Fprintf(w, "AccessorID:       %s\n", t.AccessorID)
	fmt.Fprintf(w, "SecretID:         %s\n", secret)
	fmt.Fprintf(w, "Description:      %s\n", t.Description)
	fmt.Fprintf(w, "Local:            %t\n", t.Local)
	fmt.Fprintf(w, "Create Time:      %s\n", t.CreateTime)
	if t.ExpirationTime != nil && !t.ExpirationTime.IsZero() {
		fmt.Fprintf(w, "Expiration Time:  %s\n", *t.ExpirationTime)
	}
	printLinks(w, "Policies", t.Policies)
	printLinks(w, "Roles", t.Roles)
	printIdentities(w, t.ServiceIdentities, t.NodeIdentities)
}

func printPolicy(w io.Writer, p *api.ACLPolicy) {
	fmt.Fprintf(w, "ID:           %s\n", p.ID)
	fmt.Fprintf(w, "Name:         %s\n", p.Name)
	fmt.Fprintf(w, "Description:  %s\n", p.Description)
	fmt.Fprintf(w, "Datacenters:  %s\n", strings.Join(p.Datacenters, ", "))
	fmt.Fprintf(w, "Rules:\n%s\n", p.Rules)
}

func printRole(w io.Writer, r *api.ACLRole) {
	fmt.Fprintf(w, "ID:           %s\n", r.ID)
	fmt.Fprintf(w, "Name:         %s\n", r.Name)
	fmt.Fprintf(w, "Description:  %s\n", r.Description)
	printLinks(w, "Policies", r.Policies)
	printIdentities(w, r.ServiceIdentities, r.NodeIdentities)
}

func printLinks(w io.Writer, title string, links []*api.ACLLink) {
	if len(links) == 0 {
		return
	}
	fmt.Fprintf(w, "%s:\n", title)
	for _, l := range links {
		fmt.Fprintf(w, "   %s - %s\n", l.ID, l.Name)
	}
}

func printIdentities(w io.Writer, sis []*api.ACLServiceIdentity, nis []*api.ACLNodeIdentity) {
	if len(sis) > 0 {
		fmt.Fprintln(w, "Service Identities:")
		for _, si := range sis {
			dcs := "all"
			if len(si.Datacenters) > 0 {
				dcs = strings.Join(si.Datacenters, ", ")
			}
			fmt.Fprintf(w, "   %s (Datacenters: %s)\n", si.ServiceName, dcs)
		}
	}
	if len(nis) > 0 {
		fmt.Fprintln(w, "Node Identities:")
		for _, ni := range nis {
			fmt.Fprintf(w, "   %s (Datacenter: %s)\n", ni.NodeName, ni.Datacenter)
		}
	}
}

// aclEnrollmentToken makes or lists host enrollment tokens.
func aclEnrollmentToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "create" && args[0] != "list") {
		fmt.Fprintln(stderr, "warren acl enrollment-token: want create or list")
		return ExitUsage
	}
	a := newACLCmd("acl enrollment-token "+args[0], args[0], stdout, stderr)
	if args[0] == "list" {
		if !a.parse(args[1:]) {
			return ExitUsage
		}
		var out []*acl.EnrollmentToken
		if err := a.send(ctx, "GET", "/v1/acl/enrollment-tokens", nil, &out); err != nil {
			return a.fail(err)
		}
		return a.output(out, func(w io.Writer) {
			for _, t := range out {
				fmt.Fprintf(w, "ID:          %s\nUses left:   %d\nExpires:     %s\nNode prefix: %q\nDescription: %s\n\n",
					t.ID, t.UsesLeft, t.ExpirationTime.Format(time.RFC3339), t.NodePrefix, t.Description)
			}
		})
	}
	ttl := a.fs.Duration("ttl", time.Hour, "how long the token may be used")
	uses := a.fs.Int("uses", 1, "how many hosts may enroll with it")
	prefix := a.fs.String("node-prefix", "", "node names the token may enroll must start with this")
	desc := a.fs.String("description", "", "what the token is for")
	var sis stringList
	a.fs.Var(&sis, "service-identity", "service the enrolled hosts may register: NAME or NAME:dc1,dc2 (repeatable)")
	if !a.parse(args[1:]) {
		return ExitUsage
	}
	body := map[string]any{"Description": *desc, "TTL": ttl.String(), "Uses": *uses, "NodePrefix": *prefix}
	if len(sis) > 0 {
		l := linkFlags{serviceIdentities: sis}
		ids, _, err := l.identities()
		if err != nil {
			return a.usageErr("%v", err)
		}
		body["ServiceIdentities"] = ids
	}
	var out acl.EnrollmentTokenReply
	if err := a.send(ctx, "PUT", "/v1/acl/enrollment-token", body, &out); err != nil {
		return a.fail(err)
	}
	return a.output(&out, func(w io.Writer) {
		fmt.Fprintf(w, "ID:        %s\nUses left: %d\nExpires:   %s\nToken:     %s\n\nOn the new host: warren agent -data-dir /var/lib/warren -enroll '%s'\n",
			out.ID, out.UsesLeft, out.ExpirationTime.Format(time.RFC3339), out.Token, out.Token)
	})
}
