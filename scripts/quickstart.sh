#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build, and run the
# quickstart pipeline (two versions of a small robot API on loopback, a recorded session of
# v1 replayed against v2, compared, report.html written). No root needed once installed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh build
scripts/build.sh -DDOPPEL_TESTS=OFF
exec pipelines/quickstart/run.sh
