#!/usr/bin/env bash
# The Grafana dashboard (packaging/grafana/doppel-dashboard.json) and the alert rules in
# docs/operations.md query only metrics that exist: a real pipeline (live capture on lo, replay,
# compare, report) runs with /metrics on, and every doppel_* name in every expression must be
# in its scrape. Also checks the dashboard is importable JSON (unique panel ids, a templated
# data source, panels on the grid).
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "live capture needs root (raw sockets)"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
origin=$((20000 + $$ % 12000))
candidate=$((origin + 1))
metrics=$((origin + 2))
mkdir -p "$work/site"
echo '{"answer": 42}' > "$work/site/data.json"
for port in "$origin" "$candidate"; do
  python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/site" > /dev/null 2>&1 &
  pids+=($!)
done
cat > "$work/p.toml" <<TOML
[pipeline]
name = "dashboard-check"
metrics = "127.0.0.1:$metrics"
[inputs.capture]
plugin = "raw"
interface = "lo"
port = $origin
track_response = true
[filters.only_data]
plugin = "url"
from = ["capture"]
allow = ["^/data"]
[outputs.candidate]
plugin = "http"
from = ["only_data"]
url = "http://127.0.0.1:$candidate"
track_response = true
[comparators.body]
plugin = "json"
[middleware.compare]
plugin = "compare"
from = ["only_data", "candidate"]
fail = ["status", "body"]
[outputs.report]
plugin = "report"
from = ["compare"]
jsonl = "$work/verdicts.jsonl"
TOML
for port in "$origin" "$candidate"; do
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/data.json" && break; sleep 0.1; done
  curl -s -o /dev/null "http://127.0.0.1:$port/data.json" || fail "the web server on port $port did not start"
done
"$DOPPEL" run "$work/p.toml" 2> "$work/log" &
doppel_pid=$!
pids+=($doppel_pid)
for _ in $(seq 100); do grep -q "raw: capturing" "$work/log" && break; sleep 0.1; done
grep -q "raw: capturing" "$work/log" || { cat "$work/log" >&2; fail "capture did not start"; }
sleep 0.3
for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$origin/data.json"; curl -s -o /dev/null "http://127.0.0.1:$origin/other"; done
# The capture publishes its counters once a second: wait for them as well as for the verdicts.
complete() {
  grep -q '^doppel_report_jsonl_written_total{stage="report"} 3' "$work/scrape.txt" &&
    grep -q '^doppel_raw_requests_total{stage="capture"} 6' "$work/scrape.txt"
}
for _ in $(seq 50); do
  curl -s "http://127.0.0.1:$metrics/metrics" > "$work/scrape.txt" || true
  complete && break
  sleep 0.2
done
complete || { cat "$work/scrape.txt" >&2; fail "verdicts or capture counters did not arrive"; }
kill -INT "$doppel_pid"
wait "$doppel_pid" || true

python3 - "$DOPPEL_SOURCE_DIR/packaging/grafana/doppel-dashboard.json" "$DOPPEL_SOURCE_DIR/docs/operations.md" "$work/scrape.txt" <<'PY'
import json, re, sys
dashboard_path, operations_path, scrape_path = sys.argv[1:]
scrape = open(scrape_path).read()
known = set()
for line in scrape.splitlines():
    m = re.match(r"# (?:HELP|TYPE) (\S+)", line) or re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", line)
    if m:
        known.add(m.group(1))
def names(expr):
    return set(re.findall(r"\bdoppel_[a-z0-9_]+\b", expr))
problems = []
dashboard = json.load(open(dashboard_path))
assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS", "no templated data source"
ids = [p["id"] for p in dashboard["panels"]]
assert len(ids) == len(set(ids)), "panel ids repeat"
exprs = []
for p in dashboard["panels"]:
    g = p["gridPos"]
    assert g["x"] + g["w"] <= 24 and g["w"] > 0 and g["h"] > 0, "panel %r off the grid" % p["title"]
    for t in p.get("targets", []):
        assert t["datasource"]["uid"] == "${DS_PROMETHEUS}", p["title"]
        exprs.append(("dashboard: " + p["title"], t["expr"]))
for v in dashboard["templating"]["list"]:
    exprs.append(("variable " + v["name"], v["query"]["query"]))
text = open(operations_path).read()
block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
for m in re.finditer(r"expr: (>\n(?:\s{10}.*\n)+|.*)", block):
    exprs.append(("alert", m.group(1)))
alerts = len(re.findall(r"- alert:", block))
assert alerts >= 5 and sum(1 for w, _ in exprs if w == "alert") == alerts, "alert expressions not all found"
for where, expr in exprs:
    found = names(expr)
    if not found:
        problems.append("%s queries no doppel metric: %s" % (where, expr))
    for name in found - known:
        problems.append("%s: %s is not in a real scrape" % (where, name))
if problems:
    print("\n".join(problems))
    sys.exit(1)
print("ok: %d expressions, %d alerts, %d metric names scraped" % (len(exprs), alerts, len(known)))
PY
