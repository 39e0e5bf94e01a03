#!/usr/bin/env bash
# ujson 6.1.0's own test suite (tests/ of its sdist) against ujson.cosmoext:
# in this CPython through the host finder (PIC images) and in the static
# interpreter made by `cosmoext embed` (non-PIC images, cosmocc's shape).
# Arguments go to tests/support/ports.py: --interp host|embed, --work DIR, -v, --json.
# Needs what .ci/setup.sh installs (run it once first).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 tests/support/ports.py ujson "$@"
