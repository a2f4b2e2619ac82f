#!/usr/bin/env bash
# Live capture of HTTP/2 reached by `Upgrade: h2c` (RFC 7540 3.2) on `lo`: curl --http2 against
# a python3-h2 server that accepts the upgrade (tests/support/h2c_upgrade_server.py; no server
# in Debian 12 offers it). The upgrade request is emitted as the HTTP/1.1 request it was, its
# answer (HTTP/2 stream 1, after the 101) with the same id, and the requests curl sends on the
# upgraded connection as h2 streams 3, 5, ...; every body byte-exact, trailers kept.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture tests need root (raw sockets)"
/usr/bin/python3 -c 'import h2' 2>/dev/null || fail "python3-h2 is not installed"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
server_pid="" doppel_pid=""
cleanup() {
  for pid in $doppel_pid $server_pid; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + ($$ + 11) % 12000))
url="http://127.0.0.1:$port"
mkdir -p "$work/root"
printf 'hello over h2c\n' > "$work/root/a.txt"
head -c 200000 /dev/urandom > "$work/root/big.bin"
# Below 32 KiB: curl keeps what follows the 101 in one buffer of that size (its "buflen").
head -c 20000 /dev/urandom > "$work/upload.bin"
/usr/bin/python3 "$DOPPEL_SOURCE_DIR/tests/support/h2c_upgrade_server.py" "$port" "$work/root" > "$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do grep -q listening "$work/server.log" && break; sleep 0.1; done
grep -q listening "$work/server.log" || fail "the h2c server did not start"

cat > "$work/capture.toml" <<TOML
[pipeline]
name = "live-h2c-upgrade"
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $port
track_response = true
[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$work/out.gor"
TOML
"$DOPPEL" run "$work/capture.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
for _ in $(seq 100); do grep -q "raw: capturing" "$work/doppel.log" && break; sleep 0.1; done
grep -q "raw: capturing" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "doppel did not start capturing"; }
sleep 0.3
# GET upgraded, then a second request on the upgraded connection; a POST whose body rides the
# upgrade request, then a second POST (curl sends the data to every URL) on its connection.
curl -sS --http2 -o "$work/a.out" -o "$work/big.out" "$url/a.txt" "$url/big.bin"
curl -sS --http2 -o "$work/echo.out" --data-binary "@$work/upload.bin" "$url/echo" -o "$work/a2.out" "$url/a.txt"
cmp -s "$work/big.out" "$work/root/big.bin" && cmp -s "$work/echo.out" "$work/upload.bin" ||
  fail "the server answered wrongly (client side)"
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""

python3 - "$work" <<'PY' || { cat "$work/doppel.log" >&2; exit 1; }
import sys
work = sys.argv[1]
data = open(work + "/out.gor", "rb").read()
records = [r for r in data.split(b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n") if r]
messages = []
for r in records:
    header, payload = r.split(b"\n", 1)
    fields = header.decode().split(" ")
    meta = dict(f.split("=", 1) for f in fields[4:])
    messages.append((fields[0], fields[1], meta, payload))
requests = {m[1]: m for m in messages if m[0] == "1"}
responses = {m[1]: m for m in messages if m[0] == "2"}
assert len(requests) == 4 and len(responses) == 4, [(m[0], m[2], m[3][:40]) for m in messages]
assert set(requests) == set(responses), "requests and responses not linked by id"

def body(payload):
    head, rest = payload.split(b"\r\n\r\n", 1)
    if b"transfer-encoding: chunked" not in head.lower():
        return head, rest, b""
    out = b""
    while True:
        size_line, rest = rest.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return head, out, rest
        out += rest[:size]
        rest = rest[size + 2:]

upgrades = [i for i, m in requests.items() if m[2].get("proto") is None]
streams = [i for i, m in requests.items() if m[2].get("proto") == "h2"]
assert len(upgrades) == 2 and len(streams) == 2, [(m[2], m[3][:60]) for m in requests.values()]
root = work + "/root/"
for i in upgrades:
    head = requests[i][3].split(b"\r\n\r\n", 1)[0].lower()
    assert b"upgrade: h2c" in head and b"http2-settings:" in head, head
    meta = responses[i][2]
    assert meta == {"proto": "h2", "stream": "1"}, meta  # the answer to the upgrade is stream 1
for i in streams:
    assert requests[i][2]["stream"] == responses[i][2]["stream"] != "1", (requests[i][2], responses[i][2])
expected = {b"GET /a.txt": open(root + "a.txt", "rb").read(), b"GET /big.bin": open(root + "big.bin", "rb").read(),
            b"POST /echo": open(work + "/upload.bin", "rb").read(), b"POST /a.txt": open(work + "/upload.bin", "rb").read()}
seen = []
for i, request in requests.items():
    line = request[3].split(b"\r\n", 1)[0].rsplit(b" ", 1)[0]
    head, got, trailers = body(responses[i][3])
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert got == expected[line], "%s: body differs (%d bytes)" % (line, len(got))
    assert b"x-served-by: h2c-upgrade-server" in trailers, trailers
    if line.startswith(b"POST"):
        _, sent, _ = body(request[3]) if b"chunked" in request[3].lower() else (None, request[3].split(b"\r\n\r\n", 1)[1], None)
        assert sent == expected[line], "the upgrade request's body differs"
    seen.append(line)
assert sorted(seen) == sorted([b"GET /a.txt", b"GET /big.bin", b"POST /echo", b"POST /a.txt"]), seen
print("ok: 2 upgrades, %d requests on upgraded connections, bodies and trailers byte-exact" % len(streams))
PY
grep -Eq "connections\.upgraded[^0-9]+2\b" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "connections.upgraded is not 2"; }
if grep -Eq "dropped\.[a-z_]+: *[1-9]" "$work/doppel.log"; then cat "$work/doppel.log" >&2; fail "messages were dropped"; fi
echo "ok: h2c upgrade capture"
