#!/usr/bin/env bash
# Integration: the http output against nginx on loopback requiring client certificates
# (ssl_verify_client on), certificates made here by a throw-away CA for replay.test and 127.0.0.1.
#  a. tls_ca + tls_cert/tls_key + tls_server_name = "replay.test": every request answered 200,
#     nginx saw the client certificate verified and the SNI; a2. the same without
#     tls_server_name: the url's IP address is checked against the certificate's IP SAN;
#     a3. tls_ca naming a hashed directory (openssl rehash)
#  b. no client certificate: nginx answers 400 to each, and the replies say so
#  c. no tls_ca (the system's roots): every request fails as tls_verify, counted
#  d. tls_skip_verify: works without tls_ca
#  e. tls_server_name not in the certificate: tls_verify, counted
#  f. protocol = "h2" with the client certificate: HTTP/2 over ALPN, answered 200
#  g. `doppel validate` refuses tls_cert without tls_key, a key of another certificate, an
#     unreadable tls_ca (and one with no certificate, a directory without hashed names,
#     tls_ca with tls_skip_verify), naming the option at its FILE:LINE:COL
set -euo pipefail
: "${DOPPEL:?} ${DOPPEL_SOURCE_DIR:?} ${DOPPEL_BUILD_DIR:?}"
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"  # free_port, stop_echo_nginx
work=$(mktemp -d "${DOPPEL_BUILD_DIR}/it-tls-XXXXXX")
trap 'stop_echo_nginx "$work"; rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
tool="python3 $DOPPEL_SOURCE_DIR/tests/support/gor_tool.py"

echo "== certificates"
pki=$work/pki
mkdir -p "$pki"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$1.key" 2>/dev/null; }
sign() {  # sign NAME SUBJECT EXTENSIONS: a certificate for NAME.key signed by the CA
  openssl req -new -key "$pki/$1.key" -subj "$2" -out "$pki/$1.csr"
  openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 2 \
    -extfile <(printf '%s\n' "$3") -out "$pki/$1.pem" 2>/dev/null
}
newkey ca
openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=doppel test CA" -days 2 -out "$pki/ca.pem"
newkey server
sign server "/CN=replay.test" "subjectAltName = DNS:replay.test, IP:127.0.0.1
extendedKeyUsage = serverAuth"
newkey client
sign client "/CN=doppel replayer" "extendedKeyUsage = clientAuth"
newkey other  # a key that belongs to no certificate

echo "== nginx"
PORT=$(free_port)
mkdir -p "$work/tmp"
cat > "$work/nginx.conf" <<CONF
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
worker_processes 1;
events { worker_connections 1024; }
http {
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp;
  uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  log_format tls '\$server_protocol \$status \$ssl_client_verify \$ssl_server_name \$request_uri';
  access_log $work/access.log tls;
  server {
    listen 127.0.0.1:$PORT ssl http2;
    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    ssl_verify_client on;
    ssl_client_certificate $pki/ca.pem;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$work/nginx.conf" -e "$work/error.log"
up=
for _ in $(seq 50); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close()" 2>/dev/null && { up=1; break; }
  sleep 0.1
done
[ -n "$up" ] || { echo "nginx did not start"; cat "$work/error.log"; exit 1; }

N=40
$tool generate "$work/in.gor" $N

pipeline() {  # pipeline NAME URL [extra option lines for the http output]
  local name=$1 url=$2; shift 2
  {
    printf '[pipeline]\nname = "%s"\n[inputs.in]\nplugin = "file"\npath = "%s"\nmax_speed = true\n' "$name" "$work/in.gor"
    printf '[outputs.target]\nplugin = "http"\nfrom = ["in"]\nurl = "%s"\ntrack_response = true\nworkers = 4\n' "$url"
    printf 'replay_writes = true\n'
    for line in "$@"; do echo "$line"; done
    printf '[outputs.replies]\nplugin = "file"\nfrom = ["target"]\npath = "%s"\n' "$work/$name-replies.gor"
  } > "$work/$name.toml"
}

run() {  # run NAME: doppel run with a time limit; output in NAME.log. Exit 5 (undelivered) is expected of failures.
  local rc=0
  timeout 60 "$DOPPEL" run "$work/$1.toml" > "$work/$1.log" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || [ "$rc" -eq 5 ] || { echo "doppel run $1 failed ($rc):"; cat "$work/$1.log"; exit 1; }
}

counted() {  # counted NAME METRIC N: the run summary shows METRIC: N
  grep -Eq "^ +$2: $3\$" "$work/$1.log" || { echo "expected $2: $3 in the summary of $1:"; cat "$work/$1.log"; exit 1; }
}

at_nginx() {  # at_nginx PATH_PREFIX: access log lines of requests under it
  grep -E " /$1/" "$work/access.log" || true
}

replies_with_status() {  # replies_with_status NAME CODE: replay records whose response has that status
  python3 - "$work/$1-replies.gor" "$2" <<'PY'
import sys
SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()
records = [r for r in open(sys.argv[1], "rb").read().split(SEP) if r.strip()]
print(sum(1 for r in records if r.split(b"\n", 1)[1].startswith(b"HTTP/") and
          r.split(b"\n", 1)[1].split(b" ")[1] == sys.argv[2].encode()))
PY
}

expect_answered() {  # expect_answered NAME PREFIX STATUS PROTOCOL VERIFY SNI: N answers, N at nginx as said (SNI "-": none)
  local name=$1 prefix=$2 status=$3 protocol=$4 verify=$5 sni=$6
  counted "$name" responses $N
  local got
  got=$(replies_with_status "$name" "$status")
  [ "$got" -eq $N ] || { echo "$name: $got of $N replies have status $status"; exit 1; }
  got=$(at_nginx "$prefix" | grep -c "^$protocol $status $verify $sni " || true)
  [ "$got" -eq $N ] || { echo "$name: nginx logged $got of $N as '$protocol $status $verify $sni':"; at_nginx "$prefix" | head; exit 1; }
  echo "$name: $N answered $status over $protocol (client certificate: $verify, SNI: $sni)"
}

expect_rejected() {  # expect_rejected NAME PREFIX: every request failed as tls_verify, none reached nginx
  local name=$1 prefix=$2
  counted "$name" failed.tls_verify $N
  $tool check-errors "$work/$name-replies.gor" $N
  [ -z "$(at_nginx "$prefix")" ] || { echo "$name: requests reached nginx"; exit 1; }
  echo "$name: $N rejected as tls_verify"
}

client_cert=("tls_cert = \"$pki/client.pem\"" "tls_key = \"$pki/client.key\"")

echo "== a. CA, client certificate, tls_server_name"
pipeline mtls "https://127.0.0.1:$PORT/a" "tls_ca = \"$pki/ca.pem\"" "${client_cert[@]}" 'tls_server_name = "replay.test"'
run mtls
expect_answered mtls a 200 HTTP/1.1 SUCCESS replay.test
echo "== a2. no tls_server_name: the IP address is verified, no SNI sent"
pipeline by-ip "https://127.0.0.1:$PORT/a2" "tls_ca = \"$pki/ca.pem\"" "${client_cert[@]}"
run by-ip
expect_answered by-ip a2 200 HTTP/1.1 SUCCESS -

echo "== a3. tls_ca naming a hashed directory"
mkdir -p "$pki/ca-dir"
cp "$pki/ca.pem" "$pki/ca-dir/"
openssl rehash "$pki/ca-dir"
pipeline ca-dir "https://127.0.0.1:$PORT/a3" "tls_ca = \"$pki/ca-dir\"" "${client_cert[@]}" 'tls_server_name = "replay.test"'
run ca-dir
expect_answered ca-dir a3 200 HTTP/1.1 SUCCESS replay.test

echo "== b. no client certificate: nginx answers 400"
pipeline no-cert "https://127.0.0.1:$PORT/b" "tls_ca = \"$pki/ca.pem\"" 'tls_server_name = "replay.test"'
run no-cert
expect_answered no-cert b 400 HTTP/1.1 NONE replay.test

echo "== c. the system's roots do not know the test CA"
pipeline system-roots "https://127.0.0.1:$PORT/c" "${client_cert[@]}" 'tls_server_name = "replay.test"'
run system-roots
expect_rejected system-roots c

echo "== d. tls_skip_verify without a CA"
pipeline skip "https://127.0.0.1:$PORT/d" "${client_cert[@]}" "tls_skip_verify = true"
run skip
expect_answered skip d 200 HTTP/1.1 SUCCESS -

echo "== e. tls_server_name not in the certificate"
pipeline wrong-name "https://127.0.0.1:$PORT/e" "tls_ca = \"$pki/ca.pem\"" "${client_cert[@]}" 'tls_server_name = "other.test"'
run wrong-name
expect_rejected wrong-name e

echo "== f. protocol = h2 over ALPN with the client certificate"
pipeline h2 "https://127.0.0.1:$PORT/f" "tls_ca = \"$pki/ca.pem\"" "${client_cert[@]}" 'tls_server_name = "replay.test"' \
  'protocol = "h2"'
run h2
expect_answered h2 f 200 HTTP/2.0 SUCCESS replay.test

echo "== g. doppel validate"
refused() {  # refused NAME OPTION TEXT [option lines]: validate exits nonzero, pointing at OPTION's line
  local name=$1 option=$2 text=$3; shift 3
  pipeline "$name" "https://127.0.0.1:$PORT/g" "$@"
  local line rc=0
  line=$(grep -n "^$option = " "$work/$name.toml" | cut -d: -f1)
  timeout 20 "$DOPPEL" validate "$work/$name.toml" > "$work/$name.log" 2>&1 || rc=$?
  [ "$rc" -ne 0 ] || { echo "$name: validate accepted it:"; cat "$work/$name.log"; exit 1; }
  grep -F "$work/$name.toml:$line:" "$work/$name.log" | grep -qF "$text" || {
    echo "$name: expected '$text' at line $line:"; cat "$work/$name.log"; exit 1; }
  echo "$name: exit $rc, $(grep -F "$text" "$work/$name.log" | head -1)"
}
refused cert-only tls_cert "tls_cert needs tls_key" "tls_cert = \"$pki/client.pem\""
refused wrong-key tls_key "does not match the certificate" "tls_cert = \"$pki/client.pem\"" "tls_key = \"$pki/other.key\""
refused missing-ca tls_ca "tls_ca: cannot read" "tls_ca = \"$work/no-such-ca.pem\""
refused not-pem-ca tls_ca "tls_ca: no CA certificate in" "tls_ca = \"$pki/server.csr\""
mkdir -p "$work/empty-ca-dir"
refused unhashed-ca-dir tls_ca "no hashed certificate names" "tls_ca = \"$work/empty-ca-dir\""
refused ca-and-skip tls_ca "tls_ca has no effect with tls_skip_verify" "tls_ca = \"$pki/ca.pem\"" "tls_skip_verify = true"
timeout 20 "$DOPPEL" validate "$work/mtls.toml" > "$work/valid.log" 2>&1 || {
  echo "validate refused the working pipeline:"; cat "$work/valid.log"; exit 1; }
echo "OK"
