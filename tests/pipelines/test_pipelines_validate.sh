#!/usr/bin/env bash
# Every pipeline shipped in pipelines/ validates, and its [[tests]] blocks (if any) pass.
# They are checked in a copy of pipelines/ (paths between them, like an example reading the
# quickstart's recording, keep working); a recording a pipeline expects the user to provide (a
# relative `path = "x.gor"` that is not shipped) is generated, as a user would record it.
# Running them for real is covered by their own integration tests.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$DOPPEL_SOURCE_DIR/pipelines" "$work/"
status=0
while IFS= read -r -d '' file; do
  name=${file#$work/}
  dir=$(dirname "$file")
  for recording in $(grep -oE '^path = "[^"/][^"]*\.gor"' "$file" | sed 's/^path = "//; s/"$//'); do
    [ -e "$dir/$recording" ] || python3 "$DOPPEL_SOURCE_DIR/tests/support/gor_tool.py" generate "$dir/$recording" 5
  done
  if out=$(cd "$dir" && "$DOPPEL" validate "$(basename "$file")" 2>&1); then
    echo "ok    $name"
  else
    echo "FAIL  $name"; echo "$out"; status=1
  fi
  if grep -q '^\[\[tests\]\]' "$file"; then
    (cd "$dir" && "$DOPPEL" test "$(basename "$file")") || status=1
  fi
done < <(find "$work/pipelines" -name '*.toml' -print0 | sort -z)
exit $status
