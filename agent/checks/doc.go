// Package checks runs the agent's health checks: one runner per kind (HTTP,
// TCP, UDP, gRPC, TTL and script), each in its own file, all owned by a
// Manager that runs them under one context. It applies Consul's check
// semantics (thresholds, output conventions, exit codes) and decides when a
// result is worth reporting: statuses pass through success/failure
// thresholds, outputs are capped at catalog.MaxOutputLen, and changes are
// rate-limited per check before they reach ManagerConfig.Notify.
//
// Security rules that come from Consul's history:
//   - HTTP checks do not follow redirects unless the definition asks
//     (FollowRedirects), and never use proxy settings from the environment,
//     so a check cannot be bent into a request to somewhere else (SSRF).
//     When they do follow, it is at most 5 hops, of a GET or HEAD only (a
//     307 never replays a PUT on, say, the agent's own API), without the
//     definition's X-Consul-Token or Authorization headers.
//   - Script checks (Args) run only when enable_local_script_checks is set,
//     and only for definitions read from config files; Validate refuses them
//     from the HTTP API whatever the configuration (remote code execution).
//
// Only the agent wiring (agent/) and agent/local import this package; it
// imports only catalog internally.
package checks
