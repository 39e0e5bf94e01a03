"""The host runtime's lazy export table and unwinder (gen_exports.py --lazy,
cxexports.h, cxhost.c): importing it binds no exported name and opens no
libgcc_s; images still get the same addresses and working C++ exceptions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cosmoext._runtime as rt

RUNTIME_SO = Path(rt.__file__)


def child(code: str, *paths: Path) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.skipif(rt.info()["mode"] != "extension", reason="host builds only")
def test_runtime_binds_no_exported_name_when_imported() -> None:
    relocs = subprocess.run(["readelf", "-rW", str(RUNTIME_SO)], capture_output=True,
                            text=True, check=True).stdout
    n = len(re.findall(r"^\s*[0-9a-f]+\s+[0-9a-f]+\s+R_", relocs, re.M))
    assert rt.info()["exports"] > 1000
    assert n < 500, f"{n} relocations in {RUNTIME_SO.name}: the export table is not lazy"
    out = child("import sys\n"
                "maps = lambda: open('/proc/self/maps').read()\n"
                "before = 'libgcc_s' in maps()\n"
                "import cosmoext._runtime as rt\n"
                "print(before, 'libgcc_s' in maps(), rt.resolve('atexit') is not None,\n"
                "      rt.resolve('sin') is not None, rt.resolve('dlopen') is not None,\n"
                "      rt.resolve('no_such_name_xyz'))")
    before, after, *resolved = out.split()
    if before == "True":
        pytest.skip("this interpreter loads libgcc_s itself")
    assert after == "False", "importing the runtime opened libgcc_s"
    assert resolved == ["True", "True", "True", "None"]


@pytest.mark.parametrize("preload", [False, True], ids=["opened-by-import", "adopted"])
def test_frames_of_earlier_images_registered_with_the_unwinder(pic_dir: Path,
                                                               preload: bool) -> None:
    """A C image loaded before the unwinder is in the process: its frames are
    registered when a C++ image brings it in (or at the next load, when
    someone else opened it), so a throw unwinds through the C image."""
    # functools.partial, not a lambda: no interpreter frame between the throw
    # and the catch, as C++ must not unwind through the evaluation loop.
    out = child("import ctypes, functools\n"
                f"if {preload}: ctypes.CDLL('libgcc_s.so.1')\n"
                "import cx_callback as cb\n"
                "import cx_throw, cx_catch\n"
                "for f in (cx_throw.throw_std, cx_throw.throw_int) * 3:\n"
                "    print(cx_catch.call_and_catch(functools.partial(cb.call, f)))\n"
                "print('libgcc_s' in open('/proc/self/maps').read())", pic_dir)
    assert out.split("\n")[:7] == ["caught std: boom from cx_throw", "caught int 42"] * 3 + ["True"]


FIND_FDE = """
import ctypes, sys
def fde(f):  # libgcc_s's FDE for the C function behind builtin f, or None
    gcc = ctypes.CDLL("libgcc_s.so.1")
    gcc._Unwind_Find_FDE.restype = ctypes.c_void_p
    gcc._Unwind_Find_FDE.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    ml = ctypes.c_void_p.from_address(id(f) + 2 * ctypes.sizeof(ctypes.c_void_p)).value
    meth = ctypes.c_void_p.from_address(ml + ctypes.sizeof(ctypes.c_void_p)).value
    return gcc._Unwind_Find_FDE(meth + 1, (ctypes.c_void_p * 3)())
"""


def test_unwinder_opened_by_someone_else_is_adopted_at_the_next_load(pic_dir: Path) -> None:
    """C images only: libgcc_s opened by someone else after the first image
    load is found at the next one, which registers the earlier image too."""
    out = child(FIND_FDE +
                "import cx_callback\n"
                "maps = open('/proc/self/maps').read()\n"
                "first = fde(cx_callback.call)  # opens libgcc_s: not ours yet\n"
                "import cx_state\n"
                "print('libgcc_s' in maps, first, fde(cx_callback.call) is not None)", pic_dir)
    assert out.split() == ["False", "None", "True"]


RESOLVE_ALL = r"""
import ctypes, json, subprocess, sys
import cosmoext._runtime as rt
libc = ctypes.CDLL(None)
libc.dlsym.restype = ctypes.c_void_p
libc.dlsym.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
names = sys.argv[1:]
got = {n: rt.resolve(n) for n in names}
want = {n: libc.dlsym(None, n.encode()) for n in names}
print(json.dumps({"differ": [n for n in names if got[n] != want[n]],
                  "found": sum(v is not None for v in got.values())}))
"""


def test_python_api_fast_lookup_agrees_with_dlsym() -> None:
    """Python C API names are looked up in their object's GNU hash table, not with dlsym:
    every one of the interpreter's exported Py names resolves to exactly what
    dlsym(RTLD_DEFAULT) gives, in a fresh process where nothing was cached."""
    provider = sys.executable
    maps = Path("/proc/self/maps").read_text().splitlines()
    libpy = [ln.split()[-1] for ln in maps if "libpython" in ln]
    if libpy:
        provider = libpy[0]
    nm = subprocess.run(["nm", "-D", "--defined-only", provider], capture_output=True,
                        text=True, check=True).stdout
    names = sorted({ln.split()[-1] for ln in nm.splitlines()
                    if re.match(r"_?Py", ln.split()[-1]) and ln.split()[1] in "TDBR"})
    assert len(names) > 1000, (provider, len(names))
    p = subprocess.run([sys.executable, "-c", RESOLVE_ALL, *names], capture_output=True,
                       text=True, check=True)
    r = json.loads(p.stdout)
    assert r["differ"] == [] and r["found"] == len(names), r
