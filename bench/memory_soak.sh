#!/usr/bin/env bash
# Days-long runs in bounded memory (issue 21, item 5): doppel's resident memory must be flat, not
# growing with the traffic it has seen. Two soaks, each `doppel run` sampled every 100 ms
# (/proc/PID/status: VmRSS, and VmHWM for the peak) by bench/lib/rss_sampler.py:
#
#  (a) idle flows: a pcap (bench/lib/idle_flows_pcap.py) of FLOWS client connections that each
#      open and send half a request, all alive at once (within `expire`), then 20,000 ordinary
#      exchanges once they have gone idle. `raw` input (file, default options) -> `null`. Run for
#      each size of FLOWS_SIZES: peak RSS is bounded by max_connections / memory_budget, not FLOWS.
#  (b) verdicts: VERDICTS exchanges (request, original, replay) streamed through a named pipe
#      (bench/lib/verdict_stream.py) into a `file` input -> `compare` -> `report` (jsonl, rotated,
#      and html). RSS noted at each million exchanges written: flat.
#
# Prints one table per soak: count, peak RSS, RSS at the end (last sample before exit), wall time,
# and the counters that show the bounds at work. "anon" is RssAnon, doppel's own memory: VmRSS
# also counts the resident pages of the capture file the raw input maps, which grow with the
# file and which the kernel takes back under pressure.
#   bench/memory_soak.sh [BUILD_DIR]
#   FLOWS_SIZES="100000 300000 1000000"  VERDICTS=10000000  SOAK=flows|verdicts|all (default all)
# Deviations from default options, and why: the `file` input has max_speed (the soak measures
# memory per verdict, not pacing); compare judges bodies with the `json` comparator as well as
# `status` (differences must reach its per-path tables); the report rotates its jsonl (256MiB,
# 2 kept: 10M verdict lines would be ~5 GB on disk).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${DOPPEL_BUILD_DIR:-$root/build}}
doppel=$build/bin/doppel
[ -x "$doppel" ] || { echo "no doppel binary at $doppel (build first)"; exit 1; }
FLOWS_SIZES=${FLOWS_SIZES:-"100000 300000 1000000"}
VERDICTS=${VERDICTS:-10000000}
SOAK=${SOAK:-all}
py=/usr/bin/python3
lib=$root/bench/lib
work=$(mktemp -d)
# Started as root, `doppel run` works as an unprivileged user: it must read the inputs and write
# the report here.
chmod 0755 "$work"
mkdir -m 1777 "$work/out"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
export DOPPEL_PLUGIN_PATH=$build/plugins

mib() { awk -v k="$1" 'BEGIN { printf "%.0f MiB", k / 1024 }'; }
# The value of a summary line "      NAME: VALUE" of stage STAGE (0 when absent).
summary_value() {  # LOG STAGE NAME
  awk -v stage="$2" -v name="$3" '
    /^  [^ ]/ { in_stage = ($1 == stage) }
    in_stage && $0 ~ "^      " name ": " { sub(".*: ", ""); print; found = 1; exit }
    END { if (!found) print 0 }' "$1"
}

# Runs doppel on PIPELINE in the background and samples it; SAMPLER_ARGS go to rss_sampler.py.
# Sets: result (sampler JSON), seconds (wall time). Fails when doppel does.
soak_run() {  # PIPELINE LOG [SAMPLER_ARGS...]
  local pipeline=$1 log=$2
  shift 2
  local t0 t1 status=0
  t0=$(date +%s.%N)
  "$doppel" run "$pipeline" > /dev/null 2> "$log" &
  local pid=$!
  pids+=("$pid")
  result=$("$py" "$lib/rss_sampler.py" "$pid" "$@")
  wait "$pid" || status=$?
  t1=$(date +%s.%N)
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  if [ "$status" -ne 0 ]; then
    echo "doppel run failed (exit $status):" >&2
    tail -20 "$log" >&2
    exit 1
  fi
}
json_field() { "$py" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

if [ "$SOAK" = all ] || [ "$SOAK" = flows ]; then
  echo "== (a) concurrent idle flows: raw (file, default options) -> null"
  printf "%9s %10s %10s %10s %10s %7s %15s %12s %9s %12s %9s\n" flows "peak RSS" "peak anon" "end RSS" \
    "end anon" seconds flow_table_full "expired msgs" evictions "conns opened" requests
  for flows in $FLOWS_SIZES; do
    pcap=$work/flows-$flows.pcap
    "$py" "$lib/idle_flows_pcap.py" "$pcap" "$flows" 20000
    cat > "$work/flows.toml" <<TOML
[pipeline]
name = "soak-flows"
[inputs.capture]
plugin = "raw"
file = "$pcap"
[outputs.sink]
plugin = "null"
from = ["capture"]
TOML
    soak_run "$work/flows.toml" "$work/flows.log"
    log=$work/flows.log
    printf "%9s %10s %10s %10s %10s %7s %15s %12s %9s %12s %9s\n" "$flows" \
      "$(mib "$(json_field "$result" peak_kib)")" "$(mib "$(json_field "$result" peak_anon_kib)")" \
      "$(mib "$(json_field "$result" end_kib)")" "$(mib "$(json_field "$result" end_anon_kib)")" "$seconds" \
      "$(summary_value "$log" capture "dropped flow_table_full")" "$(summary_value "$log" capture "dropped expired")" \
      "$(summary_value "$log" capture connections.evicted)" "$(summary_value "$log" capture connections)" \
      "$(summary_value "$log" capture requests)"
    rm -f "$pcap"
  done
fi

if [ "$SOAK" = all ] || [ "$SOAK" = verdicts ]; then
  echo "== (b) verdicts: file (named pipe) -> compare -> report (jsonl rotated, html)"
  fifo=$work/exchanges.gor
  mkfifo "$fifo"
  progress=$work/progress
  echo 0 > "$progress"
  cat > "$work/verdicts.toml" <<TOML
[pipeline]
name = "soak-verdicts"
[inputs.recording]
plugin = "file"
path = "$fifo"
max_speed = true
[comparators.body]
plugin = "json"
[middleware.compare]
plugin = "compare"
from = ["recording"]
fail = ["status", "body"]
[outputs.report]
plugin = "report"
from = ["compare"]
jsonl = "$work/out/verdicts.jsonl"
jsonl_max_size = "256MiB"
jsonl_keep = 2
html = "$work/out/report.html"
TOML
  "$py" "$lib/verdict_stream.py" "$fifo" "$VERDICTS" "$progress" &
  pids+=("$!")
  step=$(( VERDICTS >= 10 ? VERDICTS / 10 : 1 ))
  soak_run "$work/verdicts.toml" "$work/verdicts.log" --progress "$progress" --step "$step"
  log=$work/verdicts.log
  "$py" - "$result" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
print("%12s %12s %12s %16s" % ("exchanges", "RSS then", "anon then", "peak RSS so far"))
for count, rss, peak, anon in r["checkpoints"]:
    print("%12d %8.0f MiB %8.0f MiB %12.0f MiB" % (count, rss / 1024, anon / 1024, peak / 1024))
PY
  judged=0
  for v in match warn mismatch replay_error missing_original missing_replay; do
    judged=$(( judged + $(summary_value "$log" compare "verdict.$v") ))
  done
  echo "verdicts: $judged of $VERDICTS in ${seconds}s; peak RSS $(mib "$(json_field "$result" peak_kib)") (anon" \
       "$(mib "$(json_field "$result" peak_anon_kib)")), RSS at end $(mib "$(json_field "$result" end_kib)") (anon" \
       "$(mib "$(json_field "$result" end_anon_kib)"))"
  echo "compare: joins_evicted $(summary_value "$log" compare joins_evicted), endpoints_folded" \
       "$(summary_value "$log" compare endpoints_folded), paths_untracked $(summary_value "$log" compare paths_untracked)," \
       "table.paths $(summary_value "$log" compare table.paths), table.endpoints $(summary_value "$log" compare table.endpoints)"
  echo "report: jsonl_rotated $(summary_value "$log" report jsonl_rotated); files: $(ls "$work/out" | grep -c '^verdicts.jsonl')," \
       "$(du -sh "$work/out" | cut -f1) on disk"
  [ "$judged" -eq "$VERDICTS" ] || { echo "judged $judged of $VERDICTS exchanges" >&2; tail -30 "$log" >&2; exit 1; }
fi
