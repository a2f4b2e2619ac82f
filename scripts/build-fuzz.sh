#!/usr/bin/env bash
# Configures and builds the libFuzzer targets into build-fuzz/ (or $BUILD_DIR) with clang:
# -DDOPPEL_FUZZ=ON instruments every object for coverage with ASan/UBSan. Extra arguments go to
# cmake. Then `ctest --test-dir build-fuzz -L fuzz` runs each target briefly on its seeds
# (DOPPEL_FUZZ_SECONDS each, 10 unless set here or in the environment), and
# scripts/fuzz-campaign.sh runs them for longer.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${BUILD_DIR:-build-fuzz}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# clang 16 (Debian 12's clang-16): clang 14 cannot compile lambdas that capture structured
# bindings, which the code base uses. -O1 as libFuzzer's documentation advises, assertions on;
# line tables are what sanitizer reports need, and build a fifth faster than full -g.
# No -Werror: the warning bar is g++'s (scripts/build.sh); clang warns about other things.
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -gline-tables-only" \
  -DCMAKE_CXX_FLAGS_DEBUG="-O1 -gline-tables-only" \
  -DDOPPEL_FUZZ=ON -DDOPPEL_TESTS=ON "${launcher[@]}" \
  ${DOPPEL_FUZZ_SECONDS:+-DDOPPEL_FUZZ_SECONDS="$DOPPEL_FUZZ_SECONDS"} "$@" >/dev/null
cmake --build "$build_dir" --target fuzz -j "$(nproc)"
