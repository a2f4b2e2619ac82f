#!/usr/bin/env bash
# Installs what is missing, builds with -Werror, and runs every test (unit, integration, and a
# short run of each fuzz target).
# Integration tests that capture packets or create network namespaces need root; CI runs as
# root. Set DOPPEL_SANITIZE=1 to also build and run the unit tests under ASan/UBSan.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh test
scripts/build.sh -DDOPPEL_WERROR=ON -DDOPPEL_TESTS=ON
# Unit tests in parallel; integration tests one at a time (they start servers and captures).
ctest --test-dir build --output-on-failure -L unit -j 2
ctest --test-dir build --output-on-failure -L integration
# Every fuzz target (clang, libFuzzer, ASan/UBSan) built into build-fuzz and run briefly from
# its checked-in seeds, two at a time: DOPPEL_FUZZ_SECONDS each (10 by default). The pipeline
# target loads only the plugins built for the other targets (scripts/fuzz-campaign.sh: all).
scripts/build-fuzz.sh -DDOPPEL_FUZZ_EVERY_PLUGIN=OFF
ctest --test-dir build-fuzz --output-on-failure -L fuzz -j 2
if [ "${DOPPEL_SANITIZE:-0}" = 1 ]; then
  BUILD_DIR=build-asan scripts/build.sh -DDOPPEL_WERROR=ON -DDOPPEL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -L unit -j 2
fi
