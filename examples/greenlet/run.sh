#!/usr/bin/env bash
# greenlet 3.5.6's own test suite (greenlet/tests, shipped in the package)
# against the .cosmoext builds of _greenlet and its two test extensions, with
# psutil 7.2.2 ported the same way: in this CPython through the host finder
# (PIC images) and in the static interpreter made by `cosmoext embed` (non-PIC
# images; the stdlib module resource is built from CPython's sources for it).
# Arguments go to tests/support/ports.py: --interp host|embed, --work DIR, -v, --json.
# Needs what .ci/setup.sh installs (run it once first).
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 tests/support/ports.py greenlet "$@"
