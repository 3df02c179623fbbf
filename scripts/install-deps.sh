#!/usr/bin/env bash
# Installs the Debian 12 packages hone needs to build, test and benchmark.
# Idempotent: does nothing when everything is present. Root runs apt-get directly; others use sudo.
# --browser (make browser-deps): Debian's chromium alone, for the browser test and the report
# screenshot; the build never needs it.
set -euo pipefail

packages=(
  build-essential cmake pkg-config clang-format time
  libopenblas-dev libeigen3-dev libhdf5-dev libtbb-dev libicu-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev libpcre2-dev
  libgtest-dev libbenchmark-dev
  clang libfuzzer-14-dev
  libopenmpi-dev openmpi-bin
  libdnnl-dev
)

if [ "${1:-}" = "--browser" ]; then
  packages=(chromium)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "install-deps: need root or sudo to install: ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
