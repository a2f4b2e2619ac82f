#!/usr/bin/env bash
# HTTPS capture of a TLS stack other than OpenSSL's (issue 19): wget, built on GnuTLS, which
# writes SSLKEYLOGFILE itself, fetches from nginx over TLS 1.3 and 1.2 with a cipher family
# forced per connection (GnuTLS priority strings); doppel captures live on `lo` following the
# key log wget writes. Every response must come out byte-exact with its request's id, the .gor
# header must name the cipher GnuTLS negotiated, and nginx's access log must count the same
# requests. The pcap tcpdump recorded meanwhile, read back, must give the same.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture tests need root (raw sockets)"
for tool in nginx wget openssl tcpdump; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (nginx-light, wget, openssl, tcpdump)"
done
ldd "$(command -v wget)" | grep -q libgnutls || fail "this wget is not built on GnuTLS"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
doppel_pid="" tcpdump_pid=""
cleanup() {
  for pid in $doppel_pid $tcpdump_pid; do kill "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + ($$ + 11) % 12000))

mkdir -p "$work/root" "$work/tmp"
printf 'small body\n' > "$work/root/small.txt"
head -c 400000 /dev/urandom > "$work/root/large.bin"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/key.pem" -out "$work/cert.pem" -days 1 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" > "$work/openssl.log" 2>&1
cat > "$work/nginx.conf" <<CONF
daemon on; user root; worker_processes 1; pid $work/nginx.pid; error_log $work/error.log warn;
events { worker_connections 64; }
http {
  access_log $work/access.log;
  client_body_temp_path $work/tmp;
  server {
    listen 127.0.0.1:$port ssl;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA256;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    root $work/root;
  }
}
CONF
nginx -p "$work" -c "$work/nginx.conf"

: > "$work/keys.log"
cat > "$work/live.toml" <<TOML
[pipeline]
name = "tls-gnutls"

[inputs.capture]
plugin = "raw"
interface = "lo"
port = $port
track_response = true
tls_keylog = "$work/keys.log"

[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$work/live.gor"
TOML
sed -e 's|^interface = "lo"$|file = "'"$work"'/tls.pcap"|' -e 's|live.gor|file.gor|' "$work/live.toml" > "$work/file.toml"
tcpdump -i lo -Z root -s 262144 -w "$work/tls.pcap" "tcp port $port" 2> "$work/tcpdump.log" &
tcpdump_pid=$!
"$DOPPEL" run "$work/live.toml" > "$work/live.out" 2> "$work/live.log" &
doppel_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && grep -q "raw: capturing" "$work/live.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "raw: capturing" "$work/live.log" || { cat "$work/live.log" >&2; fail "doppel did not start capturing"; }

# One connection per priority string; two requests on each (keep-alive). The IANA name doppel
# must report for each, as GnuTLS negotiates it with this nginx.
priorities=(
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM|TLSv1.3|TLS_AES_128_GCM_SHA256"
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+CHACHA20-POLY1305|TLSv1.3|TLS_CHACHA20_POLY1305_SHA256"
  "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-256-GCM|TLSv1.3|TLS_AES_256_GCM_SHA384"
  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM|TLSv1.2|TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+CHACHA20-POLY1305|TLSv1.2|TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-CBC:-MAC-ALL:+SHA1|TLSv1.2|TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
  "NORMAL:-VERS-ALL:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-CBC:-MAC-ALL:+SHA256|TLSv1.2|TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
)
for entry in "${priorities[@]}"; do
  SSLKEYLOGFILE="$work/keys.log" wget -q --no-check-certificate --ciphers="${entry%%|*}" -O /dev/null \
    "https://localhost:$port/small.txt?p=${#entry}" "https://localhost:$port/large.bin" ||
    fail "wget failed with priority ${entry%%|*}"
done
sleep 1
kill -INT "$doppel_pid"
wait "$doppel_pid" || { cat "$work/live.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=""
"$DOPPEL" run "$work/file.toml" > "$work/file.out" 2> "$work/file.log" || { cat "$work/file.log" >&2; fail "reading the pcap failed"; }

served=$(grep -c '"GET ' "$work/access.log")
[ "$served" = $((2 * ${#priorities[@]})) ] || fail "nginx served $served requests"
expected=$(printf '%s\n' "${priorities[@]}" | cut -d'|' -f2,3 | tr '|' ' ')
for gor in "$work/live.gor" "$work/file.gor"; do
  /usr/bin/python3 - "$gor" "$work/root" "$served" "$expected" <<'PY' || fail "$gor differs from what wget fetched"
import collections, os, sys
sys.path.insert(0, os.path.join(os.environ["DOPPEL_SOURCE_DIR"], "tests", "support"))
from gor_records import pairs, split_message
gor, root, served = sys.argv[1], sys.argv[2], int(sys.argv[3])
expected = collections.Counter(tuple(line.split()) for line in sys.argv[4].splitlines())
files = {"/small.txt": open(root + "/small.txt", "rb").read(), "/large.bin": open(root + "/large.bin", "rb").read()}
errors, ciphers = [], collections.Counter()
exchanges = pairs(gor)
if len(exchanges) != served:
    errors.append("%d exchanges, %d requests served" % (len(exchanges), served))
for mid, kinds in exchanges.items():
    if len(kinds["1"]) != 1 or len(kinds["2"]) != 1:
        errors.append("id %s: %d requests, %d responses" % (mid, len(kinds["1"]), len(kinds["2"])))
        continue
    request, response = kinds["1"][0], kinds["2"][0]
    target = request["payload"].split(b" ", 2)[1].decode()
    path = target.split("?")[0]
    _, _, body = split_message(response["payload"])
    if not request["payload"].startswith(b"GET " + target.encode() + b" HTTP/1.1\r\n"):
        errors.append("id %s: request %r" % (mid, request["payload"][:60]))
    if body != files.get(path):
        errors.append("id %s: %s: body of %d bytes differs" % (mid, path, len(body)))
    meta = request["meta"]
    if response["meta"] != meta or meta.get("sni") != "localhost":
        errors.append("id %s: meta %r / %r" % (mid, meta, response["meta"]))
    if path == "/large.bin":
        ciphers[(meta.get("tls"), meta.get("cipher"))] += 1
if ciphers != expected:
    errors.append("negotiated %r, expected %r" % (dict(ciphers), dict(expected)))
print("\n".join(errors) if errors else "ok: %d exchanges byte-exact, ciphers as negotiated" % len(exchanges))
sys.exit(1 if errors else 0)
PY
done
grep -Eq "^ +tls.decrypted: ${#priorities[@]}$" "$work/live.log" || { cat "$work/live.log" >&2; fail "live: not every connection decrypted"; }
grep -Eq "^ +tls.decrypted: ${#priorities[@]}$" "$work/file.log" || { cat "$work/file.log" >&2; fail "pcap: not every connection decrypted"; }
if grep -E "^ +dropped " "$work/live.log" "$work/file.log"; then fail "messages were dropped"; fi
echo "ok: GnuTLS (wget) captured live and from the pcap"
