#!/usr/bin/env bash
# Build callbacks.cosmoext next to this script and run the demo with it.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
INC=$("$PY" -c 'import cosmoext; print(cosmoext.get_include())')
"$PY" -m cosmoext build-ext --name callbacks callbacks.c -I "$INC" -o callbacks.cosmoext
"$PY" demo.py
