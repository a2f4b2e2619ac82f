# Sourced by NATS integration tests: starts nats-server processes with JetStream on loopback
# ports, each with its own store dir under DIR, and kills them on nats_stop_all.
#   nats_start_single DIR           -> NATS_URL, NATS_PIDS=(pid)
#   nats_start_cluster DIR          -> three nodes n1..n3 with routes on loopback:
#                                      NATS_URLS (comma-separated), NATS_PORTS=(...), NATS_PIDS=(...)
#   nats_kill_node I [SIGNAL]       -> stops node I (0-based)
#   nats_restart_node I             -> starts node I again with its config
#   nats_stop_all
NATS_PIDS=()
NATS_PORTS=()
NATS_CONFS=()
NATS_DIR=

nats_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

nats_wait_port() {
  local port=$1
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nats-server on port $port did not come up" >&2
  return 1
}

# nats_launch I CONF: starts node I from CONF, logging to CONF.log.
nats_launch() {
  nats-server -c "$2" >> "$2.log" 2>&1 &
  NATS_PIDS[$1]=$!
}

nats_start_single() {
  NATS_DIR=$1
  mkdir -p "$NATS_DIR/store0"
  local port
  port=$(nats_free_port)
  NATS_PORTS=("$port")
  NATS_CONFS=("$NATS_DIR/n0.conf")
  cat > "${NATS_CONFS[0]}" <<CONF
listen: 127.0.0.1:$port
server_name: n0
jetstream { store_dir: "$NATS_DIR/store0", max_memory_store: 256MB, max_file_store: 1GB }
CONF
  nats_launch 0 "${NATS_CONFS[0]}"
  nats_wait_port "$port"
  NATS_URL="nats://127.0.0.1:$port"
}

nats_start_cluster() {
  NATS_DIR=$1
  local i cports=() routes=""
  for i in 0 1 2; do
    NATS_PORTS[$i]=$(nats_free_port)
    cports[$i]=$(nats_free_port)
    routes+="nats-route://127.0.0.1:${cports[$i]},"
  done
  routes=${routes%,}
  for i in 0 1 2; do
    mkdir -p "$NATS_DIR/store$i"
    NATS_CONFS[$i]="$NATS_DIR/n$i.conf"
    cat > "${NATS_CONFS[$i]}" <<CONF
listen: 127.0.0.1:${NATS_PORTS[$i]}
server_name: n$i
jetstream { store_dir: "$NATS_DIR/store$i", max_memory_store: 256MB, max_file_store: 1GB }
cluster {
  name: doppel-test
  listen: 127.0.0.1:${cports[$i]}
  routes: [ $(echo "$routes" | sed 's/,/, /g') ]
}
CONF
    nats_launch "$i" "${NATS_CONFS[$i]}"
  done
  for i in 0 1 2; do nats_wait_port "${NATS_PORTS[$i]}"; done
  NATS_URLS=""
  for i in 0 1 2; do NATS_URLS+="nats://127.0.0.1:${NATS_PORTS[$i]},"; done
  NATS_URLS=${NATS_URLS%,}
  # JetStream needs a meta leader before streams can be created: wait for one (bounded).
  for _ in $(seq 100); do
    grep -q "JetStream cluster new metadata leader\|Self is new JetStream cluster metadata leader" \
      "$NATS_DIR"/n*.conf.log 2>/dev/null && return 0
    sleep 0.1
  done
  echo "no JetStream meta leader elected" >&2
  return 1
}

nats_kill_node() {
  local sig=${2:-TERM}
  kill -s "$sig" "${NATS_PIDS[$1]}" 2>/dev/null || true
  wait "${NATS_PIDS[$1]}" 2>/dev/null || true
  NATS_PIDS[$1]=
}

nats_restart_node() {
  nats_launch "$1" "${NATS_CONFS[$1]}"
  nats_wait_port "${NATS_PORTS[$1]}"
}

nats_stop_all() {
  local p
  for p in "${NATS_PIDS[@]}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null || true
  done
  for p in "${NATS_PIDS[@]}"; do
    [ -n "$p" ] && wait "$p" 2>/dev/null || true
  done
  NATS_PIDS=()
}

