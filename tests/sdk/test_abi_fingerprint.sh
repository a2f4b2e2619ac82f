#!/usr/bin/env bash
# The plugin ABI cannot change without its version: the fingerprint of the SDK's layouts and
# virtual functions (libdoppel-sdk's headers and libdoppel-sdk-protobuf's) must be the one
# version.hpp records beside DOPPEL_ABI_VERSION.
set -euo pipefail
: "${DOPPEL_SOURCE_DIR:?}" "${DOPPEL_BUILD_DIR:?}"
layout=$(mktemp)
trap 'rm -f "$layout"' EXIT
"$DOPPEL_BUILD_DIR/tests/abi_layout" >"$layout"
python3 "$DOPPEL_SOURCE_DIR/tests/sdk/abi_fingerprint.py" "$DOPPEL_SOURCE_DIR/sdk/include/doppel:$DOPPEL_SOURCE_DIR/sdk/protobuf/include/doppel" "$layout" \
  --check "$DOPPEL_SOURCE_DIR/sdk/include/doppel/version.hpp" | tail -n 1
