# Sets every key. TestLoad_FullConfig loads this file and full-config.json
# and expects the same Config from both; TestFullConfigSetsEveryKey fails
# when a key is added to the package but not here.
node_name        = "node-1"
datacenter       = "east-1"
data_dir         = "/var/lib/warren"
log_level        = "WARNING"
bind_addr        = "10.0.0.5"
advertise_addr   = "192.0.2.10"
client_addr      = "127.0.0.2"
server           = true
bootstrap_expect = 3
retry_join       = ["10.0.0.6", "server-2.example.com:9300", "[2001:db8::1]:8300"]
retry_interval   = "15s"

ports {
  http     = 18500
  dns      = -1
  server   = 18300
  serf_lan = 18301
  grpc     = 18502
  https    = 18501
}

encrypt                    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
reconnect_timeout          = "24h"
enable_local_script_checks = true
leave_on_terminate         = true

node_meta {
  rack = "r1"
  tier = "gold"
}

domain     = "Warren.Example"
alt_domain = "consul."
recursors  = ["192.0.2.53", "[2001:db8::53]:5353"]

dns_config {
  node_ttl         = "10s"
  service_ttl      = { "*" = "5s", "web" = "30s" }
  only_passing     = true
  udp_answer_limit = 5
  recursor_timeout = "3s"
}

service {
  name                = "web"
  id                  = "web-1"
  tags                = ["v1", "primary"]
  address             = "10.0.0.5"
  port                = 8080
  meta                = { version = "1.2" }
  enable_tag_override = true
  weights             = { passing = 10, warning = 2 }

  check {
    id                                = "web-http"
    name                              = "web HTTP"
    http                              = "https://10.0.0.5:8080/health"
    header                            = { "X-Probe" = ["warren"] }
    method                            = "POST"
    body                              = "{}"
    disable_redirects                 = true
    tls_server_name                   = "web.internal"
    tls_skip_verify                   = true
    interval                          = "10s"
    timeout                           = "2s"
    status                            = "passing"
    notes                             = "the health endpoint"
    success_before_passing            = 2
    failures_before_critical          = 3
    deregister_critical_service_after = "90m"
  }

  checks = [
    { check_id = "web-tcp", tcp = "10.0.0.5:8080", interval = "5s" },
    { args = ["/usr/local/bin/check-web", "-v"], interval = "30s" },
    { grpc = "10.0.0.5:8081/web.Health", grpc_use_tls = true, interval = "15s" },
    { udp = "10.0.0.5:8125", interval = "20s" },
  ]
}

service {
  name = "db"
  port = 5432
  check {
    ttl = "30s"
  }
  identity {
    uid  = 1001
    path = "/usr/local/bin/db"
  }
}

# Set after the services so that their line numbers stay put.
log_json = true
metrics_addr = "127.0.0.1:19100"
enable_debug = true
workload_socket = "/run/warren-test/workload.sock"

proxy_defaults {
  config {
    protocol                   = "http"
    envoy_prometheus_bind_addr = "0.0.0.0:9102"
    opentelemetry {
      collector_address = "127.0.0.1:4317"
      service_name      = "edge"
    }
  }
  access_logs {
    enabled               = true
    disable_listener_logs = true
    type                  = "file"
    path                  = "/var/log/envoy/access.log"
    json_format           = "{\"code\": \"%RESPONSE_CODE%\"}"
    text_format           = ""
  }
}

acl {
  enabled              = true
  default_policy       = "allow"
  enable_token_for_dns = true
  tokens {
    initial_management = "00000000-1111-2222-3333-444444444444"
    agent              = "aaaaaaaa-1111-2222-3333-444444444444"
    default            = "dddddddd-1111-2222-3333-444444444444"
  }
}

tls {
  defaults {
    ca_file         = "testdata/tls/warren-agent-ca.pem"
    ca_path         = "testdata/tls"
    cert_file       = "testdata/tls/east-1-server-warren-0.pem"
    key_file        = "testdata/tls/east-1-server-warren-0-key.pem"
    verify_incoming = true
    verify_outgoing = true
  }
  internal_rpc {
    verify_server_hostname = true
  }
  https {
    verify_incoming = false
  }
}

auto_encrypt {
  tls       = false
  allow_tls = true
}

connect {
  ca_config {
    csr_max_per_second = 12.5
  }
}

# Limits and audit (config/limits.go).
check_output_max_size = 2048
limits {
  http_max_conns_per_client            = 100
  http_max_blocking_queries_per_client = 50
  http_max_body_bytes                  = 524288
  http_read_header_timeout             = "5s"
  rpc_rate                             = 250.5
  rpc_max_burst                        = 500
}
audit {
  enabled = true
  sink "file" {
    path = "/var/log/warren/audit.json"
  }
}
