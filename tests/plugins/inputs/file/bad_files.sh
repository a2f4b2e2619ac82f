#!/usr/bin/env bash
# Integration (issue 15, items 3 and 5): .gor files that are not what they should be, through
# `doppel validate` and `doppel run`:
#   random bytes (.gor, .gor.gz)     -> exit 78 at validation, the file named with what was expected
#   an empty .gor file               -> exit 0, a warning "no records in FILE"
#   300 MB without a separator       -> skipped in bounded time and memory, counted as
#                                       record_too_large; the record after it is read; exit 5
#   a .gor.gz cut in the middle      -> the records before are written out, a warning names the
#                                       file and offset, truncated_input counted; exit 5
set -euo pipefail
DOPPEL=${DOPPEL:?the doppel binary}
BUILD=${DOPPEL_BUILD_DIR:?build directory}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export DOPPEL_PLUGIN_PATH="$BUILD/plugins"

fail() {
  echo "FAIL: $*"
  [ -f "$work/log" ] && cat "$work/log"
  exit 1
}
sep=$'\n\xF0\x9F\x90\xB5\xF0\x9F\x99\x88\xF0\x9F\x99\x89\n'

# pipeline INPUT_PATH OUTPUT_PATH [EXTRA INPUT OPTION LINE]: file input at max speed -> file output.
pipeline() {
  cat <<TOML
[inputs.src]
plugin = "file"
path = "$1"
max_speed = true
${3:-}

[outputs.out]
plugin = "file"
from = ["src"]
path = "$2"
TOML
}
# run_doppel COMMAND TOML: runs doppel, leaves its exit code in $rc and its stderr in $work/log.
run_doppel() {
  set +e
  "$DOPPEL" "$1" "$2" > /dev/null 2> "$work/log"
  rc=$?
  set -e
}

# --- random bytes: refused at validation, exit 78, the file and the expected format named.
head -c 1048576 /dev/urandom > "$work/random.gor"
printf '\x8f' | dd of="$work/random.gor" conv=notrunc bs=1 count=1 status=none  # never a header digit
pipeline "$work/random.gor" "$work/out.gor" > "$work/random.toml"
for command in validate run; do
  run_doppel "$command" "$work/random.toml"
  [ "$rc" -eq 78 ] || fail "$command on random bytes exited $rc, expected 78"
  grep -q "$work/random.gor is not a .gor file (expected a first line \"TYPE ID TIMESTAMP \[LATENCY\]\"" "$work/log" \
    || fail "no clear message for random bytes"
done
[ ! -e "$work/out.gor" ] || fail "the output was opened although validation failed"
{ printf '\x1f\x8b\x08\x00'; head -c 65536 /dev/urandom; } > "$work/garbage.gor.gz"
pipeline "$work/garbage.gor.gz" "$work/out.gor" > "$work/garbage.toml"
run_doppel validate "$work/garbage.toml"
[ "$rc" -eq 78 ] || fail "gzip garbage exited $rc, expected 78"
grep -q "garbage.gor.gz is not a .gor file.*does not decompress" "$work/log" || fail "no clear message for gzip garbage"
echo "ok: random bytes and gzip garbage refused at validation (78), named"

# --- an empty file: a recording of nothing, accepted with a warning.
: > "$work/empty.gor"
pipeline "$work/empty.gor" "$work/empty-out.gor" > "$work/empty.toml"
run_doppel run "$work/empty.toml"
[ "$rc" -eq 0 ] || fail "an empty .gor file exited $rc, expected 0"
grep -q "warning.*no records in $work/empty.gor" "$work/log" || fail "no warning for the empty file"
echo "ok: empty file accepted with a warning"

# --- 300 MB without a separator after a valid header, then one good record.
good_record() { printf '1 %s 1700000000000000001 0\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n%s' "$1" "$sep"; }
{
  printf '1 aaaaaaaaaaaaaaaaaaaaaaa1 1700000000000000000 0\n'
  head -c 300M /dev/zero | tr '\0' 'A'
  printf '%s' "$sep"
  good_record aaaaaaaaaaaaaaaaaaaaaaa2
} > "$work/huge.gor"
measure() {  # measure TOML: sets $rc, $seconds, $rss_kib
  set +e
  /usr/bin/time -v "$DOPPEL" run "$1" > /dev/null 2> "$work/log"
  rc=$?
  set -e
  seconds=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print int(s + 0.999) }' "$work/log")
  rss_kib=$(awk -F': ' '/Maximum resident set size/ { print $2 }' "$work/log")
}
for bound in default 1MiB; do
  extra=""
  [ "$bound" = default ] || extra="max_record_size = \"$bound\""
  pipeline "$work/huge.gor" "$work/huge-out-$bound.gor" "$extra" > "$work/huge.toml"
  measure "$work/huge.toml"
  echo "max_record_size $bound: 300 MB record skipped in ${seconds}s, max RSS ${rss_kib} KiB, exit $rc"
  [ "$rc" -eq 5 ] || fail "the skipped record should make the run exit 5 (messages lost), got $rc"
  grep -q "record_too_large" "$work/log" || fail "record_too_large not counted"
  grep -q "huge.gor: skipped the record at byte offset 0 (314572849 bytes), too large" "$work/log" || fail "the skipped record's offset was not logged"
  [ "$(grep -c aaaaaaaaaaaaaaaaaaaaaaa2 "$work/huge-out-$bound.gor")" = 1 ] || fail "the record after it was not read"
  # What is held is the bound at most (once: growing the buffer copies nothing), never the record.
  if [ "$bound" = default ]; then limit_kib=$(((64 + 32) * 1024)); else limit_kib=$((32 * 1024)); fi
  [ "$rss_kib" -lt "$limit_kib" ] || fail "max RSS ${rss_kib} KiB over ${limit_kib} KiB"
  [ "$seconds" -lt 60 ] || fail "took ${seconds}s"
done
echo "ok: a record over the bound is skipped in bounded time and memory, counted, and the next one read"

# --- a .gor.gz cut in the middle: the records before go on, the cut is counted and warned about.
for i in $(seq 1 3000); do
  printf '1 %024x %d 0\nGET /%d HTTP/1.1\r\nHost: a\r\nX-Pad: %0200d\r\n\r\n%s' "$i" $((1700000000000000000 + i)) "$i" "$i" "$sep"
done > "$work/many.gor"
gzip -c "$work/many.gor" > "$work/many.gor.gz"
size=$(stat -c %s "$work/many.gor.gz")
head -c $((size / 2)) "$work/many.gor.gz" > "$work/cut.gor.gz"
pipeline "$work/cut.gor.gz" "$work/cut-out.gor" > "$work/cut.toml"
run_doppel validate "$work/cut.toml"
[ "$rc" -eq 0 ] || fail "a cut .gor.gz is valid at start (its first record is whole), got $rc"
run_doppel run "$work/cut.toml"
[ "$rc" -eq 5 ] || fail "a cut .gor.gz should exit 5 (messages lost), got $rc"
grep -q "warning.*cut.gor.gz: cut short at byte offset [0-9]*" "$work/log" || fail "no warning naming the file and offset"
grep -q "truncated_input" "$work/log" || fail "truncated_input not counted in the summary"
written=$(grep -ac '^1 [0-9a-f]\{24\} ' "$work/cut-out.gor" || true)
[ "$written" -gt 0 ] && [ "$written" -lt 3000 ] || fail "expected some but not all records before the cut, got $written"
# Exactly the records before the cut, in order: a prefix of the original.
cmp -s "$work/cut-out.gor" <(head -c "$(stat -c %s "$work/cut-out.gor")" "$work/many.gor") \
  || fail "the records written are not the file's first records"
echo "ok: cut .gor.gz: $written records before the cut written, warning and truncated_input, exit 5"
