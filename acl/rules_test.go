package acl

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRules(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want *Rules
	}{
		{name: "empty", src: "", want: &Rules{}},
		{name: "only a comment", src: "# nothing\n", want: &Rules{}},
		{name: "every resource in HCL", src: `
service "web" {
  policy     = "write"
  intentions = "read"
}
service_prefix "" { policy = "read" }
node "n1" { policy = "write" }
node_prefix "" { policy = "read" }
agent "n1" { policy = "read" }
agent_prefix "a" { policy = "deny" }
key "k" { policy = "write" }
key_prefix "kp/" { policy = "list" }
session "s" { policy = "read" }
session_prefix "" { policy = "write" }
event "e" { policy = "read" }
event_prefix "" { policy = "deny" }
query "q" { policy = "write" }
query_prefix "" { policy = "read" }
operator = "read"
acl      = "write"
keyring  = "deny"
mesh     = "write"
`, want: &Rules{
			Services:        []ServiceRule{{Name: "web", Policy: AccessWrite, Intentions: AccessRead}},
			ServicePrefixes: []ServiceRule{{Name: "", Policy: AccessRead}},
			Nodes:           []NameRule{{"n1", AccessWrite}},
			NodePrefixes:    []NameRule{{"", AccessRead}},
			Agents:          []NameRule{{"n1", AccessRead}},
			AgentPrefixes:   []NameRule{{"a", AccessDeny}},
			Keys:            []NameRule{{"k", AccessWrite}},
			KeyPrefixes:     []NameRule{{"kp/", AccessList}},
			Sessions:        []NameRule{{"s", AccessRead}},
			SessionPrefixes: []NameRule{{"", AccessWrite}},
			Events:          []NameRule{{"e", AccessRead}},
			EventPrefixes:   []NameRule{{"", AccessDeny}},
			Queries:         []NameRule{{"q", AccessWrite}},
			QueryPrefixes:   []NameRule{{"", AccessRead}},
			Operator:        AccessRead, ACL: AccessWrite, Keyring: AccessDeny, Mesh: AccessWrite,
		}},
		{name: "JSON", src: `{
  "service": {"web": {"policy": "write", "intentions": "write"}, "db": {"policy": "read"}},
  "service_prefix": {"": {"policy": "read"}},
  "node_prefix": [{"": {"policy": "read"}}],
  "operator": "read"
}`, want: &Rules{
			Services:        []ServiceRule{{Name: "web", Policy: AccessWrite, Intentions: AccessWrite}, {Name: "db", Policy: AccessRead}},
			ServicePrefixes: []ServiceRule{{Name: "", Policy: AccessRead}},
			NodePrefixes:    []NameRule{{"", AccessRead}},
			Operator:        AccessRead,
		}},
		{name: "legacy empty label is an exact rule", src: `service "" { policy = "write" }`,
			want: &Rules{Services: []ServiceRule{{Name: "", Policy: AccessWrite}}}},
		{name: "HCL 1 one-line blocks", src: "service \"web\" { policy = \"read\" intentions = \"write\" }\n" +
			"node \"n\" {policy=\"write\"}\nservice_prefix \"\" { policy = \"read\", intentions = \"deny\" }\n" +
			"operator = \"read\" acl = \"read\"\n",
			want: &Rules{
				Services:        []ServiceRule{{Name: "web", Policy: AccessRead, Intentions: AccessWrite}},
				Nodes:           []NameRule{{"n", AccessWrite}},
				ServicePrefixes: []ServiceRule{{Name: "", Policy: AccessRead, Intentions: AccessDeny}},
				Operator:        AccessRead, ACL: AccessRead,
			}},
		{name: "same name twice is kept twice", src: "node \"a\" { policy = \"read\" }\nnode \"a\" { policy = \"deny\" }\n",
			want: &Rules{Nodes: []NameRule{{"a", AccessRead}, {"a", AccessDeny}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRules(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "JSON" {
				// hcl's JSON body yields an object's blocks in key order.
				sortServices(got.Services)
				sortServices(tt.want.Services)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func sortServices(s []ServiceRule) {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j].Name < s[i].Name {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
}

func TestParseRulesErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"invalid policy value", "service \"web\" {\n  policy = \"wirte\"\n}\n",
			`rules:2,12: invalid policy "wirte" for service "web": want read, write or deny`},
		{"invalid intentions", "service_prefix \"\" {\n  policy = \"read\"\n  intentions = \"list\"\n}\n",
			`rules:3,16: invalid intentions "list" for service_prefix "": want read, write or deny`},
		{"list outside key", `node "n" { policy = "list" }`,
			`rules:1,21: invalid policy "list" for node "n": want read, write or deny`},
		{"invalid top level", "\n\noperator = \"all\"\n",
			`rules:3,12: invalid operator "all": want read, write or deny`},
		{"unknown resource", "service \"a\" { policy = \"read\" }\nservices \"b\" { policy = \"read\" }\n",
			`rules:2,1: Unsupported block type: Blocks of type "services" are not expected here. Did you mean "service"?`},
		{"unknown top-level attribute", `bogus = "read"`,
			`rules:1,1: Unsupported argument: An argument named "bogus" is not expected here.`},
		{"missing label", "node {\n policy = \"read\"\n}\n",
			`rules:1,6: Missing name for node: All node blocks must have 1 labels (name).`},
		{"missing policy", "service \"web\" {\n  intentions = \"read\"\n}\n",
			`rules:1,15: Missing required argument: The argument "policy" is required, but no definition was found.`},
		{"intentions on a node", "node \"n\" {\n policy = \"read\"\n intentions = \"read\"\n}\n",
			`rules:3,2: Unsupported argument: An argument named "intentions" is not expected here.`},
		{"error in a one-line block points at the text as written",
			"node \"n\" { policy = \"read\" }\nservice \"web\" { policy = \"read\" intentions = \"wirte\" }\n",
			`rules:2,46: invalid intentions "wirte" for service "web": want read, write or deny`},
		{"one-line block that does not parse either way", "service \"web\" { policy = \"read\" intentions = }\n",
			`rules:1,33: Invalid single-argument block definition: A single-line block definition must end with a closing brace immediately after its single argument definition.`},
		{"not a string", `acl = 3`, `rules:1,7: acl must be a string`},
		{"a variable", `acl = foo`, `rules:1,7: Variables not allowed: Variables may not be used here.`},
		{"syntax", "service \"web\" {\n policy = \n}\n", `rules:2,11: Invalid expression: Expected the start of an expression, but found an invalid expression token.`},
		{"JSON unknown resource", "{\n  \"servic\": {\"a\": {\"policy\": \"read\"}}\n}", `rules:2,3: Extraneous JSON object property: No argument or block type is named "servic". Did you mean "service"?`},
		{"JSON bad value", "{\"service\": {\"a\": {\"policy\": \"wirte\"}}}", `rules:1,30: invalid policy "wirte" for service "a": want read, write or deny`},
		{"JSON syntax", `{"service": `, `rules:1,13: Missing value: The JSON data ends prematurely.`},
		{"too big", strings.Repeat("#", MaxRulesSize+1), "rules: 65537 bytes, more than the limit of 65536"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseRules(tt.src)
			if err == nil {
				t.Fatal("no error")
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
		})
	}
}

// FuzzParseRules checks that no input panics the parser and that whatever
// it accepts compiles into an authorizer that answers.
func FuzzParseRules(f *testing.F) {
	// The seed corpus is in testdata/fuzz/FuzzParseRules.
	f.Add(`service_prefix "" { policy = "read" }`)
	f.Fuzz(func(t *testing.T, src string) {
		r, err := ParseRules(src)
		if err != nil {
			if r != nil {
				t.Fatal("rules with an error")
			}
			return
		}
		z := NewAuthorizer(false, r)
		for _, s := range r.Services {
			if z.ServiceRead(s.Name) != (s.Policy != AccessDeny) && len(r.Services) == 1 {
				t.Fatalf("service %q: policy %v, read %v", s.Name, s.Policy, z.ServiceRead(s.Name))
			}
		}
		z.NodeRead("x")
		z.IntentionWrite("")
	})
}
