#!/usr/bin/env bash
# `doppel gor` end to end with real GoReplay command lines, on loopback:
#   1. file record/replay with |200%: gaps halved, records byte-exact, read back by `doppel run`
#   2. --print-pipeline re-run through `doppel run` gives the same messages
#   3. every filter and rewrite flag changes what reaches the output as GoReplay's would
#   4. live: raw capture of nginx traffic, both responses tracked, through an echo middleware,
#      replayed to a second nginx (needs root for the capture)
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}"
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"
work=$(mktemp -d "$DOPPEL_BUILD_DIR/it-gor-XXXXXX")
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
cleanup() {
  [ -n "${capture_pid:-}" ] && kill "$capture_pid" 2>/dev/null || true
  stop_echo_nginx "$work/old"; stop_echo_nginx "$work/new"
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
tool="python3 $DOPPEL_SOURCE_DIR/tests/support/gor_tool.py"
records() { python3 - "$@" <<'PY'
import sys
SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()
for rec in open(sys.argv[1], "rb").read().split(SEP):
    if rec.strip():
        head, _, payload = rec.partition(b"\n")
        print(head.decode().split(" ")[0], head.decode().split(" ")[1], payload.split(b"\r\n")[0].decode(errors="replace"))
PY
}

echo "== 1. record and replay with |200%"
$tool generate "$work/in.gor" 10 --gap-ms 100
start=$(date +%s%N)
"$DOPPEL" gor --input-file "$work/in.gor|200%" --output-file "$work/out.gor" --output-file-append 2> "$work/log1"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "10 requests, 900 ms of recorded gaps, replayed at 200% in ${elapsed_ms} ms"
[ "$elapsed_ms" -ge 400 ] && [ "$elapsed_ms" -lt 900 ] || fail "200% should take ~450 ms, took ${elapsed_ms} ms"
cmp "$work/in.gor" "$work/out.gor" || fail "records not byte-exact"
# Without --output-file-append, GoReplay (and doppel gor) write numbered chunks.
"$DOPPEL" gor --input-file "$work/in.gor" --input-file-max-wait 1ms --output-file "$work/chunked.gor" \
  --output-file-queue-limit 4 2>/dev/null
[ -f "$work/chunked_0.gor" ] && [ -f "$work/chunked_2.gor" ] && [ ! -f "$work/chunked_3.gor" ] || fail "chunks: $(ls "$work")"
cat "$work"/chunked_{0,1,2}.gor | cmp - "$work/in.gor" || fail "chunks do not add up to the input"
cat > "$work/readback.toml" <<TOML
[pipeline]
stats_interval = "0s"
[inputs.in]
plugin = "file"
path = "$work/out.gor"
max_speed = true
[outputs.out]
plugin = "file"
from = ["in"]
path = "$work/back.gor"
TOML
"$DOPPEL" run "$work/readback.toml" 2>/dev/null
cmp "$work/in.gor" "$work/back.gor" || fail "doppel run does not read what doppel gor wrote"

echo "== 1b. GoReplay's file replay flags are accepted (mapped, or noted as not needed)"
"$DOPPEL" gor --input-file "$work/x.gor" --input-file-read-depth 100 --input-file-loop --input-file-max-wait 1s \
  --output-http http://127.0.0.1:1 --output-http-workers 8 --output-http-workers-min 2 --output-http-timeout 3s \
  --output-http-queue-len 500 --output-http-worker-timeout 2s --output-http-response-buffer 1mb \
  --output-http-compatibility-mode --output-http-stats --output-http-stats-ms 2000 --copy-buffer-size 5mb \
  --stats --exit-after 30s --print-pipeline > "$work/flags.toml" || fail "file replay flags refused"
for line in 'loop = true' 'max_wait = "1s"' 'workers = 8' 'timeout = "3s"' 'queue_size = 500' \
  'stats_interval = "2000ms"' 'exit_after = "30s"'; do
  grep -qF "$line" "$work/flags.toml" || fail "--print-pipeline lacks $line: $(cat "$work/flags.toml")"
done
grep -q "overflow" "$work/flags.toml" && fail "the translation must leave overflow to its default"
set +e; "$DOPPEL" gor --input-file x.gor --input-file-read-depth lots --output-null 2> "$work/err.txt"; rc=$?; set -e
[ "$rc" = 2 ] && grep -q "input-file-read-depth: expected a number" "$work/err.txt" || fail "read-depth value check"

echo "== 2. --print-pipeline runs to the same messages"
flags=(--input-file "$work/in.gor" --input-file-max-wait 1ms --http-allow-url "^/" --http-disallow-url "/2\b" --output-file "$work/direct.gor" --output-file-append)
"$DOPPEL" gor "${flags[@]}" 2>/dev/null
"$DOPPEL" gor "${flags[@]}" --print-pipeline > "$work/printed.toml"
"$DOPPEL" validate "$work/printed.toml" >/dev/null || fail "printed pipeline does not validate"
mv "$work/direct.gor" "$work/direct1.gor"
"$DOPPEL" run "$work/printed.toml" 2>/dev/null
cmp "$work/direct1.gor" "$work/direct.gor" || fail "printed pipeline gives other messages"
[ "$(records "$work/direct.gor" | wc -l)" -lt "$(records "$work/in.gor" | wc -l)" ] || fail "disallow-url dropped nothing"

echo "== 3. every filter and rewrite flag"
python3 - "$work/filters.gor" <<'PY'
import sys, base64
SEP = "\n\U0001F435\U0001F648\U0001F649\n".encode()
auth = lambda s: "Authorization: Basic " + base64.b64encode(s.encode()).decode() + "\r\n"
reqs = [
  "GET /v1/user/42/ping?x=1 HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("admin:pw") + "\r\n",  # kept, rewritten
  "POST /v1/user/7/ping HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("admin:pw") + "Content-Length: 0\r\n\r\n",  # kept
  "DELETE /v1/user/1/ping HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("admin:pw") + "\r\n",  # method
  "GET /static/x.css HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("admin:pw") + "\r\n",        # url allow
  "GET /v1/user/3/ping?debug=1 HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("admin:pw") + "\r\n",  # url deny
  "GET /v1/user/4/ping HTTP/1.1\r\nHost: a\r\nX-Env: test\r\n" + auth("admin:pw") + "\r\n",      # allow header
  "GET /v1/user/5/ping HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\nUser-Agent: bot\r\n" + auth("admin:pw") + "\r\n",  # disallow header
  "GET /v1/user/6/ping HTTP/1.1\r\nHost: a\r\nX-Env: prod\r\n" + auth("guest:pw") + "\r\n",      # basic auth
]
with open(sys.argv[1], "wb") as f:
    for i, r in enumerate(reqs):
        f.write(b"1 %024x %d 0\n" % (i, 1_700_000_000_000_000_000 + i) + r.encode() + SEP)
PY
"$DOPPEL" gor --input-file "$work/filters.gor" --input-file-max-wait 1ms \
  --http-allow-url "^/v1/" --http-disallow-url "debug=1" --http-allow-method GET --http-allow-method POST \
  --http-allow-header "X-Env: ^prod$" --http-disallow-header "User-Agent: bot" --http-basic-auth-filter "^admin:" \
  --http-set-header "X-Shadow: 1" --http-set-param "src=doppel" --http-rewrite-url "/v1/user/([^/]+)/ping:/v2/user/\$1/ping" \
  --http-rewrite-header "Host: (.*),\$1.shadow" --output-file "$work/filtered.gor" --output-file-append 2> "$work/log3"
got=$(records "$work/filtered.gor")
echo "$got"
[ "$(echo "$got" | wc -l)" = 2 ] || fail "expected 2 requests to pass the filters"
echo "$got" | grep -q "GET /v2/user/42/ping?x=1&src=doppel HTTP/1.1" || fail "url rewrite / set-param"
echo "$got" | grep -q "POST /v2/user/7/ping?src=doppel HTTP/1.1" || fail "POST kept and rewritten"
grep -q $'X-Shadow: 1\r' "$work/filtered.gor" || fail "set-header"
grep -q $'Host: a.shadow\r' "$work/filtered.gor" || fail "rewrite-header"

echo "== 4. live capture -> echo middleware -> second nginx, both responses tracked"
if [ "$(id -u)" != 0 ]; then
  fail "the live capture part needs root (CI runs as root)"
fi
start_echo_nginx "$work/old"; old_port=$NGINX_PORT
start_echo_nginx "$work/new"; new_port=$NGINX_PORT
cat > "$work/echo.sh" <<'SH'
#!/usr/bin/env bash
while read -r line; do echo "$line"; done
SH
"$DOPPEL" gor --input-raw "127.0.0.1:$old_port" --input-raw-track-response \
  --output-http "http://127.0.0.1:$new_port" --output-http-track-response \
  --middleware "bash $work/echo.sh" --output-file "$work/live.gor" --output-file-append --exit-after 8s 2> "$work/log4" &
capture_pid=$!
sleep 2
for i in $(seq 1 20); do
  curl -s -o /dev/null "http://127.0.0.1:$old_port/live/$i?n=$i" || fail "curl to nginx failed"
done
curl -s -o /dev/null -X POST --data-binary "hello-body" "http://127.0.0.1:$old_port/live/post"
wait "$capture_pid" || fail "doppel gor live run failed: $(tail -20 "$work/log4")"
capture_pid=
live=$(records "$work/live.gor")
for kind in 1 2 3; do
  n=$(echo "$live" | awk -v k=$kind '$1 == k' | wc -l)
  [ "$n" = 21 ] || fail "expected 21 messages of type $kind, got $n: $(tail -30 "$work/log4")"
done
# Each id has its request, original response and replay.
[ "$(echo "$live" | awk '{print $2}' | sort | uniq -c | awk '$1 != 3' | wc -l)" = 0 ] || fail "ids not complete"
grep -c "GET /live/" "$work/new/access.log" | grep -q 20 || fail "second nginx did not receive the replays"
echo "gor: all checks passed"
