"""pytest plugin: after every test, no mapping may be writable and executable.

For runs where the seccomp W^X filter cannot be installed (qemu-user refuses
seccomp): load it with ``-p harness.wx_audit_plugin`` (``tests`` on
``sys.path``).  After each test it reads ``/proc/self/maps`` through
:func:`harness.wx_guard.maps_wx_violations` and fails the test's teardown if
any mapping has both ``w`` and ``x``.  Under qemu-user ``/proc/self/maps`` is
the guest's view: the mappings the interpreter and the loader asked for, with
the protections they asked for.

``CX_WX_AUDIT_LOG=PATH`` appends one line per audit, ``nodeid mappings
images violations``, so that the caller can check the audit really ran and
saw the loaded images.
"""

from __future__ import annotations

import os
import sys

import pytest

from harness.wx_guard import maps_wx_violations


def _images() -> int:
    rt = sys.modules.get("cosmoext._runtime")
    return len(rt.images()) if rt is not None else 0


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    bad = maps_wx_violations()
    log = os.environ.get("CX_WX_AUDIT_LOG")
    if log:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            mappings = sum(1 for _ in fh)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"{item.nodeid} {mappings} {_images()} {len(bad)}\n")
    if bad:
        raise AssertionError("writable+executable mappings after this test:\n  "
                             + "\n  ".join(bad))
