"""What an image keeps: only what PyInit_<name>, .init_array/.fini_array and
the .eh_frame of kept code reach (``ld -r --gc-sections``); archive members
with static constructors (libstdc++'s ios_init.o) only when referenced.
The link maps ($COSMOEXT_MAP_DIR) show it; docs/architecture.md explains."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support.build import build_ext

SRC = r"""
#include <Python.h>
#include <stdexcept>
#include <string>

static int g_ctor_ran;
struct Ctor { Ctor() { g_ctor_ran = 42; } };
static Ctor g_ctor;  // reached only through .init_array

extern "C" __attribute__((used, noinline)) int cx_gc_unused_marker(int x) { return x * 7 + 3; }

static PyObject *probe(PyObject *, PyObject *) {
    try {
        throw std::runtime_error(std::string("thrown ") + std::to_string(g_ctor_ran));
    } catch (const std::exception &e) {
        return Py_BuildValue("is", g_ctor_ran, e.what());
    }
}

static PyMethodDef methods[] = {{"probe", probe, METH_NOARGS, nullptr}, {}};
static PyModuleDef mod = {PyModuleDef_HEAD_INIT, "cx_gc", nullptr, -1, methods};
PyMODINIT_FUNC PyInit_cx_gc(void) { return PyModule_Create(&mod); }
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("gc")
    (d / "cx_gc.cpp").write_text(SRC)
    mp = pytest.MonkeyPatch()
    mp.setenv("COSMOEXT_MAP_DIR", str(d))
    try:
        build_ext(name="cx_gc", sources=[str(d / "cx_gc.cpp")], output=str(d / "cx_gc.cosmoext"))
    finally:
        mp.undo()
    return d


def test_unreferenced_code_is_dropped(built: Path) -> None:
    names = {line.split()[-1] for line in (built / "cx_gc.x86_64.map").read_text().splitlines()}
    assert "PyInit_cx_gc" in names
    assert "cx_gc_unused_marker" not in names
    # Kept only through .init_array / .eh_frame: the static constructor, the personality.
    assert any("_GLOBAL__sub_I_" in n for n in names)
    assert "__gxx_personality_v0" in names


def test_ld_map_names_why_members_are_in(built: Path) -> None:
    ld_map = (built / "cx_gc.x86_64.ld.map").read_text()
    pulled = ld_map.split("Archive member included", 1)[1].split("Discarded input sections", 1)[0]
    assert "eh_personality.o" in pulled  # pulled by __gxx_personality_v0
    assert "ios_init.o" not in pulled  # nothing here uses <iostream>


def test_kept_code_runs(built: Path) -> None:
    code = ("import sys, cosmoext._hook as h; h.install(); sys.path.insert(0, sys.argv[1]); "
            "import cx_gc; print(cx_gc.probe())")
    out = subprocess.run([sys.executable, "-c", code, str(built)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "(42, 'thrown 42')"
