"""Builds the test extensions of tests/ext as .cosmoext images, once per session.

``ext(name)`` imports a module through the ordinary import system (the
cosmoext path hook finds ``NAME.cosmoext`` on sys.path); it serves
tests/test_ext_suite.py.  What to build is ``support.extensions.EXTENSIONS``.
Two variants are built: ``pic`` (what host CPythons load) and ``nopic``
(what cosmocc emits; loadable only by an embedded interpreter).

Markers (registered in pyproject.toml, ``--strict-markers``): ``network``
(needs PyPI), ``qemu`` (needs qemu-aarch64 and the arm64 CPython), ``slow``
(more than about 30 s).  The fast offline suite:
``python3 -m pytest -m "not network and not qemu and not slow" tests``.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
from support.build import build_suite

import cosmoext._hook

cosmoext._hook.install()

# The arm64 interpreters under qemu (session fixtures shared by two test modules).
pytest_plugins = ["support.aarch64"]


@pytest.fixture(scope="session")
def pic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Children that re-run the suite under a guard reuse the parent's build.
    prebuilt = os.environ.get("CX_TEST_PIC_DIR")
    if prebuilt:
        return Path(prebuilt)
    return build_suite(tmp_path_factory.mktemp("cx-pic"), pic=True)


@pytest.fixture(scope="session")
def nopic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_suite(tmp_path_factory.mktemp("cx-nopic"), pic=False)


@pytest.fixture(scope="session")
def ext_pkg_dir(pic_dir: Path) -> Path:
    return pic_dir


@pytest.fixture
def ext(pic_dir: Path):
    if str(pic_dir) not in sys.path:
        sys.path.insert(0, str(pic_dir))
        importlib.invalidate_caches()

    def load(name: str):
        mod = importlib.import_module(name)
        origin = getattr(mod, "__file__", "") or ""
        assert origin.endswith(".cosmoext"), f"{name} was not loaded from a .cosmoext: {origin}"
        return mod

    return load
