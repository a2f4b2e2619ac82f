#!/usr/bin/env bash
# Integration: .gor file -> http output -> real nginx on loopback.
#  1. every replayed request arrives byte-exact (nginx echoes what it received), with the
#     base path joined and Host rewritten; responses come back as `replay` records
#  2. keep-alive reuse is visible in nginx's $connection_requests
#  3. a dead port yields counted `refused` errors and empty `replay` error records
#  4. the limit filter (rate = 200/s, mode = wait) holds its rate at nginx
set -euo pipefail
: "${DOPPEL:?} ${DOPPEL_SOURCE_DIR:?} ${DOPPEL_BUILD_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"
work=$(mktemp -d "${DOPPEL_BUILD_DIR}/it-replay-XXXXXX")
trap 'stop_echo_nginx "$work"; rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
tool="python3 $DOPPEL_SOURCE_DIR/tests/support/gor_tool.py"

start_echo_nginx "$work"
N=400
$tool generate "$work/in.gor" $N

run() {  # run PIPELINE LOG: doppel run with a time limit
  timeout 60 "$DOPPEL" run "$1" >"$2" 2>&1 || { echo "doppel run $1 failed:"; cat "$2"; return 1; }
}

echo "== 1. byte-exact replay with base path and Host rewrite"
cat > "$work/replay.toml" <<TOML
[pipeline]
name = "it-replay"
[inputs.in]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[outputs.target]
plugin = "http"
from = ["in"]
url = "http://127.0.0.1:$NGINX_PORT/base"
workers = 4
overflow = "wait"
track_response = true
[outputs.replies]
plugin = "file"
from = ["target"]
path = "$work/replies.gor"
TOML
run "$work/replay.toml" "$work/run1.log"
$tool check-echo "$work/in.gor" "$work/replies.gor" /base "127.0.0.1:$NGINX_PORT"

echo "== 2. keep-alive reuse"
read -r conns max_reuse < <(awk '{c[$2]=1; if ($3>m) m=$3} END {print length(c), m}' "$work/access.log")
echo "nginx saw $conns connection(s), up to $max_reuse requests on one"
[ "$conns" -le 4 ] || { echo "expected at most 4 connections (workers = 4)"; exit 1; }
[ "$max_reuse" -ge $((N / 8)) ] || { echo "expected connections to be reused"; exit 1; }

echo "== 3. dead port"
dead=$(free_port)
sed -e "s|127.0.0.1:$NGINX_PORT/base|127.0.0.1:$dead|" -e "s|replies.gor|errors.gor|" "$work/replay.toml" > "$work/dead.toml"
run "$work/dead.toml" "$work/run3.log"
$tool check-errors "$work/errors.gor" $N
grep -Eq "refused[^0-9]*$N\b|$N[^0-9]*refused" "$work/run3.log" || {
  echo "summary does not count $N refused:"; cat "$work/run3.log"; exit 1; }

echo "== 4. limiter holds its rate"
: > "$work/access.log"
kill -USR1 "$(cat "$work/nginx.pid")"  # reopen the log
sleep 0.2
$tool generate "$work/burst.gor" 300
cat > "$work/limit.toml" <<TOML
[pipeline]
name = "it-limit"
[inputs.in]
plugin = "file"
path = "$work/burst.gor"
max_speed = true
[filters.rate]
plugin = "limit"
from = ["in"]
rate = "200/s"
mode = "wait"
burst = 1
[outputs.target]
plugin = "http"
from = ["rate"]
url = "http://127.0.0.1:$NGINX_PORT"
TOML
run "$work/limit.toml" "$work/run4.log"
python3 - "$work/access.log" <<'PY'
import sys
t = sorted(float(l.split()[0]) for l in open(sys.argv[1]) if l.strip())
rate = (len(t) - 1) / (t[-1] - t[0])
print(f"{len(t)} requests at {rate:.1f}/s")
sys.exit(0 if len(t) == 300 and 170 <= rate <= 215 else 1)
PY

echo "== 5. pipelines/replay-gor-200pct.toml as shipped (paths and target substituted)"
$tool generate "$work/recorded.gor" 40 --gap-ms 10
sed -e "s|\"requests.gor\"|\"$work/recorded.gor\"|" -e "s|\"replies.gor\"|\"$work/pipeline-replies.gor\"|" \
    -e "s|http://127.0.0.1:17555|http://127.0.0.1:$NGINX_PORT|" \
    "$DOPPEL_SOURCE_DIR/pipelines/replay-gor-200pct.toml" > "$work/shipped.toml"
run "$work/shipped.toml" "$work/run5.log"
$tool check-echo "$work/recorded.gor" "$work/pipeline-replies.gor" "" "127.0.0.1:$NGINX_PORT"
echo "OK"
