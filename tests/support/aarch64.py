"""The arm64 interpreters under qemu-user, shared by test_aarch64.py and
test_closures_aarch64.py (a pytest plugin: tests/conftest.py loads it, so each
session fixture is built once per session).

(a) ``a64_cpython``: an ordinary dynamic CPython, a tiny ``Py_BytesMain``
    program linked with Debian's arm64 ``libpython3.X.so``, with
    ``cosmoext._runtime`` built as an arm64 extension module next to a copy of
    the pure-Python package;
(b) ``a64_embed``: ``cosmoext embed --arch aarch64``.

The arm64 CPython must be the version of this interpreter (the images carry
its ABI tag).  Nothing is skipped: without the cross compilers, qemu-user or
the arm64 CPython the fixtures fail and say to run ``bash .ci/setup.sh``.

qemu runs with ``-L /``: the arm64 libpython comes from Debian's multiarch
packages and needs the multiarch ``ld-linux-aarch64.so.1`` of the same glibc
build; with ``-L /usr/aarch64-linux-gnu`` qemu would take the cross
toolchain's ld.so while the libraries still resolve to the multiarch
libc.so.6, and thread creation then hangs.

Import-light (cosmoext's build modules are imported inside the fixtures):
the conftest, and so this plugin, also runs in the embedded interpreters.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .runs import pure_site

TESTS = Path(__file__).resolve().parent.parent
VER = "{}.{}".format(*sys.version_info[:2])
ABI = "{}{}".format(*sys.version_info[:2])
TRIPLET = "aarch64-linux-gnu"
ARM64_INCLUDE = Path(f"/usr/include/{TRIPLET}/python{VER}")
COMMON_INCLUDE = Path(f"/usr/include/python{VER}")  # Debian's arch-independent headers
ARM64_LIBPYTHON_SO = Path(f"/usr/lib/{TRIPLET}/libpython{VER}.so")
ARM64_LIBPYTHON_A = Path(f"/usr/lib/python{VER}/config-{VER}-{TRIPLET}/libpython{VER}.a")
QEMU = ["qemu-aarch64", "-L", "/"]
SETUP_HINT = ("run: bash .ci/setup.sh (installs gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu, "
              f"qemu-user and libpython{VER}-dev:arm64)")
CROSS_TOOLS = ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++", "aarch64-linux-gnu-ld",
               "aarch64-linux-gnu-nm")


def fail_setup(what: str) -> None:
    pytest.fail(f"aarch64 tests need {what}; {SETUP_HINT}", pytrace=False)


@pytest.fixture(scope="session")
def a64_cross() -> None:
    """The cross toolchain and the arm64 Python headers (no emulation), or a failure."""
    for tool in CROSS_TOOLS:
        if shutil.which(tool) is None:
            fail_setup(tool)
    if not (ARM64_INCLUDE / "pyconfig.h").exists():
        fail_setup(str(ARM64_INCLUDE / "pyconfig.h"))


@pytest.fixture(scope="session")
def a64_tools(a64_cross: None) -> None:
    """Also qemu-user and Debian's arm64 CPython of this version, or a failure."""
    if shutil.which("qemu-aarch64") is None:
        fail_setup("qemu-aarch64")
    for path in (ARM64_LIBPYTHON_SO, ARM64_LIBPYTHON_A,
                 Path(f"/usr/lib/{TRIPLET}/ld-linux-aarch64.so.1")):
        if not path.exists():
            fail_setup(str(path))


def run(cmd: list[str], env: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # arm64 interpreters run in tests/: the repository root holds the source
    # cosmoext package, which would shadow the arm64 tree ('' is first on sys.path).
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=str(TESTS) if cmd[0] == QEMU[0] else None)


def check(cmd: list[str], **kw) -> str:
    proc = run(cmd, **kw)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
    return proc.stdout


def cross_file(name: str) -> str:
    return check(["aarch64-linux-gnu-gcc", f"-print-file-name={name}"]).strip()


@pytest.fixture(scope="session")
def a64_cpython(a64_tools: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(python, tree): an arm64 CPython and a tree holding the cosmoext package with
    ``_runtime.cpython-3X-aarch64-linux-gnu.so`` built for it."""
    import cosmoext
    from cosmoext.embed import RUNTIME_SOURCES

    root = tmp_path_factory.mktemp("a64-cpython")
    main = root / "main.c"
    main.write_text("#include <Python.h>\n"
                    "int main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n")
    py = root / "python3"
    inc = [f"-I{ARM64_INCLUDE}", f"-I{COMMON_INCLUDE}"]
    tree = root / "tree"
    pkg_src = Path(cosmoext.__file__).parent
    shutil.copytree(pkg_src, tree / "cosmoext",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyc"))
    rt = pkg_src / "runtime"
    exports = root / "cx_exports.c"
    gen = [sys.executable, str(pkg_src / "exports" / "gen_exports.py"), "--out", str(exports),
           "--python-lib", str(ARM64_LIBPYTHON_SO), "--nm", "aarch64-linux-gnu-nm",
           "--libc-list", str(pkg_src / "exports" / "libc.txt"), "--lazy"]  # as CMakeLists.txt
    for lib in ("libc.so.6", "libm.so.6", "libc_nonshared.a"):
        gen += ["--libc-lib", cross_file(lib)]
    check(gen)
    cc = ["aarch64-linux-gnu-gcc", "-O2", "-fPIC", "-fno-strict-aliasing", "-DCX_EXPORTS_LAZY=1",
          f"-I{rt}", *inc]
    jobs = [["aarch64-linux-gnu-gcc", "-O2", *inc, str(main), "-o", str(py),
             f"-L/usr/lib/{TRIPLET}", f"-lpython{VER}"],
            [*cc, "-fno-builtin", "-w", "-c", str(exports), "-o", str(root / "exports.o")]]
    objs = [root / "exports.o"]
    for name in RUNTIME_SOURCES:
        if name == "embed_main.c":
            continue
        objs.append(root / (name + ".o"))
        jobs.append([*cc, "-c", str(rt / name), "-o", str(objs[-1])])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(check, jobs))
    check(["aarch64-linux-gnu-gcc", "-shared", "-o",
           str(tree / "cosmoext" / f"_runtime.cpython-{ABI}-{TRIPLET}.so"),
           *map(str, objs), "-Wl,--no-as-needed", "-lm"])
    return py, tree


@pytest.fixture(scope="session")
def a64_embed(a64_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("a64-embed") / "python-cx"
    check([sys.executable, "-m", "cosmoext", "embed", "--arch", "aarch64", "-o", str(out)])
    return out


@pytest.fixture(scope="session")
def a64_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pytest and its pure-Python dependencies, for the arm64 interpreters."""
    return pure_site(tmp_path_factory.mktemp("a64-site"))


def env(**extra: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CX_"))}
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    e.update(extra)
    return e


def cpython_cmd(a64_cpython: tuple[Path, Path], *args: str) -> list[str]:
    return [*QEMU, str(a64_cpython[0]), "-S", *args]


def cpython_env(a64_cpython: tuple[Path, Path], *path: Path | str, **extra: str):
    return env(PYTHONPATH=os.pathsep.join([str(a64_cpython[1]), *map(str, path)]), **extra)
