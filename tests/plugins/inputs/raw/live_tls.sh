#!/usr/bin/env bash
# Live HTTPS capture on `lo` with a key log: nginx serving TLS 1.2 (seven cipher suites: AES-GCM,
# ChaCha20-Poly1305, AES-CBC with HMAC, ECDHE and RSA key exchange, with and without
# Encrypt-then-MAC) and TLS 1.3 (three suites, HTTP/2 by ALPN); curl and openssl s_client write
# the key log that doppel follows while it grows (doppel starts first, on an empty file).
# Keep-alive, a 2 MB upload, a 3 MB download, session resumption (tickets and session ids,
# TLS 1.2 and 1.3), TLS 1.3 key updates both ways. Every exchange must come out of doppel
# byte-exact against what the client sent and received, with the .gor header naming the
# version, cipher, server name and ALPN protocol negotiated. tcpdump records the same traffic:
# the pcap read back with the key log, and as a pcapng carrying the secrets itself, gives the
# same exchanges, and tshark decrypting it lists the same (method, path, status). Negative:
# the pcap without secrets (tls.no_key, nothing parsed as HTTP), with one altered secret
# (tls.bad_key, nothing emitted for that connection), a key log line with bad hex (counted),
# a TLS 1.2 renegotiation (decrypted up to it, tls.renegotiation).
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
check=("$here/tls/tls_check.py")
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture tests need root (raw sockets, tcpdump)"
for tool in nginx curl openssl tcpdump tshark editcap python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (nginx-light, curl, openssl, tcpdump, tshark, wireshark-common)"
done
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
nginx_pid="" doppel_pid="" tcpdump_pid=""
cleanup() {
  for pid in $doppel_pid $tcpdump_pid $nginx_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # TLS_KEEP=1 keeps the work directory (captures, key log, traces) for a look after a failure.
  if [ -n "${TLS_KEEP:-}" ]; then echo "work: $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
base=$((20000 + ($$ + 13) % 12000))
p12=$base p12n=$((base + 1)) p13=$((base + 2))
ports="$p12,$p12n,$p13"
name=doppel.test
mkdir -p "$work/root" "$work/tmp" "$work/out"

# Content: a 3 MB download, 20 files of 0-2 kB for keep-alive, uploads of 2 MB and 40 kB.
python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7+3)%256 for i in range(3000000)))" > "$work/root/large.bin"
printf 'small body\n' > "$work/root/small.txt"
for i in $(seq 0 19); do head -c $((i * 101)) /dev/urandom > "$work/root/f$i.bin"; done
head -c 2000000 /dev/urandom > "$work/upload.bin"
head -c 40000 /dev/urandom > "$work/upload_small.bin"

# A test CA and a server certificate for 127.0.0.1 and doppel.test.
(
  cd "$work"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj "/CN=doppel test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign"
  openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=$name"
  printf 'subjectAltName=IP:127.0.0.1,DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$name" > ext.cnf
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile ext.cnf
) > "$work/openssl.log" 2>&1 || { cat "$work/openssl.log" >&2; fail "making the certificates failed"; }

sed -e "s#@DIR@#$work#g" -e "s/@P12@/$p12/" -e "s/@P12N@/$p12n/" -e "s/@P13@/$p13/" \
  "$here/tls/nginx.conf.in" > "$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" > "$work/nginx.out" 2>&1 &
nginx_pid=$!
for _ in $(seq 100); do
  curl -s --cacert "$work/ca.pem" -o /dev/null "https://127.0.0.1:$p13/small.txt" && break
  sleep 0.1
done
for port in $p12 $p12n $p13; do
  curl -sS --cacert "$work/ca.pem" -o /dev/null "https://127.0.0.1:$port/small.txt" ||
    { cat "$work/error.log" "$work/nginx.out" >&2; fail "nginx did not start on port $port"; }
done

# The key log exists, empty, before doppel starts: doppel must follow it as clients append.
keys="$work/keys.log"
: > "$keys"
chmod 600 "$keys"
tcpdump -i lo -Z root -s 262144 -B 262144 -w "$work/tls.pcap" "tcp and (port $p12 or port $p12n or port $p13)" \
  2> "$work/tcpdump.log" &
tcpdump_pid=$!
write_pipeline() {  # write_pipeline TOML SOURCE-LINE KEYLOG-LINE GOR
  cat > "$1" <<TOML
[pipeline]
name = "tls-capture"

[inputs.capture]
plugin = "raw"
$2
ports = [$ports]
track_response = true
$3

[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$4"
TOML
}
write_pipeline "$work/live.toml" 'interface = "lo"' "tls_keylog = \"$keys\"" "$work/live.gor"
"$DOPPEL" run "$work/live.toml" > "$work/live.out" 2> "$work/live.log" &
doppel_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && grep -q "raw: capturing" "$work/live.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "raw: capturing" "$work/live.log" || { cat "$work/live.log" >&2; fail "doppel did not start capturing"; }
grep -q "listening on" "$work/tcpdump.log" || { cat "$work/tcpdump.log" >&2; fail "tcpdump did not start"; }
sleep 0.3
# A line with a known label and bad hex, as a damaged log may hold: skipped and counted.
printf 'CLIENT_RANDOM %064d %s\n' 0 "$(printf 'zz%.0s' $(seq 48))" >> "$keys"

# transfers.tsv: one line per transfer (tls_check.py documents the columns). Every target
# carries its run's name and its index, so that each request doppel emits names its transfer.
transfers="$work/transfers.tsv"
: > "$transfers"
declare -A keylog_lines  # run -> "FIRST LAST": the key log lines the run's connection appended
keylog_mark() { wc -l < "$keys"; }
line_of() {  # line_of RUN LABEL: the number of the run's key log line with LABEL (one)
  local from to
  read -r from to <<< "${keylog_lines[$1]}"
  awk -v a="$from" -v b="$to" -v label="$2" 'NR >= a && NR <= b && $1 == label { print NR }' "$keys"
}

# curl_run RUN MODE PORT VERSION CIPHER SNI ALPN [curl options...] -- METHOD:PATH[:UPLOAD]...
# One curl, one connection; its --trace, each body it received and each status (by URL: with
# --parallel, -w prints in completion order) are kept for the checks.
curl_run() {
  local run=$1 mode=$2 port=$3 version=$4 cipher=$5 sni=$6 alpn=$7
  shift 7
  local options=() host=127.0.0.1
  while [ "$1" != "--" ]; do options+=("$1"); shift; done
  shift
  [ "$sni" != "-" ] && host=$sni
  local i=0 args=() first spec method path upload
  first=$(keylog_mark)
  for spec in "$@"; do
    IFS=: read -r method path upload <<< "$spec"
    local target="$path?run=$run&i=$i" out="$work/out/$run.$i"
    args+=(-o "$out")
    # curl gives the n-th -T to the n-th URL, so uploads come first; -X is the whole run's: a
    # POST run posts nothing else.
    case $method in
      PUT) args+=(-T "$upload"); [ "$i" = 0 ] || [[ ${*:1:i} != *GET:* ]] || fail "run $run: an upload after a GET" ;;
      POST) args+=(-X POST -T "$upload"); [[ " $* " != *" GET:"* ]] || fail "run $run mixes POST with GET" ;;
    esac
    args+=("https://$host:$port$target")
    printf '%s\tcurl\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t-\t-\n' "$run" "$mode" "$version" "$cipher" \
      "$sni" "$alpn" "$method" "$target" "${upload:--}" "$out" "$work/out/$run.trace" "$work/out/$run.codes" >> "$transfers"
    i=$((i + 1))
  done
  SSLKEYLOGFILE="$keys" curl -sS --no-progress-meter --cacert "$work/ca.pem" --resolve "$name:$port:127.0.0.1" \
    --trace "$work/out/$run.trace" -w '%{url_effective} %{response_code}\n' "${options[@]}" "${args[@]}" \
    > "$work/out/$run.codes" || fail "curl run $run failed"
  keylog_lines[$run]="$((first + 1)) $(keylog_mark)"
}

# sclient_run RUN PORT VERSION CIPHER SNI [s_client options...] -- STEP...
# A STEP is GET:PATH (a request; Connection: close when it is the last step), "K" or "k" (a
# TLS 1.3 key update, requested of the server too or not), or "R" (a TLS 1.2 renegotiation,
# which nginx refuses: s_client then fails, as SCLIENT_MAY_FAIL=1 says it may). With -quiet,
# s_client prints exactly what it received: the responses doppel must have emitted.
sclient_run() {
  local run=$1 port=$2 version=$3 cipher=$4 sni=$5
  shift 5
  local options=()
  while [ "$1" != "--" ]; do options+=("$1"); shift; done
  shift
  local i=0 first position=0 step
  first=$(keylog_mark)
  : > "$work/out/$run.sent"
  {
    for step in "$@"; do
      position=$((position + 1))
      case $step in
        GET:*)
          local path=${step#GET:} connection=keep-alive
          [ "$position" = "$#" ] && connection=close
          local target="$path?run=$run&i=$i"
          printf 'GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: s_client\r\nConnection: %s\r\n\r\n' \
            "$target" "${sni/#-/127.0.0.1}" "$connection" | tee -a "$work/out/$run.sent"
          printf '%s\ts_client\th1\t%s\t%s\t%s\t-\tGET\t%s\t-\t-\t-\t-\t%s\t%s\n' "$run" "$version" "$cipher" \
            "$sni" "$target" "$work/out/$run.sent" "$work/out/$run.received" >> "$transfers"
          i=$((i + 1)) ;;
        *) printf '%s\n' "$step" ;;
      esac
      sleep 0.3
    done
    sleep 0.5
  } | timeout 20 openssl s_client -connect "127.0.0.1:$port" -keylogfile "$keys" -quiet -no_ign_eof \
        "${options[@]}" > "$work/out/$run.received" 2> "$work/out/$run.err" ||
    [ -n "${SCLIENT_MAY_FAIL:-}" ] || { cat "$work/out/$run.err" >&2; fail "s_client run $run failed"; }
  keylog_lines[$run]="$((first + 1)) $(keylog_mark)"
}

stdname() { openssl ciphers -stdname "$1" | awk -v name="$1" '$3 == name { print $1 }'; }
small=GET:/small.txt
# TLS 1.2, each cipher suite, two requests on one connection; every other one with SNI.
n=0
for cipher in ECDHE-RSA-AES128-GCM-SHA256 ECDHE-RSA-AES256-GCM-SHA384 ECDHE-RSA-CHACHA20-POLY1305 AES128-GCM-SHA256 \
              ECDHE-RSA-AES128-SHA ECDHE-RSA-AES256-SHA384 AES256-SHA256; do
  sni=-; [ $((n % 2)) = 0 ] && sni=$name
  curl_run "t12-$cipher" h1 "$p12" TLSv1.2 "$(stdname "$cipher")" "$sni" http/1.1 \
    --http1.1 --tlsv1.2 --tls-max 1.2 --ciphers "$cipher" -- "$small" GET:/f7.bin
  n=$((n + 1))
done
# CBC without Encrypt-then-MAC (the server refuses it): MAC-then-encrypt, with the 3 MB
# download across hundreds of records.
for cipher in ECDHE-RSA-AES128-SHA AES256-SHA256; do
  curl_run "t12-noetm-$cipher" h1 "$p12n" TLSv1.2 "$(stdname "$cipher")" "$name" http/1.1 \
    --http1.1 --tlsv1.2 --tls-max 1.2 --ciphers "$cipher" -- "$small" GET:/large.bin
done
# CBC with Encrypt-then-MAC, the large download and upload.
curl_run t12-etm-large h1 "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384 - http/1.1 \
  --http1.1 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES256-SHA384 -- "PUT:/upload:$work/upload.bin" GET:/large.bin
# TLS 1.3, each cipher suite.
n=0
for suite in TLS_AES_128_GCM_SHA256 TLS_AES_256_GCM_SHA384 TLS_CHACHA20_POLY1305_SHA256; do
  sni=-; [ $((n % 2)) = 0 ] && sni=$name
  curl_run "t13-$suite" h1 "$p13" TLSv1.3 "$suite" "$sni" http/1.1 \
    --http1.1 --tlsv1.3 --tls13-ciphers "$suite" -- "$small" GET:/f3.bin
  n=$((n + 1))
done
# Keep-alive: 20 requests on one connection, TLS 1.2 and 1.3.
many=()
for i in $(seq 0 19); do many+=("GET:/f$i.bin"); done
curl_run t12-keepalive h1 "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 "$name" http/1.1 \
  --http1.1 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-CHACHA20-POLY1305 -- "${many[@]}"
curl_run t13-keepalive h1 "$p13" TLSv1.3 TLS_AES_128_GCM_SHA256 "$name" http/1.1 \
  --http1.1 --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256 -- "${many[@]}"
# Large transfers (the 2 MB uploads with Expect: 100-continue): a POST alone, then a PUT and
# the download on one connection.
curl_run t13-post h1 "$p13" TLSv1.3 TLS_AES_128_GCM_SHA256 "$name" http/1.1 \
  --http1.1 --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256 -- "POST:/upload:$work/upload.bin"
curl_run t13-large h1 "$p13" TLSv1.3 TLS_AES_256_GCM_SHA384 "$name" http/1.1 \
  --http1.1 --tlsv1.3 --tls13-ciphers TLS_AES_256_GCM_SHA384 -- "PUT:/upload:$work/upload.bin" GET:/large.bin
curl_run t12-gcm-large h1 "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 - http/1.1 \
  --http1.1 --tlsv1.2 --tls-max 1.2 --ciphers ECDHE-RSA-AES128-GCM-SHA256 -- "PUT:/upload:$work/upload.bin" GET:/large.bin
# HTTP/2 by ALPN: streams one after another (headers checked against the trace), then ten at
# once with the large download, then uploads.
curl_run t13-h2 h2 "$p13" TLSv1.3 TLS_AES_128_GCM_SHA256 "$name" h2 \
  --http2 --tlsv1.3 --tls13-ciphers TLS_AES_128_GCM_SHA256 -- "${many[@]:0:10}"
curl_run t13-h2-parallel h2-parallel "$p13" TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 "$name" h2 \
  --http2 --parallel --parallel-max 10 --tlsv1.3 --tls13-ciphers TLS_CHACHA20_POLY1305_SHA256 -- \
  "${many[@]:10:10}" GET:/large.bin
curl_run t13-h2-upload h2 "$p13" TLSv1.3 TLS_AES_256_GCM_SHA384 - h2 \
  --http2 --tlsv1.3 --tls13-ciphers TLS_AES_256_GCM_SHA384 -- "POST:/upload:$work/upload.bin" \
  "POST:/upload:$work/upload_small.bin"

# openssl s_client: one plain connection, resumption (ticket and session id for TLS 1.2,
# ticket for TLS 1.3), key updates, a renegotiation.
sclient_run s12-plain "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 "$name" \
  -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -servername "$name" -- "$small" GET:/f5.bin GET:/large.bin
sclient_run s12-ticket-full "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 - \
  -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384 -sess_out "$work/s12-ticket.sess" -- "$small"
sclient_run s12-ticket-resumed "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 - \
  -tls1_2 -cipher ECDHE-RSA-AES256-GCM-SHA384 -sess_in "$work/s12-ticket.sess" -- "$small" GET:/f9.bin
sclient_run s12-id-full "$p12" TLSv1.2 TLS_RSA_WITH_AES_256_CBC_SHA256 "$name" \
  -tls1_2 -cipher AES256-SHA256 -no_ticket -servername "$name" -sess_out "$work/s12-id.sess" -- "$small"
sclient_run s12-id-resumed "$p12" TLSv1.2 TLS_RSA_WITH_AES_256_CBC_SHA256 "$name" \
  -tls1_2 -cipher AES256-SHA256 -no_ticket -servername "$name" -sess_in "$work/s12-id.sess" -- "$small" GET:/f11.bin
sclient_run s13-full "$p13" TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 "$name" \
  -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -servername "$name" -sess_out "$work/s13.sess" -- "$small"
sclient_run s13-resumed "$p13" TLSv1.3 TLS_CHACHA20_POLY1305_SHA256 "$name" \
  -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -servername "$name" -sess_in "$work/s13.sess" -- "$small" GET:/f12.bin
sclient_run s13-keyupdate "$p13" TLSv1.3 TLS_AES_128_GCM_SHA256 - \
  -tls1_3 -ciphersuites TLS_AES_128_GCM_SHA256 -- "$small" K GET:/f13.bin k GET:/large.bin K GET:/f14.bin
# Renegotiation: nginx refuses it; the exchange before it is decrypted and emitted, nothing after.
SCLIENT_MAY_FAIL=1 sclient_run s12-renegotiation "$p12" TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 - \
  -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 -- "$small" R

sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/live.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=""
grep -Eq "^0 packets dropped by kernel" "$work/tcpdump.log" || { cat "$work/tcpdump.log" >&2; fail "tcpdump lost packets"; }

runs=$(cut -f1 "$transfers" | sort -u | wc -l)
# Every run is one connection: tshark counts the ClientHellos in the recording.
decode=(); for port in $p12 $p12n $p13; do decode+=(-d "tcp.port==$port,tls"); done
hellos=$(tshark -r "$work/tls.pcap" "${decode[@]}" -Y "tls.handshake.type == 1" 2>/dev/null | wc -l)
[ "$hellos" = "$runs" ] || fail "$hellos ClientHellos in the recording, $runs client runs"
secrets=$(grep -cE '^(CLIENT_RANDOM|CLIENT_HANDSHAKE_TRAFFIC_SECRET|SERVER_HANDSHAKE_TRAFFIC_SECRET|CLIENT_TRAFFIC_SECRET_0|SERVER_TRAFFIC_SECRET_0) [0-9a-f]{64} [0-9a-f]+$' "$keys")
# What every complete read of this traffic counts: all connections decrypted, three of them
# resumed, the renegotiation, nothing dropped.
decrypted_counters=("tls.connections=$runs" "tls.decrypted=$runs" tls.resumed=3 tls.renegotiation=1 tls.no_key=0
  tls.bad_key=0 tls.gap=0 tls.malformed=0 tls.unsupported_version=0 tls.unsupported_cipher=0 tls.early_data=0
  tls.too_large=0 tls.midstream=0 "dropped *=0")

echo "live capture:"
python3 "${check[@]}" exchanges "$transfers" "$work/live.gor" "$work/root" ||
  { cat "$work/live.log" >&2; fail "the live capture differs from what the clients sent and got"; }
python3 "${check[@]}" counters "$work/live.log" "${decrypted_counters[@]}" "tls.keylog.lines=$secrets" \
  tls.keylog.bad_lines=1 || fail "live capture: counters"
grep -q "key log line with a bad secret skipped" "$work/live.log" || fail "the bad key log line was not reported"

echo "the recording, read back with the key log:"
write_pipeline "$work/file.toml" "file = \"$work/tls.pcap\"" "tls_keylog = \"$keys\"" "$work/file.gor"
"$DOPPEL" run "$work/file.toml" > "$work/file.out" 2> "$work/file.log" || { cat "$work/file.log" >&2; fail "reading the pcap failed"; }
python3 "${check[@]}" exchanges "$transfers" "$work/file.gor" "$work/root" || fail "the pcap read back differs"
python3 "${check[@]}" same "$work/live.gor" "$work/file.gor" || fail "live capture and pcap differ"
python3 "${check[@]}" counters "$work/file.log" "${decrypted_counters[@]}" || fail "pcap read back: counters"

echo "a pcapng carrying the secrets (editcap --inject-secrets), no tls_keylog:"
grep -v '^CLIENT_RANDOM 0\{64\} z' "$keys" > "$work/keys-clean.log"
editcap --inject-secrets "tls,$work/keys-clean.log" "$work/tls.pcap" "$work/tls.pcapng" ||
  fail "editcap --inject-secrets failed"
write_pipeline "$work/pcapng.toml" "file = \"$work/tls.pcapng\"" "" "$work/pcapng.gor"
"$DOPPEL" run "$work/pcapng.toml" > "$work/pcapng.out" 2> "$work/pcapng.log" ||
  { cat "$work/pcapng.log" >&2; fail "reading the pcapng failed"; }
python3 "${check[@]}" same "$work/live.gor" "$work/pcapng.gor" || fail "live capture and pcapng with secrets differ"
python3 "${check[@]}" counters "$work/pcapng.log" "${decrypted_counters[@]}" "tls.keylog.lines=$secrets" \
  || fail "pcapng: counters"

echo "tshark, decrypting the recording with the same key log:"
python3 "${check[@]}" tshark "$work/tls.pcap" "$keys" "$ports" "$work/file.gor" || fail "tshark disagrees"
python3 "${check[@]}" resumed "$work/tls.pcap" "$keys" "$ports" s12-ticket-resumed s12-id-resumed s13-resumed ||
  fail "the resumption runs did not resume"
# K, k, K: three updates from the client, two of them asking the server to update too.
python3 "${check[@]}" keyupdates "$work/tls.pcap" "$keys" "$ports" s13-keyupdate 3 2 || fail "the keys were not updated"

echo "TLS 1.2 resumption with no key log line for the resumed connections (the session's secret is remembered):"
ticket_line=$(line_of s12-ticket-resumed CLIENT_RANDOM)
id_line=$(line_of s12-id-resumed CLIENT_RANDOM)
[[ $ticket_line =~ ^[0-9]+$ && $id_line =~ ^[0-9]+$ ]] || fail "the resumed runs have not one CLIENT_RANDOM line each"
sed -e "${ticket_line}d" -e "${id_line}d" "$keys" > "$work/keys-no-resumed.log"
write_pipeline "$work/resume.toml" "file = \"$work/tls.pcap\"" "tls_keylog = \"$work/keys-no-resumed.log\"" "$work/resume.gor"
"$DOPPEL" run "$work/resume.toml" > "$work/resume.out" 2> "$work/resume.log" || { cat "$work/resume.log" >&2; fail "resume run failed"; }
python3 "${check[@]}" same "$work/live.gor" "$work/resume.gor" || fail "resumed sessions without their own lines were not decrypted"

echo "no secrets at all: every TLS connection counted, nothing parsed as HTTP:"
write_pipeline "$work/nokey.toml" "file = \"$work/tls.pcap\"" "" "$work/nokey.gor"
"$DOPPEL" run "$work/nokey.toml" > "$work/nokey.out" 2> "$work/nokey.log" || { cat "$work/nokey.log" >&2; fail "no-key run failed"; }
python3 "${check[@]}" counters "$work/nokey.log" "tls.connections=$runs" "tls.no_key=$runs" tls.decrypted=0 \
  requests=0 responses=0 "dropped *=0" || fail "no key log: counters"
[ ! -s "$work/nokey.gor" ] || fail "messages were emitted without secrets"

echo "one altered secret per connection, for a TLS 1.2 and a TLS 1.3 connection:"
# Flip a hex digit of the secret (last field): the TLS 1.2 master secret, the TLS 1.3 client
# handshake secret (the client's Finished is the first record it opens).
alter_line() {  # alter_line FILE LINE
  awk -v n="$2" 'NR == n { d = substr($3, 1, 1); $3 = (d == "0" ? "1" : "0") substr($3, 2) } { print }' "$1" > "$1.new"
  mv "$1.new" "$1"
}
cp "$keys" "$work/keys-bad.log"
# RSA key exchange: OpenSSL also logs an `RSA` line (the premaster secret), which doppel has no
# use for; the CLIENT_RANDOM line is the one it reads.
line=$(line_of t12-AES128-GCM-SHA256 CLIENT_RANDOM)
[[ $line =~ ^[0-9]+$ ]] || fail "t12-AES128-GCM-SHA256: not one CLIENT_RANDOM line ($line)"
alter_line "$work/keys-bad.log" "$line"
line=$(line_of t13-TLS_AES_256_GCM_SHA384 CLIENT_HANDSHAKE_TRAFFIC_SECRET)
[[ $line =~ ^[0-9]+$ ]] || fail "t13-TLS_AES_256_GCM_SHA384: not one CLIENT_HANDSHAKE_TRAFFIC_SECRET line ($line)"
alter_line "$work/keys-bad.log" "$line"
[ "$(cmp -l "$keys" "$work/keys-bad.log" | wc -l)" = 2 ] || fail "not exactly two bytes altered"
write_pipeline "$work/badkey.toml" "file = \"$work/tls.pcap\"" "tls_keylog = \"$work/keys-bad.log\"" "$work/badkey.gor"
"$DOPPEL" run "$work/badkey.toml" > "$work/badkey.out" 2> "$work/badkey.log" || { cat "$work/badkey.log" >&2; fail "bad-key run failed"; }
grep -Pv '^(t12-AES128-GCM-SHA256|t13-TLS_AES_256_GCM_SHA384)\t' "$transfers" > "$work/transfers-badkey.tsv"
python3 "${check[@]}" exchanges "$work/transfers-badkey.tsv" "$work/badkey.gor" "$work/root" ||
  fail "with two bad secrets, the other connections differ or the two emitted something"
# Neither counts as decrypted: the TLS 1.3 one's client Finished did not open.
python3 "${check[@]}" counters "$work/badkey.log" "tls.connections=$runs" tls.bad_key=2 tls.no_key=0 \
  "tls.decrypted=$((runs - 2))" "dropped *=0" || fail "bad key: counters"

echo "requests only (no track_response): the filter still keeps the servers' handshakes:"
write_pipeline "$work/requests.toml" "file = \"$work/tls.pcap\"" "tls_keylog = \"$keys\"" "$work/requests.gor"
sed -i '/^track_response = true$/d' "$work/requests.toml"
"$DOPPEL" run "$work/requests.toml" > "$work/requests.out" 2> "$work/requests.log" ||
  { cat "$work/requests.log" >&2; fail "requests-only run failed"; }
requests=$(sed -n '/doppel summary/,$p' "$work/file.log" | awk '$1 == "requests:" { print $2 }')
[[ $requests =~ ^[0-9]+$ ]] || fail "no request count in the pcap run's summary"
python3 "${check[@]}" counters "$work/requests.log" "tls.connections=$runs" "tls.decrypted=$runs" \
  "requests=$requests" responses=0 tls.malformed=0 || fail "requests only: counters"
echo "ok: live HTTPS capture"
