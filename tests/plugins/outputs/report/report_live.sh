#!/usr/bin/env bash
# The report's live view against a running pipeline: `doppel run` replays the quickstart's
# recording (300 requests at 12/s: about 25 s of verdicts) against robot-api v2, with the report
# served on a loopback port. Headless Chromium loads the page twice a few seconds apart (DOM
# dumps and screenshots in $DOPPEL_BUILD_DIR/test-artifacts/report/): the verdict total shown
# grows, and the page refreshed itself in place; /api/summary's totals grow too. Then a run whose
# live port is taken fails at start, saying so, before writing anything.
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL:?}"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$CHROMIUM" ]]; then
  echo "FAIL: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi
robot_api=$DOPPEL_BUILD_DIR/bin/robot-api
[[ -x "$robot_api" ]] || { echo "FAIL: $robot_api not built" >&2; exit 1; }

work=$(mktemp -d)
# The report file goes where any user may write: started as root, doppel works as another user.
chmod 0755 "$work"
mkdir -m 0777 "$work/out"
out_dir="$DOPPEL_BUILD_DIR/test-artifacts/report"
mkdir -p "$out_dir"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

candidate=$((20000 + ($$ + 17) % 12000))
live=$((20000 + ($$ + 4017) % 12000))

"$robot_api" --version v2 --port "$candidate" 2>"$work/robot-api.log" & pids+=($!)
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null && break
  sleep 0.05
done

pipeline() {  # pipeline LISTEN_PORT
  cat <<EOF
[pipeline]
name = "live-view"
stats_interval = "0s"

[inputs.recording]
plugin = "file"
path = "$DOPPEL_SOURCE_DIR/pipelines/quickstart/robot-v1.gor"
speed = "12/s"                     # evenly paced: verdicts keep coming for about 25 s

[outputs.candidate]
plugin = "http"
from = ["recording"]
url = "http://127.0.0.1:$candidate"
track_response = true

[comparators.body]
plugin = "json"
ignore = ["results.trace_id"]

[middleware.compare]
plugin = "compare"
from = ["recording", "candidate"]
[[middleware.compare.rule]]
path = ".*"
fail = ["status"]
warn = ["body"]

[outputs.report]
plugin = "report"
from = ["compare"]
title = "live view test"
html = "$work/out/report.html"
listen = "127.0.0.1:$1"
live_refresh = "1s"
EOF
}

pipeline "$live" >"$work/live.toml"
"$DOPPEL" run "$work/live.toml" >"$work/run.out" 2>"$work/run.err" & doppel_pid=$!
pids+=("$doppel_pid")

total_now() {  # the verdict total /api/summary reports, or nothing
  curl -sf --max-time 5 "http://127.0.0.1:$live/api/summary" |
    /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["total"])' 2>/dev/null || true
}
first_api=""
for _ in $(seq 200); do
  first_api=$(total_now)
  [[ -n "$first_api" && "$first_api" -gt 0 ]] && break
  kill -0 "$doppel_pid" 2>/dev/null || { echo "FAIL: doppel run ended early" >&2; cat "$work/run.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$first_api" && "$first_api" -gt 0 ]] || { echo "FAIL: no verdicts on /api/summary" >&2; cat "$work/run.err" >&2; exit 1; }
grep -q "live view on http://127.0.0.1:$live/" "$work/run.err" || {
  echo "FAIL: the live view's address is not logged" >&2; cat "$work/run.err" >&2; exit 1; }

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run --disable-dev-shm-usage --user-data-dir="$work/profile")
# load N BUDGET_MS: the DOM after BUDGET_MS of virtual time (fetches pause it: each refresh
# completes), and a screenshot.
load() {
  timeout 60 "$CHROMIUM" "${flags[@]}" --virtual-time-budget="$2" --dump-dom "http://127.0.0.1:$live/" \
    >"$out_dir/live-$1.html" 2>>"$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }
  timeout 60 "$CHROMIUM" "${flags[@]}" --virtual-time-budget="$2" --window-size=1400,1400 \
    --screenshot="$out_dir/live-$1.png" "http://127.0.0.1:$live/" >/dev/null 2>>"$work/chromium.log" ||
    { cat "$work/chromium.log" >&2; exit 1; }
}
attribute() {  # attribute FILE NAME: the value of NAME="..." on <body>
  grep -o "<body[^>]*>" "$1" | grep -o " $2=\"[^\"]*\"" | head -n1 | cut -d'"' -f2
}

fail=0
load 1 2500
sleep 3
load 2 3500
second_api=$(total_now)
kill -0 "$doppel_pid" 2>/dev/null || { echo "FAIL: the run ended before the second load; the test proves nothing" >&2; fail=1; }

shown1=$(attribute "$out_dir/live-1.html" data-total)
shown2=$(attribute "$out_dir/live-2.html" data-total)
updates=$(attribute "$out_dir/live-2.html" data-live-updates)
state=$(attribute "$out_dir/live-2.html" data-live)
echo "totals shown: $shown1 then $shown2; /api/summary: $first_api then $second_api; in-place updates: ${updates:-none}"
if [[ -z "$shown1" || -z "$shown2" || "$shown2" -le "$shown1" ]]; then
  echo "FAIL: the verdict total shown did not grow between the two loads" >&2; fail=1
fi
if [[ -z "$updates" || "$updates" -lt 1 ]]; then
  echo "FAIL: the page did not refresh itself in place (no data-live-updates)" >&2; fail=1
fi
[[ "$state" == "live" ]] || { echo "FAIL: the page does not say it is live (data-live=\"$state\")" >&2; fail=1; }
grep -q 'id="live-status" class="live on">● live · updated ' "$out_dir/live-2.html" ||
  { echo "FAIL: no live badge with the time of the last update" >&2; fail=1; }
grep -q "<b class=\"\">$shown2</b>" "$out_dir/live-2.html" ||
  { echo "FAIL: the verdicts card does not show $shown2" >&2; fail=1; }
if [[ -z "$second_api" || "$second_api" -le "$first_api" ]]; then
  echo "FAIL: /api/summary's total did not grow" >&2; fail=1
fi
for n in 1 2; do [[ -s "$out_dir/live-$n.png" ]] || { echo "FAIL: no screenshot live-$n.png" >&2; fail=1; }; done

# The run ends by itself once the recording is replayed; the live view goes with it.
for _ in $(seq 600); do kill -0 "$doppel_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$doppel_pid" 2>/dev/null; then echo "FAIL: doppel run did not end" >&2; fail=1; fi
set +e
wait "$doppel_pid"
status=$?
set -e
[[ $status -eq 0 ]] || { echo "FAIL: doppel run exited $status" >&2; cat "$work/run.err" >&2; fail=1; }
if curl -sf --max-time 2 "http://127.0.0.1:$live/" >/dev/null; then
  echo "FAIL: the live view still answers after the run" >&2; fail=1
fi
[[ -s "$work/out/report.html" ]] || { echo "FAIL: the run wrote no report.html" >&2; fail=1; }

# A taken port (robot-api's) fails the run at start, naming the address, before any file is written.
rm -f "$work/out/report.html"
pipeline "$candidate" >"$work/taken.toml"
set +e
timeout 60 "$DOPPEL" run "$work/taken.toml" >/dev/null 2>"$work/taken.err"
status=$?
set -e
expected="pipeline failed to start: output \"report\": cannot serve the live report on 127.0.0.1:$candidate: Address already in use; set \`listen\` to a free address, or to \"\" to turn the live view off"
if [[ $status -ne 1 ]] || ! grep -qF "$expected" "$work/taken.err"; then
  echo "FAIL: a taken live port: exit $status (expected 1), stderr:" >&2; cat "$work/taken.err" >&2; fail=1
else
  echo "ok: a taken port fails the run: $(grep -F 'cannot serve' "$work/taken.err" | head -n1)"
fi
[[ ! -e "$work/out/report.html" ]] || { echo "FAIL: the failed run wrote its report" >&2; fail=1; }
echo "screenshots: $out_dir/live-1.png $out_dir/live-2.png"
exit $fail
