#!/usr/bin/env bash
# Installs the SDK, builds sdk/examples/stamp_header out of tree against it with
# find_package(doppel-sdk) + doppel_add_plugin, and runs it in a pipeline.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

cmake --install "$DOPPEL_BUILD_DIR" --prefix "$work/prefix" >/dev/null
[ -f "$work/prefix/lib/cmake/doppel-sdk/doppel-sdkConfig.cmake" ] || fail "SDK package not installed"
cmake -S "$DOPPEL_SOURCE_DIR/sdk/examples/stamp_header" -B "$work/example" -G Ninja \
  -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/example" >/dev/null
plugin="$work/example/plugins/libdoppel-stamp-header.so"
[ -f "$plugin" ] || fail "plugin not built"

"$DOPPEL" --plugin-dir "$work/example/plugins" inspect stamp_header | grep -q "X-Doppel-Shadow" || fail "inspect"

sep=$'\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n'
{
  printf '1 aaaaaaaaaaaaaaaaaaaaaaaa 1700000000000000000 0\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n%s' "$sep"
  printf '2 aaaaaaaaaaaaaaaaaaaaaaaa 1700000000001000000 1000000\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n%s' "$sep"
} > "$work/in.gor"
cat > "$work/p.toml" <<TOML
[pipeline]
stats_interval = "0s"
[inputs.src]
plugin = "file"
path = "$work/in.gor"
max_speed = true
[filters.stamp]
plugin = "stamp_header"
from = ["src"]
value = "yes"
[outputs.out]
plugin = "file"
from = ["stamp"]
path = "$work/out.gor"
TOML
"$DOPPEL" --plugin-dir "$work/example/plugins" run "$work/p.toml" 2> "$work/log"
grep -q $'X-Doppel-Shadow: yes\r' "$work/out.gor" || fail "header not stamped: $(cat "$work/out.gor")"
grep -q "stamped: 1" "$work/log" || fail "counter not in summary: $(cat "$work/log")"
grep -c "^HTTP/1.1 200 OK" "$work/out.gor" | grep -q 1 || fail "response lost"
echo "out-of-tree plugin: ok"
