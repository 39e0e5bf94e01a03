"""Reference fixtures for tests/test_ext_suite.py: builds plain ``.so`` modules.

This builds the test extensions of ``tests/ext`` (``support/extensions.py``) as ordinary CPython
extension module (``gcc``/``g++ -shared -fPIC``) and imports it with the
normal import system. It is the known-good baseline for the suite; the
project's real conftest provides the same fixtures backed by ``.cosmoext``
images.

Use it as a plugin (``--noconftest`` keeps the project's ``tests/conftest.py``,
which defines the same fixtures for ``.cosmoext``, from overriding it)::

    python -m pytest --noconftest -p tests.support.ext_so_plugin tests/test_ext_suite.py

Fixtures
--------
``ext``          ``ext(name) -> module``; ``name`` like ``"cx_state"`` or
                 ``"cx_pkg.sub"``. Sources come from ``EXTENSIONS`` of
                 ``support/extensions.py`` (C++ if listed in ``CPP`` or any
                 source ends in ``.cpp``).
``ext_pkg_dir``  the directory placed on ``sys.path`` that holds the built
                 modules; dotted names are built into package directories
                 under it (``cx_pkg/__init__.py`` + ``cx_pkg/sub<suffix>``).

Every source is additionally compiled (not linked) with
``-fno-pic -fno-pie`` so that warnings in either code model fail the build.
Set ``CX_EXT_NO_WERROR=1`` to not treat warnings as errors,
``CX_EXT_SRC_DIR`` to build sources from another directory, and
``CX_EXT_CC``/``CX_EXT_CXX`` to pick the compilers.
"""
from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from .extensions import CPP, EXT_DIR, EXTENSIONS

EXT_SRC_DIR = Path(os.environ.get("CX_EXT_SRC_DIR") or EXT_DIR)

C_STD = "-std=c99"
CXX_STD = "-std=c++17"
COMMON_FLAGS = ["-Wall", "-Wextra", "-O2", "-g"]


def _compilers() -> tuple[str, str]:
    cc = os.environ.get("CX_EXT_CC", "gcc")
    cxx = os.environ.get("CX_EXT_CXX", "g++")
    return cc, cxx


class SoBuilder:
    """Builds and imports test extensions as ordinary shared objects."""

    def __init__(self, root: Path):
        self.root = root
        self.objdir = root.parent / (root.name + "_obj")
        self.objdir.mkdir(parents=True, exist_ok=True)
        self.include = sysconfig.get_paths()["include"]
        self.suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
        self.built: dict[str, Path] = {}
        self.werror = not os.environ.get("CX_EXT_NO_WERROR")

    def _run(self, cmd: list[str]) -> None:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0 or (proc.stderr.strip() and self.werror):
            raise RuntimeError(
                f"build failed (rc={proc.returncode}): {' '.join(cmd)}\n"
                f"{proc.stdout}{proc.stderr}"
            )

    def target_path(self, name: str) -> Path:
        parts = name.split(".")
        pkg_dir = self.root.joinpath(*parts[:-1])
        return pkg_dir / (parts[-1] + self.suffix)

    def ensure_packages(self, name: str) -> None:
        parts = name.split(".")
        d = self.root
        for part in parts[:-1]:
            d = d / part
            d.mkdir(exist_ok=True)
            init = d / "__init__.py"
            if not init.exists():
                init.write_text('"""Package created by the test-extension build."""\n')

    def build(self, name: str, sources: list[str], cpp: bool) -> Path:
        if name in self.built:
            return self.built[name]
        cc, cxx = _compilers()
        compiler = cxx if cpp else cc
        std = CXX_STD if cpp else C_STD
        srcs = [str(EXT_SRC_DIR / s) for s in sources]
        for s in srcs:
            if not Path(s).is_file():
                raise FileNotFoundError(s)
        flags = [std, *COMMON_FLAGS, "-I" + self.include]
        if self.werror:
            flags.append("-Werror")
        # Non-PIC compile check (object files only; not linked).
        for s in srcs:
            obj = self.objdir / (name + "." + Path(s).stem + ".nopic.o")
            self._run([compiler, *flags, "-fno-pic", "-fno-pie", "-c", s, "-o", str(obj)])
        self.ensure_packages(name)
        out = self.target_path(name)
        self._run([compiler, *flags, "-fPIC", "-shared", "-pthread", *srcs, "-o", str(out)])
        self.built[name] = out
        return out


@pytest.fixture(scope="session")
def _ext_so_builder(tmp_path_factory):
    if shutil.which(_compilers()[0]) is None:
        pytest.skip("no C compiler available")
    root = tmp_path_factory.mktemp("ext_so")
    builder = SoBuilder(root)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield builder
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(root))


@pytest.fixture(scope="session")
def ext_pkg_dir(_ext_so_builder) -> Path:
    """Directory on sys.path holding the built modules and packages."""
    return _ext_so_builder.root


@pytest.fixture
def ext(_ext_so_builder):
    """``ext(name)`` builds (once per session) and imports a test extension."""

    def load(name: str):
        if name not in EXTENSIONS:
            raise KeyError(f"unknown test extension {name!r}")
        sources = list(EXTENSIONS[name])
        cpp = name in CPP or any(s.endswith((".cpp", ".cc", ".cxx")) for s in sources)
        _ext_so_builder.build(name, sources, cpp)
        importlib.invalidate_caches()
        return importlib.import_module(name)

    return load
