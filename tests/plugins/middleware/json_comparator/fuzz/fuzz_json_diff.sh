#!/usr/bin/env bash
# Builds the JSON diff fuzzer with clang++ (libFuzzer + AddressSanitizer) and runs it briefly
# on a seed corpus. Longer runs: FUZZ_SECONDS=600 bash fuzz_json_diff.sh
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}"
if ! command -v clang++ >/dev/null; then
  echo "clang++ not installed: the fuzzer needs it (apt-get install clang)" >&2
  exit 1
fi
work="$DOPPEL_BUILD_DIR/fuzz/json_diff"
mkdir -p "$work/corpus"
src="$DOPPEL_SOURCE_DIR"
clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src/sdk/include" -I"$src/plugins/middleware/json_comparator" \
  "$src/tests/plugins/middleware/json_comparator/fuzz/fuzz_json_diff.cpp" \
  "$src/plugins/middleware/json_comparator/json_diff.cpp" \
  "$src/sdk/src/json_path.cpp" "$src/sdk/src/json_text.cpp" "$src/sdk/src/json_writer.cpp" \
  -lsimdjson -o "$work/fuzz_json_diff"

seed() { printf "$2" > "$work/corpus/$1"; }
seed s1 '\x00{"a":1,"b":[1,2,3]}\x00{"a":2,"b":[3,2,1]}'
seed s2 '\x01{"l":[1.0,2.5,{"x":null}]}\x00{"l":[2.4,{"x":null},1.2]}'
seed s3 '\x02{"a":{"k":"v"},"items":[{"id":1,"t":"x"}]}\x00{"a":{"k":"w"},"items":[{"id":2,"t":"y"}],"z":true}'
seed s4 '\x03[{"b":1,"c":[1,2]},[3],"s"]\x00[[3],"s",{"b":2,"c":[2,1]}]'
seed s5 '\x04items[*].id\x00{"items":[{"id":1},{"id":2}]}'
seed s6 '\x00{"a":1,"a":2}\x00{"a":2}'
seed s7 '\x00[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\x00not json'

seconds="${FUZZ_SECONDS:-20}"
"$work/fuzz_json_diff" "$work/corpus" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 2>&1 | tail -n 15
echo "fuzz_json_diff: ${seconds}s without a crash"
