#!/usr/bin/env bash
# Builds the capture path's libFuzzer targets with clang (whatever compiler the project uses)
# and runs each for a short while: decoder, reassembler (+ whole session), HTTP stream parser.
set -euo pipefail
: "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v clang++ >/dev/null || fail "clang++ is needed for the fuzz targets (apt-get install clang)"
seconds=${DOPPEL_FUZZ_SECONDS:-15}
here="$DOPPEL_SOURCE_DIR/tests/plugins/inputs/raw/fuzz"
src="$DOPPEL_SOURCE_DIR/plugins/inputs/raw"
out="$DOPPEL_BUILD_DIR/fuzz/raw"
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src" -I/usr/share/include/llhttp -I"$DOPPEL_SOURCE_DIR/sdk/include")
# llhttp compiled once, as C, with the same sanitizers.
for c in api http llhttp; do
  [ "$out/llhttp_$c.o" -nt /usr/share/llhttp/$c.c ] ||
    clang -O1 -g -fsanitize=fuzzer-no-link,address,undefined -w -I/usr/share/include/llhttp \
      -c /usr/share/llhttp/$c.c -o "$out/llhttp_$c.o"
done
llhttp=("$out"/llhttp_api.o "$out"/llhttp_http.o "$out"/llhttp_llhttp.o)
sdk=("$DOPPEL_SOURCE_DIR"/sdk/src/message.cpp "$DOPPEL_SOURCE_DIR"/sdk/src/http.cpp "$DOPPEL_SOURCE_DIR"/sdk/src/kinds.cpp)
build() {
  local name=$1; shift
  clang++ "${flags[@]}" "$here/$name.cpp" "$@" -o "$out/$name" -lz || fail "building $name"
}
build fuzz_packet_decoder "$src/packet_decoder.cpp"
build fuzz_http_stream_parser "$src/http_stream_parser.cpp" "${llhttp[@]}"
build fuzz_tcp_reassembler "$src/capture_session.cpp" "$src/tcp_reassembler.cpp" "$src/http_stream_parser.cpp" \
  "$src/packet_decoder.cpp" "${llhttp[@]}" "${sdk[@]}"
for target in fuzz_packet_decoder fuzz_tcp_reassembler fuzz_http_stream_parser; do
  mkdir -p "$out/corpus-$target"
  echo "== $target for ${seconds}s"
  "$out/$target" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1 \
    "$out/corpus-$target" 2>&1 | tail -n 4 || fail "$target found a crash (see above)"
done
echo "ok: fuzz targets ran clean"
