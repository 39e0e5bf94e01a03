#!/usr/bin/env bash
# Installs everything cosmoext's build, demo and tests need on a fresh
# Debian bookworm machine (as root), then installs cosmoext itself.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(gcc g++ binutils make cmake ninja-build libseccomp2 libc6-dev libstdc++-12-dev
          libpython3.11-dev libexpat1-dev zlib1g-dev strace clang lld
          gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libpython3.11-dev:arm64
          gcc-12 clang-19 binutils-aarch64-linux-gnu xz-utils libclang-rt-19-dev valgrind
          libstdc++6:arm64)
# aarch64 images are built with the cross compilers and tested under qemu-user
# against Debian's arm64 CPython (multiarch), so dpkg must know arm64; its
# libstdc++6 is the shared C++ runtime of cxx-runtime = shared images there.
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

# The Cosmopolitan toolchain and CPython built with it, where the workplace
# provides them (../shared/cosmo): installed as a user of cosmocc would have
# them, cosmocc on PATH; the tests then require the cosmo lane (no skips).
SHARED_COSMO=$(cd .. && pwd)/shared/cosmo
COSMO_DIR=${COSMO_DIR:-/opt/cosmo}
if [ -d "$SHARED_COSMO" ]; then
  stamp=$(cat "$SHARED_COSMO"/*.tar.xz | md5sum | cut -d' ' -f1)
  if [ "$(cat "$COSMO_DIR/.stamp" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$COSMO_DIR" && mkdir -p "$COSMO_DIR/toolchain"
    tar -xJf "$SHARED_COSMO/toolchain.tar.xz" -C "$COSMO_DIR/toolchain"
    tar -xJf "$SHARED_COSMO/python-3.11.2-cosmo.tar.xz" -C "$COSMO_DIR"
    ln -sfn "$COSMO_DIR/python-3.11.2-cosmo" "$COSMO_DIR/python"
    echo "$stamp" > "$COSMO_DIR/.stamp"
  fi
  ln -sf "$COSMO_DIR/toolchain/bin/cosmocc" /usr/local/bin/cosmocc
  echo "cosmo: toolchain $COSMO_DIR/toolchain (cosmocc on PATH), CPython $COSMO_DIR/python"
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  "scikit-build-core>=0.10" setuptools wheel build pytest hypothesis pyseccomp pyelftools ruff mypy cffi
"$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  --no-build-isolation .
"$PY" -c "import cosmoext._runtime as r; i = r.info(); print('cosmoext runtime:', i['machine'], i['target'], i['python_abi'], i['exports'], 'exports')"
