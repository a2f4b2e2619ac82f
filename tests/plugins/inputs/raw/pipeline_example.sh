#!/usr/bin/env bash
# pipelines/capture-16888-gor.toml is valid as shipped.
set -euo pipefail
: "${DOPPEL:?}" "${DOPPEL_BUILD_DIR:?}" "${DOPPEL_SOURCE_DIR:?}"
export DOPPEL_PLUGIN_PATH="$DOPPEL_BUILD_DIR/plugins"
"$DOPPEL" validate "$DOPPEL_SOURCE_DIR/pipelines/capture-16888-gor.toml"
