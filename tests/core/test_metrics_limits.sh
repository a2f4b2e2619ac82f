#!/usr/bin/env bash
# Limits that hold however doppel is used:
#  - /metrics: 200 connections that send half a request hold at most the connection cap of
#    descriptors, give them back after the request deadline, and a scrape works meanwhile and
#    after; with `ulimit -n 64` the same flood runs doppel out of descriptors, and once it
#    ends the server accepts and answers again.
#  - pipeline size: 10,000 stages are refused by `doppel validate` in well under a second; 256
#    run with one thread per stage and bounded memory; a 10 MB option value makes a short error.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
fds_of() { ls "/proc/$1/fd" | wc -l; }
now_ms() { date +%s%3N; }

# An input that sends one request, then waits an hour for the next: doppel runs idle until stopped.
python3 - "$work/idle.gor" <<'PY'
import sys, time
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
now = time.time_ns()
with open(sys.argv[1], "wb") as f:
    for i, ts in enumerate((now, now + 3600 * 10**9)):
        f.write(f"1 {i:024x} {ts} 0\n".encode() + b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + sep)
PY

# idle_pipeline FILE PORT [FILTERS]: file input -> FILTERS header filters -> null output.
idle_pipeline() {
  local file=$1 port=$2 filters=${3:-0} from=src
  {
    printf '[pipeline]\nstats_interval = "0s"\n'
    [ -n "$port" ] && printf 'metrics = "127.0.0.1:%s"\n' "$port"
    printf '[inputs.src]\nplugin = "file"\npath = "%s"\n' "$work/idle.gor"
    for ((i = 1; i <= filters; i++)); do
      printf '[filters.f%d]\nplugin = "header"\nfrom = ["%s"]\n' "$i" "$from"
      from=f$i
    done
    printf '[outputs.sink]\nplugin = "null"\nfrom = ["%s"]\n' "$from"
  } > "$file"
}

scrape() { curl -sf --max-time 5 "http://127.0.0.1:$1/metrics"; }

wait_for_metrics() {
  for _ in $(seq 100); do scrape "$1" > /dev/null 2>&1 && return 0; sleep 0.1; done
  fail "/metrics on port $1 never answered"
}

stop_doppel() {
  kill -INT "$1"
  local rc=0
  wait "$1" || rc=$?
  [ "$rc" = 0 ] || fail "doppel exit code $rc after SIGINT, want 0"
}

# hold_connections PORT COUNT READY_FILE SECONDS: COUNT connections that each send half a
# request and then say nothing, held for at most SECONDS or until killed.
hold_connections() {
  python3 - "$@" <<'PY' &
import socket, sys, time
port, count, ready, seconds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
held = []
for _ in range(count):
    s = socket.socket()
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # the blank line never comes
    held.append(s)
open(ready, "w").close()
time.sleep(seconds)
PY
  pids+=($!)
}

wait_for_file() {
  for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done
  fail "$1 never appeared"
}

# ---------------------------------------------------------------- idle connections time out
port=$(free_port)
idle_pipeline "$work/metrics.toml" "$port"
"$DOPPEL" run "$work/metrics.toml" 2> "$work/run1.log" &
doppel=$!
pids+=("$doppel")
wait_for_metrics "$port"
base=$(fds_of "$doppel")

hold_connections "$port" 200 "$work/held1" 60
holder=${pids[-1]}
wait_for_file "$work/held1"
flood_ended=$(now_ms)
during=$(scrape "$port") || fail "scrape refused while 200 idle connections are open"
grep -q '^doppel_stage_out_total{stage="src"} 1$' <<< "$during" || fail "scrape during the flood: $(head -3 <<< "$during")"
held=$(fds_of "$doppel")
[ "$held" -gt "$base" ] || fail "no connection held ($held descriptors, $base before)"
[ "$held" -le $((base + 64 + 2)) ] || fail "$held descriptors held, want at most $base + 64 (the cap)"
grep -q "closed .* connection.* that had not sent a request yet, to make room (64 connections at most" "$work/run1.log" ||
  fail "evictions not logged: $(cat "$work/run1.log")"

# The request deadline is 10 s: the descriptors come back soon after, the client still connected.
back=""
for _ in $(seq 200); do
  if [ "$(fds_of "$doppel")" -le $((base + 1)) ]; then back=$(now_ms); break; fi
  sleep 0.1
done
[ -n "$back" ] || fail "descriptors not given back: $(fds_of "$doppel") open, $base before"
took=$((back - flood_ended))
[ "$took" -ge 8000 ] || fail "descriptors given back after ${took} ms, before the 10 s deadline"
kill -0 "$holder" 2> /dev/null || fail "the client gave up first; the server's deadline was not tested"
echo "held: $held descriptors (base $base) for 200 idle connections; back to $(fds_of "$doppel") after ${took} ms"
scrape "$port" | grep -q '^doppel_stage_out_total{stage="src"} 1$' || fail "scrape after the flood"
kill "$holder" 2> /dev/null || true
stop_doppel "$doppel"

# ---------------------------------------------------------------- out of file descriptors
port=$(free_port)
idle_pipeline "$work/emfile.toml" "$port"
(ulimit -n 64 && exec "$DOPPEL" run "$work/emfile.toml") 2> "$work/run2.log" &
doppel=$!
pids+=("$doppel")
wait_for_metrics "$port"
hold_connections "$port" 150 "$work/held2" 60
holder=${pids[-1]}
wait_for_file "$work/held2"
for _ in $(seq 100); do grep -q "cannot accept connections on" "$work/run2.log" && break; sleep 0.1; done
grep -q "cannot accept connections on 127.0.0.1:$port: Too many open files" "$work/run2.log" ||
  fail "EMFILE not provoked or not logged: $(tail -5 "$work/run2.log")"
failures=$(grep -c "cannot accept connections on" "$work/run2.log")
[ "$failures" -le 3 ] || fail "accept failures logged $failures times in a row; want once per episode, rate-limited"
kill "$holder"
wait "$holder" 2> /dev/null || true
answered=""
for _ in $(seq 50); do
  if scrape "$port" > "$work/after.txt" 2> /dev/null; then answered=yes; break; fi
  sleep 0.2
done
[ -n "$answered" ] || fail "no answer after the descriptors came back: $(tail -5 "$work/run2.log")"
grep -q '^doppel_stage_out_total{stage="src"} 1$' "$work/after.txt" || fail "scrape after EMFILE: $(head -3 "$work/after.txt")"
grep -q "accepting connections on 127.0.0.1:$port again, after" "$work/run2.log" || fail "recovery not logged"
stop_doppel "$doppel"

# ---------------------------------------------------------------- pipelines of absurd size
idle_pipeline "$work/huge.toml" "" 9998
rc=0
TIMEFORMAT='%R %U %S'
{ time "$DOPPEL" validate "$work/huge.toml" > /dev/null 2> "$work/huge.err" || rc=$?; } 2> "$work/huge.time"
[ "$rc" = 78 ] || fail "validate of 10,000 stages: exit $rc, want 78"
grep -q "huge.toml:[0-9]*:1: \[filters.f256\] is stage 257 of 10000; a pipeline has at most 256 stages" "$work/huge.err" ||
  fail "10,000 stages: $(head -c 300 "$work/huge.err")"
# CPU time, which a loaded machine does not stretch; elapsed time only as a sanity bound.
read -r elapsed user sys < "$work/huge.time"
cpu_ms=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%d", (u + s) * 1000 }')
[ "$cpu_ms" -lt 1000 ] || fail "refusing 10,000 stages took ${cpu_ms} ms of CPU"
awk -v e="$elapsed" 'BEGIN { exit !(e < 10) }' || fail "refusing 10,000 stages took ${elapsed} s"
echo "10,000 stages refused in ${cpu_ms} ms of CPU (${elapsed} s elapsed)"

# measure_run FILE THREADS: runs FILE until it has THREADS threads and its first request has
# gone through, and sets run_threads and run_rss_kib.
measure_run() {
  "$DOPPEL" run "$1" 2> "$1.log" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 100); do
    [ "$(ls "/proc/$pid/task" | wc -l)" -ge "$2" ] && break
    sleep 0.1
  done
  sleep 1
  run_threads=$(ls "/proc/$pid/task" | wc -l)
  run_rss_kib=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
  stop_doppel "$pid"
}
idle_pipeline "$work/two.toml" "" 0
idle_pipeline "$work/max.toml" "" 254
"$DOPPEL" validate "$work/max.toml" | grep -q "valid (256 stages" || fail "256 stages do not validate"
measure_run "$work/two.toml" 2
rss_two=$run_rss_kib
measure_run "$work/max.toml" 256
threads=$run_threads
rss_max=$run_rss_kib
per_stage=$(((rss_max - rss_two) / 254))
echo "256 stages: $threads threads, RSS $((rss_max / 1024)) MiB ($((rss_two / 1024)) MiB for 2 stages; ${per_stage} KiB per stage)"
[ "$threads" -ge 256 ] && [ "$threads" -le $((256 + 16)) ] || fail "256 stages run on $threads threads"
[ "$per_stage" -lt 512 ] || fail "each stage takes ${per_stage} KiB"

# A 10 MB value quoted in an error: a prefix and the length, not the value.
python3 - "$work/big-value.toml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write('[pipeline]\nqueue_capacity = "' + "x" * (10 << 20) + '"\nmetrics = "' + "y" * (10 << 20) + '"\n')
    f.write('[inputs.src]\nplugin = "file"\npath = "/dev/null"\n[outputs.sink]\nplugin = "null"\nfrom = ["src"]\n')
PY
rc=0
"$DOPPEL" validate "$work/big-value.toml" > /dev/null 2> "$work/big-value.err" || rc=$?
[ "$rc" = 78 ] || fail "10 MB values: exit $rc, want 78"
grep -q '^.*big-value.toml:2:1: option "queue_capacity" must be an integer, not string "xxx*…" (10485760 bytes)$' \
  "$work/big-value.err" || fail "10 MB value error: $(head -c 300 "$work/big-value.err")"
grep -q '^.*big-value.toml:3:1: option "metrics": invalid address "yyy*…" (10485760 bytes): no port' \
  "$work/big-value.err" || fail "10 MB address error: $(head -c 300 "$work/big-value.err")"
longest=$(awk '{ if (length($0) > n) n = length($0) } END { print n }' "$work/big-value.err")
[ "$longest" -lt 300 ] || fail "an error line of $longest bytes"
echo "10 MB values: longest error line $longest bytes"
