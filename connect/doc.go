// Package connect owns Warren's mesh identity: the built-in certificate
// authority (roots, signing intermediates, cross-signing for rotation), the
// SPIFFE IDs of workloads and agents, leaf certificate signing from CSRs, the
// agent-side helpers that make a key and a CSR and pick a renewal time, and
// the evaluation of intentions (who may talk to whom).
//
// It is a library: nothing here opens a socket, reads a clock or draws from
// a global random source in the deterministic parts. Every function that
// needs the time takes a now time.Time, and every function that needs
// randomness takes an io.Reader, so the leader can generate keys and
// certificates and stamp the results into Raft commands that the FSM applies
// without seeing a clock.
//
// Private keys: a Root carries its keys (SecretPEM) because the servers must
// replicate them through Raft. They are redacted from fmt, %v, %#v and slog
// output, but a Root still marshals them to JSON for the Raft log, so a Root
// must never be written to an API response or a log as JSON: use
// Root.Public, which holds no key material.
//
// May import: catalog and internal/*. Imported by server, agent and xds.
package connect
