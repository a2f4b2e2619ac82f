#!/usr/bin/env bash
# Live completeness: wrk at full rate against nginx on loopback for 10 s while doppel captures
# `lo` into the null output. Prints requests captured / served, doppel CPU s per 100k
# requests, and wrk's rate with and without the capture beside it.
# Usage: bench/capture_live.sh [BUILD_DIR]   (root; needs nginx, wrk)
set -euo pipefail
build=${1:-build}
doppel="$build/bin/doppel"
export DOPPEL_PLUGIN_PATH="$build/plugins"
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
rate() { awk '/Requests\/sec/ {print $2}' "$1"; }
wrk -t2 -c50 -d10s "http://127.0.0.1:$port/" > "$work/wrk-alone.txt"
: > "$work/access.log"; kill -USR1 "$(cat "$work/nginx.pid")"
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
"$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1 &
dpid=$!
sleep 1.5
wrk -t2 -c50 -d10s "http://127.0.0.1:$port/" > "$work/wrk-capture.txt"
sleep 1
ticks=$(awk '{print $14 + $15}' /proc/$dpid/stat)
kill -INT $dpid; wait $dpid || true
cpu=$(echo "scale=3; $ticks / $(getconf CLK_TCK)" | bc)
served=$(wc -l < "$work/access.log")
captured=$(awk '/^      requests:/ {print $2; exit}' "$work/summary.txt")
echo "wrk alone: $(rate "$work/wrk-alone.txt") req/s; with capture: $(rate "$work/wrk-capture.txt") req/s"
printf "change: %.1f%%\n" "$(echo "($(rate "$work/wrk-capture.txt") / $(rate "$work/wrk-alone.txt") - 1) * 100" | bc -l)"
echo "served by nginx: $served, captured by doppel: ${captured:-0}"
printf "completeness: %.3f%%\n" "$(echo "${captured:-0} * 100 / $served" | bc -l)"
printf "doppel CPU: %s s, %.3f s per 100k requests\n" "$cpu" "$(echo "$cpu * 100000 / ${captured:-1}" | bc -l)"
cat "$work/summary.txt"
