#!/usr/bin/env bash
# Capture started while keep-alive connections are already busy (what happens when doppel is
# started on a production host): 8 wrk connections to nginx run before the capture opens.
# After the first exchange seen on each connection, every exchange must be paired with its
# own response (nginx echoes each request's X-Req-Id), none with another's.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/live_common.sh"
command -v wrk >/dev/null || fail "wrk is not installed"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + RANDOM % 12000))
mkdir -p "$work/root" "$work/tmp"
head -c 700 /dev/zero | tr '\0' 'x' > "$work/root/page.html"
cat > "$work/nginx.conf" <<CONF
daemon off;
user root;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $work/tmp;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$port;
    root $work/root;
    add_header X-Echo-Id \$http_x_req_id always;
  }
}
CONF
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/page.html" >/dev/null && break; sleep 0.1; done
cat > "$work/ids.lua" <<'LUA'
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function request()
  n = n + 1
  return wrk.format("GET", "/page.html?n=" .. n, {["X-Req-Id"] = "t" .. tid .. "-" .. n})
end
LUA
write_pipeline "$work/capture.toml" lo "$port" "$work/out.gor"
# The connections are busy before the capture starts, and still busy when it stops.
wrk -t2 -c8 -d9s -s "$work/ids.lua" "http://127.0.0.1:$port/page.html" > "$work/wrk.out" &
wrk_pid=$!
pids+=($wrk_pid)
sleep 2
"$DOPPEL" run "$work/capture.toml" 2> "$work/doppel.err" &
doppel_pid=$!
pids+=($doppel_pid)
sleep 4
kill -INT "$doppel_pid"
wait "$doppel_pid" || fail "doppel exited with an error: $(tail -5 "$work/doppel.err")"
wait "$wrk_pid" || true
missing=$(awk '$1 == "responses.missing:" {print $2}' "$work/doppel.err")
python3 - "$work/out.gor" "${missing:-0}" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
counted_missing = int(sys.argv[2])
requests, responses = {}, {}
for record in data.split("\n🐵🙈🙉\n".encode()):
    if not record.strip():
        continue
    head, _, payload = record.partition(b"\n")
    kind, rid = head.split(b" ")[:2]
    m = re.search(rb"(?i)\r\nX-(?:Req|Echo)-Id: *([^\r\n]*)", payload)
    tag = m.group(1) if m else None
    (requests if kind == b"1" else responses)[rid] = tag
right = sum(1 for rid, tag in responses.items() if rid in requests and requests[rid] == tag and tag)
wrong = sum(1 for rid, tag in responses.items() if rid in requests and requests[rid] != tag)
orphans = sum(1 for rid in responses if rid not in requests)
unpaired = sum(1 for rid in requests if rid not in responses)
print(f"requests {len(requests)} responses {len(responses)} right {right} wrong {wrong} orphans {orphans} "
      f"unpaired {unpaired} (counted as responses.missing: {counted_missing})")
# Per connection (8): the first exchange seen may be unprovable, the one in flight when the
# capture stops has no response yet, and the capture's first moments may miss a segment. Every
# request left unpaired is counted.
ok = wrong == 0 and orphans == 0 and len(requests) > 1000 and unpaired <= 3 * 8 and unpaired == counted_missing
sys.exit(0 if ok else 1)
PY
status=$?
grep -E "dropped|missing|ambiguous|unmatched" "$work/doppel.err" | tail -5 || true
[ $status = 0 ] || fail "pairing after a mid-stream start"
echo "ok: capture started on busy connections pairs every exchange after the first"
