#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages) and builds Sluice into
# build/. Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(meson ninja-build pkg-config g++ ccache python3 iproute2 ethtool
      dpdk dpdk-dev libdpdk-dev libsrtp2-dev libipsec-mb-dev libssl-dev libabsl-dev
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler catch2
      libbsd-dev libnuma-dev libpcap-dev sip-tester baresip-core openssl nftables socat)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

BUILD=${SLUICE_BUILD:-build}
if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dwerror=true ${SLUICE_MESON_ARGS:-}
fi
ninja -C "$BUILD" -j "$(nproc)"
