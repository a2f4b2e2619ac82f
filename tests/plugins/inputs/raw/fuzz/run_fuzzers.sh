#!/usr/bin/env bash
# Builds the capture path's libFuzzer targets with clang (whatever compiler the project uses)
# and runs each for a short while: decoder, reassembler (+ whole session), the pairing invariant
# under segment loss and reordering, HTTP stream parser.
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
sdk=("$DOPPEL_SOURCE_DIR"/sdk/src/message.cpp "$DOPPEL_SOURCE_DIR"/sdk/src/message_pool.cpp
     "$DOPPEL_SOURCE_DIR"/sdk/src/http.cpp "$DOPPEL_SOURCE_DIR"/sdk/src/kinds.cpp)
build() {
  local name=$1; shift
  clang++ "${flags[@]}" "$here/$name.cpp" "$@" -o "$out/$name" -lz || fail "building $name"
}
build fuzz_packet_decoder "$src/packet_decoder.cpp"
build fuzz_http_stream_parser "$src/http_stream_parser.cpp" "${llhttp[@]}" "${sdk[@]}"
build fuzz_http_framing "$src/http_stream_parser.cpp" "${llhttp[@]}" "${sdk[@]}"
build fuzz_capture_file "$src/capture_file.cpp" "$src/capture_session.cpp" "$src/tcp_reassembler.cpp" \
  "$src/http_stream_parser.cpp" "$src/packet_decoder.cpp" "${llhttp[@]}" "${sdk[@]}" -lpcap
build fuzz_tcp_reassembler "$src/capture_session.cpp" "$src/tcp_reassembler.cpp" "$src/http_stream_parser.cpp" \
  "$src/packet_decoder.cpp" "${llhttp[@]}" "${sdk[@]}"
build fuzz_pairing "$src/capture_session.cpp" "$src/tcp_reassembler.cpp" "$src/http_stream_parser.cpp" \
  "$src/packet_decoder.cpp" "${llhttp[@]}" "${sdk[@]}"
# The differential target starts from well-formed traffic (random bytes rarely frame as HTTP):
# byte 0 = response side (1) / in sync (2), byte 1 = packet size - 1, then the stream.
seeds="$out/corpus-fuzz_http_framing"
mkdir -p "$seeds"
printf '\x02\xffGET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n' > "$seeds/requests"
printf '\x03\xffHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 301 Moved\r\nContent-Length: 0\r\n\r\n' > "$seeds/responses"
printf '\x03\x20HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n\r\nclose-delimited' > "$seeds/chunked"
printf '\x00\x40garbage GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nPUT /x HTTP/1.1\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc' > "$seeds/midstream"
# Extension methods (llhttp is fed a stand-in), QUERY, and smuggling probes (ambiguous framing).
printf '\x02\x11BDELETE /x HTTP/1.1\r\nHost: s\r\n\r\nQUERY /q HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}CCM_POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n' > "$seeds/extension-methods"
printf '\x02\x30POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n' > "$seeds/te-cl"
printf '\x02\x30POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\nContent-Length: 0, 49\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n\r\n' > "$seeds/te-space"
printf '\x00\x07body\r\nBDELETE /x HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\nxGET / HTTP/1.1\r\n\r\n' > "$seeds/fold-midstream"
# A classic pcap (little-endian, microseconds) holding one Ethernet IPv4 TCP frame with "GET / HTTP/1.1".
seeds="$out/corpus-fuzz_capture_file"
mkdir -p "$seeds"
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00\x01\x00\x00\x00''\x01\x00\x00\x00\x02\x00\x00\x00\x48\x00\x00\x00\x48\x00\x00\x00''\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00''\x45\x00\x00\x3a\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02''\x9c\x40\x00\x50\x00\x00\x03\xe9\x00\x00\x13\x89\x50\x18\xff\xff\x00\x00\x00\x00''GET / HTTP/1.1\r\n\r\n' > "$seeds/one-request.pcap"
for target in fuzz_packet_decoder fuzz_tcp_reassembler fuzz_pairing fuzz_http_stream_parser fuzz_http_framing fuzz_capture_file; do
  mkdir -p "$out/corpus-$target"
  echo "== $target for ${seconds}s"
  "$out/$target" -artifact_prefix="$out/" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1 \
    "$out/corpus-$target" 2>&1 | tail -n 4 || fail "$target found a crash (see above)"
done
echo "ok: fuzz targets ran clean"
