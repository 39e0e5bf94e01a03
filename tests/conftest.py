"""Builds the test extensions of tests/ext as .cosmoext images, once per session.

``ext(name)`` imports a module through the ordinary import system (the
cosmoext path hook finds ``NAME.cosmoext`` on sys.path); it serves
tests/test_ext_suite.py, whose EXTENSIONS table says what to build.
Two variants are built: ``pic`` (what host CPythons load) and ``nopic``
(what cosmocc emits; loadable only by an embedded interpreter).
"""

from __future__ import annotations

import importlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

HERE = Path(__file__).parent
EXT_DIR = HERE / "ext"

from test_ext_suite import CPP, EXTENSIONS  # noqa: E402

import cosmoext._hook  # noqa: E402
from cosmoext.build_ext import BuildSettings, build  # noqa: E402

cosmoext._hook.install()


def build_variant(root: Path, pic: bool, names: list[str] | None = None) -> Path:
    """Build every test extension into ``root`` laid out for import."""
    root.mkdir(parents=True, exist_ok=True)

    def one(name: str) -> None:
        parts = name.split(".")
        out = root.joinpath(*parts[:-1], parts[-1] + ".cosmoext")
        for depth in range(1, len(parts)):
            pkg = root.joinpath(*parts[:depth])
            pkg.mkdir(exist_ok=True)
            (pkg / "__init__.py").touch()
        srcs = [str(EXT_DIR / s) for s in EXTENSIONS[name]]
        cflags = ["-std=c++17"] if name in CPP else []
        build(BuildSettings(name=parts[-1], sources=srcs, output=str(out), pic=pic,
                            cflags=cflags, jobs=1, quiet=True))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(one, names or list(EXTENSIONS)))
    return root


@pytest.fixture(scope="session")
def pic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Children that re-run the suite under a guard reuse the parent's build.
    prebuilt = os.environ.get("CX_TEST_PIC_DIR")
    if prebuilt:
        return Path(prebuilt)
    return build_variant(tmp_path_factory.mktemp("cx-pic"), pic=True)


@pytest.fixture(scope="session")
def nopic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_variant(tmp_path_factory.mktemp("cx-nopic"), pic=False)


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
