#!/usr/bin/env bash
# Integration (per-id order): live capture of a slow original server (40 ms) replayed to a fast
# candidate (~1 ms) with the seed's GoReplay command line, `doppel gor ... --middleware`, and
# the seed's callback pattern (request -> register response callback -> register replay
# callback): in Python (the tests' stand-in for PyPI's `gor`) and in Node.js (npm's
# goreplay_middleware). Each replay reaches doppel before its original response; the
# middleware must still compare every one of the 170.
set -euo pipefail
: "${DOPPEL:?} ${DOPPEL_SOURCE_DIR:?} ${DOPPEL_BUILD_DIR:?}"
[ "$(id -u)" = 0 ] || { echo "FAIL: live capture needs root"; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d "${DOPPEL_BUILD_DIR}/it-order-XXXXXX")
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
server_pids=()
doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  for p in "${server_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
N=170

start_server() {  # start_server NAME DELAY_MS: sets port_NAME
  python3 "$here/order_servers.py" serve "$2" "$work/$1.port" "$work/$1.count" &
  server_pids+=($!)
  for _ in $(seq 100); do [ -f "$work/$1.port" ] && break; sleep 0.05; done
  printf -v "port_$1" '%s' "$(cat "$work/$1.port")"
}
start_server original 40
start_server candidate 0

# run_case NAME MIDDLEWARE_COMMAND OUT [ENV...]: one capture-replay-compare run; prints a figure.
run_case() {
  local name=$1 command=$2 out=$3
  : > "$work/candidate.count"
  : > "$out"
  chmod 0666 "$out"  # the middleware runs as nobody, as doppel does after opening the capture
  env "${@:4}" "$DOPPEL" gor --input-raw ":$port_original" --input-raw-track-response \
    --output-http "http://127.0.0.1:$port_candidate" --output-http-track-response \
    --middleware "$command" --http-allow-url /v2/robot/query > "$work/$name.log" 2>&1 &
  doppel_pid=$!
  for _ in $(seq 100); do grep -q "raw: capturing" "$work/$name.log" && break; sleep 0.1; done
  grep -q "raw: capturing" "$work/$name.log" || { cat "$work/$name.log"; echo "FAIL: capture did not start"; exit 1; }
  sleep 0.3
  python3 "$here/order_servers.py" client "$port_original" $N
  for _ in $(seq 100); do [ "$(grep -c . "$work/candidate.count")" -ge $N ] && break; sleep 0.1; done
  sleep 0.5
  kill -INT "$doppel_pid"
  timeout 30 tail --pid="$doppel_pid" -f /dev/null || { echo "FAIL: doppel did not exit"; exit 1; }
  wait "$doppel_pid" || { cat "$work/$name.log"; echo "FAIL: doppel exited with an error"; exit 1; }
  doppel_pid=""
  local seen same held
  seen=$(grep -c . "$out" || true)
  same=$(grep -c " same$" "$out" || true)
  held=$(grep -Eo "held[^_a-z][^0-9]*[0-9]+" "$work/$name.log" | grep -Eo "[0-9]+$" | tail -1 || true)
  echo "$name: candidate got $(grep -c . "$work/candidate.count") requests; middleware compared $seen of $N replays ($same same); held: ${held:-0}"
  if [ "$seen" -ne $N ] || [ "$same" -ne $N ]; then
    cat "$work/$name.log"
    echo "FAIL: $name: the middleware compared $seen of $N replays"
    exit 1
  fi
}

echo "== Python middleware (gor package API)"
run_case python "env PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=$here python3 $here/seed_style_middleware.py $work/python.txt" "$work/python.txt"

echo "== Node.js middleware (npm goreplay_middleware)"
npm_dir="$DOPPEL_BUILD_DIR/npm-cache"
if [ ! -f "$npm_dir/node_modules/goreplay_middleware/middleware.js" ]; then
  mkdir -p "$npm_dir"
  (cd "$npm_dir" && timeout 120 npm install --no-audit --no-fund --cache "$npm_dir/.npm" goreplay_middleware >/dev/null)
fi
node=$(command -v node || ls "$HOME"/.nvm/versions/node/*/bin/node 2>/dev/null | tail -1)
[ -x "$node" ] || { echo "FAIL: node not found"; exit 1; }
run_case node "$node $here/seed_style_middleware.js $work/node.txt" "$work/node.txt" NODE_PATH="$npm_dir/node_modules"
echo "OK"
