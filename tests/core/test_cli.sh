#!/usr/bin/env bash
# The command line end to end: validate exit codes, graph, plugins, inspect, run, SIGINT
# draining, docs --check, --help everywhere.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/test-plugins"
fail() { echo "FAIL: $*" >&2; exit 1; }

cat > "$work/ok.toml" <<'TOML'
[pipeline]
name = "cli"
stats_interval = "0s"
[inputs.src]
plugin = "canned"
repeat = 3
messages = [ { id = "a", payload = "GET /keep HTTP/1.1\r\n\r\n" } ]
[filters.keep]
plugin = "keep"
from = ["src"]
contains = "/keep"
[outputs.out]
plugin = "collect"
from = ["keep"]
path = "OUT"
TOML
sed -i "s|OUT|$work/out.txt|" "$work/ok.toml"

"$DOPPEL" validate "$work/ok.toml" | grep -q "valid (3 stages" || fail "validate ok"
printf '[inputs.src]\nplugin = "nope"\n[filters.f]\nplugin = "keep"\nfrom = ["src"]\n' > "$work/bad.toml"
set +e
"$DOPPEL" validate "$work/bad.toml" 2> "$work/err.txt"; rc=$?
set -e
[ "$rc" = 78 ] || fail "validate exit code $rc, want 78"
grep -q "bad.toml:2:1: unknown input plugin \"nope\"" "$work/err.txt" || fail "validate message: $(cat "$work/err.txt")"
grep -q "bad.toml:3:1: missing required option \"contains\"" "$work/err.txt" || fail "second error missing"

"$DOPPEL" graph "$work/ok.toml" > "$work/g.dot"
grep -q '"src" -> "keep" \[label="request, response, replay"\]' "$work/g.dot" || fail "graph edge"
"$DOPPEL" plugins | grep -q "^keep *filter" || fail "plugins list"
"$DOPPEL" inspect keep | grep -q "contains  string, required" || fail "inspect"
set +e; "$DOPPEL" inspect nosuch 2>/dev/null; rc=$?; set -e
[ "$rc" = 2 ] || fail "inspect unknown exit $rc"

"$DOPPEL" run "$work/ok.toml" 2> "$work/run.txt"
[ "$(wc -l < "$work/out.txt")" = 3 ] || fail "run output"
grep -q "doppel summary for pipeline \"cli\"" "$work/run.txt" || fail "summary"
"$DOPPEL" run --dry-run "$work/ok.toml" | grep -q "3 canned messages" || fail "dry run"

# SIGINT drains and exits 0 with a summary; a live input that never ends.
metrics_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/endless.toml" <<TOML
[pipeline]
stats_interval = "100ms"
metrics = "127.0.0.1:$metrics_port"
[inputs.src]
plugin = "canned"
repeat = 100000000
messages = [ { id = "a", payload = "GET /keep HTTP/1.1\r\n\r\n" } ]
[outputs.out]
plugin = "collect"
from = ["src"]
path = "/dev/null"
TOML
"$DOPPEL" run "$work/endless.toml" 2> "$work/endless.txt" &
pid=$!
for _ in $(seq 50); do grep -q "^stats:" "$work/endless.txt" 2>/dev/null && break; sleep 0.1; done
grep -q "^stats: src\[out=" "$work/endless.txt" || fail "no stats line: $(head -3 "$work/endless.txt")"
curl -sf "http://127.0.0.1:$metrics_port/metrics" > "$work/metrics.txt" || fail "/metrics not served"
grep -q '^doppel_stage_out_total{stage="src"} [1-9]' "$work/metrics.txt" || fail "metrics: $(head -5 "$work/metrics.txt")"
grep -q '^# TYPE doppel_stage_dropped_total counter' "$work/metrics.txt" || fail "metrics types"
kill -INT "$pid"
set +e; wait "$pid"; rc=$?; set -e
[ "$rc" = 0 ] || fail "SIGINT exit code $rc"
grep -q "SIGINT received: draining" "$work/endless.txt" || fail "drain log"
grep -q "doppel summary" "$work/endless.txt" || fail "summary after SIGINT"

for sub in run validate graph plugins inspect test docs; do
  "$DOPPEL" "$sub" --help | grep -q "Usage" || fail "$sub --help"
done
"$DOPPEL" --version | grep -q "^doppel 0.1.0" || fail "--version"

# Global options before or after the subcommand (and among `doppel gor`'s GoReplay flags).
(
  unset DOPPEL_PLUGIN_PATH
  tp="$DOPPEL_BUILD_DIR/test-plugins" refused="$DOPPEL_BUILD_DIR/test-plugins-refused"
  "$DOPPEL" plugins --plugin-dir "$tp" | grep -q "^keep *filter" || fail "plugins --plugin-dir DIR"
  "$DOPPEL" --plugin-dir "$tp" plugins | grep -q "^keep *filter" || fail "--plugin-dir DIR plugins"
  "$DOPPEL" validate "$work/ok.toml" --plugin-dir="$tp" | grep -q "valid (3 stages" || fail "validate FILE --plugin-dir=DIR"
  "$DOPPEL" inspect keep --plugin-dir "$tp" | grep -q "contains  string, required" || fail "inspect NAME --plugin-dir"
  "$DOPPEL" run "$work/ok.toml" --plugin-dir "$tp" --log-level warn 2> /dev/null || fail "run FILE --plugin-dir --log-level"
  # --log-level takes effect wherever it is: the refused libraries are warned about at
  # level warn, not at level error.
  "$DOPPEL" plugins --plugin-dir "$refused" 2>&1 >/dev/null | grep -q "ABI mismatch" || fail "refused library not warned"
  for args in "--log-level error plugins --plugin-dir $refused" "plugins --plugin-dir $refused --log-level error"; do
    # shellcheck disable=SC2086
    out=$("$DOPPEL" $args 2>&1 >/dev/null)
    [ -z "$out" ] || fail "doppel $args still logs: $out"
  done
  set +e; "$DOPPEL" plugins --log-level loud 2>/dev/null; rc=$?; set -e
  [ "$rc" = 2 ] || fail "bad --log-level after the subcommand: exit $rc"
  "$DOPPEL" gor --plugin-dir "$tp" --input-file x.gor --output-stdout --log-level warn --print-pipeline |
    grep -q 'plugin = "file"' || fail "gor with global options among its flags"
  set +e; "$DOPPEL" gor --input-file x.gor --output-stdout --log-level loud --print-pipeline 2>/dev/null; rc=$?; set -e
  [ "$rc" = 2 ] || fail "bad --log-level among gor's flags: exit $rc"
)

# The options reference in docs/ is generated from the schemas and must be current.
unset DOPPEL_PLUGIN_PATH
"$DOPPEL" docs --check --output "$DOPPEL_SOURCE_DIR/docs/reference" || fail "docs/reference is stale"
echo "cli: all checks passed"
