#!/usr/bin/env bash
# HTTPS capture cost beside cleartext's on the same traffic shape: a Python client
# (http.client, keep-alive, CONNECTIONS processes of one connection each) sends REQUESTS small
# GETs to nginx over HTTP/1.1, once in cleartext and once over TLS 1.3 with AES-128-GCM (the
# server allows no other suite), writing a key log as SSLKEYLOGFILE would; tcpdump records
# each on loopback. (wrk and h2load write no key log; Python's ssl does: keylog_filename.)
# doppel (default options but the key log: raw file -> null, track_response as in
# h2_capture.sh) then reads each pcap ROUNDS times (default 5); its CPU time (user + system,
# /usr/bin/time) is printed per 100,000 requests with the ratio TLS/cleartext, and tshark's
# CPU on the same two pcaps (decrypting with the same key log) as the reference ratio.
# Usage: bench/tls_capture.sh [BUILD_DIR] [REQUESTS]   (root; needs nginx, tcpdump, tshark, openssl)
#   CONNECTIONS=N   client connections (default 4)
set -euo pipefail
build=${1:-build}
requests=${2:-100000}
doppel="$build/bin/doppel"
ROUNDS=${ROUNDS:-5}
CONNECTIONS=${CONNECTIONS:-4}
export DOPPEL_PLUGIN_PATH="$build/plugins"
python=/usr/bin/python3
work=$(mktemp -d)
cleanup() {
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [ -n "${tcpdump_pid:-}" ] && kill "$tcpdump_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
clear_port=18293
tls_port=18294
mkdir -p "$work/www"
printf 'hello from the bench, a small body\n' > "$work/www/index.html"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/server.key" -out "$work/server.pem" -days 1 \
  -subj "/CN=bench.test" -addext "subjectAltName=IP:127.0.0.1" > "$work/openssl.log" 2>&1
cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 60s; root $work/www;
  server { listen 127.0.0.1:$clear_port; }
  server { listen 127.0.0.1:$tls_port ssl; ssl_certificate $work/server.pem; ssl_certificate_key $work/server.key;
           ssl_protocols TLSv1.3; ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256; } }
CONF
nginx -c "$work/nginx.conf" -p "$work"
sleep 0.5

# The client: CONNECTIONS processes, each one keep-alive connection sending its share of the
# requests one after another; with TLS each writes its own key log (joined afterwards).
cat > "$work/client.py" <<'PY'
import http.client, multiprocessing, ssl, sys

def run(args):
    index, count, port, keylog = args
    if keylog:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.keylog_filename = "%s.%d" % (keylog, index)
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", port)
    for _ in range(count):
        conn.request("GET", "/index.html")
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError("status %d" % response.status)
    conn.close()
    return count

if __name__ == "__main__":
    requests, connections, port, keylog = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    shares = [requests // connections + (i < requests % connections) for i in range(connections)]
    with multiprocessing.Pool(connections) as pool:
        done = sum(pool.map(run, [(i, n, port, keylog) for i, n in enumerate(shares)]))
    print("%d requests sent" % done)
PY

record() {  # record PCAP PORT KEYLOG ("" for cleartext)
  local pcap=$1 port=$2 keylog=$3
  tcpdump -i lo -s 262144 -B 262144 -w "$pcap" "tcp port $port" 2> "$pcap.log" &
  tcpdump_pid=$!
  sleep 1
  "$python" "$work/client.py" "$requests" "$CONNECTIONS" "$port" "$keylog" > "$pcap.client"
  sleep 0.5
  kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" || true
  tcpdump_pid=""
  grep -q "^0 packets dropped by kernel" "$pcap.log" || { cat "$pcap.log" >&2; echo "tcpdump dropped packets" >&2; exit 1; }
}
record "$work/clear.pcap" "$clear_port" ""
record "$work/tls.pcap" "$tls_port" "$work/keys.log"
cat "$work/keys.log".* > "$work/keys.log"
chmod 600 "$work/keys.log"

cpu_of_run() {  # cpu_of_run PCAP [KEYLOG]: seconds of CPU doppel used reading PCAP
  local keylog_option=""
  [ -n "${2:-}" ] && keylog_option="tls_keylog = \"$2\""
  cat > "$work/p.toml" <<TOML
[pipeline]
name = "bench-tls-capture"
stats_interval = "0s"
[inputs.capture]
plugin = "raw"
file = "$1"
track_response = true
$keylog_option
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
  /usr/bin/time -f "%U %S" -o "$work/time.txt" "$doppel" run "$work/p.toml" > "$work/summary.txt" 2>&1
  awk '{print $1 + $2}' "$work/time.txt"
}
tshark_cpu() {  # tshark_cpu PCAP [KEYLOG]: CPU seconds of tshark listing the requests; count in PCAP.tshark
  local options=()
  [ -n "${2:-}" ] && options=(-o "tls.keylog_file:$2" -d "tcp.port==$tls_port,tls" -o "http.tls.port:$tls_port")
  /usr/bin/time -f "%U %S" -o "$work/time.txt" tshark -r "$1" "${options[@]}" -Y http.request -T fields \
    -e http.request.method > "$1.requests" 2>/dev/null
  grep -c GET "$1.requests" > "$1.tshark" || true
  awk '{print $1 + $2}' "$work/time.txt"
}
for kind in clear tls; do
  keylog=""; [ "$kind" = tls ] && keylog="$work/keys.log"
  : > "$work/$kind.cpu"
  for _ in $(seq "$ROUNDS"); do cpu_of_run "$work/$kind.pcap" "$keylog" >> "$work/$kind.cpu"; done
  cp "$work/summary.txt" "$work/$kind.summary"
  tshark_cpu "$work/$kind.pcap" "$keylog" > "$work/$kind.tshark_cpu"
done
"$python" - "$work" "$requests" <<'PY'
import re, statistics, sys
work, requests = sys.argv[1], int(sys.argv[2])
doppel, tshark = {}, {}
for kind in ("clear", "tls"):
    cpu = statistics.median(float(x) for x in open(f"{work}/{kind}.cpu"))
    summary = open(f"{work}/{kind}.summary").read()
    m = re.search(r"requests: (\d+)", summary)
    emitted = int(m.group(1)) if m else 0
    counted = int(open(f"{work}/{kind}.pcap.tshark").read().split()[0])
    tshark_cpu = float(open(f"{work}/{kind}.tshark_cpu").read())
    doppel[kind] = cpu / emitted * 100000 if emitted else float("nan")
    tshark[kind] = tshark_cpu / counted * 100000 if counted else float("nan")
    extra = ""
    if kind == "tls":
        decrypted = re.search(r"tls\.decrypted: (\d+)", summary)
        connections = re.search(r"tls\.connections: (\d+)", summary)
        extra = ", TLS connections decrypted %s of %s" % (decrypted.group(1) if decrypted else "?",
                                                        connections.group(1) if connections else "?")
    print(f"{kind:5}: {emitted} of {requests} requests captured by doppel (tshark: {counted}){extra}; "
          f"doppel median CPU {cpu:.3f} s = {doppel[kind]:.3f} CPU-s per 100k requests; "
          f"tshark {tshark_cpu:.2f} s = {tshark[kind]:.2f} CPU-s per 100k")
    if emitted != requests:
        print(f"WARNING: doppel captured {emitted} requests of {requests} from the {kind} pcap")
print(f"ratio TLS/cleartext CPU per request: doppel {doppel['tls'] / doppel['clear']:.2f}, "
      f"tshark {tshark['tls'] / tshark['clear']:.2f} (reference)")
PY
