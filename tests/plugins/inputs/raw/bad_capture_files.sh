#!/usr/bin/env bash
# Integration (issue 15, item 5): capture files that are not what they should be, through
# `doppel validate` and `doppel run` with the raw input:
#   bad magic, empty, gzip-compressed  -> exit 78 at validation, the file and its first bytes named
#   a capture cut mid-packet           -> the messages before are written out, a warning names the
#                                         file and offset, truncated_input counted; exit 5
#   standard input that is no capture  -> exit 65 (it cannot be checked before it is read)
# The capture is made here with tcpdump on loopback, of curl talking to a Python HTTP server.
set -euo pipefail
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
work=$(mktemp -d)
chmod 755 "$work"  # tcpdump may write as another user
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"

fail() {
  echo "FAIL: $*"
  [ -f "$work/log" ] && cat "$work/log"
  exit 1
}
# pipeline CAPTURE_FILE OUTPUT_PATH: raw input on a file -> .gor file output.
pipeline() {
  cat <<TOML
[inputs.cap]
plugin = "raw"
file = "$1"
track_response = true

[outputs.out]
plugin = "file"
from = ["cap"]
path = "$2"
TOML
}
run_doppel() {  # run_doppel COMMAND TOML [STDIN FILE]: sets $rc, stderr in $work/log
  set +e
  "$DOPPEL" "$1" "$2" < "${3:-/dev/null}" > /dev/null 2> "$work/log"
  rc=$?
  set -e
}

# --- refused at validation, exit 78.
printf 'this is not a capture at all\n' > "$work/text.pcap"
: > "$work/empty.pcap"
printf '1 8e0f2a5c0000000000000001 1700000000000000000 0\nGET / HTTP/1.1\r\n\r\n' > "$work/recording.pcap"
check_refused() {  # check_refused FILE EXPECTED_TEXT
  pipeline "$1" "$work/out.gor" > "$work/refused.toml"
  for command in validate run; do
    run_doppel "$command" "$work/refused.toml"
    [ "$rc" -eq 78 ] || fail "$command on $1 exited $rc, expected 78"
    grep -qF "$2" "$work/log" || fail "expected \"$2\" for $1"
  done
}
check_refused "$work/text.pcap" "file $work/text.pcap: not a pcap or pcapng file (starts with 0x74686973)"
check_refused "$work/empty.pcap" "file $work/empty.pcap is empty"
check_refused "$work/recording.pcap" "it looks like a GoReplay .gor file"
echo "ok: bad magic, empty file and a .gor file given as a capture are refused at validation (78)"

# --- a real capture: curl against a Python server on loopback, recorded by tcpdump.
python3 -u -m http.server 0 --bind 127.0.0.1 --directory "$work" > "$work/server.out" 2>&1 &
pids+=($!)
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$work/server.out" | head -1)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "the HTTP server did not start"
tcpdump -i lo -U -n -w "$work/full.pcap" "tcp port $port" 2> "$work/tcpdump.err" &
tcpdump_pid=$!
pids+=("$tcpdump_pid")
for _ in $(seq 1 100); do
  grep -q "listening on" "$work/tcpdump.err" && break
  sleep 0.1
done
grep -q "listening on" "$work/tcpdump.err" || fail "tcpdump did not start: $(cat "$work/tcpdump.err")"
echo hello > "$work/hello.txt"
for i in 1 2 3 4 5; do curl -sf -o /dev/null "http://127.0.0.1:$port/hello.txt?n=$i" || fail "curl $i"; done
sleep 1  # the last packets reach the file (-U: written per packet)
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2> /dev/null || true
pipeline "$work/full.pcap" "$work/full.gor" > "$work/full.toml"
run_doppel run "$work/full.toml"
[ "$rc" -eq 0 ] || fail "the whole capture exited $rc"
full_requests=$(grep -ac '^1 [0-9a-f]\{24\} ' "$work/full.gor" || true)
[ "$full_requests" -eq 5 ] || fail "the whole capture gave $full_requests requests, expected 5"

# --- the same capture cut 10 bytes into its last packet (a FIN or ACK after the last response).
size=$(stat -c %s "$work/full.pcap")
head -c $((size - 10)) "$work/full.pcap" > "$work/cut.pcap"
pipeline "$work/cut.pcap" "$work/cut.gor" > "$work/cut.toml"
run_doppel validate "$work/cut.toml"
[ "$rc" -eq 0 ] || fail "a cut capture has a valid header: validate exited $rc"
run_doppel run "$work/cut.toml"
grep -q "warning.*raw: $work/cut.pcap is cut short (at byte [0-9]*" "$work/log" || fail "no warning naming the file and offset"
grep -q "truncated_input" "$work/log" || fail "truncated_input not counted in the summary"
cut_requests=$(grep -ac '^1 [0-9a-f]\{24\} ' "$work/cut.gor" || true)
[ "$cut_requests" -eq 5 ] || fail "the messages before the cut should all be written: got $cut_requests of 5"
[ "$rc" -eq 5 ] || fail "a cut capture should exit 5 (messages lost), got $rc"
echo "ok: a capture cut mid-packet: the 5 requests before the cut written, warning and truncated_input, exit 5"

# --- standard input that is not a capture: only seen at run time, the input fails (65).
pipeline "-" "$work/stdin.gor" > "$work/stdin.toml"
run_doppel run "$work/stdin.toml" "$work/text.pcap"
[ "$rc" -eq 65 ] || fail "standard input that is not a capture should exit 65, got $rc"
grep -q "cannot read standard input as a pcap or pcapng capture" "$work/log" || fail "no clear message for standard input"
echo "ok: standard input that is not a capture exits 65 with a clear message"
