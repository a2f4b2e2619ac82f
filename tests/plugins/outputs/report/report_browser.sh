#!/usr/bin/env bash
# Opens an HTML report in headless Chromium (no network) and checks that the tables and the
# SVG histogram rendered from the embedded data; saves a screenshot in the build dir.
set -euo pipefail
: "${DOPPEL_BUILD_DIR:?}"
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$CHROMIUM" ]]; then
  echo "FAIL: chromium is not installed (apt-get install chromium)" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out_dir="$DOPPEL_BUILD_DIR/test-artifacts/report"
mkdir -p "$out_dir"
report="$out_dir/report.html"

REPORT_OUT="$report" "$DOPPEL_BUILD_DIR/tests/test_plugin_outputs_report" \
  -tc="a realistic report renders to a self-contained file" >/dev/null

flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run --disable-dev-shm-usage --user-data-dir="$work/profile")
# The report is served as file://; any network access would show as a failed fetch in the DOM
# dump (there is none: the report has no external reference).
timeout 60 "$CHROMIUM" "${flags[@]}" --virtual-time-budget=5000 --dump-dom "file://$report" >"$work/dom.html" 2>"$work/chromium.log" || {
  cat "$work/chromium.log" >&2; exit 1; }
timeout 60 "$CHROMIUM" "${flags[@]}" --window-size=1400,1800 --screenshot="$out_dir/report.png" "file://$report" \
  >/dev/null 2>>"$work/chromium.log" || { cat "$work/chromium.log" >&2; exit 1; }

dom="$work/dom.html"
fail=0
expect() {  # expect DESCRIPTION MIN_COUNT PATTERN
  local n
  n=$(grep -o -- "$3" "$dom" | wc -l)
  if (( n < $2 )); then echo "FAIL: $1: expected >= $2 of '$3', got $n" >&2; fail=1; else echo "ok: $1 ($n)"; fi
}
expect "script ran to the end" 1 'data-rendered="true"'
expect "endpoint rows (3 endpoints)" 3 '<tr><td>\(query\|input_hint\|intention\)</td>'
expect "match-rate bars" 3 'class="bar" style="width:'
expect "differing path rows" 3 '<summary><code>'
expect "goal row marked missed" 1 'class="goal missed">MISSED'
expect "latency percentile rows" 2 '<tr><th>\(original\|replay\)</th>'
expect "histogram svg" 1 '<svg[^>]*id="latency-histogram"'
expect "side-by-side sample of the top path" 1 '<div class="diff"><div class="hd">original</div><div class="hd">replay</div>'
expect "changed lines highlighted" 2 '<div class="chg">'
expect "changed characters marked" 2 '<mark>'
expect "histogram bars" 10 '<rect [^>]*class="bar-\(original\|replay\)"'
if grep -q 'undefined\|NaN' <(sed 's/<script.*<\/script>//' "$dom" | grep -o '<td[^>]*>[^<]*</td>'); then
  echo "FAIL: a table cell shows undefined/NaN" >&2; fail=1
fi
[[ -s "$out_dir/report.png" ]] || { echo "FAIL: no screenshot" >&2; fail=1; }
echo "screenshot: $out_dir/report.png"
exit $fail
