#!/usr/bin/env bash
# Live completeness: wrk at full rate against nginx on loopback while doppel captures `lo` into
# the null output. Prints requests captured / served, doppel CPU s per 100k requests, and wrk's
# rate with and without the capture beside it.
# doppel's CPU is given twice: while the traffic runs (ticks read just before wrk starts and
# once it has drained), the per-request cost; and over its whole life, which adds the start:
# the kernel zeroes the capture ring (buffer_size, 64 MiB by default) when doppel opens it,
# a fixed cost of about 0.1-0.2 CPU s on a virtual machine, whatever the traffic.
# wrk alone, wrk beside doppel and wrk beside tcpdump take turns, ROUNDS times (default 3, DURATION s each):
# machines are noisy, and a burst of load from elsewhere then hits both sides; medians are compared.
# Then a round into a `file` output (FILE_ROUND=0 skips it): track_response on, wrk -t1 -c8 at
# full rate, and, unless HOG=0, two bounded busy loops keeping both cores loaded as other work
# would. It prints the requests and responses in the .gor against nginx's access log and wrk's
# count, and what the file output dropped (queue_full) with its reason.
# TRACK=1 captures the main rounds with track_response (responses parsed and paired too): the
# cost of pairing; the default is the input's default (requests only).
# Usage: bench/capture_live.sh [BUILD_DIR]   (root; needs nginx, wrk)
set -euo pipefail
build=${1:-build}
doppel="$build/bin/doppel"
export DOPPEL_PLUGIN_PATH="$build/plugins"
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
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
$([ "${TRACK:-0}" = 1 ] && echo "track_response = true")
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
  ticks_before=$(awk '{print $14 + $15}' /proc/$dpid/stat)
  wrk -t2 -c50 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/wrk-capture.txt"
  sleep 1
  ticks=$(awk '{print $14 + $15}' /proc/$dpid/stat)
  traffic_ticks=$((ticks - ticks_before))
  kill -INT $dpid; wait $dpid || true
  served=$(wc -l < "$work/access.log")
  captured=$(awk '/^      requests:/ {print $2; exit}' "$work/summary.txt")
  dropped=$(awk '/^  capture / {print $5; exit}' "$work/summary.txt")
  # The reference: tcpdump capturing the same kind of traffic (requests to the port, writing
  # every packet to /dev/null), its CPU per 100k requests measured the same way.
  tcpdump -i lo -n -w /dev/null "tcp dst port $port and tcp[((tcp[12] & 0xf0) >> 2):4] != 0" 2> /dev/null &
  tpid=$!
  sleep 1.5
  tcpdump_before=$(awk '{print $14 + $15}' /proc/$tpid/stat)
  wrk -t2 -c50 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/wrk-tcpdump.txt"
  sleep 1
  tcpdump_ticks=$(( $(awk '{print $14 + $15}' /proc/$tpid/stat) - tcpdump_before ))
  kill -INT $tpid; wait $tpid || true
  tcpdump_requests=$(awk '/requests in/ {n = $1} END {print n}' "$work/wrk-tcpdump.txt")
  echo "$(rate "$work/wrk-alone.txt") $(rate "$work/wrk-capture.txt") $served ${captured:-0} ${dropped:-0} $ticks $traffic_ticks $tcpdump_ticks $tcpdump_requests" >> "$work/rounds.txt"
done
python3 - "$work/rounds.txt" "$(getconf CLK_TCK)" <<'PY'
import statistics, sys
tck = int(sys.argv[2])
rows = [line.split() for line in open(sys.argv[1])]
alone, beside, changes = [], [], []
served = captured = dropped = 0
cpu = traffic_cpu = tcpdump_cpu = 0.0
tcpdump_requests = 0
for i, (a, b, s, c, d, t, tt, tdt, tdr) in enumerate(rows, 1):
    tcpdump_cpu += int(tdt) / tck; tcpdump_requests += int(tdr)
    a, b = float(a), float(b)
    alone.append(a); beside.append(b); changes.append((b / a - 1) * 100)
    served += int(s); captured += int(c); dropped += int(d); cpu += int(t) / tck; traffic_cpu += int(tt) / tck
    print(f"round {i}: wrk alone {a:9.0f} req/s, beside the capture {b:9.0f} req/s ({(b / a - 1) * 100:+.1f}%); "
          f"served {s}, captured {c}, dropped {d}, doppel CPU {int(tt) / tck:.2f} s during the traffic, "
          f"{int(t) / tck:.2f} s in all")
print(f"wrk alone: {statistics.median(alone):.0f} req/s median; with capture: {statistics.median(beside):.0f} req/s median")
print(f"change: {statistics.median(beside) / statistics.median(alone) * 100 - 100:.1f}% (medians; per round {', '.join(f'{c:+.1f}%' for c in changes)})")
print(f"served by nginx: {served}, captured by doppel: {captured}, dropped with a reason: {dropped}")
print(f"completeness: {captured * 100 / served:.3f}%")
print(f"doppel CPU during the traffic: {traffic_cpu:.2f} s, {traffic_cpu * 100000 / max(captured, 1):.3f} s per 100k requests")
tcpdump_per_100k = tcpdump_cpu * 100000 / max(tcpdump_requests, 1)
print(f"reference, tcpdump -w /dev/null during the traffic: {tcpdump_cpu:.2f} s for {tcpdump_requests} requests, "
      f"{tcpdump_per_100k:.3f} s per 100k requests; doppel / tcpdump: "
      f"{traffic_cpu * 100000 / max(captured, 1) / max(tcpdump_per_100k, 1e-9):.2f}")
print(f"doppel CPU in all (start and ring allocation included): {cpu:.2f} s, "
      f"{cpu * 100000 / max(captured, 1):.3f} s per 100k requests")
PY
echo "last round's summary:"
cat "$work/summary.txt"

[ "${FILE_ROUND:-1}" = 1 ] || exit 0
echo
echo "== capture with track_response into a file output (wrk -t1 -c8, ${DURATION}s$([ "${HOG:-1}" = 1 ] && echo ", both cores loaded by busy loops"))"
cat > "$work/file.toml" <<TOML
[pipeline]
name = "bench-live-file"
stats_interval = "0s"
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $port
track_response = true
[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$work/live.gor"
TOML
sleep 1
: > "$work/access.log"; kill -USR1 "$(cat "$work/nginx.pid")"; sleep 0.2
"$doppel" run "$work/file.toml" > "$work/file-summary.txt" 2>&1 &
dpid=$!
sleep 1.5
hogs=()
if [ "${HOG:-1}" = 1 ]; then
  # Bounded: each loop ends on its own after the traffic, even if this script is killed.
  for _ in 1 2; do timeout $((DURATION + 3)) sh -c 'while :; do :; done' & hogs+=($!); done
fi
wrk -t1 -c8 -d"${DURATION}s" "http://127.0.0.1:$port/" > "$work/wrk-file.txt"
for h in "${hogs[@]}"; do kill "$h" 2>/dev/null || true; wait "$h" 2>/dev/null || true; done
sleep 1
kill -INT $dpid; wait $dpid || true
served=$(wc -l < "$work/access.log")
wrk_requests=$(awk '/requests in/ {print $1}' "$work/wrk-file.txt")
python3 - "$work/live.gor" "$served" "$wrk_requests" "$work/file-summary.txt" <<'PY'
import re, sys
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
counts = {b"1": 0, b"2": 0}
with open(sys.argv[1], "rb") as f:
    for record in f.read().split(sep):
        kind = record[:1]
        if kind in counts:
            counts[kind] += 1
served, wrk = int(sys.argv[2]), int(sys.argv[3])
summary = open(sys.argv[4]).read()
queue_full = sum(int(n) for n in re.findall(r"dropped queue_full: (\d+)", summary))
print(f"wrk sent {wrk} requests; nginx served {served}")
print(f".gor: {counts[b'1']} requests ({counts[b'1'] * 100 / max(served, 1):.3f}% of served), "
      f"{counts[b'2']} responses ({counts[b'2'] * 100 / max(served, 1):.3f}%)")
print(f"dropped as queue_full anywhere: {queue_full}")
PY
grep -E "WARNING|dropped|^  (capture|gor) " "$work/file-summary.txt" || true
