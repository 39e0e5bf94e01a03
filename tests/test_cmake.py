"""The CMake route: toolchains/*.cmake, find_package(cosmoext) + cosmoext_add_module(),
and a scikit-build-core wheel (examples/skbuild_demo) carrying .cosmoext files.

(a) a tiny project (C module + static helper library, C++ module, NO_PIC module)
    configured and built with each x86_64 stand-in toolchain file: the flags in
    compile_commands.json, the images, and importing them in a fresh interpreter;
(b) `pip wheel examples/skbuild_demo --no-build-isolation`: a wheel with
    .cosmoext files and no .so, installed into a target dir and imported.
aarch64 toolchain files: configure + compile only (skipped without
aarch64-linux-gnu-gcc); cosmocc.cmake: only where cosmocc exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from support.cmake_project import CHECK_IMPORT, HELPER_C, write_project

import cosmoext.cmake

ROOT = Path(__file__).resolve().parent.parent
TOOLCHAINS = ROOT / "toolchains"
DEMO = ROOT / "examples" / "skbuild_demo"

def run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("cwd", "/")  # not the checkout: `python -c` would import ./cosmoext
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def configure(src: Path, build: Path, toolchain: str | None, *extra: str) -> None:
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    tc = [f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAINS / toolchain}"] if toolchain else []
    run(["cmake", "-S", src, "-B", build, *gen, *tc,
         f"-DPython_EXECUTABLE={sys.executable}",
         f"-Dcosmoext_DIR={cosmoext.cmake.get_cmake_dir()}",
         "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON", *extra])


def compile_commands(build: Path) -> dict[str, list[str]]:
    """source file name -> its compile command (split)."""
    out = {}
    for e in json.loads((build / "compile_commands.json").read_text()):
        out[Path(e["file"]).name] = e["command"].split()
    return out


def check_import(directory: Path, bias: int) -> None:
    env = dict(os.environ, PYTHONPATH=str(directory))
    code = CHECK_IMPORT.replace("HELPER_BIAS", str(bias))
    proc = run([sys.executable, "-c", code], env=env, cwd=directory)
    assert proc.stdout.strip() == "ok"


def inspect_flags(path: Path) -> list[str]:
    proc = run([sys.executable, "-m", "cosmoext", "inspect", "--json", path])
    d = json.loads(proc.stdout)
    assert d["valid"], d
    (img,) = d["images"]
    return img["flags"] + [f"arch={img['arch']}", f"target={img['target']}",
                           f"module={img['module']}"]


def need(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} not installed: run bash .ci/setup.sh")


# None: no toolchain file; cosmoext_add_module works out gnu/x86_64 itself.
HOST = [("gnu-x86_64.cmake", ("gcc", "g++")), ("clang-x86_64.cmake", ("clang", "clang++")),
        (None, ("cc", "c++", "gcc", "g++"))]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 host toolchains")
@pytest.mark.parametrize("toolchain,compilers", HOST, ids=[str(t) for t, _ in HOST])
def test_toolchain_file_builds_importable_images(tmp_path: Path, toolchain: str | None,
                                                 compilers: tuple[str, ...]) -> None:
    need(compilers[0])
    src, build, inst = tmp_path / "src", tmp_path / "build", tmp_path / "inst"
    write_project(src, bias=7)
    configure(src, build, toolchain, f"-DCMAKE_INSTALL_PREFIX={inst}")
    if toolchain:
        cache = (build / "CMakeCache.txt").read_text()
        assert f"COSMOEXT_TOOLCHAIN:STRING={toolchain.split('-')[0]}" in cache
        assert "COSMOEXT_ARCH:STRING=x86_64" in cache
        assert "COSMOEXT_TARGET:STRING=linux-gnu" in cache
    run(["cmake", "--build", build])
    run(["cmake", "--install", build])

    # The flags of cosmoext/toolchain.py reached every object.
    cc = compile_commands(build)
    assert set(cc) == {"helper.c", "tinyc.c", "tinycxx.cpp", "tinynopic.c"}
    for name, cmd in cc.items():
        assert os.path.basename(cmd[0]) in compilers, (name, cmd[0])
        assert cmd.count("-ffunction-sections") == 1 and cmd.count("-fdata-sections") == 1, cmd
        if name == "tinynopic.c":
            assert {"-fno-pic", "-fno-pie", "-mcmodel=small"} <= set(cmd), cmd
            assert "-fPIC" not in cmd, cmd
        else:
            assert "-fPIC" in cmd and "-fno-pic" not in cmd, (name, cmd)
    assert "-DTINY_MAGIC=42" in cc["tinyc.c"]
    assert "-std=c++17" in cc["tinycxx.cpp"]
    assert any(a.startswith("-I") and os.path.exists(os.path.join(a[2:], "Python.h"))
               for a in cc["tinyc.c"]), cc["tinyc.c"]

    for mod in ("tinyc", "tinycxx", "tinynopic"):
        flags = inspect_flags(build / f"{mod}.cosmoext")
        assert {"arch=x86_64", "target=linux-gnu", f"module={mod}"} <= set(flags), flags
        assert ("pic" in flags) == (mod != "tinynopic"), (mod, flags)
    assert not list(build.glob("*.so"))
    assert (inst / "pkg" / "tinyc.cosmoext").read_bytes() == (build / "tinyc.cosmoext").read_bytes()
    assert (inst / "pkg" / "tinycxx.cosmoext").is_file()

    check_import(build, bias=7)

    # Editing a source of a LIBRARIES target relinks the image.
    (src / "helper.c").write_text(HELPER_C % 1000)
    run(["cmake", "--build", build])
    check_import(build, bias=1000)


def test_cxx_runtime_setting_reaches_the_link(tmp_path: Path) -> None:
    """COSMOEXT_CXX_RUNTIME=shared: the C++ module imports the C++ runtime
    (no libstdc++.a in it) and still imports and runs."""
    need("g++")
    src, build = tmp_path / "src", tmp_path / "build"
    write_project(src, bias=7)
    configure(src, build, "gnu-x86_64.cmake", "-DCOSMOEXT_CXX_RUNTIME=shared")
    run(["cmake", "--build", build])
    proc = run([sys.executable, "-m", "cosmoext", "inspect", "--json", build / "tinycxx.cosmoext"])
    (img,) = json.loads(proc.stdout)["images"]
    assert any(i["name"].startswith("_Z") for i in img["imports"]), img["imports"]
    check_import(build, bias=7)


CROSS = ["gnu-aarch64.cmake", "clang-aarch64.cmake"]


@pytest.mark.parametrize("toolchain", CROSS)
def test_aarch64_toolchain_file_compiles(tmp_path: Path, toolchain: str) -> None:
    """Configure + compile only: linking aarch64 images is another route's job."""
    need("aarch64-linux-gnu-gcc")
    if toolchain.startswith("clang"):
        need("clang")
    src, build = tmp_path / "src", tmp_path / "build"
    write_project(src)
    configure(src, build, toolchain)
    run(["cmake", "--build", build, "--target", "helper", "tinyc", "tinycxx", "tinynopic"])
    cache = (build / "CMakeCache.txt").read_text()
    assert "COSMOEXT_ARCH:STRING=aarch64" in cache
    assert "COSMOEXT_LD:STRING=aarch64-linux-gnu-ld" in cache
    for name, cmd in compile_commands(build).items():
        assert {"-ffixed-x18", "-ffixed-x28", "-ffunction-sections"} <= set(cmd), (name, cmd)
        if toolchain.startswith("clang"):
            assert "--target=aarch64-linux-gnu" in cmd, cmd
        else:
            assert os.path.basename(cmd[0]).startswith("aarch64-linux-gnu-"), cmd
    objs = list(build.glob("CMakeFiles/*.dir/*.o"))
    assert len(objs) == 4, objs
    for o in objs:
        data = o.read_bytes()[:20]
        assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == 183, o


# cosmocc.cmake is not tested: cosmocc is not available on these machines (README).


def test_find_package_names_the_interpreter_that_lacks_cosmoext(tmp_path: Path) -> None:
    """A Python that cannot import cosmoext: configure fails and says which and why."""
    fake = tmp_path / "python-without-cosmoext"
    fake.write_text("#!/bin/sh\necho 'ModuleNotFoundError: no cosmoext here' >&2\nexit 1\n")
    fake.chmod(0o755)
    src = tmp_path / "src"
    write_project(src)
    proc = subprocess.run(["cmake", "-S", src, "-B", tmp_path / "build",
                           f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAINS / 'gnu-x86_64.cmake'}",
                           f"-DPython_EXECUTABLE={fake}",
                           f"-Dcosmoext_DIR={cosmoext.cmake.get_cmake_dir()}"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    err = " ".join((proc.stdout + proc.stderr).split())
    assert f"{fake} cannot import cosmoext" in err, err
    assert "no cosmoext here" in err, err


def test_interpreter_without_cosmoext_links_through_pythonpath(tmp_path: Path) -> None:
    """Python_EXECUTABLE that cannot import cosmoext itself (here Debian's python3.11):
    the link step runs it with PYTHONPATH set to the site dir of this cosmoext copy,
    and the image records that interpreter's ABI and uses its headers."""
    other = shutil.which("python3.11", path="/usr/bin")
    if other is None or os.path.realpath(other) == os.path.realpath(sys.executable):
        pytest.skip("no second Python 3.11 (Debian's /usr/bin/python3.11)")

    def ask(code: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([other, "-c", code], capture_output=True, text=True, cwd=tmp_path)

    if ask("import cosmoext").returncode == 0:
        pytest.skip(f"{other} imports cosmoext itself")
    src, build = tmp_path / "src", tmp_path / "build"
    write_project(src)
    configure(src, build, None, f"-DPython_EXECUTABLE={other}")
    run(["cmake", "--build", build, "--target", "tinyc_cosmoext"])
    site = Path(cosmoext.cmake.get_cmake_dir()).parent.parent
    rules = (build / "build.ninja" if shutil.which("ninja") else build / "Makefile").read_text()
    assert f"PYTHONPATH={site}" in rules
    include = ask("import sysconfig; print(sysconfig.get_paths()['include'])").stdout.strip()
    assert f"-I{include}" in compile_commands(build)["tinyc.c"]
    abi = ask("import sys; print(f'cp{sys.version_info[0]}{sys.version_info[1]}')").stdout.strip()
    proc = run([sys.executable, "-m", "cosmoext", "inspect", "--json", build / "tinyc.cosmoext"])
    assert json.loads(proc.stdout)["images"][0]["python_abi"] == abi


def test_skbuild_demo_wheel(tmp_path: Path) -> None:
    dist, target = tmp_path / "dist", tmp_path / "site"
    run([sys.executable, "-m", "pip", "wheel", DEMO, "--no-build-isolation", "--no-deps",
         "-w", dist, "--disable-pip-version-check"])
    (wheel,) = dist.glob("skdemo-*.whl")
    abi = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert f"-{abi}-{abi}-linux_" in wheel.name, wheel.name
    names = zipfile.ZipFile(wheel).namelist()
    assert {"skdemo/__init__.py", "skdemo/_speedups.cosmoext",
            "skdemo/_geometry.cosmoext"} <= set(names), names
    assert not [n for n in names if n.endswith((".so", ".c", ".cpp"))], names

    run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", target,
         wheel, "--disable-pip-version-check", "--root-user-action=ignore"])
    code = textwrap.dedent("""\
        import skdemo, skdemo._speedups as s, skdemo._geometry as g
        assert s.__file__.endswith("_speedups.cosmoext") and g.__file__.endswith(".cosmoext")
        assert skdemo.__version__ == "0.1.0"
        assert s.fnv1a(b"hello") == 0xa430d84680aabd0b and s.fnv1a(b"") == 0xcbf29ce484222325
        assert s.sum_squares(range(4)) == 14
        assert g.convex_hull_area([(0, 0), (2, 0), (2, 2), (0, 2), (1, 1)]) == 4.0
        p = g.Polygon([(0, 0), (3, 0), (0, 4)])
        assert (p.area(), p.vertex_count(), g.units) == (6.0, 3, "square units")
        try:
            g.convex_hull_area([(0, 0)])
        except ValueError as e:
            assert str(e) == "need at least 3 points, got 1", e
        else:
            raise AssertionError("no ValueError")
        print("ok", s.__file__)
    """)
    env = dict(os.environ, PYTHONPATH=str(target))
    proc = run([sys.executable, "-c", code], env=env, cwd=tmp_path)
    assert proc.stdout.startswith(f"ok {target}/skdemo/_speedups.cosmoext"), proc.stdout
