#!/usr/bin/env bash
# The Debian packages, built by CPack from this build tree: what they hold, that the installed
# doppel finds its plugins and runs a shipped pipeline, that a plugin builds against doppel-dev,
# and that systemd accepts the unit. "Installed" is the packages' files laid over /usr with
# overlay mounts in a private mount namespace: the host's /usr is never written.
set -euo pipefail
: "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || fail "needs root (mount namespace)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cmake --build "$DOPPEL_BUILD_DIR" --target package > "$work/package.log" 2>&1 || { tail -30 "$work/package.log"; fail "cpack"; }
version=$(sed -n 's/^project(doppel VERSION \([0-9.]*\).*/\1/p' "$DOPPEL_SOURCE_DIR/CMakeLists.txt")
deb="$DOPPEL_BUILD_DIR/doppel_${version}_amd64.deb"
dev="$DOPPEL_BUILD_DIR/doppel-dev_${version}_amd64.deb"
[ -f "$deb" ] && [ -f "$dev" ] || fail "packages not found: $(ls "$DOPPEL_BUILD_DIR"/*.deb)"

# Control data: run-time dependencies computed from what the binaries link.
fields=$(dpkg-deb -f "$deb" Package Version Depends)
for want in "Package: doppel" "Version: $version" libpcap0.8 libnghttp2-14 libssl3 libre2-9; do
  grep -q -- "$want" <<<"$fields" || fail "control lacks $want: $fields"
done
dpkg-deb -f "$dev" Depends | grep -q "doppel (= $version)" || fail "doppel-dev does not depend on doppel $version"

# Contents.
dpkg-deb -x "$deb" "$work/root"
dpkg-deb -x "$dev" "$work/root-dev"
root=$work/root
[ -x "$root/usr/bin/doppel" ] || fail "no /usr/bin/doppel"
built=$(ls "$DOPPEL_BUILD_DIR/plugins" | grep -c '\.so$')
packaged=$(ls "$root/usr/lib/doppel/plugins" | grep -c '\.so$')
[ "$built" = "$packaged" ] || fail "$packaged plugins packaged, $built built"
for page in doppel doppel-run doppel-validate doppel-gor doppel-inspect; do
  [ -s "$root/usr/share/man/man1/$page.1" ] || fail "man page $page missing"
done
[ -s "$root/usr/share/bash-completion/completions/doppel" ] || fail "bash completion missing"
[ -s "$root/usr/share/zsh/vendor-completions/_doppel" ] || fail "zsh completion missing"
[ -s "$root/usr/lib/systemd/system/doppel@.service" ] || fail "systemd unit missing"
[ -s "$root/usr/share/doppel/pipelines/robot-shadow.toml" ] || fail "example pipelines missing"
[ -s "$root/usr/share/doppel/helpers/doppel_compare.py" ] || fail "comparator helpers missing"
[ -d "$root/etc/doppel" ] || fail "/etc/doppel missing"
[ -s "$work/root-dev/usr/include/doppel/plugin.hpp" ] || fail "SDK headers missing from doppel-dev"
[ -s "$work/root-dev/usr/lib/cmake/doppel-sdk/doppel-sdkConfig.cmake" ] || fail "CMake package missing from doppel-dev"
contents=$(dpkg-deb -c "$deb")
if grep -q 'usr/include/' <<<"$contents"; then fail "headers in the runtime package"; fi
if grep -q 'not stripped' <<<"$(file "$root/usr/bin/doppel")"; then fail "binary not stripped"; fi

# Installed: in a private mount namespace, the packages' /usr over the host's.
cat > "$work/installed.sh" <<'SH'
set -euo pipefail
work=$1
mount --make-rprivate /
for dir in bin lib share include; do
  layers=""
  for package in root-dev root; do
    [ -d "$work/$package/usr/$dir" ] && layers+="$work/$package/usr/$dir:"
  done
  [ -n "$layers" ] && mount -t overlay overlay -o "lowerdir=$layers/usr/$dir" "/usr/$dir"
done
unset DOPPEL_PLUGIN_PATH
cd "$work"
# The plugins are found beside the installed executable, without any path given.
[ "$(doppel plugins --names | wc -l)" -eq "$(ls /usr/lib/doppel/plugins | wc -l)" ] || { echo "plugins not all found"; exit 1; }
doppel inspect raw > /dev/null
# A shipped pipeline validates; the quickstart's recording replays through a pipeline.
doppel validate /usr/share/doppel/pipelines/robot-shadow.toml > /dev/null
cat > replay.toml <<TOML
[pipeline]
stats_interval = "0s"
[inputs.recording]
plugin = "file"
path = "/usr/share/doppel/pipelines/quickstart/robot-v1.gor"
max_speed = true
[filters.queries]
plugin = "url"
from = ["recording"]
allow = ["^/v2/robot/query$"]
[outputs.copy]
plugin = "file"
from = ["queries"]
path = "$work/queries.gor"
TOML
doppel run replay.toml 2> run.log
[ -s queries.gor ] || { cat run.log; echo "the pipeline wrote nothing"; exit 1; }
# man finds the pages; bash completes from the installed script.
man -w doppel-run > /dev/null
bash -c 'source /usr/share/bash-completion/completions/doppel; COMP_WORDS=(doppel insp); COMP_CWORD=1; _doppel; [ "${COMPREPLY[*]}" = inspect ]'
# systemd accepts the unit (an instance of the template, as systemctl would start it).
cp /usr/lib/systemd/system/doppel@.service "$work/doppel@check.service"
systemd-analyze verify "$work/doppel@check.service"
# A plugin builds against doppel-dev and loads into the installed doppel.
cmake -S "$2/sdk/examples/stamp_header" -B "$work/example" -G Ninja > /dev/null
cmake --build "$work/example" > /dev/null
doppel --plugin-dir "$work/example/plugins" inspect stamp_header | grep -q X-Doppel-Shadow
SH
unshare -m bash "$work/installed.sh" "$work" "$DOPPEL_SOURCE_DIR" || fail "the installed package does not work"
queries=$(grep -c '^1 ' "$work/queries.gor" || true)
[ "$queries" -gt 0 ] || fail "no request replayed"
echo "ok: doppel_${version}_amd64.deb ($packaged plugins, $(du -h "$deb" | cut -f1)), doppel-dev; installed run replayed $queries queries"
