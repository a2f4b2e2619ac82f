#!/usr/bin/env bash
# Man pages and shell completions are generated from the command line: one page per
# subcommand that groff renders without a warning, and completions that offer what the
# command line accepts (bash driven for real, zsh parsed).
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
work=$(mktemp -d)
chmod 0777 "$work"  # started as root, doppel works as nobody (docs/security.md)
trap 'rm -rf "$work"' EXIT

# Every subcommand `doppel --help` lists has its page, and each page renders cleanly.
"$DOPPEL" man --output "$work/man"
subcommands=$("$DOPPEL" --help | awk '/^Subcommands:/ {on = 1; next} on && !NF {exit} on {print $1}')
[ -n "$subcommands" ] || fail "no subcommands in --help"
for sub in $subcommands; do
  [ -s "$work/man/doppel-$sub.1" ] || fail "no man page for $sub"
  grep -q "^doppel\\\\-$sub \\\\- " "$work/man/doppel-$sub.1" || fail "doppel-$sub.1 has no NAME line"
done
[ "$(ls "$work/man" | wc -l)" -eq $(( $(wc -w <<<"$subcommands") + 1 )) ] || fail "pages: $(ls "$work/man")"
for page in "$work"/man/*.1; do
  warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1)
  [ -z "$warnings" ] || fail "$(basename "$page"): $warnings"
done
grep -q -- '--dry-run' <(groff -man -Tutf8 "$work/man/doppel-run.1" 2>/dev/null | col -b) || fail "run page lacks --dry-run"
grep -q -- '--input-raw-track-response' <(groff -man -Tutf8 "$work/man/doppel-gor.1" 2>/dev/null | col -b) ||
  fail "gor page lacks the GoReplay flags"

# bash: what Tab offers after a given command line.
"$DOPPEL" completion bash > "$work/doppel.bash"
complete_line() {
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
    _doppel
    printf "%s\n" "${COMPREPLY[@]}"' _ "$work/doppel.bash" "$@"
}
expect() {
  local want=$1; shift
  local offered
  offered=$(complete_line "$@")
  grep -qx -- "$want" <<<"$offered" || fail "completing '$*' does not offer $want: $(tr '\n' ' ' <<<"$offered")"
}
expect inspect "$DOPPEL" ins
expect completion "$DOPPEL" comp
expect --log-level "$DOPPEL" --log
expect debug "$DOPPEL" run --log-level d
expect --dry-run "$DOPPEL" run --d
expect json "$DOPPEL" inspect js
expect raw "$DOPPEL" inspect r
expect --input-raw-track-response "$DOPPEL" gor --input-raw :80 --input-raw-t
expect zsh "$DOPPEL" completion z
[ -z "$(complete_line "$DOPPEL" run --stats-interval '')" ] || fail "a duration is completed with files"
offered=$(cd "$work" && touch pipeline.toml && complete_line "$DOPPEL" validate pip)
grep -qx pipeline.toml <<<"$offered" || fail "a pipeline file is not completed"

# zsh: parses, and defines every subcommand.
"$DOPPEL" completion zsh > "$work/_doppel"
head -1 "$work/_doppel" | grep -qx '#compdef doppel' || fail "zsh script lacks #compdef"
if command -v zsh >/dev/null; then zsh -n "$work/_doppel" || fail "zsh script does not parse"; fi
for sub in $subcommands; do grep -q "^        $sub)" "$work/_doppel" || fail "zsh script lacks $sub"; done
echo "ok: $(wc -w <<<"$subcommands") subcommands, man pages and completions"
