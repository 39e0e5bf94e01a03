#!/usr/bin/env bash
# Installs everything cosmoext's build, demo and tests need on a fresh
# Debian bookworm machine (as root), then installs cosmoext itself.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(gcc g++ binutils make cmake ninja-build libseccomp2 libc6-dev libstdc++-12-dev
          libpython3.11-dev libexpat1-dev zlib1g-dev strace clang lld
          gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libpython3.11-dev:arm64)
# aarch64 images are built with the cross compilers and tested under qemu-user
# against Debian's arm64 CPython (multiarch), so dpkg must know arm64.
dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  "scikit-build-core>=0.10" setuptools wheel build pytest hypothesis pyseccomp pyelftools ruff mypy cffi
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  --no-build-isolation .
"$PY" -c "import cosmoext._runtime as r; i = r.info(); print('cosmoext runtime:', i['machine'], i['target'], i['python_abi'], i['exports'], 'exports')"
