#!/usr/bin/env bash
# The quickstart: starts robot-api v1 and v2 on loopback, replays the recording of v1 traffic
# (robot-v1.gor) against v2 with `doppel run quickstart.toml`, writes report.html and
# verdicts.jsonl here (or in $OUT_DIR), prints the summary, and stops both servers.
# No root, nothing external. Exit code: doppel's (3 when a fail_if goal is missed).
# PIPELINE runs another pipeline of pipelines/ against the same servers (an example's run.sh).
#
#   pipelines/quickstart/run.sh                 # uses build/bin/doppel and build/bin/robot-api
#   BUILD_DIR=build-x pipelines/quickstart/run.sh
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${BUILD_DIR:-$root/build}
[[ "$build" = /* ]] || build="$root/$build"
doppel=${DOPPEL:-$build/bin/doppel}
robot_api=${ROBOT_API:-$build/bin/robot-api}
pipeline=${PIPELINE:-quickstart/quickstart.toml}
out=${OUT_DIR:-$(dirname "$root/pipelines/$pipeline")}
for bin in "$doppel" "$robot_api"; do
  [[ -x "$bin" ]] || { echo "run.sh: $bin not found; build first: cmake -S . -B build -G Ninja && ninja -C build" >&2; exit 2; }
done

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$robot_api" --version v1 --port 18081 2>/dev/null & pids+=($!)   # v1: what the recording came from
"$robot_api" --version v2 --port 18082 2>/dev/null & pids+=($!)   # v2: the candidate
for port in 18081 18082; do
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.05
  done
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null || { echo "run.sh: robot-api did not start on port $port" >&2; exit 2; }
done

# doppel resolves the pipeline's relative paths from its directory, where its outputs go; for
# another $out it runs in a scratch copy of pipelines/ (paths between pipelines keep working).
pipelines=$root/pipelines
scratch=""
if [[ "$out" != "$(dirname "$pipelines/$pipeline")" ]]; then
  mkdir -p "$out"
  scratch=$(mktemp -d)
  cp -r "$pipelines" "$scratch/"
  pipelines=$scratch/pipelines
fi
work=$(dirname "$pipelines/$pipeline")
set +e
(cd "$work" && "$doppel" ${DOPPEL_PLUGIN_DIR:+--plugin-dir "$DOPPEL_PLUGIN_DIR"} run "$(basename "$pipeline")")
status=$?
set -e
if [[ -n "$scratch" ]]; then
  cp "$work/report.html" "$work/verdicts.jsonl" "$out/" 2>/dev/null || true
  rm -rf "$scratch"
fi
echo "report: $out/report.html"
exit $status
