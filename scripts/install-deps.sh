#!/usr/bin/env bash
# Installs the Debian 12 packages doppel needs that are missing.
#   scripts/install-deps.sh build   what building and the quickstart need
#   scripts/install-deps.sh test    that, plus what the test suite starts (nginx, tcpdump, ...)
# Uses sudo when not root. Installs nothing when everything is present.
set -euo pipefail
profile=${1:-build}

build_packages=(
  build-essential cmake ninja-build pkg-config git
  libboost-dev libpcap-dev libtomlplusplus-dev node-llhttp libspdlog-dev libfmt-dev doctest-dev
  libre2-dev libsimdjson-dev zlib1g-dev libssl-dev libcli11-dev libnats-dev libjemalloc-dev
  libnghttp2-dev libprotobuf-dev protobuf-compiler libcap-ng-dev
)
test_packages=(
  nginx-light tcpdump wrk curl iproute2 procps psmisc python3 clang-16 libclang-rt-16-dev ccache
  nodejs npm chromium nats-server libnginx-mod-http-echo xxd tshark openssl wget
  nghttp2-server nghttp2-client python3-grpcio python3-grpc-tools python3-protobuf python3-h2 zsh
)

packages=("${build_packages[@]}")
[ "$profile" = test ] && packages+=("${test_packages[@]}")

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs from another source provides npm itself; do not fight it.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<< "${missing[*]}"
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
