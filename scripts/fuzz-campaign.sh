#!/usr/bin/env bash
# A fuzzing campaign: builds the fuzz targets (scripts/build-fuzz.sh) and runs every one of them
# for an even share of MINUTES (default 30), FUZZ_JOBS (default 2) at a time. The corpora grow
# in build-fuzz/corpus/<target> from one campaign to the next; crashes land in
# build-fuzz/fuzz-crashes/. A target that crashes is restarted for the rest of its time (at
# most 5 crashes each). Prints per target: runs, exec/s, coverage, corpus size, crashes.
# Exits 1 when anything crashed.
#   scripts/fuzz-campaign.sh 30
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-30}
jobs=${FUZZ_JOBS:-2}
build_dir=${BUILD_DIR:-build-fuzz}
BUILD_DIR=$build_dir scripts/build-fuzz.sh -DDOPPEL_FUZZ_EVERY_PLUGIN=ON
# Crash reports with function names and lines.
for symbolizer in llvm-symbolizer-16 llvm-symbolizer llvm-symbolizer-14; do
  command -v "$symbolizer" >/dev/null && { export ASAN_SYMBOLIZER_PATH=${ASAN_SYMBOLIZER_PATH:-$(command -v "$symbolizer")}; break; }
done

mapfile -t targets < <(grep -v '^$' "$build_dir/fuzz/targets.tsv")
[ ${#targets[@]} -gt 0 ] || { echo "no fuzz targets in $build_dir/fuzz/targets.tsv" >&2; exit 1; }
seconds=$((minutes * 60 * jobs / ${#targets[@]}))
[ "$seconds" -ge 10 ] || seconds=10
logs="$build_dir/campaign"
rm -rf "$logs"
mkdir -p "$logs"
echo "fuzz campaign: ${#targets[@]} targets, ${seconds}s each, $jobs at a time (logs in $logs)"

# Runs one manifest line (name, seed corpus, flags; tab-separated) until its time is used.
run_target() {
  local fields name seeds flags corpus deadline left crashes=0 k=0
  IFS=$'\t' read -r -a fields <<< "$1"
  name=${fields[0]}
  seeds=${fields[1]}
  flags=("${fields[@]:2}")
  corpus="$build_dir/corpus/$name"
  mkdir -p "$corpus"
  deadline=$((SECONDS + seconds))
  while left=$((deadline - SECONDS)) && [ "$left" -gt 0 ]; do
    k=$((k + 1))
    if "$build_dir/fuzz/$name" -max_total_time="$left" -print_final_stats=1 "${flags[@]}" "$corpus" "$seeds" \
         >"$logs/$name.$k.log" 2>&1; then
      break
    fi
    crashes=$((crashes + 1))
    [ "$crashes" -lt 5 ] || break
  done
  # Totals over the runs; coverage and features as the last run ended.
  local runs elapsed cov ft
  runs=$(cat "$logs/$name".*.log | sed -n 's/^stat::number_of_executed_units: *//p' | awk '{s += $1} END {print s + 0}')
  cov=$(cat "$logs/$name".*.log | grep -o 'cov: [0-9]*' | tail -n 1 | cut -d' ' -f2)
  ft=$(cat "$logs/$name".*.log | grep -o 'ft: [0-9]*' | tail -n 1 | cut -d' ' -f2)
  elapsed=$((seconds - (deadline - SECONDS > 0 ? deadline - SECONDS : 0)))
  printf '%-26s %12s %8s %7s %7s %8s %8s\n' "$name" "$runs" "$((runs / (elapsed > 0 ? elapsed : 1)))" "${cov:-?}" \
    "${ft:-?}" "$(find "$corpus" -type f | wc -l)" "$crashes" >"$logs/$name.summary"
}

for line in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_target "$line" &
done
wait

printf '%-26s %12s %8s %7s %7s %8s %8s\n' target runs exec/s cov ft corpus crashes
cat "$logs"/*.summary
if grep -q -v ' 0$' "$logs"/*.summary; then
  echo "crashes (reproduce: build-fuzz/fuzz/<target> FILE):"
  grep -l -E 'ERROR: (libFuzzer|AddressSanitizer|UndefinedBehaviorSanitizer)|runtime error' "$logs"/*.log |
    xargs grep -h -o 'Test unit written to .*' | sed 's/Test unit written to /  /' | sort -u
  exit 1
fi
