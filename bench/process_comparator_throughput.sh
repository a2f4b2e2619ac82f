#!/usr/bin/env bash
# Checks in Python at full speed: judgements/s of the `process` comparator running a trivial
# Python check (doppel_compare.py, `return True`) on the 2-20 KB JSON pairs of
# bench/comparator_throughput.sh, beside the in-process `json` comparator on the same pairs, in
# the same run. Goal: >= 20,000 judgements/s through one Python process (default options).
# A second run with processes = 2 shows how the option scales it (the only non-default figure).
#   bench/process_comparator_throughput.sh [BUILD_DIR] [PAIRS] [SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-${DOPPEL_BUILD_DIR:-$here/build}}"
pairs="${2:-2000}"
seconds="${3:-5}"
for driver in json_comparator_bench process_comparator_bench; do
  [[ -x "$build/bench/$driver" ]] || ninja -C "$build" "$driver" >/dev/null
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 "$here/bench/lib/json_pairs.py" "$work/pairs.bin" "$pairs" 2>&1
cat >"$work/ok.py" <<'PY'
from doppel_compare import comparator, run

@comparator()
def ok(ex):
    return True

run()
PY
# The helpers as doppel finds them beside its executable.
export PYTHONPATH="$build/share/doppel/helpers${PYTHONPATH:+:$PYTHONPATH}"

rate() { awk -v key="$1" '$1 == key {print $2}'; }
json_rate="$("$build/bench/json_comparator_bench" "$work/pairs.bin" "$seconds" | rate verdicts_per_second)"
one="$("$build/bench/process_comparator_bench" "$work/pairs.bin" "$seconds" "python3 $work/ok.py" 2>/dev/null | rate judgements_per_second)"
two="$("$build/bench/process_comparator_bench" "$work/pairs.bin" "$seconds" "python3 $work/ok.py" --option processes=2 2>/dev/null | rate judgements_per_second)"

echo "json comparator, in process:            ${json_rate} verdicts/s"
echo "python check via process, 1 process:    ${one} judgements/s  (goal >= 20000)"
echo "python check via process, processes=2:  ${two} judgements/s"
awk -v a="$one" -v b="$two" -v j="$json_rate" 'BEGIN {
  printf "ratio python(1)/json:                  %.2fx\n", a / j
  printf "ratio processes=2/1:                   %.2fx\n", b / a }'
