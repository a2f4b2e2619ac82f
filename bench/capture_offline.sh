#!/usr/bin/env bash
# Offline extraction: a pcap recorded with tcpdump while wrk hits nginx on loopback, read by
# `tcpdump -r F -w /dev/null` and by doppel raw(file) -> null. Prints MB/s, messages/s and the
# ratio of the read rates.
# The two take turns, ROUNDS times (default 9): these machines are noisy, and a burst of load
# from elsewhere then hits both sides. Every round is printed; medians are compared.
# Usage: bench/capture_offline.sh [BUILD_DIR]   (root; needs nginx, wrk, tcpdump)
#   THREADS=N   doppel's `threads` option (default: the input's default, one per core)
#   KEEP=FILE   keep the recorded pcap there (or, when FILE exists, read it instead of recording)
set -euo pipefail
build=${1:-build}
doppel="$build/bin/doppel"
ROUNDS=${ROUNDS:-9}
work=$(mktemp -d)
trap 'kill $(cat "$work/nginx.pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18089
pcap="$work/cap.pcap"
if [ -n "${KEEP:-}" ] && [ -s "$KEEP" ]; then
  pcap=$KEEP
else
  cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:$port; location / { return 200 "hello from nginx, a small body\n"; } } }
CONF
  nginx -c "$work/nginx.conf" -p "$work"
  sleep 0.5
  tcpdump -i lo -s 262144 -B 65536 -w "$pcap" "tcp port $port" 2>/dev/null &
  tcpdump_pid=$!
  sleep 1
  wrk -t2 -c50 -d5s "http://127.0.0.1:$port/" > "$work/wrk.txt"
  sleep 0.5
  kill -INT $tcpdump_pid; wait $tcpdump_pid || true
  echo "recorded: $(grep -o '[0-9]* requests in [0-9.]*s' "$work/wrk.txt")"
  if [ -n "${KEEP:-}" ]; then cp "$pcap" "$KEEP"; fi
fi
threads_line=""
[ -n "${THREADS:-}" ] && threads_line="threads = $THREADS"
cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench-offline"
[inputs.capture]
plugin = "raw"
file = "$pcap"
track_response = true
$threads_line
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
now() { date +%s%N; }
: > "$work/rounds.txt"
for round in $(seq "$ROUNDS"); do
  t0=$(now); tcpdump -r "$pcap" -w /dev/null 2>/dev/null; t1=$(now)
  "$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1; t2=$(now)
  msgs=$(awk '/^  capture/ {print $4}' "$work/summary.txt")
  echo "$(( (t1 - t0) / 1000 )) $(( (t2 - t1) / 1000 )) ${msgs:-0}" >> "$work/rounds.txt"
done
python3 - "$work/rounds.txt" "$(stat -c %s "$pcap")" <<'PY'
import statistics, sys
rows = [[int(x) for x in line.split()] for line in open(sys.argv[1])]
mb = int(sys.argv[2]) / 1048576
print(f"capture file: {mb:.1f} MB, {rows[0][2]} messages extracted by doppel")
print("round  tcpdump -r   doppel raw->null   ratio")
for i, (t, d, _) in enumerate(rows, 1):
    print(f"{i:5}  {t / 1000:8.1f} ms  {d / 1000:12.1f} ms   {t / d:5.2f}")
t = statistics.median(r[0] for r in rows) / 1e6
d = statistics.median(r[1] for r in rows) / 1e6
msgs = rows[0][2]
print(f"median tcpdump -r: {t * 1000:.1f} ms, {mb / t:.0f} MB/s")
print(f"median doppel raw->null: {d * 1000:.1f} ms, {mb / d:.0f} MB/s, {msgs / d:,.0f} messages/s")
print(f"ratio of read rates (doppel / tcpdump), medians: {t / d:.2f}; median of per-round ratios: "
      f"{statistics.median(r[0] / r[1] for r in rows):.2f}")
PY
grep -E "dropped|requests:|responses:|failed" "$work/summary.txt" | head -4 || true
