#!/usr/bin/env bash
# HTTP/2 replay throughput: a .gor file of N small h2 requests (proto=h2) -> `http` output with
# default options at max speed -> nghttpd (h2c) on loopback, next to h2load against the same
# URL with the same connection count and streams in flight, in the same run. Prints req/s and
# the ratio.
#   bench/h2_replay.sh [BUILD_DIR] [N]      (defaults: build, 200000; ROUNDS=3 turns each)
# Target: doppel >= 70% of h2load.
# doppel's defaults: workers = 64 requests in flight, h2_max_streams = 100 per connection, so
# 64 streams on 1 connection; h2load runs with -c 1 -m 64 to match.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
N=${2:-200000}
CONNECTIONS=1
STREAMS=64
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
mkdir -p "$work/docs"
printf ok > "$work/docs/fixed"
nghttpd --no-tls -a 127.0.0.1 -d "$work/docs" "$port" > "$work/nghttpd.log" 2>&1 &
pid=$!
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
  sleep 0.1
done
url="http://127.0.0.1:$port/fixed"

python3 - "$work/bench.gor" "$N" <<'PY'
import sys
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(b"1 %024x %d 0 proto=h2 stream=%d\nGET /fixed HTTP/1.1\r\nhost: bench\r\nuser-agent: bench\r\n\r\n" % (i, 1700000000000000000 + i, 2 * (i % 1000000) + 1) + sep)
PY

cat > "$work/bench.toml" <<TOML
[pipeline]
name = "bench-h2-replay"
[inputs.in]
plugin = "file"
path = "$work/bench.gor"
max_speed = true
[outputs.target]
plugin = "http"
from = ["in"]
url = "http://127.0.0.1:$port"
TOML
# h2load and doppel take turns, ROUNDS times; the medians are compared.
ROUNDS=${ROUNDS:-3}
: > "$work/rounds.txt"
for round in $(seq "$ROUNDS"); do
  h2load_rps=$(h2load -c"$CONNECTIONS" -m"$STREAMS" -n"$N" "$url" | awk '/^finished in/ {print $4}')
  start=$(date +%s.%N)
  DOPPEL_PLUGIN_PATH="$build/plugins" "$build/bin/doppel" run "$work/bench.toml" > "$work/run.log" 2>&1 ||
    { cat "$work/run.log"; exit 1; }
  end=$(date +%s.%N)
  # A rate is only worth quoting if every request was answered.
  grep -Eq "^ +responses: $N\$" "$work/run.log" || { echo "round $round: not all $N answered:"; cat "$work/run.log"; exit 1; }
  echo "$h2load_rps $start $end" >> "$work/rounds.txt"
done
python3 "$src/bench/lib/replay_rounds.py" "$N" "$work/rounds.txt" h2load "-c $CONNECTIONS -m $STREAMS, h2c" \
  "$N h2 requests from a .gor file, default options, incl. startup" 70
