#!/usr/bin/env bash
# Every pipeline shipped in pipelines/ validates, and its [[tests]] blocks (if any) pass.
# Each is checked from a copy of its folder; a recording it expects the user to provide
# (a relative `path = "x.gor"` that is not shipped) is generated, as a user would record it.
# Running them for real is covered by their own integration tests.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
while IFS= read -r -d '' file; do
  name=${file#$DOPPEL_SOURCE_DIR/}
  copy="$work/$(echo "$name" | tr '/' '_')"
  mkdir -p "$copy"
  cp -r "$(dirname "$file")"/. "$copy"/
  for recording in $(grep -oE '^path = "[^"/][^"]*\.gor"' "$file" | sed 's/^path = "//; s/"$//'); do
    [ -e "$copy/$recording" ] || python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$copy/$recording" 5
  done
  if out=$(cd "$copy" && "$DOPPEL" validate "$(basename "$file")" 2>&1); then
    echo "ok    $name"
  else
    echo "FAIL  $name"; echo "$out"; status=1
  fi
  if grep -q '^\[\[tests\]\]' "$file"; then
    (cd "$copy" && "$DOPPEL" test "$(basename "$file")") || status=1
  fi
done < <(find "$DOPPEL_SOURCE_DIR/pipelines" -name '*.toml' -print0 | sort -z)
exit $status
