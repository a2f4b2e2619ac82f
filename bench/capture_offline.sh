#!/usr/bin/env bash
# Offline extraction: a pcap recorded with tcpdump while wrk hits nginx on loopback, read by
# `tcpdump -r F -w /dev/null` and by doppel raw(file) -> null. Prints MB/s, messages/s, ratio.
# Usage: bench/capture_offline.sh [BUILD_DIR]   (root; needs nginx, wrk, tcpdump)
set -euo pipefail
build=${1:-build}
doppel="$build/bin/doppel"
export DOPPEL_PLUGIN_PATH="$build/plugins"
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18089
cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$port; location / { return 200 "hello from nginx, a small body\n"; } } }
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5
tcpdump -i lo -s 262144 -B 65536 -w "$work/cap.pcap" "tcp port $port" 2>/dev/null &
tcpdump_pid=$!
sleep 1
wrk -t2 -c50 -d5s "http://127.0.0.1:$port/" > "$work/wrk.txt"
sleep 0.5
kill -INT $tcpdump_pid; wait $tcpdump_pid || true
size=$(stat -c %s "$work/cap.pcap")
mb=$(echo "scale=2; $size / 1048576" | bc)
t0=$(date +%s.%N); tcpdump -r "$work/cap.pcap" -w /dev/null 2>/dev/null; t1=$(date +%s.%N)
tcpdump_s=$(echo "$t1 - $t0" | bc)
cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench-offline"
[inputs.capture]
plugin = "raw"
file = "$work/cap.pcap"
track_response = true
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
t0=$(date +%s.%N); "$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1; t1=$(date +%s.%N)
doppel_s=$(echo "$t1 - $t0" | bc)
msgs=$(awk '/^  capture/ {print $4}' "$work/summary.txt")
echo "capture file: ${mb} MB, $(grep -o '[0-9]* requests in' "$work/wrk.txt")"
printf "tcpdump -r: %.3f s  %.1f MB/s\n" "$tcpdump_s" "$(echo "$mb / $tcpdump_s" | bc -l)"
printf "doppel raw->null: %.3f s  %.1f MB/s  %.0f messages/s (%s messages)\n" "$doppel_s" \
  "$(echo "$mb / $doppel_s" | bc -l)" "$(echo "${msgs:-0} / $doppel_s" | bc -l)" "${msgs:-?}"
printf "ratio doppel/tcpdump read rate: %.2f\n" "$(echo "$tcpdump_s / $doppel_s" | bc -l)"
grep -E "dropped|requests|responses" "$work/summary.txt" || true
