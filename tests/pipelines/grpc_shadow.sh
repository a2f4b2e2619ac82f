#!/usr/bin/env bash
# gRPC shadowing end to end, with real grpcio servers and client: capture the baseline's
# traffic on `lo` (HTTP/2 with prior knowledge), replay every call over HTTP/2 to a candidate,
# compare per method with the `grpc` comparator and the service's descriptor set, and check
# every verdict: the candidate differs in one field, one status and one stream's message count
# (tests/support/grpc/greeter.py), and nothing else may be reported.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture needs root (raw sockets)"
python=/usr/bin/python3  # Debian's python3-grpcio is installed for the system interpreter
"$python" -c 'import grpc' 2>/dev/null || fail "python3-grpcio is not installed"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
greeter="$DOPPEL_SOURCE_DIR/tests/support/grpc/greeter.py"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export GREETER_PB_DIR="$work/pb"
"$python" "$greeter" generate "$GREETER_PB_DIR"
baseline=$((20000 + $$ % 12000))
candidate=$((baseline + 1))
"$python" "$greeter" serve "$baseline" baseline > "$work/baseline.log" 2>&1 &
pids+=($!)
"$python" "$greeter" serve "$candidate" candidate > "$work/candidate.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q serving "$work/baseline.log" && grep -q serving "$work/candidate.log" && break
  sleep 0.1
done
grep -q serving "$work/candidate.log" || fail "the gRPC servers did not start"

cat > "$work/shadow.toml" <<TOML
[pipeline]
name = "grpc-shadow"

[inputs.capture]
plugin = "raw"
interface = "lo"
port = $baseline
track_response = true

[outputs.candidate]
plugin = "http"
from = ["capture"]
url = "http://127.0.0.1:$candidate"
track_response = true

[comparators.messages]
plugin = "grpc"
descriptor_set = "$GREETER_PB_DIR/greeter.pb"
ignore = ["trace_id"]

[middleware.compare]
plugin = "compare"
from = ["capture", "candidate"]
timeout = "10s"
fail = ["messages"]

[outputs.report]
plugin = "report"
from = ["compare"]
jsonl = "$work/verdicts.jsonl"
TOML
"$DOPPEL" run "$work/shadow.toml" > "$work/doppel.out" 2> "$work/doppel.log" &
doppel_pid=$!
pids+=($doppel_pid)
for _ in $(seq 100); do
  grep -q "raw: capturing" "$work/doppel.log" && break
  sleep 0.1
done
grep -q "raw: capturing" "$work/doppel.log" || { cat "$work/doppel.log" >&2; fail "doppel did not start capturing"; }
sleep 0.3
rounds=3
"$python" "$greeter" call "$baseline" "$rounds" > "$work/calls.txt"
sleep 1
kill -INT "$doppel_pid"
timeout 30 tail --pid="$doppel_pid" -f /dev/null || fail "doppel did not exit after SIGINT"
wait "$doppel_pid" || { cat "$work/doppel.log" >&2; fail "doppel exited with an error"; }

"$python" - "$work/verdicts.jsonl" "$rounds" <<'PY' || { cat "$work/doppel.log" "$work/doppel.out" >&2; exit 1; }
import collections, json, sys
verdicts = [json.loads(line) for line in open(sys.argv[1])]
rounds = int(sys.argv[2])
# Calls are told apart by method, and within a method by what the comparator reported.
by_call = collections.defaultdict(list)
for v in verdicts:
    by_call[v["path"]].append(v)
methods = {p.rsplit("/", 1)[1]: vs for p, vs in by_call.items()}
expected = {"SayHello": 2, "ListGreetings": 2, "CollectNames": 1, "Chat": 1, "Lookup": 2}
for method, per_round in expected.items():
    got = len(methods.get(method, []))
    assert got == per_round * rounds, "%s: %d verdicts, expected %d" % (method, got, per_round * rounds)
assert len(verdicts) == sum(expected.values()) * rounds, "%d verdicts" % len(verdicts)
for v in verdicts:
    assert v["endpoint"] == v["path"], "endpoint %r is not the gRPC method %r" % (v["endpoint"], v["path"])
def checks(method, verdict):
    return [v for v in methods[method] if v["verdict"] == verdict]
# One field: SayHello("field") -> message differs; SayHello("same") matches.
field = checks("SayHello", "mismatch")
assert len(field) == rounds, field
for v in field:
    assert [(c["path"], c["kind"]) for c in v["checks"]] == [("[0].message", "changed")], v["checks"]
    assert "Hi, field" in v["checks"][0]["replay"], v["checks"]
# One status: Lookup("missing") NOT_FOUND vs INTERNAL.
status = checks("Lookup", "mismatch")
assert len(status) == rounds, status
for v in status:
    paths = {c["path"]: c for c in v["checks"]}
    assert "grpc-status" in paths, v["checks"]
    assert "5" in paths["grpc-status"]["original"] and "13" in paths["grpc-status"]["replay"], v["checks"]
    assert "grpc-message" in paths, v["checks"]
    assert "no such name: missing" in paths["grpc-message"]["original"], v["checks"]
    assert "lookup backend failed" in paths["grpc-message"]["replay"], v["checks"]
# One message count: ListGreetings("count") 2 vs 3 messages.
count = checks("ListGreetings", "mismatch")
assert len(count) == rounds, count
for v in count:
    lengths = [c for c in v["checks"] if c["kind"] == "length"]
    assert [c["path"] for c in lengths] == ["messages"], v["checks"]
    assert "2" in lengths[0]["original"] and "3" in lengths[0]["replay"], v["checks"]
# Everything else matches, trace_id ignored.
others = [v for v in verdicts if v not in field + status + count]
bad = [v for v in others if v["verdict"] != "match"]
assert not bad, bad[:2]
print("ok: %d verdicts, %d field, %d status, %d count differences" % (len(verdicts), len(field), len(status), len(count)))
PY
