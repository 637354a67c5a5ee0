package dns

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current answers")

// TestGolden pins a few answers whose every byte matters, as a client sees
// them (packed, then unpacked). With -update it rewrites the files; read
// every diff before committing it.
func TestGolden(t *testing.T) {
	cases := []struct {
		file  string
		q     string
		qtype uint16
		edns  uint16
		tcp   bool
	}{
		{"srv_additional", "web.service.warren.", dns.TypeSRV, 1232, false},
		{"srv_rfc2782_tag", "_web._v1.service.dc1.warren.", dns.TypeSRV, 0, false},
		{"truncated_a_udp512", "big.service.warren.", dns.TypeA, 0, false},
		{"truncated_srv_udp512", "big.service.warren.", dns.TypeSRV, 0, false},
		{"nxdomain_soa", "nosuch.service.warren.", dns.TypeA, 0, false},
		{"nodata_soa", "web.service.warren.", dns.TypeTXT, 0, false},
		{"node_any_txt", "node1.node.warren.", dns.TypeANY, 4096, true},
		{"cname_hostname", "db.service.consul.", dns.TypeA, 0, false},
		{"ptr_service", "9.0.1.10.in-addr.arpa.", dns.TypePTR, 0, false},
	}
	v := testView()
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			s := newTestServer(t, testConfig(v)) // fresh, seeded shuffle
			req := question(tc.q, tc.qtype)
			if tc.edns != 0 {
				req.SetEdns0(tc.edns, false)
			}
			w := &recorder{tcp: tc.tcp}
			s.ServeDNS(w, req)
			if w.err != nil {
				t.Fatal(w.err)
			}
			transport := "udp"
			if tc.tcp {
				transport = "tcp"
			}
			got := fmt.Sprintf("; query %s %s over %s, EDNS0 buffer %d\n; reply %d bytes\n%s",
				tc.q, dns.TypeToString[tc.qtype], transport, tc.edns, len(w.wire), w.msg)
			path := filepath.Join("testdata", tc.file+".golden")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("answer differs from %s (run with -update and read the diff):\ngot:\n%s\nwant:\n%s", path, got, want)
			}
		})
	}
}
