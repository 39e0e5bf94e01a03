"""Setting cxx-runtime = shared: C++ images import the C++ runtime from the
process's libstdc++.so.6 (opened by the host runtime at the first such
import) instead of carrying the parts of libstdc++.a they reach.

The C++ tests of the test-extension suite run in a child against images
built that way; exceptions cross between shared-runtime and static-runtime
images; interpreters without a shared C++ runtime refuse such an image with
an error that names the setting (test_embed.py checks the embedded one)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.build import build_ext, build_suite
from support.extensions import CPP, cflags, sources
from support.runs import EXT_SUITE, assert_all_passed

from cosmoext import format as fmt
from cosmoext.errors import CosmoextError
from cosmoext.pipeline import build_extension
from cosmoext.settings import Settings

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_suite(tmp_path_factory.mktemp("cx-shared-cxx"), pic=True, names=sorted(CPP),
                       cxx_runtime="shared")


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_images_import_the_cxx_runtime(shared_dir: Path, pic_dir: Path) -> None:
    for name in sorted(CPP):
        (shared,) = fmt.parse((shared_dir / f"{name}.cosmoext").read_bytes())
        (static,) = fmt.parse((pic_dir / f"{name}.cosmoext").read_bytes())
        imported = {i.name for i in shared.imports}
        assert "__gxx_personality_v0" in imported, name
        assert any(n.startswith("_Z") for n in imported), name
        assert "__gxx_personality_v0" not in {i.name for i in static.imports}, name
        size = (shared_dir / f"{name}.cosmoext").stat().st_size
        assert size * 4 < (pic_dir / f"{name}.cosmoext").stat().st_size, name


def test_inspect_says_which_runtime(shared_dir: Path, pic_dir: Path) -> None:
    import json

    for d, want in ((shared_dir, "shared"), (pic_dir, "static")):
        path = d / "cx_throw.cosmoext"
        out = subprocess.run([sys.executable, "-m", "cosmoext", "inspect", "--json", str(path)],
                             capture_output=True, text=True, check=True).stdout
        assert [i["cxx_runtime"] for i in json.loads(out)["images"]] == [want]
        text = subprocess.run([sys.executable, "-m", "cosmoext", "inspect", str(path)],
                              capture_output=True, text=True, check=True).stdout
        assert ("cxx-runtime = shared" in text) == (want == "shared"), text


def test_cxx_suite_with_the_shared_runtime(shared_dir: Path) -> None:
    """test_ext_suite.py's C++ tests (static constructors, exceptions across
    images and through Python frames, thread_local, std containers)."""
    env = {**os.environ, "CX_TEST_PIC_DIR": str(shared_dir), "PYTHONPATH": str(HERE)}
    code = ("import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
            f"'-k', 'cpp', {str(EXT_SUITE)!r}]))")
    assert assert_all_passed(_run(code, env=env), select=("-k", "cpp")) > 0


LOAD = """
import sys, cosmoext._hook as h
h.install()
def mapped():
    with open('/proc/self/maps') as f:
        return any('libstdc++.so' in line for line in f)
before = mapped()
sys.path[:0] = sys.argv[1:]
import cx_throw, cx_catch
print(before, mapped(), cx_catch.call_and_catch(cx_throw.throw_std),
      cx_catch.call_and_catch(cx_throw.throw_int))
"""


@pytest.mark.parametrize(("thrower", "catcher"), [("shared", "shared"), ("static", "shared"),
                                                   ("shared", "static")])
def test_exceptions_cross_runtimes(shared_dir: Path, tmp_path: Path, pic_dir: Path,
                                   thrower: str, catcher: str) -> None:
    """libstdc++.so.6 is opened only for an image that imports from it, and an
    exception thrown by one runtime's __cxa_throw is caught by the other's
    personality routine (the unwinder is the process's one libgcc_s)."""
    dirs = {"shared": shared_dir, "static": pic_dir}
    for name, kind in (("cx_throw", thrower), ("cx_catch", catcher)):
        (tmp_path / f"{name}.cosmoext").symlink_to(dirs[kind] / f"{name}.cosmoext")
    before, after, std, num = _run(LOAD, str(tmp_path)).split(" ", 3)
    assert before == "False" and after == "True"
    assert (std, num.strip()) == ("caught", "std: boom from cx_throw caught int 42")


def test_static_runtime_does_not_open_libstdcxx(pic_dir: Path) -> None:
    before, after, *_ = _run(LOAD, str(pic_dir)).split(" ")
    assert (before, after) == ("False", "False")


def test_a_cxx_name_libstdcxx_lacks_is_refused(tmp_path: Path) -> None:
    """Only what libstdc++.so.6 itself defines resolves; the error lists the
    name and says what the setting needs."""
    src = tmp_path / "cx_nocxx.cpp"
    src.write_text('#include <Python.h>\nnamespace cxnope { void missing(); }\n'
                   'static PyModuleDef m = {PyModuleDef_HEAD_INIT, "cx_nocxx", 0, -1, 0};\n'
                   'extern "C" PyObject *PyInit_cx_nocxx(void) { cxnope::missing(); '
                   'return PyModule_Create(&m); }\n')
    build_ext(name="cx_nocxx", sources=[str(src)], output=str(tmp_path / "cx_nocxx.cosmoext"),
              cxx_runtime="shared")
    code = ("import sys, cosmoext._hook as h; h.install(); sys.path.insert(0, sys.argv[1])\n"
            "try:\n    import cx_nocxx\nexcept ImportError as e:\n    print(e)\n")
    out = _run(code, str(tmp_path))
    assert "_ZN6cxnope7missingEv" in out and "cxx-runtime = shared" in out, out


def test_libstdcxx_thread_locals_are_a_link_error(tmp_path: Path) -> None:
    """std::call_once reads libstdc++'s own thread-locals, which an image
    cannot import: one build-time error naming the variable."""
    src = tmp_path / "cx_once.cpp"
    src.write_text('#include <Python.h>\n#include <mutex>\nstatic std::once_flag f;\n'
                   'static PyModuleDef m = {PyModuleDef_HEAD_INIT, "cx_once", 0, -1, 0};\n'
                   'extern "C" PyObject *PyInit_cx_once(void) { std::call_once(f, []{}); '
                   'return PyModule_Create(&m); }\n')
    with pytest.raises(CosmoextError, match="_ZSt15__once_callable.*cannot be imported"):
        build_ext(name="cx_once", sources=[str(src)], output=str(tmp_path / "x.cosmoext"),
                  cxx_runtime="shared")


@pytest.mark.parametrize("settings", [Settings(toolchain="cosmocc", cxx_runtime="shared"),
                                      Settings(target="cosmo", cxx_runtime="shared")])
def test_shared_needs_a_host_target(settings: Settings, tmp_path: Path) -> None:
    name = "cx_throw"
    with pytest.raises(CosmoextError, match="setting 'cxx-runtime': 'shared' needs a host"):
        build_extension(name, sources(name), settings, output=str(tmp_path / "x.cosmoext"),
                        cflags=cflags(name), quiet=True)


CHECK_LOOKUP = """
import ctypes, json, sys, cosmoext._runtime as rt
lib = ctypes.CDLL("libstdc++.so.6")
names, tls = json.loads(sys.stdin.read())
bad = [n for n in names if rt.resolve_cxx(n) != ctypes.cast(getattr(lib, n), ctypes.c_void_p).value]
print(json.dumps({"bad": bad[:20], "checked": len(names), "tls": [rt.resolve_cxx(n) for n in tls],
                  "not_cxx": rt.resolve_cxx("malloc")}))
"""


def test_cxx_lookup_gives_what_dlsym_gives() -> None:
    """Every C++ function and object libstdc++.so.6 defines at its default
    version resolves, through the runtime's own hash-table lookup, to the
    address dlsym gives; its thread-locals and C names do not resolve."""
    import json

    lib = subprocess.run(["g++", "-print-file-name=libstdc++.so.6"], capture_output=True,
                         text=True, check=True).stdout.strip()
    syms = subprocess.run(["readelf", "--dyn-syms", "-W", lib], capture_output=True, text=True,
                          check=True).stdout
    names: set[str] = set()
    tls: set[str] = set()
    for f in (ln.split() for ln in syms.splitlines()):
        if len(f) < 8 or f[6] == "UND" or "@@" not in f[7]:
            continue
        name = f[7].split("@@")[0]
        if name.startswith(("_Z", "__cxa_", "__gxx_")):
            if f[3] == "TLS":
                tls.add(name)
            elif f[3] in ("FUNC", "OBJECT"):
                names.add(name)
    proc = subprocess.run([sys.executable, "-c", CHECK_LOOKUP],
                          input=json.dumps([sorted(names), sorted(tls)]),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert names and out == {"bad": [], "checked": len(names), "tls": [None] * len(tls),
                             "not_cxx": None}
