# Warren configuration, installed by the warren package as
# /etc/warren.d/warren.hcl. Every *.hcl and *.json file in /etc/warren.d is
# read in lexical order; later files override earlier ones, and the flags in
# /etc/default/warren override them all. Local edits are kept on upgrade.
#
# Check the directory with `warren validate /etc/warren.d`, then
#   systemctl enable --now warren-agent    (an agent, on every host), or
#   systemctl enable --now warren-server   (a server, which runs the local
#                                            agent itself: never both)
# `systemctl reload warren-agent` re-reads the service definitions.
#
# The values below are the defaults; uncomment a line to change it.

# Where Warren keeps its state. The units give the warren user this
# directory (StateDirectory=warren); keep it.
data_dir = "/var/lib/warren"

# node_name  = "<host name>"
# datacenter = "dc1"
# log_level  = "info"          # debug, info, warn or error

# Cluster traffic (server RPC 8300, serf LAN gossip 8301).
# bind_addr      = "0.0.0.0"
# advertise_addr = "<first private IPv4 address>"

# The HTTP API and DNS listen here; keep it on loopback unless you need more.
# client_addr = "127.0.0.1"

# Servers (or any member) to join over gossip, as host or host:port.
# An agent reports ready once it has joined one of them.
# retry_join     = ["10.0.0.11", "10.0.0.12", "10.0.0.13"]
# retry_interval = "30s"

# Gossip encryption: `warren keygen`, the same key on every member. Keep
# this directory readable only by root and the warren group if you set it.
# encrypt = ""

# leave_on_terminate = true    # agents leave the pool on `systemctl stop`
# reconnect_timeout  = "72h"

# ports {
#   http     = 8500
#   dns      = 8600            # 53 works too (the units allow binding it)
#   server   = 8300
#   serf_lan = 8301
#   grpc     = 8502
#   https    = 8501            # -1 (off) unless there is a TLS certificate
# }

# TLS. Server RPC (8300) is mutual TLS; without a CA a server binds RPC to
# loopback only, and plaintext HTTP refuses any client_addr but loopback.
# Make a CA and certificates (keep the CA key off the hosts):
#   warren tls ca create
#   warren tls cert create -server -dc dc1      # for each server
#   warren tls cert create -client -dc dc1      # or auto_encrypt below
# tls {
#   defaults {
#     ca_file         = "/etc/warren.d/warren-agent-ca.pem"
#     cert_file       = "/etc/warren.d/dc1-server-warren-0.pem"
#     key_file        = "/etc/warren.d/dc1-server-warren-0-key.pem"
#     verify_incoming = true    # HTTPS clients need a certificate too
#   }
# }
# auto_encrypt {
#   allow_tls = true            # servers: sign agents' certificates
#   # tls     = true            # agents: ca_file only, get a certificate
# }

# ACLs are on by default (default_policy "deny"). Servers: an initial
# management token (a UUID you keep secret), or `warren acl bootstrap` once.
# acl {
#   default_policy = "deny"
#   tokens {
#     initial_management = ""    # servers only
#     agent              = ""    # the token this agent calls the servers with
#     default            = ""    # for HTTP requests that carry none
#   }
# }
#
# A new host can instead join in one step with an enrollment token from
#   warren acl enrollment-token create -ttl 1h -uses 1 -service-identity web
# which hands it its ACL token, the gossip key, the servers and the CA:
# enroll = "wrenroll1...."

# domain    = "warren."
# recursors = ["192.0.2.53"]

# A server host: write /etc/warren.d/server.hcl with
#   server           = true
#   bootstrap_expect = 3
# and run warren-server instead of warren-agent.

# Service definitions, in Consul's format, in this or other files:
# service {
#   name = "web"
#   port = 8080
#   check {
#     http     = "http://127.0.0.1:8080/health"
#     interval = "10s"
#   }
# }
