#!/usr/bin/env bash
# Differential pairing harness for the `raw` input (issue 14).
#
# Real servers on loopback (nginx, a Python http.server, a Node.js server) answer every request
# with `X-Echo-Id: <the request's X-Req-Id>`; real clients (curl, Python http.client, a raw
# socket client pipelining requests, Node with a keepAlive agent, wrk for the bulk) send
# unique ids. tcpdump records the traffic; damage.py deletes, duplicates and reorders frames
# and cuts the start or the end of the recordings (seeded); doppel reads every pcap into a
# .gor file; check.py judges each pair by the ids (tshark's own pairing is printed beside
# it). Invariant: no response ever gets another request's id, no orphan responses, every
# record is bytes that were on the wire; undamaged recordings pair 100%.
#
# Needs root (tcpdump), nginx with the echo module, curl, wrk, node, python3; tshark optional.
# Environment (defaults give the full run, >= 100,000 exchanges):
#   DIFF_EXCHANGES  wrk exchanges in the bulk recording          (100000; quick: 5000)
#   DIFF_SCALE      size of the varied clients' recording        (100 ~ 3,600 exchanges; quick: 10)
#   DIFF_SEED       first damage seed; pcap k uses DIFF_SEED+k   (14)
#   DIFF_DAMAGE     damage kinds applied to every recording, see damage.py
#                   ("loss:0.1 loss:1 loss:2 loss:5 dup:2 reorder:5 midstream:20 truncate:20 mix:1")
#   DIFF_TSHARK     all | mixed (only the varied recording and its damaged copies; tshark
#                   needs minutes for the bulk one) | none                      (mixed)
#   DIFF_THREADS    `threads` of the raw input                   (0 = doppel's default)
#   DIFF_WORK       keep everything in this directory instead of a temporary one
# Standalone: DOPPEL=build-h2/bin/doppel DOPPEL_BUILD_DIR=build-h2 DOPPEL_SOURCE_DIR=. \
#             DIFF_EXCHANGES=5000 DIFF_SCALE=10 bash tests/plugins/inputs/raw/differential/run.sh
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "the differential harness needs root (tcpdump)"
for tool in nginx tcpdump curl wrk node python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh test)"
done
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || fail "libnginx-mod-http-echo is not installed"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

exchanges=${DIFF_EXCHANGES:-100000}
scale=${DIFF_SCALE:-100}
seed=${DIFF_SEED:-14}
damages=${DIFF_DAMAGE:-"loss:0.1 loss:1 loss:2 loss:5 dup:2 reorder:5 midstream:20 truncate:20 mix:1"}
tshark_mode=${DIFF_TSHARK:-mixed}
threads=${DIFF_THREADS:-0}
if [ "$tshark_mode" != none ] && ! command -v tshark >/dev/null; then
  echo "note: tshark is not installed; its reference column is left out" >&2
  tshark_mode=none
fi
started=$SECONDS

if [ -n "${DIFF_WORK:-}" ]; then work=$DIFF_WORK; mkdir -p "$work"; keep=1; else work=$(mktemp -d); keep=0; fi
pids=()
tcpdump_pid=""
cleanup() {
  [ -n "$tcpdump_pid" ] && kill "$tcpdump_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT

# Below the ephemeral range (32768-60999): a client connection elsewhere on the machine may hold
# any port in it, and the servers could not bind.
base=$((21000 + $$ % 11000))
nginx_port=$base py_port=$((base + 1)) node_port=$((base + 2))
ports="$nginx_port $py_port $node_port"
echo "differential: work=$work exchanges=$exchanges scale=$scale seed=$seed ports=$ports"

# --- servers -------------------------------------------------------------------------------
site=$work/nginx
mkdir -p "$site/root/s" "$site/root/gz" "$site/tmp"
printf 'small body\n' > "$site/root/s/small.txt"
python3 - "$site/root" <<'PY'
import sys
root = sys.argv[1]
for name, n in (("1k.bin", 1000), ("8k.bin", 8000), ("64k.bin", 65536)):
    open("%s/s/%s" % (root, name), "wb").write(bytes((i * 7 + 3) % 256 for i in range(n)))
open(root + "/gz/text.txt", "w").write("".join("line %d of a text nginx gzips on the fly\n" % i for i in range(120)))
PY
cat > "$site/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_http_echo_module.so;
daemon off;
user root;
worker_processes 1;
pid $site/nginx.pid;
error_log $site/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $site/tmp;
  proxy_temp_path $site/tmp;
  fastcgi_temp_path $site/tmp;
  uwsgi_temp_path $site/tmp;
  scgi_temp_path $site/tmp;
  default_type text/plain;
  keepalive_requests 1000;
  client_max_body_size 16m;
  if_modified_since before;
  server {
    listen 127.0.0.1:$nginx_port;
    root $site/root;
    add_header X-Echo-Id \$http_x_req_id always;
    location = /204 { return 204; }
    location /gz/ { gzip on; gzip_min_length 0; gzip_types text/plain; }
    location /chunked { echo "first chunk"; echo_flush; echo "second chunk"; }
    location /upload { client_body_buffer_size 16m; echo_read_request_body; echo_request_body; }
  }
}
CONF
nginx -c "$site/nginx.conf" -p "$site" &
pids+=($!)
python3 "$here/py_server.py" "$py_port" &
pids+=($!)
node "$here/node_server.js" "$node_port" &
pids+=($!)
for port in $ports; do
  for i in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/204" && break
    [ "$i" = 100 ] && fail "no server on port $port"
    sleep 0.1
  done
done

# --- recordings ----------------------------------------------------------------------------
filter="tcp and (port ${nginx_port} or port ${py_port} or port ${node_port})"
# record NAME COMMAND...: tcpdump -i lo around COMMAND into $work/NAME.pcap.
record() {
  local name=$1; shift
  tcpdump -i lo -s 0 -B 131072 -n -w "$work/$name.pcap" "$filter" 2> "$work/$name.tcpdump.log" &
  tcpdump_pid=$!
  for i in $(seq 100); do
    grep -q "listening on" "$work/$name.tcpdump.log" 2>/dev/null && break
    [ "$i" = 100 ] && fail "tcpdump did not start"
    sleep 0.1
  done
  local t0=$SECONDS
  "$@"
  # tcpdump gets the kernel's packets in blocks handed over at most 1 s late, and a block not
  # yet handed over when it stops is lost: wait for the last one.
  sleep 1.5
  kill -INT "$tcpdump_pid"
  wait "$tcpdump_pid" || true
  tcpdump_pid=""
  local dropped
  dropped=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$work/$name.tcpdump.log")
  echo "recorded $name in $((SECONDS - t0))s: $(grep 'packets captured' "$work/$name.tcpdump.log"), ${dropped:-?} dropped by kernel"
  [ "${dropped:-0}" = 0 ] || fail "tcpdump lost packets while recording $name: the undamaged recording is not whole"
}

# run_wrk THREADS CONNECTIONS URL QUOTA_PER_THREAD LOG_PREFIX OUT: wrk until every thread
# got its quota of responses (wrk.lua leaves a .done marker per thread), at most 240 s.
run_wrk() {
  local threads=$1 conns=$2 url=$3 quota=$4 prefix=$5 out=$6
  wrk -t "$threads" -c "$conns" -d 240s -s "$here/wrk.lua" "$url" -- "$quota" "$prefix" > "$out" 2>&1 &
  local w=$!
  for _ in $(seq 2400); do
    [ "$(ls "$prefix"*.done 2>/dev/null | wc -l)" -ge "$threads" ] && break
    kill -0 "$w" 2>/dev/null || break
    sleep 0.1
  done
  kill -INT "$w" 2>/dev/null || true
  wait "$w" || fail "wrk failed: $(cat "$out")"
  grep -q wrk_sent "$out" || fail "wrk did not report what it sent: $(cat "$out")"
}

mixed_clients() {
  local d=$work/clients/mixed
  mkdir -p "$d"
  node "$here/node_client.js" "http://127.0.0.1:$node_port" $((scale * 6)) "$d/node.jsonl" n &
  local node_pid=$!
  run_wrk 1 4 "http://127.0.0.1:$node_port" $((scale * 10)) "$d/wrknode" "$d/wrk-node.out" &
  local wrk_pid=$!
  python3 "$here/clients.py" "$d/clients.jsonl" "$nginx_port" "$py_port" "$node_port" "$scale" ||
    fail "clients.py failed"
  wait "$node_pid" || fail "node client failed"
  wait "$wrk_pid" || fail "wrk (node) failed"
}
bulk_clients() {
  local d=$work/clients/bulk
  mkdir -p "$d"
  # 2 threads x 8 connections; each thread stops once it has its share of responses.
  run_wrk 2 16 "http://127.0.0.1:$nginx_port" $(((exchanges + 1) / 2)) "$d/wrk" "$d/wrk.out"
}
record mixed mixed_clients
record bulk bulk_clients
# The servers are no longer needed.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait "${pids[@]}" 2>/dev/null || true
pids=()

# --- doppel on every pcap, damaged and not --------------------------------------------------
results=$work/results.jsonl
: > "$results"
port_list=$(echo "$ports" | sed 's/ /, /g')
k=0
# analyse LABEL SCENARIO PCAP DAMAGED TSHARK
analyse() {
  local label=$1 scenario=$2 pcap=$3 damaged=$4 want_tshark=$5
  local out=$work/out/$label
  mkdir -p "$out"
  cat > "$out/pipeline.toml" <<TOML
[pipeline]
name = "differential-$label"

[inputs.capture]
plugin = "raw"
file = "$pcap"
ports = [$port_list]
track_response = true
threads = $threads

[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$out/out.gor"
TOML
  local rc=0 t0=$SECONDS
  timeout 300 "$DOPPEL" run "$out/pipeline.toml" > "$out/doppel.out" 2> "$out/doppel.log" || rc=$?
  local tshark_args=()
  if [ "$want_tshark" = 1 ]; then
    local decode=()
    for port in $ports; do decode+=(-d "tcp.port==$port,http"); done
    timeout 300 tshark -r "$pcap" -n "${decode[@]}" -Y http -T fields -E separator=/t \
      -e frame.number -e http.request_in -e http.request -e http.response -e http.request.line \
      -e http.response.line > "$out/tshark.tsv" 2> "$out/tshark.log" || echo "note: tshark failed on $label" >&2
    tshark_args=(--tshark "$out/tshark.tsv")
  fi
  echo "== $label (doppel exit $rc, $((SECONDS - t0))s)"
  [ "$rc" = 0 ] || tail -n 5 "$out/doppel.log"
  python3 "$here/check.py" one --label "$label" --scenario "$scenario" --gor "$out/out.gor" \
    --summary "$out/doppel.log" --clients "$work/clients/$scenario" ${damaged:+--damaged} \
    "${tshark_args[@]}" --doppel-rc "$rc" --results "$results"
  [ "$keep" = 1 ] || rm -f "$out/out.gor" "$out/tshark.tsv"
}

for scenario in mixed bulk; do
  want=0
  { [ "$tshark_mode" = all ] || { [ "$tshark_mode" = mixed ] && [ "$scenario" = mixed ]; }; } && want=1
  analyse "$scenario" "$scenario" "$work/$scenario.pcap" "" "$want"
  for dmg in $damages; do
    k=$((k + 1))
    label="$scenario-${dmg/:/}"
    python3 "$here/damage.py" "$work/$scenario.pcap" "$work/$label.pcap" "$dmg" $((seed + k))
    analyse "$label" "$scenario" "$work/$label.pcap" 1 "$want"
    [ "$keep" = 1 ] || rm -f "$work/$label.pcap"
  done
done

echo
echo "== differential summary (seeds $((seed + 1))..$((seed + k)), $((SECONDS - started))s)"
python3 "$here/check.py" table "$results"
