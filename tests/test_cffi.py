"""cffi callbacks the way cffi's documentation recommends them: an out-of-line
API-mode module with ``extern "Python"`` functions, built into a .cosmoext.

``ffi.emit_c_code()`` writes the module's C source; ``cosmoext build-ext``
builds it.  How the generated module reaches cffi's backend, read from that
source: ``PyInit__cx_cffi_demo`` calls ``_cffi_init``, which does
``PyImport_ImportModule("_cffi_backend")`` (an ordinary extension module of
this CPython, a .so) and calls its ``_init_cffi_1_0_external_module`` with
the address of a small array: the module name, the cffi version, the
module's own ``_cffi_exports`` table and its type context.  The backend
fills ``_cffi_exports`` with function pointers (``_cffi_call_python`` is
entry 25) and builds the module's ``ffi`` and ``lib``.  So the image imports
only Python C API and libc names from the runtime's export table; nothing is
dlopen()ed on its behalf, and the backend is reached through that table.
Each ``extern "Python"`` function is plain C in the image: it packs its
arguments into a buffer and calls ``_cffi_call_python``, which takes the GIL
and calls the function registered with ``@ffi.def_extern()``.  No closure
and no executable memory are created (``ffi.callback`` would use libffi
closures, RWX pages here); the child run under the seccomp W^X filter below
shows it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

try:
    import cffi
except ImportError:  # fail, not skip: CI installs it
    pytest.fail("tests/test_cffi.py needs cffi: pip install cffi (.ci/setup.sh installs it)",
                pytrace=False)

CDEF = """
extern "Python" int py_cmp(const void *, const void *);
extern "Python" void py_event(int, double);
extern "Python" long py_transform(long);
extern "Python" int py_fails(int);
int sort_ints(int *items, int n);
long apply_twice(long x);
int run_events(int n);
int call_fails(int x);
long run_threads(int nthreads, int ncalls);
"""

SOURCE = r"""
#include <pthread.h>
#include <stdlib.h>
static int py_cmp(const void *, const void *);
static void py_event(int, double);
static long py_transform(long);
static int py_fails(int);

static int sort_ints(int *items, int n) {
  qsort(items, (size_t)n, sizeof(int), py_cmp);
  return n;
}
static long apply_twice(long x) { return py_transform(py_transform(x)); }
static int run_events(int n) {
  for (int i = 0; i < n; i++) py_event(i, i * 0.5);
  return n;
}
static int call_fails(int x) { return py_fails(x); }

struct job { int id, n; long sum; };
static void *worker(void *arg) {
  struct job *j = arg;
  for (int i = 0; i < j->n; i++) j->sum += py_transform(j->id * 1000 + i);
  return NULL;
}
/* extern "Python" from threads Python never saw (called without the GIL) */
static long run_threads(int nthreads, int ncalls) {
  pthread_t th[16];
  struct job jobs[16];
  long total = 0;
  if (nthreads > 16) return -1;
  for (int i = 0; i < nthreads; i++) {
    jobs[i] = (struct job){i, ncalls, 0};
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  }
  for (int i = 0; i < nthreads; i++) {
    pthread_join(th[i], NULL);
    total += jobs[i].sum;
  }
  return total;
}
"""


def _build(out_dir: Path) -> Path:
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_cx_cffi_demo", SOURCE)
    src = out_dir / "_cx_cffi_demo.c"
    ffi.emit_c_code(str(src))
    out = out_dir / "_cx_cffi_demo.cosmoext"
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "build-ext", "--name",
                           "_cx_cffi_demo", str(src), "-o", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("cffi"))


@pytest.fixture(scope="module")
def demo(demo_path: Path):
    sys.path.insert(0, str(demo_path.parent))
    try:
        import importlib

        importlib.invalidate_caches()
        import cosmoext._hook

        cosmoext._hook.install()
        mod = importlib.import_module("_cx_cffi_demo")
    finally:
        sys.path.remove(str(demo_path.parent))
    return mod


def test_loaded_from_cosmoext_backend_is_a_so(demo) -> None:
    import _cffi_backend

    assert demo.__file__.endswith("_cx_cffi_demo.cosmoext")
    assert _cffi_backend.__file__.endswith(".so")  # the ordinary backend of this CPython
    assert type(demo.ffi).__module__ == "_cffi_backend"


def test_image_imports_only_the_export_table(demo_path: Path) -> None:
    import json

    out = subprocess.run([sys.executable, "-m", "cosmoext", "inspect", "--json", str(demo_path)],
                         capture_output=True, text=True, check=True).stdout
    names = {i["name"] for i in json.loads(out)["images"][0]["imports"]}
    assert "PyImport_ImportModule" in names  # how it finds _cffi_backend
    assert not [n for n in names if "cffi" in n or n.startswith("dl")], names
    import cosmoext._runtime as rt

    assert all(rt.resolve(n) for n in names)


def test_extern_python_callbacks(demo) -> None:
    ffi, lib = demo.ffi, demo.lib

    @ffi.def_extern()
    def py_transform(x):
        return 3 * x + 1

    assert lib.apply_twice(2) == 22

    @ffi.def_extern()
    def py_cmp(a, b):
        x, y = ffi.cast("int *", a)[0], ffi.cast("int *", b)[0]
        return (x > y) - (x < y)

    items = [(i * 7919) % 1000 for i in range(500)]
    arr = ffi.new("int[]", items)
    assert lib.sort_ints(arr, len(items)) == 500
    assert list(arr) == sorted(items)

    events = []

    @ffi.def_extern()
    def py_event(i, x):
        events.append((i, x))

    assert lib.run_events(4) == 4
    assert events == [(0, 0.0), (1, 0.5), (2, 1.0), (3, 1.5)]


def test_extern_python_error_value(demo) -> None:
    ffi, lib = demo.ffi, demo.lib

    @ffi.def_extern(error=-1)
    def py_fails(x):
        if x < 0:
            raise ValueError("negative")
        return x * 2

    caught = []
    old, sys.unraisablehook = sys.unraisablehook, caught.append
    try:
        assert lib.call_fails(21) == 42
        assert lib.call_fails(-1) == -1  # cffi reports the exception, returns `error`
    finally:
        sys.unraisablehook = old
    assert [type(u.exc_value) for u in caught] == [ValueError]


def test_extern_python_from_foreign_threads(demo) -> None:
    ffi, lib = demo.ffi, demo.lib
    lock = threading.Lock()
    count = [0]

    @ffi.def_extern()
    def py_transform(x):
        with lock:
            count[0] += 1
        return x + 1

    total = lib.run_threads(8, 500)
    assert total == sum(t * 1000 + i + 1 for t in range(8) for i in range(500))
    assert count[0] == 4000


def test_cffi_module_under_wx_filter(demo_path: Path) -> None:
    from harness.wx_guard import run_under_wx_filter

    code = (
        "import sys, cosmoext\n"
        f"m = cosmoext.load({str(demo_path)!r})\n"
        "ffi, lib = m.ffi, m.lib\n"
        "@ffi.def_extern()\n"
        "def py_transform(x):\n    return 3 * x + 1\n"
        "@ffi.def_extern()\n"
        "def py_cmp(a, b):\n"
        "    x, y = ffi.cast('int *', a)[0], ffi.cast('int *', b)[0]\n"
        "    return (x > y) - (x < y)\n"
        "arr = ffi.new('int[]', [5, 3, 9, 1])\n"
        "lib.sort_ints(arr, 4)\n"
        "assert list(arr) == [1, 3, 5, 9]\n"
        "assert lib.apply_twice(2) == 22\n"
        "assert lib.run_threads(4, 100) == sum(3 * (t * 1000 + i) + 1 "
        "for t in range(4) for i in range(100))\n"
        "bad = [ln for ln in open('/proc/self/maps')\n"
        "       if 'w' in ln.split()[1] and 'x' in ln.split()[1]]\n"
        "assert not bad, bad\n"
        "print('cffi ok')\n"
    )
    proc = run_under_wx_filter(code, env=dict(os.environ), timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert "cffi ok" in proc.stdout
