#!/usr/bin/env bash
# The seed's checks in Python give the verdicts of the declarative rules: runs the quickstart
# (nonempty comparators) and pipelines/examples/robot-python-checks (the same checks in
# checks.py, through the `process` comparator and doppel_compare.py) on the same recording and
# compares every verdict, check by check. Also: the Python program's stderr reaches doppel's
# log under the comparator's name, and its counters reach the summary.
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/declarative" "$work/python"
run() {  # run.sh OUT_DIR
  set +e
  OUT_DIR="$2" BUILD_DIR="$DOPPEL_BUILD_DIR" DOPPEL="$DOPPEL" DOPPEL_PLUGIN_DIR="$DOPPEL_BUILD_DIR/plugins" \
    timeout 180 bash "$1" >"$2/stdout" 2>"$2/stderr"
  local status=$?
  set -e
  [[ $status -eq 0 ]] || { cat "$2/stderr" >&2; echo "FAIL: $1 exited $status" >&2; exit 1; }
}
run "$DOPPEL_SOURCE_DIR/pipelines/quickstart/run.sh" "$work/declarative"
run "$DOPPEL_SOURCE_DIR/pipelines/examples/robot-python-checks/run.sh" "$work/python"

python3 - "$work/declarative/verdicts.jsonl" "$work/python/verdicts.jsonl" <<'PY'
import json, sys
def load(path):
    return {v["id"]: v for v in map(json.loads, open(path, encoding="utf-8"))}
declarative, python = load(sys.argv[1]), load(sys.argv[2])
renamed = {"hints": "hints_py", "intentions": "intentions_py"}
def checks(v, rename):
    return sorted((rename.get(c["comparator"], c["comparator"]), c["severity"], c["path"], c["kind"],
                   c["original"], c["replay"]) for c in v["checks"])
problems = []
if set(declarative) != set(python):
    problems.append("different ids: %d vs %d verdicts" % (len(declarative), len(python)))
escalated = 0
for id, d in declarative.items():
    p = python.get(id)
    if p is None:
        continue
    if d["verdict"] != p["verdict"]:
        problems.append("%s: %s vs %s" % (id, d["verdict"], p["verdict"]))
    elif checks(d, renamed) != checks(p, {}):
        problems.append("%s: checks differ:\n  %s\n  %s" % (id, checks(d, renamed), checks(p, {})))
    escalated += any(c["comparator"] in ("hints_py", "intentions_py") for c in p["checks"])
print("verdicts: %d, the same in both; %d decided by a Python check" % (len(python), escalated))
if escalated == 0:
    problems.append("no verdict came from a Python check: the comparison proves nothing")
for p in problems[:20]:
    print("FAIL:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
# The program's counters are in the summary; nothing timed out, crashed or was garbage.
stderr="$work/python/stderr"
for counter in judgements answers; do
  grep -Eq "^ +$counter: [1-9]" "$stderr" || { echo "FAIL: no $counter in the summary" >&2; cat "$stderr" >&2; exit 1; }
done
for counter in timeouts owed_on_exit garbage_lines bad_answers unknown_ids; do
  if grep -Eq "^ +$counter: [1-9]" "$stderr"; then echo "FAIL: $counter in the summary" >&2; cat "$stderr" >&2; exit 1; fi
done
echo "ok"
