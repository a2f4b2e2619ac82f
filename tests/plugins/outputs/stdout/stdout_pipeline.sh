#!/usr/bin/env bash
# Integration: a .gor file -> stdout output through `doppel run`: standard output carries exactly
# the records (byte-exact, binary bodies included) and nothing else; logs stay on stderr.
set -euo pipefail
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"

sep=$'\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n'
{
  printf '1 0000000000000000000000a1 1700000000000000000 0\nPOST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\n\x00\xff\r\n\x01%s' "$sep"
  printf '2 0000000000000000000000a1 1700000000001000000 1000000\nHTTP/1.1 200 OK\r\n\r\n%s' "$sep"
  printf '3 0000000000000000000000a1 1700000000002000000 900000\nHTTP/1.1 500 Internal Server Error\r\n\r\n%s' "$sep"
} > "$work/in.gor"

cat > "$work/p.toml" <<TOML
[inputs.src]
plugin = "file"
path = "$work/in.gor"
max_speed = true

[outputs.out]
plugin = "stdout"
from = ["src"]
TOML

"$DOPPEL" run "$work/p.toml" > "$work/stdout.gor" 2> "$work/run.log" || { cat "$work/run.log"; exit 1; }
cmp "$work/in.gor" "$work/stdout.gor" || { echo "FAIL: stdout differs from the input"; xxd "$work/stdout.gor" | head -20; exit 1; }
echo "ok: stdout carries the records byte-exact"

# The same through the null output: nothing on stdout, the counts in the summary.
sed -e 's|plugin = "stdout"|plugin = "null"|' "$work/p.toml" > "$work/null.toml"
"$DOPPEL" run "$work/null.toml" > "$work/null.out" 2> "$work/run.log" || { cat "$work/run.log"; exit 1; }
[ ! -s "$work/null.out" ] || { echo "FAIL: the null output wrote to stdout"; exit 1; }
grep -Eq "requests: 1$" "$work/run.log" && grep -Eq "replays: 1$" "$work/run.log" ||
  { echo "FAIL: null output counts missing from the summary"; cat "$work/run.log"; exit 1; }
echo "ok: null output counts and discards"
