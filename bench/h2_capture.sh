#!/usr/bin/env bash
# HTTP/2 capture cost beside HTTP/1.1's on the same traffic shape: h2load drives REQUESTS
# small GETs against nghttpd over h2c (-c 4 -m 10), and over HTTP/1.1 (--h1, the same
# connections, one request at a time each) against nginx; tcpdump records each on loopback.
# doppel (default options, raw file -> null) then reads each pcap ROUNDS times (default 5) and
# the CPU time it spent (user + system, from /proc) is printed per 100,000 requests, with the
# ratio h2/h1 and tshark's count of the requests in each pcap as the reference.
# Usage: bench/h2_capture.sh [BUILD_DIR] [REQUESTS]   (root; needs nghttpd, h2load, nginx, tcpdump, tshark)
set -euo pipefail
build=${1:-build}
requests=${2:-100000}
doppel="$build/bin/doppel"
ROUNDS=${ROUNDS:-5}
export DOPPEL_PLUGIN_PATH="$build/plugins"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
h2_port=18291
h1_port=18292
mkdir -p "$work/www"
printf 'hello from the bench, a small body\n' > "$work/www/index.html"
nghttpd --no-tls -d "$work/www" "$h2_port" > /dev/null 2>&1 &
pids+=($!)
cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$h1_port; root $work/www; } }
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5

record() {  # record PCAP PORT H2LOAD-ARGS...
  local pcap=$1 port=$2; shift 2
  tcpdump -i lo -s 262144 -B 262144 -w "$pcap" "tcp port $port" 2> "$pcap.log" &
  local tcpdump_pid=$!
  sleep 1
  h2load -n "$requests" -c 4 -m 10 "$@" > "$pcap.h2load" 2>&1
  sleep 0.5
  kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" || true
  grep -q "^0 packets dropped by kernel" "$pcap.log" || { cat "$pcap.log" >&2; echo "tcpdump dropped packets" >&2; exit 1; }
}
record "$work/h2.pcap" "$h2_port" "http://127.0.0.1:$h2_port/index.html"
record "$work/h1.pcap" "$h1_port" --h1 -m 1 "http://127.0.0.1:$h1_port/index.html"

cpu_of_run() {  # seconds of CPU doppel used reading PCAP
  cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench-h2-capture"
stats_interval = "0s"
[inputs.capture]
plugin = "raw"
file = "$1"
track_response = true
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
  /usr/bin/time -f "%U %S" -o "$work/time.txt" "$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1
  awk '{print $1 + $2}' "$work/time.txt"
}
for proto in h1 h2; do
  : > "$work/$proto.cpu"
  for _ in $(seq "$ROUNDS"); do cpu_of_run "$work/$proto.pcap" >> "$work/$proto.cpu"; done
  cp "$work/summary.txt" "$work/$proto.summary"
  # tshark's own count of the requests (HEADERS with :method; several per packet over h2)
  if [ "$proto" = h2 ]; then decode=(-d "tcp.port==$h2_port,http2" -Y http2.headers.method -e http2.headers.method)
  else decode=(-Y http.request -e http.request.method); fi
  tshark -r "$work/$proto.pcap" "${decode[@]}" -T fields 2>/dev/null |
    tr ',' '\n' | grep -c GET > "$work/$proto.tshark" || true
done
python3 - "$work" "$requests" <<'PY'
import re, statistics, sys
work, requests = sys.argv[1], int(sys.argv[2])
rows = {}
for proto in ("h1", "h2"):
    cpu = statistics.median(float(x) for x in open(f"{work}/{proto}.cpu"))
    summary = open(f"{work}/{proto}.summary").read()
    m = re.search(r"requests: (\d+)", summary)
    emitted = int(m.group(1)) if m else 0
    tshark = int(open(f"{work}/{proto}.tshark").read().split()[0])
    rows[proto] = cpu / emitted * 100000 if emitted else float("nan")
    print(f"{proto}: {emitted} requests captured by doppel (tshark: {tshark}), median CPU {cpu:.3f} s, "
          f"{rows[proto]:.3f} CPU-s per 100k requests")
print(f"ratio h2/h1 CPU per request: {rows['h2'] / rows['h1']:.2f}")
PY
