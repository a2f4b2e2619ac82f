#!/usr/bin/env bash
# Live HTTP/2 capture on `lo` (issue 18, item 1): nghttpd (prior knowledge, --echo-upload) with
# real clients — nghttp multiplexing many streams on one connection, h2load, curl
# --http2-prior-knowledge downloading 1.5 MB and uploading 300 kB. Every exchange must come out
# of doppel byte-exact with its request and response linked by id; tcpdump records the same
# traffic, doppel reads the pcap back (`file =`) and must give the same exchanges, and tshark's
# HTTP/2 dissection of that pcap must see exactly the (method, path, status) doppel emitted.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture tests need root (raw sockets, tcpdump)"
for tool in nghttpd nghttp h2load curl tcpdump tshark python3; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (nghttp2-server, nghttp2-client, curl, tcpdump, tshark)"
done
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"

work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
server_pid="" doppel_pid="" tcpdump_pid=""
cleanup() {
  for pid in $doppel_pid $tcpdump_pid $server_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
# H2_KEEP=1 keeps the work directory (captures, logs) for a look after a failure.
[ -n "${H2_KEEP:-}" ] && trap - EXIT && echo "work: $work"
port=$((20000 + ($$ + 7) % 12000))
url="http://127.0.0.1:$port"

# Content: 20 small files for one multiplexed connection, a 1.5 MB download, uploads.
mkdir -p "$work/root"
python3 -c "import sys; sys.stdout.buffer.write(bytes((i*7+3)%256 for i in range(1500000)))" > "$work/root/large.bin"
for i in $(seq 0 19); do printf 'file %d %s\n' "$i" "$(head -c $((i * 97)) /dev/zero | tr '\0' x)" > "$work/root/f$i.txt"; done
printf 'small body\n' > "$work/root/small.txt"
head -c 300000 "$work/root/large.bin" | tail -c 299999 > "$work/root/upload.bin"
head -c 70000 /dev/urandom > "$work/root/upload2.bin"

nghttpd --no-tls --echo-upload -d "$work/root" --address=127.0.0.1 "$port" > "$work/nghttpd.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do
  curl -s --http2-prior-knowledge -o /dev/null "$url/small.txt" && break
  sleep 0.1
done
curl -s --http2-prior-knowledge -o /dev/null "$url/small.txt" || fail "nghttpd did not start on port $port"

tcpdump -i lo -Z root -B 262144 -w "$work/h2.pcap" "tcp port $port" 2> "$work/tcpdump.log" &
tcpdump_pid=$!
cat > "$work/capture.toml" <<TOML
[pipeline]
name = "live-http2"

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
"$DOPPEL" run "$work/capture.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
for _ in $(seq 100); do
  grep -q "listening on" "$work/tcpdump.log" 2>/dev/null && grep -q "raw: capturing" "$work/doppel.log" 2>/dev/null && break
  sleep 0.1
done
grep -q "raw: capturing" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "doppel did not start capturing"; }
sleep 0.3

# One connection, 20 concurrent streams plus the large file.
urls=()
for i in $(seq 0 19); do urls+=("$url/f$i.txt"); done
nghttp -n -m 1 "${urls[@]}" "$url/large.bin" > /dev/null
# Three connections, 300 requests, 10 streams in flight on each.
h2load -n 300 -c 3 -m 10 "$url/small.txt" > "$work/h2load.log" || { cat "$work/h2load.log" >&2; fail "h2load failed"; }
grep -q "300 succeeded" "$work/h2load.log" || { cat "$work/h2load.log" >&2; fail "h2load: not 300 succeeded"; }
# A 1.5 MB download and uploads (nghttpd echoes them back).
curl -sS --http2-prior-knowledge -o "$work/got.bin" "$url/large.bin"
cmp -s "$work/got.bin" "$work/root/large.bin" || fail "curl's download differs from the file (server side)"
curl -sS --http2-prior-knowledge -o /dev/null -H 'Content-Type: application/octet-stream' \
  --data-binary "@$work/root/upload.bin" "$url/upload.bin"
nghttp -n -d "$work/root/upload2.bin" "$url/upload2.bin" > /dev/null
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" || true
tcpdump_pid=""
# The recording must be whole for the comparisons below (doppel would count a loss, not hide it).
grep -Eq "^0 packets dropped by kernel" "$work/tcpdump.log" || { cat "$work/tcpdump.log" >&2; fail "tcpdump lost packets"; }

cat > "$work/expected.json" <<JSON
{$(for i in $(seq 0 19); do printf '"GET /f%d.txt": 1, ' "$i"; done) "GET /large.bin": 2, "GET /small.txt": 300,
 "POST /upload.bin": 1, "POST /upload2.bin": 1}
JSON
python3 "$here/http2_check.py" gor "$work/live.gor" "$work/root" "$work/expected.json" ||
  { cat "$work/doppel.log" >&2; fail "live capture differs"; }
# The exit summary shows the HTTP/2 counters; nothing was dropped.
grep -Eq "h2\.connections[^0-9]+7\b" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "h2.connections is not 7"; }
grep -Eq "h2\.streams[^_a-z0-9]+324\b" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "h2.streams is not 324"; }
if grep -Eq "dropped\.[a-z_]+: *[1-9]" "$work/doppel.log"; then cat "$work/doppel.log" >&2; fail "messages were dropped"; fi

# The recording, read back.
cat > "$work/file.toml" <<TOML
[pipeline]
name = "http2-pcap"

[inputs.capture]
plugin = "raw"
file = "$work/h2.pcap"
port = $port
track_response = true

[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$work/file.gor"
TOML
"$DOPPEL" run "$work/file.toml" > "$work/file.out" 2> "$work/file.log" || { cat "$work/file.log" >&2; fail "reading the pcap failed"; }
python3 "$here/http2_check.py" gor "$work/file.gor" "$work/root" "$work/expected.json" ||
  { cat "$work/file.log" >&2; fail "capture from the pcap differs"; }
python3 "$here/http2_check.py" same "$work/live.gor" "$work/file.gor" || fail "live and pcap captures differ"
python3 "$here/http2_check.py" tshark "$work/h2.pcap" "$port" "$work/file.gor" || fail "tshark disagrees"
echo "ok: live HTTP/2 capture"
