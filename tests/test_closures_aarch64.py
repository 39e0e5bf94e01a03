"""tests/test_closures.py on aarch64, under qemu-user (not real hardware).

The arm64 CPython of tests/test_aarch64.py (Debian's arm64 libpython with
cosmoext._runtime built for arm64, closure pool included) runs the closure
tests from aarch64 images of tests/closures/cx_closures.c and
examples/callbacks.  qemu refuses seccomp, so the W^X part is the
/proc/self/maps audit after every allocation (the guest's mappings: the
audit's self-test in test_aarch64.py shows it sees them).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_aarch64 import (  # noqa: F401  (the fixtures)
    _check,
    _cpython_cmd,
    _cpython_env,
    _passed,
    a64_cpython,
    a64_site,
    a64_tools,
)

import cosmoext
from cosmoext.build_ext import BuildSettings, build

HERE = Path(__file__).parent
ROOT = HERE.parent


def test_closures_in_arm64_cpython(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    cpython = request.getfixturevalue("a64_cpython")
    site = request.getfixturevalue("a64_site")
    images = tmp_path / "images"
    for name, src in (("cx_closures", HERE / "closures" / "cx_closures.c"),
                      ("callbacks", ROOT / "examples" / "callbacks" / "callbacks.c")):
        build(BuildSettings(name=name, sources=[str(src)], arch=["aarch64"],
                            output=str(images / f"{name}.cosmoext"),
                            include_dirs=[cosmoext.get_include()], quiet=True))
    env = _cpython_env(cpython, site, HERE, CX_CLOSURE_BUILD_DIR=str(images),
                       CX_CLOSURE_WX_CHILD="1",
                       CX_CLOSURE_PYTHON=" ".join(_cpython_cmd(cpython)))
    out = _check(_cpython_cmd(cpython, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              str(HERE / "test_closures.py")), env=env)
    assert _passed(out) >= 40, out[-2000:]
