#!/usr/bin/env bash
# Defaults that lose nothing that could wait, end to end against nginx on loopback:
#   1. a 20,000-record .gor replayed at max speed with the http output's defaults: every
#      request reaches nginx, nothing is dropped, no warning
#   2. validate prints the resolved overflow policy; a file-fed output explicitly set to
#      drop gets a warning, and the run that drops says so at exit (how many, where, why)
#   3. behind a live capture the same output still defaults to drop
#   4. `doppel gor` with GoReplay's usual file replay flags delivers every request too
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}"
source "$DOPPEL_SOURCE_DIR/tests/support/nginx_echo.sh"
work=$(mktemp -d "$DOPPEL_BUILD_DIR/it-overflow-XXXXXX")
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
trap 'stop_echo_nginx "$work/nginx"; rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
N=20000
start_echo_nginx "$work/nginx"
delivered() { grep -c " GET /n/" "$work/nginx/access.log" || true; }

python3 - "$work/requests.gor" "$N" <<'PY'
import sys
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(b"1 %024x %d 0\nGET /n/%d HTTP/1.1\r\nHost: t\r\n\r\n" % (i, 1700000000000000000 + i * 1000, i) + sep)
PY

echo "== 1. file -> http with default options"
cat > "$work/replay.toml" <<TOML
[pipeline]
stats_interval = "0s"
[inputs.in]
plugin = "file"
path = "$work/requests.gor"
max_speed = true
[outputs.target]
plugin = "http"
from = ["in"]
url = "http://127.0.0.1:$NGINX_PORT"
replay_writes = true
TOML
"$DOPPEL" validate "$work/replay.toml" > "$work/validate.txt" 2> "$work/validate.err"
grep -q "in -> target: wait" "$work/validate.txt" || fail "validate edge: $(cat "$work/validate.txt")"
grep -q "target (http queue): wait (default: fed by in, which can wait)" "$work/validate.txt" ||
  fail "validate policy: $(cat "$work/validate.txt")"
[ ! -s "$work/validate.err" ] || fail "validate warned: $(cat "$work/validate.err")"
"$DOPPEL" run "$work/replay.toml" 2> "$work/run.err" || fail "run exit $?: $(cat "$work/run.err")"
got=$(delivered)
[ "$got" = "$N" ] || fail "nginx saw $got of $N requests: $(cat "$work/run.err")"
grep -q "WARNING" "$work/run.err" && fail "warning without a loss: $(cat "$work/run.err")"
grep -q "dropped queue_full" "$work/run.err" && fail "queue_full counted: $(cat "$work/run.err")"
echo "delivered $got of $N"

echo "== 2. explicit overflow = \"drop\" behind a file: warned at validate, loss reported at exit"
: > "$work/nginx/access.log"
sed -e 's|^url = .*|&\noverflow = "drop"\nqueue_size = 1\nworkers = 1|' "$work/replay.toml" > "$work/drop.toml"
"$DOPPEL" validate "$work/drop.toml" > "$work/validate.txt" 2> "$work/validate.err" || fail "validate drop.toml"
grep -q "target (http queue): drop (set in the file)" "$work/validate.txt" || fail "validate: $(cat "$work/validate.txt")"
grep -Eq "drop.toml:11:[0-9]+: warning: \[outputs.target\] overflow = \"drop\" but only inputs that can wait feed it \(in\)" \
  "$work/validate.err" || fail "validate warning: $(cat "$work/validate.err")"
rc=0
"$DOPPEL" run "$work/drop.toml" 2> "$work/run.err" || rc=$?
[ "$rc" = 5 ] || fail "a lossy run exits $rc (documented: 5, messages lost, with the warning)"
grep -Eq "^WARNING: [0-9,]+ of 20,000 messages \([0-9.]+%\) dropped at target: queue_full$" "$work/run.err" ||
  fail "exit warning: $(tail -5 "$work/run.err")"
dropped=$(sed -nE 's/^WARNING: ([0-9,]+) of .*/\1/p' "$work/run.err" | tr -d ,)
sleep 0.2
[ "$(( $(delivered) + dropped ))" = "$N" ] || fail "delivered $(delivered) + dropped $dropped != $N"
echo "with overflow = drop: $(delivered) delivered, $dropped dropped and reported"

echo "== 3. behind a live capture the default is still drop"
cat > "$work/live.toml" <<TOML
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $NGINX_PORT
[outputs.target]
plugin = "http"
from = ["capture"]
url = "http://127.0.0.1:1"
TOML
"$DOPPEL" validate "$work/live.toml" > "$work/validate.txt" || fail "validate live.toml"
grep -q "capture -> target: drop (live input)" "$work/validate.txt" || fail "live edge: $(cat "$work/validate.txt")"
grep -q "target (http queue): drop (default: fed by live input capture)" "$work/validate.txt" ||
  fail "live policy: $(cat "$work/validate.txt")"

echo "== 4. doppel gor with GoReplay's file replay flags"
: > "$work/nginx/access.log"
"$DOPPEL" gor --input-file "$work/requests.gor|10000%" --input-file-read-depth 100 --input-file-max-wait 1ms \
  --output-http "http://127.0.0.1:$NGINX_PORT" --output-http-workers 16 --output-http-timeout 5s \
  --output-http-queue-len 1000 --output-http-workers-min 1 --stats --output-http-stats-ms 10000 --exit-after 120s \
  2> "$work/gor.err" || fail "gor exit $?: $(cat "$work/gor.err")"
sleep 0.2
got=$(delivered)
[ "$got" = "$N" ] || fail "doppel gor: nginx saw $got of $N: $(tail -20 "$work/gor.err")"
grep -q "WARNING" "$work/gor.err" && fail "gor warned: $(cat "$work/gor.err")"
grep -q "input-file-read-depth: not needed" "$work/gor.err" || fail "read-depth note missing"
echo "doppel gor delivered $got of $N"
echo "ok"
