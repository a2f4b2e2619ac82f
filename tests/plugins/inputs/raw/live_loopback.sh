#!/usr/bin/env bash
# Live capture on `lo`: real nginx, curl with keep-alive, chunked, 100-continue and large
# bodies; every request and response must come out of doppel byte-exact.
set -euo pipefail
source "$(dirname "$0")/live_common.sh"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
nginx_pid="" doppel_pid=""
cleanup() {
  [ -n "$doppel_pid" ] && kill "$doppel_pid" 2>/dev/null || true
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
port=$((20000 + $$ % 12000))
write_site "$work" 127.0.0.1 "$port"
nginx -c "$work/nginx.conf" -p "$work" &
nginx_pid=$!
wait_for_port 127.0.0.1 "$port"
write_pipeline "$work/capture.toml" lo "$port" "$work/out.gor"
"$DOPPEL" run "$work/capture.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
wait_for_capture "$work/doppel.log"
run_clients "http://127.0.0.1:$port" "$work"
sleep 0.5
kill -INT "$doppel_pid"
timeout 20 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }
doppel_pid=""
check_capture "$work/out.gor" "$work" || { cat "$work/doppel.log" "$work/doppel.out" >&2; fail "capture differs"; }
