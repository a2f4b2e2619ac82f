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

python3 - "$work/pairs.bin" "$pairs" 2>&1 <<'PY'
import json, random, sys
path, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(16888)
words = "robot hint query intention weather music alarm timer news map call light door".split()
def item(i):
    return {"id": i, "text": " ".join(rng.choice(words) for _ in range(rng.randint(3, 12))),
            "score": round(rng.random(), 6), "tags": rng.sample(words, rng.randint(0, 4)),
            "source": {"name": rng.choice(words), "rank": rng.randint(1, 100), "cached": rng.random() < .5}}
def response():
    doc = {"code": 0, "msg": "ok", "meta": {"trace_id": "%032x" % rng.getrandbits(128), "elapsed_ms": rng.randint(1, 90)},
           "results": {"robot_id": str(rng.randint(600, 700)), "hint_list": [item(i) for i in range(rng.randint(8, 80))],
                       "intention_list": [{"name": rng.choice(words), "confidence": round(rng.random(), 4)} for _ in range(rng.randint(1, 6))]}}
    return doc
def mutate(doc):
    doc = json.loads(json.dumps(doc))
    hints = doc["results"]["hint_list"]
    for _ in range(rng.randint(1, 3)):
        k = rng.randint(0, 3)
        h = rng.choice(hints)
        if k == 0: h["score"] = round(h["score"] + 0.01, 6)
        elif k == 1: h.pop("tags", None)
        elif k == 2: h["text"] += " changed"
        else: hints.reverse()
    return doc
with open(path, "wb") as out:
    sizes = []
    for _ in range(n):
        a = response()
        while len(json.dumps(a)) > 20000: a["results"]["hint_list"].pop()
        b = mutate(a) if rng.random() < 1 / 3 else json.loads(json.dumps(a))
        b["meta"]["trace_id"] = "%032x" % rng.getrandbits(128)  # differs everywhere, ignored by both sides
        ta, tb = json.dumps(a).encode(), json.dumps(b).encode()
        sizes.append(len(ta))
        out.write(b"%d %d\n" % (len(ta), len(tb)) + ta + tb)
    sizes.sort()
    print("pairs: %d, original body size min/median/max: %d/%d/%d bytes" % (n, sizes[0], sizes[n // 2], sizes[-1]), file=sys.stderr)
PY

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
