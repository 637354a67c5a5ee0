package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestRedactSecrets(t *testing.T) {
	const key = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	in := strings.Join([]string{
		`encrypt = "` + key + `"`,
		`{"Encrypt": "` + key + `", "acl_token": "s3cr3t-token-value", "Name": "web"}`,
		`time=2026 level=INFO msg=start token=abc123def node=n1`,
		`level=WARN msg="x" client_secret="p a s s" ok=1`,
		"warren\x00agent\x00-encrypt\x00" + key + "\x00-token=tok-456\x00-node\x00n1",
		`warren agent -encrypt ` + key + ` --password hunter2 -data-dir /d`,
		`X-Consul-Token: 0f3e-token-header`,
		`Authorization: Bearer eyJhbGciOi.payload.sig`,
		"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB0pem-body\nmore\n-----END EC PRIVATE KEY-----",
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B\n-----END PRIVATE KEY-----",
		`bare key in a log line: ` + key + ` end`,
		`warren_dns_queries_total{qtype="A",rcode="NOERROR"} 5`,
		`-----BEGIN CERTIFICATE-----`,
	}, "\n")
	out := string(redactSecrets([]byte(in)))
	for _, secret := range []string{key, "s3cr3t-token-value", "abc123def", "p a s s", "tok-456", "hunter2",
		"0f3e-token-header", "eyJhbGciOi", "MHcCAQEEIB0pem-body", "MIIEvQIBADANBgkqhkiG9w0B"} {
		if strings.Contains(out, secret) {
			t.Errorf("%q survived redaction:\n%s", secret, out)
		}
	}
	// What is not secret stays.
	for _, keep := range []string{`"Name": "web"`, "node=n1", "ok=1", "-node\x00n1", "-data-dir /d",
		`warren_dns_queries_total{qtype="A",rcode="NOERROR"} 5`, "-----BEGIN CERTIFICATE-----", "[REDACTED PRIVATE KEY]", " end"} {
		if !strings.Contains(out, keep) {
			t.Errorf("%q was lost:\n%s", keep, out)
		}
	}
}

func TestLogRingKeepsRecentWholeLines(t *testing.T) {
	r := newLogRing(40)
	for i := range 10 {
		r.Write([]byte(strings.Repeat(string(rune('a'+i)), 9) + "\n"))
	}
	got := r.Bytes()
	if len(got) > 40 || !bytes.HasSuffix(got, []byte("jjjjjjjjj\n")) {
		t.Fatalf("ring holds %q", got)
	}
	if !bytes.HasPrefix(got, []byte("ggggggggg\n")) {
		t.Errorf("ring should start at a whole line: %q", got)
	}
}
