package main

import (
	"context"
	"fmt"
	"log"
	"regexp"
	"strconv"
	"time"
)

// Memory benchmark parameters and target.
const (
	memServicesPerNode = 10
	memWorkers         = 32
	memSettle          = 5 * time.Second
	memTargetKB        = 80 * 1024 // 80 MiB
)

// runMemory registers o.instances instances (nodes of memServicesPerNode
// services each), waits until every server holds them, lets the servers
// settle, and reads each one's VmRSS.
func runMemory(ctx context.Context, o *options, rep *report) error {
	// gctrace only prints a line per collection (it forces none); the last
	// line tells the live heap apart from what the runtime keeps.
	c, err := startCluster(ctx, o.warren, o.keep, "GODEBUG=gctrace=1")
	if err != nil {
		return err
	}
	defer c.stop()
	leader := c.leader
	base := rssAll(c)
	log.Printf("mem: RSS before registering: %s", fmtKB(base))

	start := time.Now()
	if err := registerMany(ctx, leader.baseURL(), o.instances); err != nil {
		return err
	}
	log.Printf("mem: %d instances registered in %s", o.instances, time.Since(start).Round(time.Millisecond))
	hc := newClient(4)
	defer hc.CloseIdleConnections()
	for k := range memServicesPerNode {
		if err := waitReplicated(ctx, hc, c, memService(k), memCount(o.instances, k)); err != nil {
			return err
		}
	}
	log.Printf("mem: every server holds all %d instances; settling %s", o.instances, memSettle)
	if err := sleepCtx(ctx, memSettle); err != nil {
		return err
	}
	for _, p := range c.procs { // something harmless, so each server has just served a request
		var s string
		_, _ = hc.getJSON(ctx, p.baseURL()+"/v1/status/leader", &s)
	}
	if err := c.checkAlive(); err != nil {
		return err
	}
	reportMemory(rep, c, leader, base, o.instances)
	return nil
}

// memService names service k of each node.
func memService(k int) string { return fmt.Sprintf("mem-%d", k) }

// memCount is how many of n instances belong to service k.
func memCount(n, k int) int {
	return n/memServicesPerNode + btoi(k < n%memServicesPerNode)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// registerMany registers n instances concurrently through base, instance
// i being service i%10 of node i/10. Every registration must succeed.
func registerMany(ctx context.Context, base string, n int) error {
	return forEachParallel(ctx, n, memWorkers, func(hc *httpClient, i int) error {
		in := instance{
			node:      fmt.Sprintf("mem-node-%05d", i/memServicesPerNode),
			nodeAddr:  loopback,
			service:   memService(i % memServicesPerNode),
			serviceID: fmt.Sprintf("mem-%05d-%d", i/memServicesPerNode, i%memServicesPerNode),
			port:      20000 + i%memServicesPerNode,
		}
		if err := register(ctx, hc, base, in); err != nil {
			return fmt.Errorf("register %s: %w", in.serviceID, err)
		}
		return nil
	})
}

// rss reads each server's VmRSS in kB (-1 when unreadable).
func rssAll(c *cluster) []int64 {
	out := make([]int64, len(c.procs))
	for i, p := range c.procs {
		v, err := procStatusKB(p.pid(), "VmRSS")
		if err != nil {
			v = -1
		}
		out[i] = v
	}
	return out
}

func fmtKB(kbs []int64) string {
	s := ""
	for i, kb := range kbs {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("s%d=%.1fMiB", i+1, float64(kb)/1024)
	}
	return s
}

// reportMemory adds each server's RSS and peak, and the max against the
// target.
func reportMemory(rep *report, c *cluster, leader *proc, base []int64, instances int) {
	rss := rssAll(c)
	var maxKB int64
	for i, p := range c.procs {
		hwm, _ := procStatusKB(p.pid(), "VmHWM")
		role := "follower"
		if p == leader {
			role = "leader"
		}
		anon, _ := procStatusKB(p.pid(), "RssAnon")
		file, _ := procStatusKB(p.pid(), "RssFile")
		rep.info(fmt.Sprintf("rss_%s_%s", p.name, role), fmt.Sprintf("%.1f MiB (anon %.1f, file %.1f; idle %.1f, peak %.1f; %s)",
			float64(rss[i])/1024, float64(anon)/1024, float64(file)/1024, float64(base[i])/1024, float64(hwm)/1024, lastGC(p.logPath)))
		maxKB = max(maxKB, rss[i])
	}
	rep.check("rss_max_server", fmt.Sprintf("%.1f MiB", float64(maxKB)/1024), fmt.Sprintf("< %d MiB", memTargetKB/1024), maxKB > 0 && maxKB < memTargetKB)
	rep.note("memory: %d instances (%d per node, each with a check), VmRSS read after a %s settle; no GC was forced", instances, memServicesPerNode, memSettle)
}

// gcLine matches a gctrace line's heap figures: before->after->live MB and
// the goal.
var gcLine = regexp.MustCompile(`(?m)^gc (\d+) @[^:]*:.* (\d+)->(\d+)->(\d+) MB, (\d+) MB goal`)

// lastGC summarises the last gctrace line in a server's log.
func lastGC(logPath string) string {
	m := gcLine.FindAllStringSubmatch(tail(logPath, 64<<10), -1)
	if len(m) == 0 {
		return "no gctrace"
	}
	l := m[len(m)-1]
	n, _ := strconv.Atoi(l[1])
	return fmt.Sprintf("%d GCs, last: live heap %s MB, goal %s MB", n, l[4], l[5])
}
