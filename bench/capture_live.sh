#!/usr/bin/env bash
# Live completeness: wrk at full rate against nginx on loopback while doppel captures `lo` into
# the null output. Prints requests captured / served, doppel CPU s per 100k requests, and wrk's
# rate with and without the capture beside it.
# wrk alone and wrk beside a capture take turns, ROUNDS times (default 3, DURATION s each):
# machines are noisy, and a burst of load from elsewhere then hits both sides; medians are compared.
# Usage: bench/capture_live.sh [BUILD_DIR]   (root; needs nginx, wrk)
set -euo pipefail
build=${1:-build}
doppel="$build/bin/doppel"
export DOPPEL_PLUGIN_PATH="$build/plugins"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-6}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18090
cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log $work/access.log; server { listen 127.0.0.1:$port; location / { return 200 "hello\n"; } } }
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5
cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench-live"
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $port
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
: > "$work/rounds.txt"
for round in $(seq "$ROUNDS"); do
  wrk -t2 -c50 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/wrk-alone.txt"
  # nginx logs the requests wrk left in flight after wrk returns: let them land before the
  # log is emptied, or they would count as served in the capture round.
  sleep 1
  : > "$work/access.log"; kill -USR1 "$(cat "$work/nginx.pid")"; sleep 0.2
  "$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1 &
  dpid=$!
  sleep 1.5
  wrk -t2 -c50 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/wrk-capture.txt"
  sleep 1
  ticks=$(awk '{print $14 + $15}' /proc/$dpid/stat)
  kill -INT $dpid; wait $dpid || true
  served=$(wc -l < "$work/access.log")
  captured=$(awk '/^      requests:/ {print $2; exit}' "$work/summary.txt")
  dropped=$(awk '/^  capture / {print $5; exit}' "$work/summary.txt")
  echo "$(rate "$work/wrk-alone.txt") $(rate "$work/wrk-capture.txt") $served ${captured:-0} ${dropped:-0} $ticks" >> "$work/rounds.txt"
done
python3 - "$work/rounds.txt" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
tck = int(sys.argv[2])
rows = [line.split() for line in open(sys.argv[1])]
alone, beside, changes = [], [], []
served = captured = dropped = 0
cpu = 0.0
for i, (a, b, s, c, d, t) in enumerate(rows, 1):
    a, b = float(a), float(b)
    alone.append(a); beside.append(b); changes.append((b / a - 1) * 100)
    served += int(s); captured += int(c); dropped += int(d); cpu += int(t) / tck
    print(f"round {i}: wrk alone {a:9.0f} req/s, beside the capture {b:9.0f} req/s ({(b / a - 1) * 100:+.1f}%); "
          f"served {s}, captured {c}, dropped {d}, doppel CPU {int(t) / tck:.2f} s")
print(f"wrk alone: {statistics.median(alone):.0f} req/s median; with capture: {statistics.median(beside):.0f} req/s median")
print(f"change: {statistics.median(beside) / statistics.median(alone) * 100 - 100:.1f}% (medians; per round {', '.join(f'{c:+.1f}%' for c in changes)})")
print(f"served by nginx: {served}, captured by doppel: {captured}, dropped with a reason: {dropped}")
print(f"completeness: {captured * 100 / served:.3f}%")
print(f"doppel CPU: {cpu:.2f} s, {cpu * 100000 / max(captured, 1):.3f} s per 100k requests")
PY
echo "last round's summary:"
cat "$work/summary.txt"
