#!/usr/bin/env bash
# Integration: .gor file -> url filter -> .gor file through `doppel run`, compared byte for
# byte; a .gz input written back uncompressed; `doppel run --dry-run` on the same pipeline.
set -euo pipefail
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"

sep=$'\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n'
# record TYPE ID TS LATENCY PAYLOAD-FILE: appends one record to stdout.
record() {
  printf '%s %s %s %s\n' "$1" "$2" "$3" "$4"
  cat "$5"
  printf '%s' "$sep"
}

# Payloads with binary bytes: NULs, CRLFs, 0xFF, parts of the separator.
printf 'POST /keep/1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n\x00\x01\xff\r\n\xF0\x9F\x90\xB5\n\x00ab' > "$work/keep1"
printf 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\x00\r\n' > "$work/resp1"
printf 'GET /drop HTTP/1.1\r\nHost: a\r\n\r\n' > "$work/drop"
printf 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n' > "$work/resp2"
printf 'GET /keep/2?x=1 HTTP/1.1\r\nHost: a\r\n\r\n' > "$work/keep2"
printf 'HTTP/1.1 204 No Content\r\n\r\n' > "$work/resp3"

t=1700000000000000000
{
  record 1 aaaaaaaaaaaaaaaaaaaaaaa1 $((t))          0       "$work/keep1"
  record 2 aaaaaaaaaaaaaaaaaaaaaaa1 $((t + 2000000)) 2000000 "$work/resp1"
  record 1 aaaaaaaaaaaaaaaaaaaaaaa2 $((t + 10000000)) 0      "$work/drop"
  record 2 aaaaaaaaaaaaaaaaaaaaaaa2 $((t + 11000000)) 1000000 "$work/resp2"
  record 1 aaaaaaaaaaaaaaaaaaaaaaa3 $((t + 20000000)) 0      "$work/keep2"
  record 2 aaaaaaaaaaaaaaaaaaaaaaa3 $((t + 21000000)) 1000000 "$work/resp3"
} > "$work/in.gor"
{
  record 1 aaaaaaaaaaaaaaaaaaaaaaa1 $((t))          0       "$work/keep1"
  record 2 aaaaaaaaaaaaaaaaaaaaaaa1 $((t + 2000000)) 2000000 "$work/resp1"
  record 1 aaaaaaaaaaaaaaaaaaaaaaa3 $((t + 20000000)) 0      "$work/keep2"
  record 2 aaaaaaaaaaaaaaaaaaaaaaa3 $((t + 21000000)) 1000000 "$work/resp3"
} > "$work/expected.gor"

cat > "$work/filter.toml" <<TOML
[pipeline]
name = "gor-filter"

[inputs.src]
plugin = "file"
path = "$work/in.gor"
speed = "200%"

[filters.keep]
plugin = "url"
from = ["src"]
allow = ["^/keep/"]

[outputs.out]
plugin = "file"
from = ["keep"]
path = "$work/out.gor"
TOML

"$DOPPEL" run "$work/filter.toml" 2> "$work/run.log" || { cat "$work/run.log"; exit 1; }
if ! cmp "$work/expected.gor" "$work/out.gor"; then
  echo "FAIL: filtered output differs from the expected records"
  xxd "$work/out.gor" | head -40
  exit 1
fi
echo "ok: file -> url filter -> file is byte-exact"

# gzip in, plain out: the bytes equal the uncompressed input.
gzip -c "$work/in.gor" > "$work/in.gor.gz"
cat > "$work/gz.toml" <<TOML
[inputs.src]
plugin = "file"
path = "$work/in.gor.gz"
max_speed = true

[outputs.out]
plugin = "file"
from = ["src"]
path = "$work/copy.gor"
TOML
"$DOPPEL" run "$work/gz.toml" 2> "$work/run.log" || { cat "$work/run.log"; exit 1; }
cmp "$work/in.gor" "$work/copy.gor" || { echo "FAIL: gzip copy differs"; exit 1; }
echo "ok: .gz input copied byte-exact"

# A corrupt record in the middle: skipped, counted in the summary, the rest copied.
{
  record 1 aaaaaaaaaaaaaaaaaaaaaaa1 $((t)) 0 "$work/keep1"
  printf 'garbage without a header%s' "$sep"
  record 1 aaaaaaaaaaaaaaaaaaaaaaa3 $((t + 1)) 0 "$work/keep2"
} > "$work/bad.gor"
sed -e "s|in.gor.gz|bad.gor|" -e "s|copy.gor|bad-copy.gor|" "$work/gz.toml" > "$work/bad.toml"
# The good records go on; the corrupt one is a loss of the source, so the run exits 5.
rc=0
"$DOPPEL" run "$work/bad.toml" 2> "$work/run.log" || rc=$?
[ "$rc" -eq 5 ] || { cat "$work/run.log"; echo "FAIL: exit $rc for a file with a corrupt record, expected 5"; exit 1; }
grep -q "corrupt_record" "$work/run.log" || { echo "FAIL: no corrupt_record count in the summary"; cat "$work/run.log"; exit 1; }
grep -q "byte offset" "$work/run.log" || { echo "FAIL: the corrupt record's offset was not logged"; cat "$work/run.log"; exit 1; }
[ "$(grep -c 'aaaaaaaaaaaaaaaaaaaaaaa' "$work/bad-copy.gor")" = 2 ] || { echo "FAIL: the good records were not copied"; exit 1; }
echo "ok: corrupt record skipped and counted"

# Dry run: count, span, duration at 200% (gaps 10 ms and 10 ms -> 10 ms in total). The file
# output refuses an existing file at validation, even for a dry run.
rm -f "$work/out.gor"
"$DOPPEL" run --dry-run "$work/filter.toml" > "$work/dry.txt" 2>&1 || { cat "$work/dry.txt"; exit 1; }
grep -q "records: 6 (3 requests, 3 responses, 0 replays)" "$work/dry.txt" || { echo "FAIL: dry run count"; cat "$work/dry.txt"; exit 1; }
grep -q "expected duration at 200%: 10ms" "$work/dry.txt" || { echo "FAIL: dry run duration"; cat "$work/dry.txt"; exit 1; }
echo "ok: dry run"
