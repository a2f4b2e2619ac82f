#!/usr/bin/env bash
# Runs pipelines/quickstart/run.sh (robot-api v1 and v2 on loopback, the shipped .gor
# recording of v1 replayed against v2 through compare and report) and checks its outputs.
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL:?}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
[[ -x "$DOPPEL_BUILD_DIR/bin/robot-api" ]] || { echo "FAIL: robot-api not built (pipelines/quickstart)" >&2; exit 1; }

set +e
OUT_DIR="$out" BUILD_DIR="$DOPPEL_BUILD_DIR" DOPPEL="$DOPPEL" DOPPEL_PLUGIN_DIR="$DOPPEL_BUILD_DIR/plugins" \
  timeout 120 bash "$DOPPEL_SOURCE_DIR/pipelines/quickstart/run.sh" >"$out/stdout" 2>"$out/stderr"
status=$?
set -e
cat "$out/stderr" >&2
fail=0
# v2 differs on purpose but stays under the quickstart's goal: the run succeeds.
[[ $status -eq 0 ]] || { echo "FAIL: run.sh exited $status" >&2; fail=1; }
[[ -s "$out/report.html" ]] || { echo "FAIL: no report.html" >&2; exit 1; }
[[ -s "$out/verdicts.jsonl" ]] || { echo "FAIL: no verdicts.jsonl" >&2; exit 1; }

python3 - "$out/verdicts.jsonl" "$DOPPEL_SOURCE_DIR/pipelines/quickstart/robot-v1.gor" <<'PY' || fail=1
import collections, json, re, sys
verdicts = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
# Expected: one verdict per recorded request on the three endpoints whose robot_id is 664.
gor = open(sys.argv[2], "rb").read().decode("utf-8", "replace")
expected = 0
for record in gor.split("\n\U0001F435\U0001F648\U0001F649\n"):
    if not record.startswith("1 "):
        continue
    head, _, body = record.partition("\r\n\r\n")
    target = head.split("\n", 1)[1].split(" ")[1]
    if target in ("/v2/robot/query", "/v2/robot/input_hint", "/v1/robot/intention") and \
            re.search(r'"robot_id":"?664"?[,}]', body):
        expected += 1
ids = [v["id"] for v in verdicts]
counts = collections.Counter(v["verdict"] for v in verdicts)
by_ep = collections.Counter((v["endpoint"], v["verdict"]) for v in verdicts)
print("verdicts:", dict(counts), "expected", expected)
print("by endpoint:", dict(by_ep))
ok = True
def check(cond, msg):
    global ok
    if not cond:
        print("FAIL:", msg, file=sys.stderr)
        ok = False
check(len(verdicts) == expected, f"{len(verdicts)} verdicts, expected {expected}")
check(len(set(ids)) == len(ids), "one verdict per request")
check(counts["replay_error"] == 0 and counts["missing_replay"] == 0 and counts["missing_original"] == 0,
      "every request was replayed and had its original")
check(counts["match"] > 0 and counts["warn"] > 0 and counts["mismatch"] > 0, "v2's changes show as all three verdicts")
for v in verdicts:
    check(v["endpoint"] in ("query", "input_hint", "intention"), "endpoint from the rule name")
    for c in v["checks"]:
        check(c["path"] != "results.trace_id", "trace_id is ignored")
    if v["endpoint"] == "intention" and v["verdict"] == "mismatch":
        check(any(c["comparator"] == "intentions" for c in v["checks"]), "intention mismatches come from an empty list")
    if v["endpoint"] == "input_hint" and v["verdict"] == "warn":
        check(all(c["severity"] == "warn" for c in v["checks"]), "input_hint warns carry only warn checks")
sys.exit(0 if ok else 1)
PY
grep -q 'robot-api v1 vs v2: [0-9]* verdicts' "$out/stderr" || { echo "FAIL: no summary table on stderr" >&2; fail=1; }
grep -q 'fail_if mismatch_rate > 40%' "$out/stderr" || { echo "FAIL: goals missing from the summary" >&2; fail=1; }
exit $fail
