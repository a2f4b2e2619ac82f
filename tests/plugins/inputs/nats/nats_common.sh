# Sourced by the NATS integration tests: pipelines for agents and workers, and process helpers.
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
SRC=${DOPPEL_SOURCE_DIR:?source directory}
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"
source "$SRC/tests/support/nats_server.sh"
source "$SRC/tests/support/nginx_echo.sh"
HERE="$SRC/tests/plugins/inputs/nats"
NATS_TOOL="$SRC/tests/support/nats_tool.py"
BG_PIDS=()

cleanup() {
  local p
  for p in "${BG_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  nats_stop_all
  [ -n "${NGINX_DIR:-}" ] && nginx -c "$NGINX_DIR/nginx.conf" -s stop 2>/dev/null || true
  rm -rf "$work"
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# agent_toml OUT GOR SERVERS [extra output options...]
agent_toml() {
  local out=$1 gor=$2 servers=$3
  shift 3
  {
    echo '[inputs.src]'
    echo 'plugin = "file"'
    echo "path = \"$gor\""
    echo 'max_speed = true'
    echo '[outputs.bus]'
    echo 'plugin = "nats"'
    echo 'from = ["src"]'
    echo "servers = [$servers]"
    local line
    for line in "$@"; do echo "$line"; done
  } > "$out"
}

# worker_toml OUT SERVERS TARGET_PORT VERDICTS [extra input options...]
worker_toml() {
  local out=$1 servers=$2 port=$3 verdicts=$4
  shift 4
  {
    echo '[inputs.bus]'
    echo 'plugin = "nats"'
    echo "servers = [$servers]"
    local line
    for line in "$@"; do echo "$line"; done
    cat <<TOML
[outputs.candidate]
plugin = "http"
from = ["bus"]
url = "http://127.0.0.1:$port"
track_response = true
[middleware.compare]
plugin = "compare"
from = ["bus", "candidate"]
fail = ["status"]
[outputs.report]
plugin = "report"
from = ["compare"]
jsonl = "$verdicts"
TOML
  } > "$out"
}

# stream_messages URL: messages stored in stream DOPPEL.
stream_messages() {
  python3 "$NATS_TOOL" stream-info "$1" DOPPEL | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])'
}

# wait_for_requests LOG N SECONDS: until the access log holds N replayed requests (bounded).
wait_for_requests() {
  local n=0
  for _ in $(seq $(($3 * 10))); do
    n=$(grep -c " /r/" "$1" 2>/dev/null || true)
    [ "$n" -ge "$2" ] && return 0
    sleep 0.1
  done
  echo "only $n of $2 requests reached the target" >&2
  return 1
}

# stop_doppel PID: SIGINT (drain) and wait, bounded; returns its exit code.
stop_doppel() {
  kill -INT "$1" 2>/dev/null || true
  for _ in $(seq 300); do
    kill -0 "$1" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
  local rc=0
  wait "$1" || rc=$?
  return $rc
}

# counter FILE STAGE NAME: a counter from a doppel run summary (the stage's block).
counter() {
  awk -v stage="$2" -v name="$3:" '
    $1 == stage && NF >= 6 { inside = 1; next }
    inside && NF >= 6 && $2 != "" && $1 !~ /:$/ { inside = 0 }
    inside && $1 == name { print $2; exit }' "$1"
}

# check_exactly_once LOG EXPECTED_URIS_FILE: every URI replayed exactly once.
check_exactly_once() {
  { grep -o " /r/[^ ]*" "$1" || true; } | tr -d ' ' | sort > "$work/seen.txt"
  sort -u "$2" > "$work/want.txt"
  if ! diff -q "$work/want.txt" <(sort -u "$work/seen.txt") > /dev/null; then
    comm -23 "$work/want.txt" <(sort -u "$work/seen.txt") | head -5 >&2
    fail "requests missing at the target"
  fi
}

# uris GOR: the request targets of a .gor file made by make_gor.py
uris() { grep -a -o "^GET /r/[^ ]*" "$1" | cut -d' ' -f2; }
