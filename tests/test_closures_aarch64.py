"""tests/test_closures.py on aarch64, under qemu-user (not real hardware).

The arm64 CPython of tests/test_aarch64.py (Debian's arm64 libpython with
cosmoext._runtime built for arm64, closure pool included) runs the closure
tests from aarch64 images of tests/closures/cx_closures.c and
examples/callbacks.  qemu refuses seccomp, so the W^X part is the
/proc/self/maps audit after every allocation (the guest's mappings: the
audit's self-test in test_aarch64.py shows it sees them).  The arm64
interpreter is the fixture of tests/support/aarch64.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.aarch64 import check, cpython_cmd, cpython_env
from support.build import build_ext
from support.runs import WX_CHILD_SKIP, assert_all_passed

import cosmoext

HERE = Path(__file__).parent
ROOT = HERE.parent


@pytest.mark.qemu
@pytest.mark.slow
def test_closures_in_arm64_cpython(a64_cpython: tuple[Path, Path], a64_site: Path,
                                   tmp_path: Path) -> None:
    cpython, site = a64_cpython, a64_site
    images = tmp_path / "images"
    for name, src in (("cx_closures", HERE / "closures" / "cx_closures.c"),
                      ("callbacks", ROOT / "examples" / "callbacks" / "callbacks.c")):
        build_ext(name=name, sources=[str(src)], arch=["aarch64"],
                  output=str(images / f"{name}.cosmoext"),
                  include_dirs=[cosmoext.get_include()], quiet=True)
    env = cpython_env(cpython, site, HERE, CX_CLOSURE_BUILD_DIR=str(images),
                      CX_CLOSURE_WX_CHILD="1",
                      CX_CLOSURE_PYTHON=" ".join(cpython_cmd(cpython)))
    closures = HERE / "test_closures.py"
    out = check(cpython_cmd(cpython, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                            str(closures)), env=env)
    # every test of the file but those that only the parent runs
    assert_all_passed(out, closures, skip_reason=WX_CHILD_SKIP)
