# shellcheck shell=bash disable=SC2034 # START_PID, START_ADDR, MESHD_ADMIN are read by the callers
# Shared by bench/peers.sh and bench/instructions.sh (sourced, not run): the upstream and the
# four proxies configured as equivalent HTTP/1.1 reverse proxies with a keep-alive upstream.
# Every start_* function sets START_PID and START_ADDR (IP:PORT of the proxy's listener) and
# appends the PID to PIDS, which the caller's EXIT trap stops.
# Callers set W (a scratch directory), R (cargo's release dir) and LOG (1: access log on).
PIDS=()

stop_all() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=()
}

stop_pid() { # PID: stop one process we started
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

free_port() { # a port free right now on 127.0.0.1 (the kernel's choice for port 0)
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # ADDR: until a TCP connect succeeds (bounded: WAIT_TRIES x 50 ms, default 10 s)
  local i
  for i in $(seq "${WAIT_TRIES:-200}"); do
    if python3 -c 'import socket,sys; h,p=sys.argv[1].rsplit(":",1); socket.create_connection((h,int(p)),0.2)' "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.05
  done
  echo "nothing listens on $1 after $i tries" >&2
  return 1
}

# The upstream: a one-worker nginx answering 200 "ok\n" on keep-alive connections.
start_upstream() {
  local port d=$W/upstream
  port=$(free_port)
  mkdir -p "$d"
  cat >"$d/nginx.conf" <<EOF
worker_processes 1; daemon off; master_process off; pid $d/nginx.pid; error_log $d/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 100000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:$port; location / { return 200 "ok\n"; } } }
EOF
  nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" & PIDS+=($!)
  START_PID=$!
  START_ADDR=127.0.0.1:$port
  wait_port "$START_ADDR"
}

# The App Mesh config of meshd's one virtual node `app`: CONNS/PENDING (connectionPool, empty:
# none), LOG=1 an access log to $d/access.log.
write_meshd_config() { # DIR CONNS PENDING
  local d=$1 pool="" logging=""
  mkdir -p "$d/config"
  [[ -n "$2" ]] && pool=", \"connectionPool\": {\"http\": {\"maxConnections\": $2, \"maxPendingRequests\": $3}}"
  # EXTRA_LISTENER: more listener fields, e.g. a per-request timeout
  [[ -n "${EXTRA_LISTENER:-}" ]] && pool="$pool, $EXTRA_LISTENER"
  [[ "${LOG:-0}" == 1 ]] && logging=", \"logging\": {\"accessLog\": {\"file\": {\"path\": \"$d/access.log\"}}}"
  echo '{"meshName": "m", "spec": {}}' >"$d/config/mesh.json"
  cat >"$d/config/.vn-app.json.tmp" <<EOF
{"meshName": "m", "virtualNodeName": "app", "spec": {
  "listeners": [{"portMapping": {"port": 8080, "protocol": "http"}$pool}],
  "serviceDiscovery": {"dns": {"hostname": "app.m.local"}}$logging}}
EOF
  mv "$d/config/.vn-app.json.tmp" "$d/config/vn-app.json"
}

start_meshd() { # NAME WORKERS UPSTREAM CONNS PENDING [RUNNER...]: RUNNER e.g. valgrind ...
  local d=$W/$1 workers=$2 up=$3 conns=$4 pending=$5 i
  shift 5
  write_meshd_config "$d" "$conns" "$pending"
  rm -f "$d/admin"
  "$@" "$R/meshd" --config-dir "$d/config" --state-dir "$d/state" --admin 127.0.0.1:0 \
    --admin-address-path "$d/admin" --socket "$d/sock" --node app --listen app=127.0.0.1:0 \
    --app "app=$up" --concurrency "$workers" --debounce 20ms --log-level warn \
    2>"$d/meshd.err" & PIDS+=($!)
  START_PID=$!
  for i in $(seq 600); do [[ -s "$d/admin" ]] && break; sleep 0.1; done
  [[ -s "$d/admin" ]] || { echo "meshd did not start in $i tries: $(cat "$d/meshd.err")" >&2; return 1; }
  MESHD_ADMIN=$(cat "$d/admin")
  START_ADDR=$(curl -s "http://$MESHD_ADMIN/listeners" | sed -n 's/^app-ingress:://p')
}

start_haproxy() { # NAME WORKERS UPSTREAM CONNS PENDING [RUNNER...]
  local d=$W/$1 workers=$2 up=$3 conns=$4 pending=$5 port limit="" log="" out=/dev/null
  shift 5
  port=$(free_port)
  mkdir -p "$d"
  [[ -n "$conns" ]] && limit="maxconn $conns maxqueue $pending"
  if [[ "${LOG:-0}" == 1 ]]; then
    log="log stdout format raw local0
  option httplog"
    out=$d/access.log
  fi
  cat >"$d/haproxy.cfg" <<EOF
global
  nbthread $workers
  maxconn $((($(ulimit -n) - 100) / 2))
defaults
  mode http
  $log
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout queue 5s
frontend f
  bind 127.0.0.1:$port
  default_backend b
backend b
  http-reuse always
  server s1 $up $limit
EOF
  "$@" haproxy -db -f "$d/haproxy.cfg" >"$out" 2>"$d/haproxy.err" & PIDS+=($!)
  START_PID=$!
  START_ADDR=127.0.0.1:$port
  wait_port "$START_ADDR"
}

start_nginx() { # NAME WORKERS UPSTREAM CONNS PENDING [RUNNER...]; WORKERS 0: master_process off
  local d=$W/$1 workers=$2 up=$3 conns=$4 port limit="" log="access_log off;" master=""
  shift 5
  port=$(free_port)
  mkdir -p "$d"
  [[ -n "$conns" ]] && limit="max_conns=$conns" # nginx (free) has no pending queue
  [[ "${LOG:-0}" == 1 ]] && log="access_log $d/access.log;"
  if [[ "$workers" == 0 ]]; then
    master="master_process off;"
    workers=1
  fi
  cat >"$d/nginx.conf" <<EOF
worker_processes $workers; daemon off; $master pid $d/nginx.pid; error_log $d/error.log;
worker_rlimit_nofile $(ulimit -n);
events { worker_connections $(ulimit -n); }
http { $log keepalive_requests 100000000; keepalive_timeout 300s;
  upstream up { server $up $limit; keepalive 64; }
  server { listen 127.0.0.1:$port;
    location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } } }
EOF
  "$@" nginx -p "$d" -e "$d/error.log" -c "$d/nginx.conf" & PIDS+=($!)
  START_PID=$!
  START_ADDR=127.0.0.1:$port
  wait_port "$START_ADDR"
}

start_envoy() { # NAME WORKERS UPSTREAM CONNS PENDING
  local d=$W/$1 workers=$2 up=$3 conns=$4 pending=$5 port limit="" log=""
  port=$(free_port)
  mkdir -p "$d"
  [[ -n "$conns" ]] && limit="circuit_breakers: {thresholds: [{max_connections: $conns, max_pending_requests: $pending, max_requests: 1000000}]}"
  [[ "${LOG:-0}" == 1 ]] && log="access_log: [{name: envoy.access_loggers.file, typed_config: {'@type': type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog, path: $d/access.log}}]"
  cat >"$d/envoy.yaml" <<EOF
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: $port}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          '@type': type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          $log
          route_config:
            virtual_hosts: [{name: all, domains: ['*'], routes: [{match: {prefix: /}, route: {cluster: up}}]}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {'@type': type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: up
    type: STATIC
    $limit
    load_assignment:
      cluster_name: up
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: ${up%:*}, port_value: ${up##*:}}}}}]}]
EOF
  "$ENVOY" -c "$d/envoy.yaml" --concurrency "$workers" --disable-hot-restart -l warn \
    >"$d/envoy.out" 2>&1 & PIDS+=($!)
  START_PID=$!
  START_ADDR=127.0.0.1:$port
  wait_port "$START_ADDR"
}

cpu_ticks() { # PID: utime+stime of the process and its threads (and nginx's workers), in ticks
  local p total=0 t
  for p in $1 $(pgrep -P "$1" || true); do
    t=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

rss_kb() { # PID: VmRSS of the process and its children (nginx's workers), in KiB
  local p total=0 t
  for p in $1 $(pgrep -P "$1" || true); do
    t=$(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    total=$((total + t))
  done
  echo "$total"
}

stat_sum() { # ADMIN FILTER: the sum of meshd's counters matching FILTER
  curl -s "http://$1/stats?filter=$2" | awk -F': ' '{ s += $2 } END { print s + 0 }'
}
