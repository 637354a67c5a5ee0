package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	consulapi "github.com/hashicorp/consul/api"

	"github.com/warren-mesh/warren/internal/testutil"
)

// startEcho serves a line echo on 127.0.0.1 and returns its port.
func startEcho(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// echoThrough sends a line to addr and reports whether it came back.
func echoThrough(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no echo: %w", err)
	}
	if line != "ping\n" {
		return fmt.Errorf("echo %q", line)
	}
	return nil
}

// TestEnvoySidecarsMTLS runs two real Envoy sidecars from `warren connect
// envoy`: web's application reaches api's through web's upstream listener,
// web's sidecar and api's sidecar (mutual TLS with the mesh leaves), and a
// deny intention web->api cuts new connections. It needs an envoy binary
// on PATH and is skipped otherwise.
func TestEnvoySidecarsMTLS(t *testing.T) {
	envoy, err := exec.LookPath("envoy")
	if err != nil {
		t.Skip("SKIPPED: no envoy binary on PATH; this end-to-end test of two Envoy sidecars needs Envoy 1.28-1.36 " +
			"(the raw ADS test TestSidecarXDS covers what the agent serves)")
	}
	t.Logf("using %s", envoy)
	xdsPort := testutil.FreePort(t)
	p := startDev(t, "-grpc-port", strconv.Itoa(xdsPort))
	cl := consulClient(t, p)
	ag := cl.Agent()
	apiPort, apiSidecar := startEcho(t), testutil.FreePort(t)
	webPort, webSidecar, bindPort := testutil.FreePort(t), testutil.FreePort(t), testutil.FreePort(t)
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "api", Port: apiPort, Address: "127.0.0.1",
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{Port: apiSidecar}}}); err != nil {
		t.Fatal(err)
	}
	if err := ag.ServiceRegister(&consulapi.AgentServiceRegistration{Name: "web", Port: webPort, Address: "127.0.0.1",
		Connect: &consulapi.AgentServiceConnect{SidecarService: &consulapi.AgentServiceRegistration{Port: webSidecar,
			Proxy: &consulapi.AgentServiceConnectProxyConfig{Upstreams: []consulapi.Upstream{{DestinationName: "api", LocalBindPort: bindPort}}}}}}); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"api", "web"} {
		cmd := exec.Command(warrenBin, "connect", "envoy", "-sidecar-for", svc, "-http-addr", p.HTTP,
			"-xds-addr", fmt.Sprintf("127.0.0.1:%d", xdsPort), "-admin-bind", fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t)),
			"--", "--base-id", strconv.Itoa(testutil.FreePort(t)), "--log-level", "warn")
		var log bytes.Buffer
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			if t.Failed() {
				t.Logf("envoy for %s:\n%s", svc, log.String())
			}
		})
	}
	bind := fmt.Sprintf("127.0.0.1:%d", bindPort)
	waitFor(t, 30*time.Second, func() error { return echoThrough(bind) })
	t.Logf("web -> web's sidecar -> mTLS -> api's sidecar -> api works")

	if _, err := cl.Connect().IntentionUpsert(&consulapi.Intention{SourceName: "web", DestinationName: "api", Action: consulapi.IntentionActionDeny}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if err := echoThrough(bind); err == nil {
			return fmt.Errorf("web still reaches api through the sidecars")
		}
		return nil
	})
	// And it stays cut.
	for range 5 {
		if err := echoThrough(bind); err == nil {
			t.Fatal("a connection web->api went through after the deny intention")
		}
	}
	p.stop(t)
}
