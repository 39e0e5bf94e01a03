"""The test extensions of tests/ext and where their images go on disk.

Import-light on purpose (no cosmoext): tests/test_ext_suite.py imports it in
every interpreter it runs in, including the embedded and the arm64 ones.
"""

from __future__ import annotations

from pathlib import Path

EXT_DIR = Path(__file__).resolve().parent.parent / "ext"

# module name -> source files, relative to tests/ext
EXTENSIONS = {
    "cx_state": ["cx_state.c"],
    "cx_tables": ["cx_tables.c"],
    "cx_callback": ["cx_callback.c"],
    "cx_errors": ["cx_errors.c"],
    "cx_multiphase": ["cx_multiphase.c"],
    "cx_pkg.sub": ["pkg/sub.c"],
    "cx_pkg.sub2": ["pkg/sub2.c"],
    "cx_cpp": ["cx_cpp.cpp"],
    "cx_tls": ["cx_tls.c"],
    "cx_tls_cpp": ["cx_tls_cpp.cpp"],
    "cx_twin_a": ["cx_twin_a.c"],
    "cx_twin_b": ["cx_twin_b.c"],
    "cx_throw": ["cx_throw.cpp"],
    "cx_catch": ["cx_catch.cpp"],
}

# modules that must be compiled/linked as C++ (C++17, libstdc++)
CPP = {"cx_cpp", "cx_tls_cpp", "cx_throw", "cx_catch"}


def sources(name: str) -> list[str]:
    """Absolute source paths of test extension ``name``."""
    return [str(EXT_DIR / s) for s in EXTENSIONS[name]]


def cflags(name: str) -> list[str]:
    return ["-std=c++17"] if name in CPP else []


def image_path(root: Path, name: str, suffix: str = ".cosmoext") -> Path:
    """Where module ``name`` lives under import root ``root``: ``cx_pkg.sub`` is
    ``root/cx_pkg/sub.cosmoext``."""
    *pkg, last = name.split(".")
    return root.joinpath(*pkg, last + suffix)


def make_packages(root: Path, name: str) -> Path:
    """Create the package directories (each with an ``__init__.py``) that module
    ``name`` needs under ``root``; return its image path."""
    parts = name.split(".")
    for depth in range(1, len(parts)):
        pkg = root.joinpath(*parts[:depth])
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "__init__.py").touch()
    return image_path(root, name)


def image_file_names() -> set[str]:
    """The file names of every test extension's image."""
    return {image_path(Path(), n).name for n in EXTENSIONS}
