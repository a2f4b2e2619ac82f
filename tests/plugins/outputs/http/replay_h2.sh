#!/usr/bin/env bash
# Integration: HTTP/2 replay by the http output against real servers on loopback.
#  1. h2c to nghttpd: GETs of served files and echoed POST bodies byte-exact, replies marked
#     proto=h2 with stream ids; many streams on one connection (nghttpd's -v log)
#  2. nghttpd's SETTINGS_MAX_CONCURRENT_STREAMS (-m 8) respected: no refused stream, more connections
#  3. h2 over TLS, chosen by ALPN (nghttpd with a throw-away certificate)
#  4. auto against HTTP/1.1-only servers: nginx (h2c preface answered as HTTP/1.1) and
#     openssl s_server (ALPN picks http/1.1): everything over HTTP/1.1, byte-exact, logged once
#  5. protocol = "h1": no HTTP/2 attempted; protocol = "h2" against nginx: no_h2 per request, counted
#  6. gRPC: a grpcio server answers h2-form gRPC requests; grpc-status trailers in the replies
#  7. a dead target: refused per request, counted
set -euo pipefail
: "${DOPPEL:?} ${DOPPEL_SOURCE_DIR:?} ${DOPPEL_BUILD_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"
work=$(mktemp -d "${DOPPEL_BUILD_DIR}/it-h2-XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  stop_echo_nginx "$work"
  rm -rf "$work"
}
trap cleanup EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
# Debian's python: python3-grpcio and python3-grpc-tools are installed for it.
tool="/usr/bin/python3 $here/h2_tool.py"

wait_port() {  # wait_port PORT: until something accepts on 127.0.0.1:PORT (bounded)
  for _ in $(seq 100); do
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1', $1), 0.2).close()" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1"; return 1
}

start_nghttpd() {  # start_nghttpd LOG OPTIONS [-- KEY CERT]: nghttpd on a free port -> H2_PORT
  local log=$1; shift
  local options=() tls=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do options+=("$1"); shift; done
  [ $# -gt 0 ] && { shift; tls=("$@"); }
  H2_PORT=$(free_port)
  nghttpd -v --echo-upload -a 127.0.0.1 -d "$work/docs" "${options[@]}" "$H2_PORT" "${tls[@]}" > "$log" 2>&1 &
  pids+=($!)
  wait_port "$H2_PORT"
}

pipeline() {  # pipeline NAME IN URL OUT [extra option lines for the http output]
  local name=$1 in=$2 url=$3 out=$4; shift 4
  {
    printf '[pipeline]\nname = "%s"\n[inputs.in]\nplugin = "file"\npath = "%s"\nmax_speed = true\n' "$name" "$in"
    printf '[outputs.target]\nplugin = "http"\nfrom = ["in"]\nurl = "%s"\ntrack_response = true\noverflow = "wait"\n' "$url"
    for line in "$@"; do echo "$line"; done
    printf '[outputs.replies]\nplugin = "file"\nfrom = ["target"]\npath = "%s"\n' "$out"
  } > "$work/$name.toml"
}

run() {  # run NAME: doppel run with a time limit; output in NAME.log
  timeout 120 "$DOPPEL" run "$work/$1.toml" > "$work/$1.log" 2>&1 || {
    echo "doppel run $1 failed:"; cat "$work/$1.log"; return 1; }
}

counted() {  # counted NAME METRIC N: the run summary shows METRIC: N
  grep -Eq "^ +$2: $3\$" "$work/$1.log" || { echo "expected $2: $3 in the summary of $1:"; cat "$work/$1.log"; exit 1; }
}

$tool docroot "$work/docs"
N=600
$tool generate "$work/h2.gor" "$work/docs" $N

echo "== 1. h2c to nghttpd: byte-exact, multiplexed"
start_nghttpd "$work/nghttpd.log" --no-tls
pipeline h2c "$work/h2.gor" "http://127.0.0.1:$H2_PORT" "$work/h2c-replies.gor"
run h2c
$tool check "$work/h2.gor" "$work/h2c-replies.gor" "$work/docs" h2
read -r stats < <($tool nghttpd-log "$work/nghttpd.log")
echo "nghttpd: $stats"
eval "$stats"
# workers = 64 streams in flight, up to 100 per connection: one connection carries them all.
[ "$connections" -eq 1 ] || { echo "expected 1 connection"; exit 1; }
[ "$requests" -eq $N ] || { echo "expected $N requests at nghttpd"; exit 1; }
[ "$max_stream" -eq $((2 * N - 1)) ] || { echo "expected stream ids up to $((2 * N - 1))"; exit 1; }
counted h2c responses $N

echo "== 2. the target's SETTINGS_MAX_CONCURRENT_STREAMS"
start_nghttpd "$work/nghttpd-m8.log" --no-tls -m 8
pipeline limit "$work/h2.gor" "http://127.0.0.1:$H2_PORT" "$work/limit-replies.gor"
run limit
$tool check "$work/h2.gor" "$work/limit-replies.gor" "$work/docs" h2
read -r stats < <($tool nghttpd-log "$work/nghttpd-m8.log")
echo "nghttpd -m 8: $stats"
eval "$stats"
! grep -q "send RST_STREAM" "$work/nghttpd-m8.log" || { echo "nghttpd refused streams:"; grep "send RST_STREAM" "$work/nghttpd-m8.log" | head; exit 1; }
[ "$connections" -ge 2 ] || { echo "expected 64 streams in flight to need several connections of 8"; exit 1; }

echo "== 3. h2 over TLS (ALPN)"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
  -subj /CN=127.0.0.1 2>/dev/null
start_nghttpd "$work/nghttpd-tls.log" -- "$work/key.pem" "$work/cert.pem"
pipeline tls "$work/h2.gor" "https://127.0.0.1:$H2_PORT" "$work/tls-replies.gor" "tls_skip_verify = true"
run tls
$tool check "$work/h2.gor" "$work/tls-replies.gor" "$work/docs" h2
grep -q "negotiated protocol: h2" "$work/nghttpd-tls.log" || { echo "nghttpd did not negotiate h2:"; head "$work/nghttpd-tls.log"; exit 1; }
read -r stats < <($tool nghttpd-log "$work/nghttpd-tls.log")
echo "nghttpd (TLS): $stats"

echo "== 4. auto against HTTP/1.1-only targets"
start_echo_nginx "$work"
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$work/varied.gor" 200
$tool mark-h2 "$work/varied.gor" "$work/varied-h2.gor"
pipeline fallback "$work/varied-h2.gor" "http://127.0.0.1:$NGINX_PORT/base" "$work/fallback-replies.gor"
run fallback
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" check-echo "$work/varied-h2.gor" "$work/fallback-replies.gor" /base "127.0.0.1:$NGINX_PORT"
[ "$(grep -c 'replaying over HTTP/1.1 from now on' "$work/fallback.log")" -eq 1 ] || {
  echo "expected the fallback logged once:"; cat "$work/fallback.log"; exit 1; }
! grep -aq "proto=h2" "$work/fallback-replies.gor" || { echo "replies over HTTP/1.1 must not be marked h2"; exit 1; }
# nginx answers the preface 400 and logs it without a method ("-").
prefaces=$(awk '$4 == "-"' "$work/access.log" | wc -l)
echo "nginx saw $prefaces HTTP/2 preface(s), then HTTP/1.1"
[ "$prefaces" -ge 1 ] || { echo "expected auto to try HTTP/2 first"; exit 1; }

tls_port=$(free_port)
# openssl's test server: HTTP/1.0 status page for any GET, ALPN offering http/1.1 only.
openssl s_server -quiet -accept "$tls_port" -cert "$work/cert.pem" -key "$work/key.pem" -www -alpn http/1.1 \
  > "$work/s_server.log" 2>&1 &
pids+=($!)
wait_port "$tls_port"
$tool generate "$work/get1.gor" "$work/docs" 1
pipeline alpn "$work/get1.gor" "https://127.0.0.1:$tls_port" "$work/alpn-replies.gor" "tls_skip_verify = true"
run alpn
grep -q "chose http/1.1 in ALPN.*replaying over HTTP/1.1" "$work/alpn.log" || { echo "expected the ALPN fallback logged:"; cat "$work/alpn.log"; exit 1; }
head -c 16 "$work/alpn-replies.gor" | grep -q "^3 " && grep -aq "^HTTP/1.0 200 ok" "$work/alpn-replies.gor" || {
  echo "expected s_server's answer over HTTP/1.1:"; head -c 300 "$work/alpn-replies.gor"; exit 1; }
counted alpn responses 1

echo "== 5. protocol = \"h1\" and \"h2\" against nginx"
: > "$work/access.log"
kill -USR1 "$(cat "$work/nginx.pid")"
sleep 0.2
pipeline forced-h1 "$work/varied-h2.gor" "http://127.0.0.1:$NGINX_PORT/base" "$work/h1-replies.gor" 'protocol = "h1"'
run forced-h1
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" check-echo "$work/varied-h2.gor" "$work/h1-replies.gor" /base "127.0.0.1:$NGINX_PORT"
! awk '$4 == "-"' "$work/access.log" | grep -q . || { echo "protocol = h1 must not try HTTP/2"; exit 1; }
pipeline forced-h2 "$work/varied-h2.gor" "http://127.0.0.1:$NGINX_PORT" "$work/h2-errors.gor" 'protocol = "h2"'
run forced-h2
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" check-errors "$work/h2-errors.gor" 200
counted forced-h2 failed.no_h2 200

echo "== 6. gRPC"
$tool grpc-stubs "$work/pb"
grpc_port=$(free_port)
$tool grpc-serve "$grpc_port" "$work/pb" > "$work/grpc.log" 2>&1 &
pids+=($!)
wait_port "$grpc_port"
$tool grpc-requests "$work/grpc.gor" "$work/pb"
pipeline grpc "$work/grpc.gor" "http://127.0.0.1:$grpc_port" "$work/grpc-replies.gor"
run grpc
$tool grpc-check "$work/grpc-replies.gor" "$work/pb"

echo "== 7. dead target"
dead=$(free_port)
pipeline dead "$work/h2.gor" "http://127.0.0.1:$dead" "$work/dead-replies.gor"
run dead
python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" check-errors "$work/dead-replies.gor" $N
counted dead failed.refused $N
echo "OK"
