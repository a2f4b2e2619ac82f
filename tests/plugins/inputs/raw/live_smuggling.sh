#!/usr/bin/env bash
# Request-smuggling probes against a real nginx on `lo`, captured live by the raw input (issue
# 15.1): each probe hides `GET /admin?probe=N` in its body. nginx refuses each (400/501, then
# closes); doppel must emit no request for /admin, count the probes as ambiguous_framing, and
# still capture a clean connection afterwards byte-exact (with an extension method and QUERY).
# The capture is then replayed to a second nginx, whose access log must hold no /admin.
set -euo pipefail
source "$(dirname "$0")/live_common.sh"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
nginx_pid="" replay_pid="" doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  [ -n "$replay_pid" ] && kill "$replay_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + $$ % 12000))
replay_port=$((port + 1))
write_site "$work/origin" 127.0.0.1 "$port"
write_site "$work/replay" 127.0.0.1 "$replay_port"
nginx -c "$work/origin/nginx.conf" -p "$work/origin" &
nginx_pid=$!
nginx -c "$work/replay/nginx.conf" -p "$work/replay" &
replay_pid=$!
wait_for_port 127.0.0.1 "$port"
wait_for_port 127.0.0.1 "$replay_port"
: > "$work/origin/access.log"  # wait_for_port's own requests
write_pipeline "$work/capture.toml" lo "$port" "$work/out.gor"
"$DOPPEL" run "$work/capture.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
wait_for_capture "$work/doppel.log"

# Each probe on its own connection; nginx's answer (status line, and whether it closed) recorded.
python3 - "$port" > "$work/probes.txt" <<'PY'
import socket, sys
port = int(sys.argv[1])
probes = [
    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "Content-Length: 5\r\nContent-Length: 49\r\n",
    "Content-Length: 0, 49\r\n",
    "Transfer-Encoding : chunked\r\n",
    "Transfer-Encoding: xchunked\r\n",
    "Transfer-Encoding: chunked, identity\r\n",
    "Transfer-Encoding:\r\n chunked\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
]
for n, fields in enumerate(probes, 1):
    hidden = "GET /admin?probe=%d HTTP/1.1\r\nHost: x\r\n\r\n" % n
    probe = "POST /p HTTP/1.1\r\nHost: x\r\n" + fields + "\r\n0\r\n\r\n" + hidden
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(3)
    s.sendall(probe.encode())
    answer, closed = b"", False
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                closed = True
                break
            answer += chunk
    except socket.timeout:
        pass
    s.close()
    status = answer.split(b" ", 2)[1].decode() if answer.startswith(b"HTTP/1.") else "none"
    print(n, status, "closed" if closed else "open", answer.count(b"HTTP/1."))
PY
# A clean keep-alive connection afterwards: its requests must all be captured as sent.
python3 - "$port" > "$work/clean.txt" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.settimeout(3)
requests = [b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            b"BDELETE /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            b"QUERY /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
            b"GET /small.txt?last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
for r in requests:
    s.sendall(r)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = [int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")]
    while length and len(rest) < length[0]:
        rest += s.recv(65536)
    print(head.split(b"\r\n")[0].decode())
s.close()
PY
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""

cat "$work/probes.txt"
# nginx's own answer: every probe refused, and the connection closed after one answer.
while read -r n status closed answers; do
  case "$status" in 400|501) ;; *) fail "nginx answered probe $n with $status: the probe is not a refused one" ;; esac
  [ "$closed" = closed ] || fail "nginx kept the connection of probe $n open"
  [ "$answers" = 1 ] || fail "nginx answered probe $n $answers times: it served the hidden request"
done < "$work/probes.txt"
! grep -q "/admin" "$work/origin/access.log" || fail "nginx itself served /admin"

python3 - "$work/out.gor" <<'PY' || { cat "$work/doppel.log" >&2; fail "capture differs"; }
import sys
data = open(sys.argv[1], 'rb').read()
records = [r for r in data.split("\n🐵🙈🙉\n".encode()) if r.strip()]
requests = [r.split(b"\n", 1)[1] for r in records if r.startswith(b"1 ")]
errors = [("request for /admin emitted: %r" % r[:60]) for r in requests if b"/admin" in r]
want = [b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"BDELETE /small.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        b"QUERY /small.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /small.txt?last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]
for w in want:
    if w not in requests: errors.append("clean request not captured as sent: %r" % w[:40])
others = [r for r in requests if r not in want]
if others: errors.append("unexpected requests: %r" % [r[:40] for r in others])
if errors:
    print("\n".join(errors)); sys.exit(1)
print("ok: %d requests, none for /admin" % len(requests))
PY
grep -q "ambiguous_framing" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "no ambiguous_framing count in the summary"; }

# Replay what was captured to the second nginx: it must never see /admin.
cat > "$work/replay.toml" <<TOML
[pipeline]
name = "smuggling-replay"

[inputs.recorded]
plugin = "file"
path = "$work/out.gor"

[outputs.candidate]
plugin = "http"
from = ["recorded"]
url = "http://127.0.0.1:$replay_port"
overflow = "wait"
TOML
: > "$work/replay/access.log"
timeout 60 "$DOPPEL" run "$work/replay.toml" > "$work/replay.out" 2> "$work/replay.log" ||
  { cat "$work/replay.log" >&2; fail "replay failed"; }
sleep 0.3
cat "$work/replay/access.log"
! grep -q "/admin" "$work/replay/access.log" || fail "the replay sent /admin"
grep -q "BDELETE /small.txt" "$work/replay/access.log" || fail "the replay did not send BDELETE as captured"
echo "ok: smuggling probes refused by nginx were neither emitted nor replayed"
