# Sets every key. TestLoad_FullConfig loads this file and full-config.json
# and expects the same Config from both; TestFullConfigSetsEveryKey fails
# when a key is added to the package but not here.
node_name        = "node-1"
datacenter       = "east-1"
data_dir         = "/var/lib/warren"
log_level        = "WARNING"
bind_addr        = "10.0.0.5"
advertise_addr   = "192.0.2.10"
client_addr      = "0.0.0.0"
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
}
