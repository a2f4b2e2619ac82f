#!/usr/bin/env bash
# A recorded session API replayed to a second instance that hands out other tokens and ids.
# Instance A is recorded (4 interleaved clients: login, 2 orders created, read back, /me) into a
# .gor; the recording is replayed to instance B:
#   1. through pipelines/replay-correlate.toml (correlate + compare): every request succeeds on B
#      (B's log), every verdict matches;
#   2. straight to the http output: B refuses the recorded tokens and ids (401/404);
#   3. through a minimal correlate (no `in`, no `path`, default session): every request succeeds.
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL:?}"
here="$DOPPEL_SOURCE_DIR/tests/plugins/middleware/correlate"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"

start_api() {  # NAME: starts token_api.py, sets ${NAME}_port
  python3 "$here/token_api.py" "$work/$1.port" "$work/$1.log" &
  pids+=($!)
  for _ in $(seq 100); do [[ -s "$work/$1.port" ]] && break; sleep 0.05; done
  [[ -s "$work/$1.port" ]] || { echo "FAIL: $1 did not start" >&2; exit 1; }
  printf -v "$1_port" '%s' "$(cat "$work/$1.port")"
}
start_api a
start_api b

clients=4
python3 "$here/record_sessions.py" "$a_port" requests.gor $clients
total=$((clients * 6))

# B's log since the last check: every line is "METHOD PATH STATUS CLIENT".
check_log() {  # EXPECT_OK EXPECT_TOTAL LABEL
  local ok total
  total=$(wc -l < b.log)
  ok=$(awk '$3 >= 200 && $3 < 300' b.log | wc -l)
  echo "$3: $ok of $total requests 2xx on B ($(awk '{print $3}' b.log | sort | uniq -c | tr -s ' ' | tr '\n' ';'))"
  [[ $total -eq $2 ]] || { echo "FAIL: $3: B received $total requests, expected $2" >&2; exit 1; }
  [[ $ok -eq $1 ]] || { echo "FAIL: $3: $ok requests 2xx on B, expected $1" >&2; exit 1; }
}

# 1. The shipped pipeline, pointed at B.
sed -e "s|http://127.0.0.1:17555|http://127.0.0.1:$b_port|" "$DOPPEL_SOURCE_DIR/pipelines/replay-correlate.toml" \
  > correlate.toml
"$DOPPEL" validate correlate.toml
start=$(date +%s%N)
timeout 120 "$DOPPEL" run correlate.toml 2> run1.err || { cat run1.err >&2; echo "FAIL: run 1" >&2; exit 1; }
echo "run 1 took $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -E 'substituted|learned|missed|held|hold_timeouts' run1.err || true
check_log $total $total "with correlate"
python3 - verdicts.jsonl $total <<'PY'
import collections, json, sys
verdicts = [json.loads(line) for line in open(sys.argv[1])]
counts = collections.Counter(v["verdict"] for v in verdicts)
print("verdicts:", dict(counts))
if len(verdicts) != int(sys.argv[2]) or counts["match"] != len(verdicts):
    sys.exit("FAIL: every exchange should match")
PY
grep -qE 'substituted\.token: *20$' run1.err || { echo "FAIL: 20 tokens substituted expected" >&2; exit 1; }
grep -qE 'substituted\.order: *8$' run1.err || { echo "FAIL: 8 order ids substituted expected" >&2; exit 1; }
grep -qE 'hold_timeouts: *[1-9]' run1.err && { echo "FAIL: a replay timed out" >&2; exit 1; }

# 2. Without correlate: only the logins succeed.
: > b.log
cat > plain.toml <<TOML
[inputs.recorded]
plugin = "file"
path = "requests.gor"
kinds = ["request"]
[outputs.candidate]
plugin = "http"
from = ["recorded"]
url = "http://127.0.0.1:$b_port"
TOML
timeout 120 "$DOPPEL" run plain.toml 2> run2.err || { cat run2.err >&2; echo "FAIL: run 2" >&2; exit 1; }
check_log $clients $total "without correlate"
awk '$3 == 401' b.log | grep -q . || { echo "FAIL: no 401 without correlate" >&2; exit 1; }

# 3. Minimal correlate: values replaced wherever they appear as whole tokens; no session key
#    (a .gor file has no connections), so the whole recording is one ordered session.
: > b.log
cat > minimal.toml <<TOML
[inputs.recorded]
plugin = "file"
path = "requests.gor"
max_speed = true
[middleware.correlate]
plugin = "correlate"
from = ["recorded", "candidate"]
[[middleware.correlate.rule]]
from = "json:token"
[[middleware.correlate.rule]]
from = "json:id"
[outputs.candidate]
plugin = "http"
from = ["correlate"]
url = "http://127.0.0.1:$b_port"
track_response = true
TOML
start=$(date +%s%N)
timeout 120 "$DOPPEL" run minimal.toml 2> run3.err || { cat run3.err >&2; echo "FAIL: run 3" >&2; exit 1; }
echo "run 3 took $(( ($(date +%s%N) - start) / 1000000 )) ms"
grep -E 'substituted|held' run3.err || true
check_log $total $total "minimal correlate"
echo "ok"
