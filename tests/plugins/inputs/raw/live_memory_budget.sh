#!/usr/bin/env bash
# The raw input's memory budget, live on `lo` (issue 15.2): 60 connections each send 10-25 MB of
# a 30 MB body that never ends to a server that reads and never answers, against
# memory_budget = "64MiB". doppel's peak resident size (VmHWM) must stay under the budget plus a
# fixed part measured on the same doppel before the traffic, the lost messages must be counted as
# budget_exceeded, and a normal exchange made during the flood must come out paired. Then, with
# default options, a few hundred normal requests to nginx must all come out paired, none dropped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/live_common.sh"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
pids=()
doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
sink_port=$((20000 + RANDOM % 12000))
web_port=$((sink_port + 1))
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }

# A server that reads whatever it is sent and never answers (each connection on its own
# thread), except a connection opening with `GET /ping`: that one gets a 200.
cat > "$work/sink.py" <<'PY'
import socket, sys, threading
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(sys.argv[1]))); srv.listen(256)
def drain(c):
    try:
        first = c.recv(1 << 16)
        if first.startswith(b"GET /ping"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong")
        while c.recv(1 << 16): pass
    except OSError: pass
while True:
    c, _ = srv.accept()
    threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
python3 "$work/sink.py" "$sink_port" &
pids+=($!)
for _ in $(seq 50); do python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $sink_port)).close()" 2>/dev/null && break; sleep 0.1; done

cat > "$work/budget.toml" <<TOML
[pipeline]
name = "live-memory-budget"
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $sink_port
track_response = true
memory_budget = "64MiB"
[outputs.gor]
plugin = "file"
from = ["capture"]
path = "$work/budget.gor"
TOML
"$DOPPEL" run "$work/budget.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
wait_for_capture "$work/doppel.log"
sleep 1
idle_kib=$(kib "$doppel_pid" VmRSS)
# The kernel ring (buffer_size, 64 MiB by default) is mapped and resident from the start: it is
# part of the idle size (a mapping of the capture socket in smaps).
ring_kib=$(awk '/^[0-9a-f]+-[0-9a-f]+ .*socket:/ {ring = 1; next} /^[0-9a-f]+-[0-9a-f]+ / {ring = 0} ring && /^Rss:/ {sum += $2} END {print sum + 0}' "/proc/$doppel_pid/smaps")
# The fixed part: the idle process, and 48 MiB for the allocator's slack, thread stacks and
# messages in flight. The bytes of 60 unfinished bodies (1 GB) are not part of it.
allowance_kib=$((idle_kib + 48 * 1024))
budget_kib=$((64 * 1024))
echo "idle doppel: VmRSS ${idle_kib} KiB (of which the capture ring ${ring_kib} KiB); bound: budget ${budget_kib} + fixed ${allowance_kib} KiB"

# 60 uploads that never end, sent a chunk at a time in turn so that all grow together (at about
# 150 MB/s, which a capture on a busy machine keeps up with), then held open. While they are
# held, with the budget spent on them, one normal exchange (GET /ping) on a connection of its own.
cat > "$work/flood.py" <<'PY'
import random, socket, sys, time
port = int(sys.argv[1])
random.seed(15)
socks, left = [], []
for i in range(60):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /upload/%d HTTP/1.1\r\nHost: sink\r\nContent-Length: 30000000\r\n\r\n" % i)
    socks.append(s)
    left.append(random.randint(10, 25) * 1000 * 1000)
chunk = b"GET /hidden HTTP/1.1\r\nHost: sink\r\n\r\n" * 1700  # 64 KB of request lines: a body, never mined
sent = 0
while any(left):
    time.sleep(0.025)
    for i, s in enumerate(socks):
        if left[i] > 0:
            n = min(left[i], len(chunk))
            s.sendall(chunk[:n])
            left[i] -= n
            sent += n
time.sleep(1)
p = socket.create_connection(("127.0.0.1", port))
p.sendall(b"GET /ping HTTP/1.1\r\nHost: sink\r\n\r\n")
answer = b""
while not answer.endswith(b"pong"):
    answer += p.recv(4096)
print("flood: %d bytes sent on %d connections, none finished; then one exchange" % (sent, len(socks)), flush=True)
time.sleep(float(sys.argv[2]))  # held open while the capture's memory is looked at
PY
python3 "$work/flood.py" "$sink_port" 4 > "$work/flood.out" &
flood_pid=$!
pids+=($flood_pid)
peak_seen=0
while kill -0 "$flood_pid" 2>/dev/null; do
  rss=$(kib "$doppel_pid" VmRSS || echo 0)
  [ "${rss:-0}" -gt "$peak_seen" ] && peak_seen=$rss
  sleep 0.2
done
wait "$flood_pid" || fail "the flood client failed"
cat "$work/flood.out"
hwm_kib=$(kib "$doppel_pid" VmHWM)
echo "doppel during the flood: VmRSS peak sampled ${peak_seen} KiB, VmHWM ${hwm_kib} KiB"
kill -INT "$doppel_pid"
timeout 30 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
status=0
wait "$doppel_pid" || status=$?
doppel_pid=""
# 5: the run lost messages (the exit-code contract); 0 before that contract existed.
[ "$status" = 0 ] || [ "$status" = 5 ] || { cat "$work/doppel.log" >&2; fail "doppel exited with $status"; }
grep -A40 "doppel summary" "$work/doppel.log"
evicted=$(awk '/dropped budget_exceeded:/ {print $3}' "$work/doppel.log")
[ -n "$evicted" ] && [ "$evicted" -gt 0 ] || fail "no message was counted as budget_exceeded"
[ "$hwm_kib" -lt $((budget_kib + allowance_kib)) ] ||
  fail "peak resident size ${hwm_kib} KiB is over budget + fixed part ($((budget_kib + allowance_kib)) KiB)"
# What came out: the exchange, paired; nothing from the bodies that never ended.
python3 - "$work/budget.gor" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
records = [r for r in data.split("\n🐵🙈🙉\n".encode()) if r.strip()]
got = [(r.split(b"\n", 1)[0].split(b" ")[:2], r.split(b"\n", 1)[1]) for r in records]
kinds = sorted(k[0] for k, _ in got)
if kinds != [b"1", b"2"] or got[0][0][1] != got[1][0][1]:
    print("want the /ping request and its response, got:", [(k, p[:40]) for k, p in got]); sys.exit(1)
if not got[0][1].startswith(b"GET /ping ") or not got[1][1].endswith(b"pong"):
    print("unexpected messages:", [p[:40] for _, p in got]); sys.exit(1)
print("ok: the exchange made during the flood came out paired, nothing else did")
PY
echo "ok: peak ${hwm_kib} KiB under $((budget_kib + allowance_kib)) KiB; $evicted messages dropped as budget_exceeded"

# Default options, normal traffic: a few hundred requests on keep-alive connections, all paired.
write_site "$work" 127.0.0.1 "$web_port"
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
wait_for_port 127.0.0.1 "$web_port"
write_pipeline "$work/normal.toml" lo "$web_port" "$work/normal.gor"
"$DOPPEL" run "$work/normal.toml" > /dev/null 2> "$work/normal.log" &
doppel_pid=$!
wait_for_capture "$work/normal.log"
python3 - "$web_port" <<'PY'
import http.client, sys
port = int(sys.argv[1])
for c in range(10):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    for i in range(40):
        path = "/small.txt?c=%d&i=%d" % (c, i)
        if i % 4 == 3:
            conn.request("POST", "/upload?c=%d&i=%d" % (c, i), body=b"x" * (1000 * i), headers={"Content-Type": "application/octet-stream"})
        else:
            conn.request("GET", path)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
    conn.close()
PY
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/normal.log" >&2; fail "doppel exited with an error on normal traffic"; }
doppel_pid=""
python3 - "$work/normal.gor" <<'PY'
import sys
data = open(sys.argv[1], 'rb').read()
records = [r for r in data.split("\n🐵🙈🙉\n".encode()) if r.strip()]
reqs, resps = {}, {}
for r in records:
    header, payload = r.split(b"\n", 1)
    kind, mid = header.split(b" ")[:2]
    (reqs if kind == b"1" else resps)[mid] = payload
unpaired = [m for m in reqs if m not in resps] + [m for m in resps if m not in reqs]
bad = [m for m in reqs if m in resps and not resps[m].startswith(b"HTTP/1.1 200")]
if len(reqs) != 400 or unpaired or bad:
    print("normal traffic: %d requests, %d responses, %d unpaired, %d not 200" % (len(reqs), len(resps), len(unpaired), len(bad)))
    sys.exit(1)
print("ok: normal traffic with default options: 400 requests, each paired with its response")
PY
if grep -q "^ *dropped " "$work/normal.log"; then grep -A30 "doppel summary" "$work/normal.log" >&2; fail "normal traffic had drops"; fi
