package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/server/servertest"
)

// TestIntentions drives intentions with the Consul client through a
// follower: upsert, exact read, list, match, check (with the deny default
// of a production server), delete, a blocking list woken by a delete, and
// bad input.
func TestIntentions(t *testing.T) {
	c := servertest.New(t, 3)
	c.WaitLeader()
	cl := client(t, c.Followers()[0])
	conn := cl.Connect()

	if _, err := conn.IntentionUpsert(&consulapi.Intention{SourceName: "web", DestinationName: "db", Action: consulapi.IntentionActionAllow, Description: "web reads db"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.IntentionUpsert(&consulapi.Intention{SourceName: "*", DestinationName: "db", Action: consulapi.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	got, _, err := conn.IntentionGetExact("web", "db", nil)
	if err != nil || got == nil || got.Action != "allow" || got.ID == "" || got.Precedence != 9 || got.CreateIndex == 0 {
		t.Fatalf("exact: %+v %v", got, err)
	}
	firstID := got.ID
	// An update keeps the ID.
	if _, err := conn.IntentionUpsert(&consulapi.Intention{SourceName: "web", DestinationName: "db", Action: consulapi.IntentionActionAllow, Description: "v2"}, nil); err != nil {
		t.Fatal(err)
	}
	got, _, _ = conn.IntentionGetExact("web", "db", nil)
	if got.ID != firstID || got.Description != "v2" {
		t.Fatalf("update: %+v", got)
	}
	missing, _, err := conn.IntentionGetExact("api", "db", nil)
	if err != nil || missing != nil {
		t.Fatalf("missing exact: %+v %v", missing, err)
	}

	for _, tc := range []struct {
		src, dst string
		want     bool
	}{
		{"web", "db", true},   // exact allow
		{"api", "db", false},  // wildcard deny
		{"web", "api", false}, // nothing matches: deny by default
	} {
		ok, _, err := conn.IntentionCheck(&consulapi.IntentionCheck{Source: tc.src, Destination: tc.dst}, nil)
		if err != nil || ok != tc.want {
			t.Errorf("check %s -> %s = %v %v, want %v", tc.src, tc.dst, ok, err, tc.want)
		}
	}

	list, meta, err := conn.Intentions(nil)
	if err != nil || len(list) != 2 || list[0].SourceName != "web" {
		t.Fatalf("list: %+v %v", list, err)
	}
	m, _, err := conn.IntentionMatch(&consulapi.IntentionMatch{By: consulapi.IntentionMatchDestination, Names: []string{"db"}}, nil)
	if err != nil || len(m["db"]) != 2 || m["db"][0].SourceName != "web" {
		t.Fatalf("match: %+v %v", m, err)
	}

	// A blocking list wakes on a delete.
	woke := make(chan int, 1)
	go func() {
		l, _, err := conn.Intentions(&consulapi.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: 10 * time.Second})
		if err != nil {
			woke <- -1
			return
		}
		woke <- len(l)
	}()
	time.Sleep(100 * time.Millisecond)
	if _, err := conn.IntentionDeleteExact("*", "db", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case n := <-woke:
		if n != 1 {
			t.Fatalf("blocking list after delete: %d intentions", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("blocking list did not wake on delete")
	}
	if ok, _, _ := conn.IntentionCheck(&consulapi.IntentionCheck{Source: "api", Destination: "db"}, nil); ok {
		t.Fatal("api -> db allowed by default after the deny was deleted (default should be deny)")
	}

	base := c.Followers()[0].HTTP.URL
	for _, tc := range []struct{ method, path, body, field string }{
		{"PUT", "/v1/connect/intentions/exact?source=web&destination=db", `{"Action":"maybe"}`, "Action"},
		{"PUT", "/v1/connect/intentions/exact?destination=db", `{"Action":"allow"}`, "source"},
		{"PUT", "/v1/connect/intentions/exact?source=web", `{"Action":"allow"}`, "destination"},
		{"PUT", "/v1/connect/intentions/exact?source=we%20b&destination=db", `{"Action":"allow"}`, "source"},
		{"PUT", "/v1/connect/intentions/exact?source=w*b&destination=db", `{"Action":"allow"}`, "source"},
		{"GET", "/v1/connect/intentions/check?source=web", "", "destination"},
		{"GET", "/v1/connect/intentions/match?by=sideways&name=db", "", "by"},
		{"GET", "/v1/connect/intentions/match?by=source", "", "name"},
		{"POST", "/v1/agent/connect/authorize", `{"ClientCertURI":"spiffe://x.warren/ns/default/dc/dc1/svc/web"}`, "Target"},
		{"POST", "/v1/agent/connect/authorize", `{"Target":"db","ClientCertURI":"https://nope"}`, "ClientCertURI"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(msg), tc.field) {
			t.Errorf("%s %s %s: %d %s, want 400 naming %s", tc.method, tc.path, tc.body, resp.StatusCode, msg, tc.field)
		}
	}
}
