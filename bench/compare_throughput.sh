#!/usr/bin/env bash
# Compare stage end to end: `doppel run` of a `file` input (a .gor of requests, original
# responses and replayed responses: the 2-20 KB JSON pairs of comparator_throughput.sh) ->
# `compare` with the `json` comparator -> `null` output, with `threads = 1` (judging on the
# stage's own thread) and with the default (one thread per core), alternating, several rounds.
# Prints verdicts/s per round (wall clock, and per second of CPU the run used) and the medians.
# With BEFORE=OTHER_BUILD_DIR, that build's doppel runs the default pipeline in the same rounds
# (a before/after comparison; it needs no `threads` option).
#   bench/compare_throughput.sh [BUILD_DIR] [EXCHANGES] [ROUNDS]      (defaults: build, 20000, 3)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-${DOPPEL_BUILD_DIR:-$root/build}}
exchanges=${2:-20000}
rounds=${3:-3}
doppel=$build/bin/doppel
[ -x "$doppel" ] || { echo "no doppel binary at $doppel (build first)"; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH=$build/plugins

# The 2,000 distinct pairs of bench/lib/json_pairs.py, each reused under fresh ids.
python3 - "$work/exchanges.gor" "$exchanges" "$root/bench/lib" <<'PY'
import sys
sys.path.insert(0, sys.argv[3])
from json_pairs import pairs as json_pairs
path, n = sys.argv[1], int(sys.argv[2])
pairs = list(json_pairs(2000))
sep = "\n🐵🙈🙉\n".encode()
t = 1_700_000_000_000_000_000
def response_head(body):
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
with open(path, "wb", buffering=1 << 20) as f:
    for i in range(n):
        rid = b"%024x" % (0x8e0f00000000 + i)
        a, b = pairs[i % len(pairs)]
        t += 1000
        req = b'{"robot_id":"664"}'
        f.write(b"1 %s %d 0\nPOST /v2/robot/query HTTP/1.1\r\nHost: robot\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (rid, t, len(req)) + req + sep)
        f.write(b"2 %s %d 3000000\n" % (rid, t + 1) + response_head(a) + a + sep)
        f.write(b"3 %s %d 4000000\n" % (rid, t + 2) + response_head(b) + b + sep)
PY

pipeline() {  # THREADS -> a pipeline file
  cat > "$work/compare-$1.toml" <<TOML
[pipeline]
name = "compare-throughput"

[inputs.recording]
plugin = "file"
path = "$work/exchanges.gor"
max_speed = true

[comparators.body]
plugin = "json"
ignore = ["meta.trace_id"]

[middleware.compare]
plugin = "compare"
from = ["recording"]
fail = ["status", "body"]
$( [ "$1" = default ] || echo "threads = $1" )

[outputs.sink]
plugin = "null"
from = ["compare"]
TOML
  echo "$work/compare-$1.toml"
}
one=$(pipeline 1)
all=$(pipeline default)
cat "$work/exchanges.gor" > /dev/null  # warm the page cache

run() {  # DOPPEL PLUGIN_DIR PIPELINE -> "verdicts/s cpu-verdicts/s", checking every exchange was judged
  /usr/bin/time -f "%e %U %S" -o "$work/time" env DOPPEL_PLUGIN_PATH="$2" "$1" run "$3" 2> "$work/run.log" ||
    { tail "$work/run.log" >&2; exit 1; }
  local judged
  judged=$(awk '/verdict\.(match|mismatch|warn): / { n += $2 } END { print n + 0 }' "$work/run.log")
  [ "$judged" -eq "$exchanges" ] || { echo "judged $judged of $exchanges exchanges" >&2; tail "$work/run.log" >&2; exit 1; }
  awk -v n="$exchanges" '{ printf "%.0f %.0f\n", n / $1, n / ($2 + $3) }' "$work/time"
}
names=("threads=1" "threads=default")
pipelines=("$one" "$all")
binaries=("$doppel" "$doppel")
plugin_dirs=("$build/plugins" "$build/plugins")
if [ -n "${BEFORE:-}" ]; then
  names+=("before")
  pipelines+=("$all")
  binaries+=("$BEFORE/bin/doppel")
  plugin_dirs+=("$BEFORE/plugins")
fi
declare -A rates cpu_rates
for r in $(seq 1 "$rounds"); do
  line="round $r:"
  for i in "${!names[@]}"; do
    read -r rate cpu_rate < <(run "${binaries[$i]}" "${plugin_dirs[$i]}" "${pipelines[$i]}")
    rates[$i]+="$rate "
    cpu_rates[$i]+="$cpu_rate "
    line+=" ${names[$i]} $rate/s (cpu $cpu_rate/s)"
  done
  echo "$line"
done
median() { printf '%s\n' $1 | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
echo "exchanges: $exchanges (request + original + replay each), rounds: $rounds, cores: $(nproc)"
for i in "${!names[@]}"; do
  printf "median %-16s %8.0f verdicts/s  (%8.0f per CPU second)\n" "${names[$i]}:" "$(median "${rates[$i]}")" \
    "$(median "${cpu_rates[$i]}")"
done
awk -v a="$(median "${rates[0]}")" -v b="$(median "${rates[1]}")" 'BEGIN { printf "ratio default/threads=1: %.2fx\n", b / a }'
