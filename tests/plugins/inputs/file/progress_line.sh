#!/usr/bin/env bash
# The progress line of a file replay (docs/user-guide.md "Progress"): on a terminal (script(1)
# gives doppel a pseudo-terminal) the line is rewritten in place with records, bytes, the
# percentage, the rate and an ETA, rising to 100% and "done", plain and gzip; a looping replay
# has no percentage. When stderr is a file, the periodic stats line is printed instead.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# 300 requests 10 ms apart: a 3 s replay, long enough for several updates every 500 ms.
/usr/bin/python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$work/r.gor" 300 --gap-ms 10
gzip -k "$work/r.gor"

pipeline() {  # pipeline INPUT-PATH [EXTRA-INPUT-LINES] [EXTRA-PIPELINE-LINES]
  printf '[pipeline]\nname = "progress"\n%s\n[inputs.in]\nplugin = "file"\npath = "%s"\n%s\n[outputs.out]\nplugin = "null"\nfrom = ["in"]\n' \
    "${3:-}" "$1" "${2:-}" > "$work/p.toml"
}
on_terminal() {  # runs the pipeline with a pseudo-terminal; its output, CRs as newlines, in $work/tty
  script -qec "$DOPPEL run $work/p.toml" /dev/null > "$work/raw" 2>&1 < /dev/null || { cat "$work/raw" >&2; fail "run failed"; }
  tr '\r' '\n' < "$work/raw" | sed 's/\x1b\[K//g' > "$work/tty"
}
# The percentages of the progress lines, in order: never falling, ending at 100.0 with "done".
check_rising() {
  grep '^progress: ' "$work/tty" > "$work/lines" || { cat "$work/tty" >&2; fail "$1: no progress line"; }
  local n
  n=$(wc -l < "$work/lines")
  [ "$n" -ge 3 ] || { cat "$work/tty" >&2; fail "$1: $n progress lines, expected several"; }
  grep -o '([0-9.]*%)' "$work/lines" | tr -d '(%)' > "$work/pct"
  [ "$(wc -l < "$work/pct")" = "$n" ] || fail "$1: a line without a percentage"
  sort -n -c "$work/pct" 2>/dev/null || sort -g -c "$work/pct" || { cat "$work/pct" >&2; fail "$1: the percentage fell"; }
  tail -1 "$work/lines" | grep -q '(100.0%) .*done$' || { tail -1 "$work/lines" >&2; fail "$1: last line not at 100%"; }
  tail -1 "$work/lines" | grep -q '^progress: 300 records ' || { tail -1 "$work/lines" >&2; fail "$1: last line not 300 records"; }
  grep -q 'ETA [0-9]' "$work/lines" || { cat "$work/lines" >&2; fail "$1: no ETA"; }
  grep -q 'records/s' "$work/lines" || fail "$1: no rate"
  ! grep -q '^stats:' "$work/tty" || fail "$1: the stats line is printed on a terminal too"
  echo "ok: $1: $n progress lines, $(head -1 "$work/pct")% .. 100.0%"
}

pipeline "$work/r.gor"
on_terminal
check_rising "plain file"
grep -q 'of 105.6 KiB' "$work/lines" || { head -3 "$work/lines" >&2; fail "the total is not the file's size"; }

pipeline "$work/r.gor.gz"
on_terminal
check_rising "gzip file"

# Looping: no end, so no percentage and no ETA; records go on counting.
pipeline "$work/r.gor" 'loop = true' 'exit_after = "2s"'
on_terminal
grep '^progress: ' "$work/tty" > "$work/lines" || fail "loop: no progress line"
! grep -q '%\|ETA' "$work/lines" || { cat "$work/lines" >&2; fail "loop: a percentage or ETA for an endless replay"; }
echo "ok: loop: $(wc -l < "$work/lines") lines without percentage"

# Not a terminal: the stats line, every stats_interval, and no progress line.
pipeline "$work/r.gor" "" 'stats_interval = "1s"'
"$DOPPEL" run "$work/p.toml" > /dev/null 2> "$work/err" || { cat "$work/err" >&2; fail "run failed"; }
grep -q '^stats: in\[out=' "$work/err" || { cat "$work/err" >&2; fail "no stats line when stderr is a file"; }
! grep -q 'progress: ' "$work/err" || fail "a progress line in a file"
echo "ok: stats lines when stderr is not a terminal"
