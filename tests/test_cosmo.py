"""Real Cosmopolitan: cosmocc-built images in a real fat APE ``python.com``.

``cosmoext embed --toolchain cosmocc`` links the interpreter from the
Cosmopolitan CPython build (libpython, config.c, stdlib) with the loader
built in; ``--toolchain cosmocc --arch x86_64,aarch64`` builds every test
extension as a fat, non-PIC image.  The suite then runs inside the APE:
natively on x86_64 (also under the W^X seccomp filter and under strace),
and the APE's aarch64 half under qemu-aarch64 with the /proc/self/maps audit.
Where ../shared/cosmo exists these tests must run (support.cosmo).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest
from harness.wx_guard import run_under_wx_filter
from support import cosmo, runs
from support.build import build_suite
from support.cmake_project import CHECK_IMPORT, write_project
from support.extensions import EXTENSIONS
from support.runs import EXT_SUITE, assert_all_passed

from cosmoext import format as fmt

HERE = Path(__file__).parent
SUITE = str(EXT_SUITE)
pytestmark = pytest.mark.cosmo


@pytest.fixture(scope="session")
def cosmo_tools() -> tuple[Path, Path]:
    return cosmo.toolchain_root(), cosmo.python_build()


@pytest.fixture(scope="session")
def python_com(cosmo_tools: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cosmo") / "python.com"
    proc = cosmo.run([sys.executable, "-m", "cosmoext", "embed", "--toolchain", "cosmocc",
                      "--arch", "x86_64,aarch64", "--cosmo-python", str(cosmo_tools[1]),
                      "-o", str(out)])
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


@pytest.fixture(scope="session")
def cosmo_images(cosmo_tools: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory,
                 ) -> Path:
    os.environ.setdefault("COSMO_PYTHON", str(cosmo_tools[1]))
    return build_suite(tmp_path_factory.mktemp("cosmo-images"), pic=None,
                       arch=["x86_64", "aarch64"], toolchain="cosmocc")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runs.pure_site(tmp_path_factory.mktemp("cosmo-site"))


def x86(com: Path, *args: str) -> list[str]:
    return ["sh", str(com), *args]  # an APE starts through the shell, as from a prompt


def a64(com: Path, tools: tuple[Path, Path], *args: str) -> list[str]:
    return ["qemu-aarch64", str(tools[0] / "bin" / "ape-aarch64.elf"), str(com), *args]


def suite_env(site: Path, images: Path, **extra: str) -> dict[str, str]:
    return cosmo.clean_env(PYTHONPATH=os.pathsep.join([str(site), str(HERE)]),
                           CX_TEST_PIC_DIR=str(images), **extra)


def suite_args() -> list[str]:
    return ["-m", "pytest", "-q", "-p", "no:cacheprovider", SUITE]


def test_images_are_fat_nonpic_cosmo(cosmo_images: Path) -> None:
    files = sorted(cosmo_images.rglob("*.cosmoext"))
    assert len(files) == len(EXTENSIONS)
    for f in files:
        images = fmt.parse(f.read_bytes())
        assert [i.arch_name for i in images] == ["x86_64", "aarch64"], f
        assert all(i.target == "cosmo" and not i.flags & fmt.F_PIC for i in images), f


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_starts_with_no_environment(python_com: Path, cosmo_tools: tuple[Path, Path],
                                    tmp_path: Path, arch: str) -> None:
    code = ("import sys, json, cosmoext._runtime as r\n"
            "print(json.dumps([sys.version.split()[0], sys.prefix, r.info()]))")
    cmd = x86(python_com, "-c", code) if arch == "x86_64" else a64(python_com, cosmo_tools,
                                                                     "-c", code)
    proc = cosmo.run(cmd, env={"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/")},
                     cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    import json

    version, prefix, info = json.loads(proc.stdout)
    build = cosmo_tools[1] / arch / "include"
    (pyver,) = [p.name for p in build.iterdir()]
    assert pyver == "python" + ".".join(version.split(".")[:2])
    assert prefix == "/zip"
    assert (info["mode"], info["target"], info["machine"]) == ("embedded", "cosmo", arch)
    assert info["static_tls_reserve"] == 65536


def test_suite_x86_64(python_com: Path, cosmo_images: Path, site: Path) -> None:
    proc = cosmo.run(x86(python_com, *suite_args()), suite_env(site, cosmo_images))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout)


def under_wx_filter(com: Path, args: list[str], env: dict[str, str]) -> str:
    """python.com ARGS started (through the shell) under the seccomp W^X filter;
    its output, after checking that it succeeded."""
    code = f"import os; os.execv({shutil.which('sh')!r}, {x86(com, *args)!r})"
    proc = run_under_wx_filter(code, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_suite_x86_64_under_wx_seccomp(python_com: Path, cosmo_images: Path,
                                       site: Path) -> None:
    assert_all_passed(under_wx_filter(python_com, suite_args(), suite_env(site, cosmo_images)))


def test_suite_x86_64_opens_no_shared_object(python_com: Path, cosmo_tools: tuple[Path, Path],
                                             cosmo_images: Path, site: Path,
                                             tmp_path: Path) -> None:
    strace = shutil.which("strace")
    assert strace, "strace is installed by .ci/setup.sh"
    log = tmp_path / "trace"
    # Through the APE loader itself, not the shell (which is a dynamic program).
    loader = str(cosmo_tools[0] / "bin" / "ape-x86_64.elf")
    proc = cosmo.run([strace, "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log),
                      loader, str(python_com), *suite_args()], suite_env(site, cosmo_images))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_all_passed(proc.stdout)
    opened = log.read_text().splitlines()
    assert sum(".cosmoext" in line for line in opened) >= len(EXTENSIONS)
    so = [line for line in opened if re.search(r'\.so(\.[0-9]+)*"', line)]
    assert so == [], so[:5]


@pytest.mark.qemu
@pytest.mark.slow
def test_suite_aarch64_under_qemu(python_com: Path, cosmo_tools: tuple[Path, Path],
                                  cosmo_images: Path, site: Path, tmp_path: Path) -> None:
    log = tmp_path / "wx.log"
    cmd = a64(python_com, cosmo_tools, "-m", "pytest", "-q", "-p", "no:cacheprovider",
              "-p", "harness.wx_audit_plugin", SUITE)
    proc = cosmo.run(cmd, suite_env(site, cosmo_images, CX_WX_AUDIT_LOG=str(log)),
                     timeout=1800)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    passed = assert_all_passed(proc.stdout)
    audits = [line.split() for line in log.read_text().splitlines()]
    assert len(audits) == passed  # one /proc/self/maps audit after every test
    assert all(a[-1] == "0" for a in audits)  # no writable+executable mapping, ever
    assert int(audits[-1][-2]) == len(EXTENSIONS)


def test_images_are_placed_near_the_ape(python_com: Path, cosmo_images: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import cx_tables, cx_cpp, cosmoext._runtime as r\n"
            "print(max(i['base'] + i['vsize'] for i in r.images()))\n")
    proc = cosmo.run(x86(python_com, "-c", code, str(cosmo_images)), cosmo.clean_env())
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) <= 1 << 32  # absolute 32-bit relocations: below 4 GiB


def _refusal(cmd: list[str], env: dict[str, str]) -> str:
    proc = cosmo.run(cmd, env)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


REFUSE = ("import sys, cosmoext\n"
          "try:\n    cosmoext.load(sys.argv[1], 'cx_state')\n"
          "except ImportError as e:\n    print(str(e).replace(sys.argv[1], 'FILE'))\n"
          "else:\n    print('loaded')\n")


@pytest.mark.parametrize("damage", ["empty", "truncated", "magic", "version", "target"])
def test_bad_input_gives_the_same_error_as_the_host(python_com: Path, cosmo_images: Path,
                                                    tmp_path: Path, damage: str) -> None:
    """The same one-line ImportError inside python.com as in this CPython."""
    good = (cosmo_images / "cx_state.cosmoext").read_bytes()
    data = bytearray(good)
    if damage == "empty":
        data = bytearray()
    elif damage == "truncated":
        data = data[:100]
    elif damage == "magic":
        data[0] ^= 0xFF
    elif damage == "version":
        data[8] ^= 0x7F
    bad = tmp_path / "cx_state.cosmoext"
    bad.write_bytes(bytes(data))
    inside = _refusal(x86(python_com, "-c", REFUSE, str(bad)), cosmo.clean_env())
    if damage == "target":
        # The untouched cosmo image: refused by this (linux-gnu) CPython, loaded inside.
        host = _refusal([sys.executable, "-c", REFUSE, str(bad)], dict(os.environ))
        assert inside == "loaded" and "built for target 'cosmo'" in host, host
        return
    host = _refusal([sys.executable, "-c", REFUSE, str(bad)], dict(os.environ))
    assert inside != "loaded" and "\n" not in inside
    assert inside == host


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_cmake_route_with_cosmocc(python_com: Path, cosmo_tools: tuple[Path, Path],
                                  tmp_path: Path, arch: str) -> None:
    """toolchains/cosmocc.cmake + cosmoext_add_module(): C, C++ (exceptions, static
    constructors), a static library and compiler helpers, imported in python.com."""
    import cosmoext.cmake

    src, build = tmp_path / "src", tmp_path / "build"
    write_project(src)
    env = dict(os.environ, COSMO_PYTHON=str(cosmo_tools[1]))
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    for cmd in (["cmake", "-S", str(src), "-B", str(build), *gen,
                 f"-DCMAKE_TOOLCHAIN_FILE={HERE.parent / 'toolchains' / 'cosmocc.cmake'}",
                 f"-DCOSMOEXT_ARCH={arch}", f"-DPython_EXECUTABLE={sys.executable}",
                 f"-Dcosmoext_DIR={cosmoext.cmake.get_cmake_dir()}"],
                ["cmake", "--build", str(build)]):
        proc = cosmo.run(cmd, env, cwd="/")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    images = sorted(build.glob("*.cosmoext"))
    assert [p.name for p in images] == ["tinyc.cosmoext", "tinycxx.cosmoext",
                                        "tinynopic.cosmoext"]
    for p in images:
        (img,) = fmt.parse(p.read_bytes())
        assert (img.arch_name, img.target) == (arch, "cosmo")
    code = CHECK_IMPORT.replace("HELPER_BIAS", "7")
    cmd = (x86(python_com, "-c", code) if arch == "x86_64"
           else a64(python_com, cosmo_tools, "-c", code))
    proc = cosmo.run(cmd, cosmo.clean_env(PYTHONPATH=str(build)))
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stdout + proc.stderr


def test_pip_wheel_with_cosmocc(python_com: Path, cosmo_tools: tuple[Path, Path],
                                tmp_path: Path) -> None:
    """The PEP 517 backend with -C toolchain=cosmocc: a fat +cosmo wheel whose
    modules import in python.com on both architectures."""
    demo = tmp_path / "demo"
    shutil.copytree(HERE.parent / "examples" / "setuptools_demo", demo)
    env = dict(os.environ, COSMO_PYTHON=str(cosmo_tools[1]))
    proc = cosmo.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                      "-w", str(tmp_path / "w"), "-C", "toolchain=cosmocc",
                      "-C", "arch=x86_64,aarch64", str(demo)], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (whl,) = (tmp_path / "w").glob("*.whl")
    assert whl.name.endswith(f"+cosmo-cp{sys.version_info.major}{sys.version_info.minor}"
                             "-none-any.whl"), whl.name
    site = tmp_path / "site"
    shutil.unpack_archive(whl, site, "zip")
    for name in ("_sorted", "_speedups"):
        images = fmt.parse((site / "cxdemo" / f"{name}.cosmoext").read_bytes())
        assert [(i.arch_name, i.target) for i in images] == [("x86_64", "cosmo"),
                                                             ("aarch64", "cosmo")]
    code = ("import cxdemo; print(cxdemo.scale([1, 2]), cxdemo.unique_sorted(['b', 'a', 'b']),"
            " cxdemo._sorted.__file__.endswith('.cosmoext'))")
    want = "[3, 6] ['a', 'b'] True"
    for cmd in (x86(python_com, "-c", code), a64(python_com, cosmo_tools, "-c", code)):
        proc = cosmo.run(cmd, cosmo.clean_env(PYTHONPATH=str(site)))
        assert proc.returncode == 0 and proc.stdout.strip() == want, proc.stdout + proc.stderr


BEFORE_AND_AFTER = """\
import sys, threading
sys.path.insert(0, sys.argv[1])
go, done = threading.Event(), []
def early():  # started before the import: its TLS block predates the image
    go.wait()
    done.append((tlc.push(7), tlc.push(8), tlc.total(), tlc.size()))
t = threading.Thread(target=early); t.start()
import cx_tls_cpp as tlc
tlc.push(100)
go.set(); t.join()
late = []
t2 = threading.Thread(target=lambda: late.append((tlc.push(1), tlc.total()))); t2.start(); t2.join()
print(done, late, tlc.size(), tlc.total(), [r[1] for r in tlc.run_threads(8, 1000)])
"""


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_thread_locals_in_threads_before_and_after_the_import(
        python_com: Path, cosmo_tools: tuple[Path, Path], cosmo_images: Path, arch: str) -> None:
    """C++ thread_local (zero-initialised TLS from the reserve, constructors run
    per thread) in a thread that existed before the import, one made after it,
    and 8 native threads."""
    args = ("-c", BEFORE_AND_AFTER, str(cosmo_images))
    cmd = x86(python_com, *args) if arch == "x86_64" else a64(python_com, cosmo_tools, *args)
    proc = cosmo.run(cmd, cosmo.clean_env())
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[0] == "[(1, 2, 15, 2)] [(1, 1)] 1 100 " + str([1000] * 8)


@pytest.fixture(scope="session")
def closure_images(cosmo_tools: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory,
                   ) -> Path:
    """cx_closures and the callbacks example, fat cosmocc images."""
    from support.build import build_ext

    import cosmoext

    os.environ.setdefault("COSMO_PYTHON", str(cosmo_tools[1]))
    d = tmp_path_factory.mktemp("cosmo-closures")
    for name, src in (("cx_closures", HERE / "closures" / "cx_closures.c"),
                      ("callbacks", HERE.parent / "examples" / "callbacks" / "callbacks.c")):
        build_ext(name=name, sources=[str(src)], output=str(d / f"{name}.cosmoext"),
                  arch=["x86_64", "aarch64"], toolchain="cosmocc",
                  include_dirs=[cosmoext.get_include()])
    return d


CLOSURES = HERE / "test_closures.py"


def closure_env(site: Path, images: Path) -> dict[str, str]:
    return cosmo.clean_env(PYTHONPATH=os.pathsep.join([str(site), str(HERE)]),
                           CX_CLOSURE_BUILD_DIR=str(images), CX_CLOSURE_WX_CHILD="1")


def closure_args() -> list[str]:
    return ["-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(CLOSURES)]


def test_closures_x86_64(python_com: Path, closure_images: Path, site: Path) -> None:
    """The closure pool and the callbacks example inside python.com."""
    proc = cosmo.run(x86(python_com, *closure_args()), closure_env(site, closure_images))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout, CLOSURES, skip_reason=runs.WX_CHILD_SKIP)


def test_closures_x86_64_under_wx_seccomp(python_com: Path, closure_images: Path,
                                          site: Path) -> None:
    out = under_wx_filter(python_com, closure_args(), closure_env(site, closure_images))
    assert_all_passed(out, CLOSURES, skip_reason=runs.WX_CHILD_SKIP)


@pytest.mark.qemu
@pytest.mark.slow
def test_closures_aarch64_under_qemu(python_com: Path, cosmo_tools: tuple[Path, Path],
                                     closure_images: Path, site: Path) -> None:
    proc = cosmo.run(a64(python_com, cosmo_tools, *closure_args()),
                     closure_env(site, closure_images), timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert_all_passed(proc.stdout, CLOSURES, skip_reason=runs.WX_CHILD_SKIP)
