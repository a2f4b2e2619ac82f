#!/usr/bin/env bash
# Replay throughput: a .gor file of N small requests -> `http` output at max speed -> nginx on
# loopback, next to wrk against the same URL in the same run. Prints req/s and the ratio.
#   bench/replay_throughput.sh [BUILD_DIR] [N]      (defaults: build, 200000; ROUNDS=3 turns each)
# Target: doppel >= 80% of wrk. Both use keep-alive connections (WORKERS of them).
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
N=${2:-200000}
WORKERS=${WORKERS:-64}
source "$src/tests/support/nginx_echo.sh"
work=$(mktemp -d)
trap 'stop_echo_nginx "$work"; rm -rf "$work"' EXIT
start_echo_nginx "$work"
url="http://127.0.0.1:$NGINX_PORT/fixed"

python3 - "$work/bench.gor" "$N" <<'PY'
import sys
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        # X-Session: 1024 sessions for the session round (a .gor file records no connection ids).
        f.write(b"1 %024x %d 0\nGET /fixed HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nX-Session: s%d\r\n\r\n" % (i, 1700000000000000000 + i, i % 1024) + sep)
PY

cat > "$work/bench.toml" <<TOML
[pipeline]
name = "bench-replay"
[inputs.in]
plugin = "file"
path = "$work/bench.gor"
max_speed = true
[outputs.target]
plugin = "http"
from = ["in"]
url = "http://127.0.0.1:$NGINX_PORT"
workers = $WORKERS
TOML
# wrk and doppel take turns, ROUNDS times: a burst of load from elsewhere on the machine hits
# both, and the medians are compared rather than one lucky or unlucky run.
ROUNDS=${ROUNDS:-3}
: > "$work/rounds.txt"
for round in $(seq "$ROUNDS"); do
  wrk_rps=$(wrk -t1 -c"$WORKERS" -d4s "$url" | awk '/Requests\/sec/ {print $2}')
  start=$(date +%s.%N)
  DOPPEL_PLUGIN_PATH="$build/plugins" "$build/bin/doppel" run "$work/bench.toml" > "$work/run.log" 2>&1 ||
    { cat "$work/run.log"; exit 1; }
  end=$(date +%s.%N)
  # A rate is only worth quoting if every request went out: a loss is said at exit.
  ! grep "^WARNING" "$work/run.log" || echo "round $round lost requests (above): its rate is not comparable"
  echo "$wrk_rps $start $end" >> "$work/rounds.txt"
done
python3 "$src/bench/lib/replay_rounds.py" "$N" "$work/rounds.txt" wrk "1 thread, keep-alive" \
  "$N requests from a .gor file, incl. startup" 80

# Session round: the same file, once with `session` (each session's requests one at a time on a
# connection of its own) and once without, back to back. SESSION_KEY=header:X-Session by default:
# `session = "connection"` needs captured connection ids, which .gor files do not carry.
SESSION_KEY=${SESSION_KEY:-header:X-Session}
sed "s/^workers = .*/&\nsession = \"$SESSION_KEY\"/" "$work/bench.toml" > "$work/bench-session.toml"
for toml in bench.toml bench-session.toml; do
  start=$(date +%s.%N)
  DOPPEL_PLUGIN_PATH="$build/plugins" "$build/bin/doppel" run "$work/$toml" > "$work/run.log" 2>&1 ||
    { cat "$work/run.log"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "import sys; n,s,e=int(sys.argv[1]),float(sys.argv[2]),float(sys.argv[3]); print(f'{sys.argv[4]:<28}: {n/(e-s):10.0f} req/s ({e-s:.2f}s)')" \
    "$N" "$start" "$end" "$( [ "$toml" = bench.toml ] && echo 'without session' || echo "session = \"$SESSION_KEY\"")"
done
