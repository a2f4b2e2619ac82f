#!/usr/bin/env bash
# Comparator throughput: verdicts/s of doppel's `json` comparator on realistic 2-20 KB JSON
# response pairs, next to Python's json.loads + == on the same pairs, in the same run.
#   bench/comparator_throughput.sh [BUILD_DIR] [PAIRS] [SECONDS]
# Both sides are single-threaded. The pairs are generated (seeded, reproducible): robot-API
# style responses, a third of them with a few changed, missing or reordered values.
# DUMP=FILE also writes every pair's differences to FILE (one line per pair), so that two
# builds can be shown to judge the pairs identically: `cmp` their dumps.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-${DOPPEL_BUILD_DIR:-$here/build}}"
pairs="${2:-2000}"
seconds="${3:-3}"
driver="$build/bench/json_comparator_bench"
if [[ ! -x "$driver" ]]; then
  ninja -C "$build" json_comparator_bench >/dev/null
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 "$here/bench/lib/json_pairs.py" "$work/pairs.bin" "$pairs" 2>&1

doppel_out="$("$driver" "$work/pairs.bin" "$seconds" ${DUMP:+--dump "$DUMP"})"
doppel_rate="$(awk '/^verdicts_per_second/ {print $2}' <<<"$doppel_out")"
doppel_cpu_rate="$(awk '/^cpu_verdicts_per_second/ {print $2}' <<<"$doppel_out")"
doppel_diff="$(awk '/^differing/ {print $2}' <<<"$doppel_out")"

python_out="$(python3 -c '
import json, sys, time
data = open(sys.argv[1], "rb").read()
pairs, pos = [], 0
while pos < len(data):
    nl = data.index(b"\n", pos)
    la, lb = map(int, data[pos:nl].split())
    pos = nl + 1
    pairs.append((data[pos:pos + la], data[pos + la:pos + la + lb]))
    pos += la + lb
seconds = float(sys.argv[2])
verdicts = differing = 0
start = time.perf_counter()
while time.perf_counter() - start < seconds:
    for a, b in pairs:
        x, y = json.loads(a), json.loads(b)
        x["meta"].pop("trace_id", None); y["meta"].pop("trace_id", None)
        differing += x != y
        verdicts += 1
elapsed = time.perf_counter() - start
print("%.0f %d" % (verdicts / elapsed, differing * len(pairs) // verdicts))
' "$work/pairs.bin" "$seconds")"
python_rate="${python_out% *}"
python_diff="${python_out#* }"

echo "doppel json comparator:        ${doppel_rate} verdicts/s  (${doppel_diff}/${pairs} pairs differ; structural diff with paths; ${doppel_cpu_rate} per CPU second)"
echo "python3 json.loads + ==:       ${python_rate} verdicts/s  (${python_diff}/${pairs} pairs differ; equality only)"
awk -v d="$doppel_rate" -v p="$python_rate" 'BEGIN { printf "ratio doppel/python:           %.2fx\n", d / p }'
