"""Tests for cosmoext/exports/gen_exports.py against the real libpython and glibc."""

from __future__ import annotations

import ctypes
import platform
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cosmoext.embed import default_libpython

ROOT = Path(__file__).resolve().parents[1]
GEN = ROOT / "cosmoext" / "exports" / "gen_exports.py"
LIBC_LIST = ROOT / "cosmoext" / "exports" / "libc.txt"
RUNTIME = ROOT / "cosmoext" / "runtime"
# glibc's and Debian's multiarch layout for this machine
TRIPLET = sysconfig.get_config_var("MULTIARCH") or f"{platform.machine()}-linux-gnu"
MULTIARCH = f"/usr/lib/{TRIPLET}"
LIBC_SO = Path(f"/lib/{TRIPLET}/libc.so.6")
LIBM_SO = Path(f"/lib/{TRIPLET}/libm.so.6")
LIBC_NONSHARED = Path(MULTIARCH, "libc_nonshared.a")
# Debian's static libpython of this interpreter's version (what `cosmoext embed` links)
PY_VERSION = "{}.{}".format(*sys.version_info[:2])
STATIC_PY = Path(default_libpython(platform.machine(), PY_VERSION))

# this interpreter's own libpython
LIBDIR = Path(sysconfig.get_config_var("LIBDIR") or Path(sys.base_prefix, "lib"))
LIBPYTHON = LIBDIR / str(sysconfig.get_config_var("LDLIBRARY") or f"libpython{PY_VERSION}.so")
PY_INCLUDE = sysconfig.get_paths()["include"]
PY_LINK = f"python{sysconfig.get_config_var('LDVERSION') or PY_VERSION}"
SUMMARY = re.compile(
    r"gen_exports: (\d+) python symbols, (\d+) libc symbols "
    r"\((\d+) listed names not in the given libraries\)"
)
ENTRY = re.compile(r'  \{0x([0-9a-f]{8})u, "([A-Za-z_][A-Za-z0-9_]*)", &\2\},')
LAZY_ENTRY = re.compile(r"  \{0x([0-9a-f]{8})u, (\d+)u\},")
HEADER = [
    "#include <stddef.h>",
    "#include <stdint.h>",
    '#include "cxexports.h"',
]

pytestmark = pytest.mark.skipif(
    shutil.which("gcc") is None or not LIBC_SO.exists(),
    reason="needs gcc and glibc (x86_64 Debian layout)",
)
needs_libpython = pytest.mark.skipif(
    not LIBPYTHON.name.endswith(".so") or not LIBPYTHON.exists(),
    reason="needs a shared libpython",
)

# Symbols looked up in the generated table and compared with what the linker
# gives a normal translation unit for the same name.
CHECKED = [
    "PyLong_FromLong",
    "_Py_NoneStruct",
    "PyExc_TypeError",
    "malloc",
    "stderr",
    "environ",
    "sin",
    "sinf",
    "__stack_chk_fail",
    "__errno_location",
    "memcpy",
    "pthread_create",
    "atexit",
]
MAIN_C = r"""
#ifndef LAZY
#define LAZY 0
#endif
#include <Python.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cxexports.h"
extern void __stack_chk_fail(void);
extern char **environ;

static int failed;
static void check(const char *name, const void *want) {
  const struct cx_export *e = cx_export_find(name, cx_gnu_hash(name));
  printf("sym %s %p %p\n", name, e ? cx_export_addr(e) : NULL, want);
  if (e && strcmp(cx_export_name(e), name) != 0) failed = 1;
}
int main(void) {
  CHECKS
  const char *absent[] = {"dlopen", "dlsym", "__tls_get_addr", "dl_iterate_phdr",
                          "PyLong_FromLongX", "", "mallo", COLLIDER};
  for (size_t i = 0; i < sizeof absent / sizeof *absent; i++)
    printf("absent %s %p\n", absent[i],
           (const void *)cx_export_find(absent[i], cx_gnu_hash(absent[i])));
  for (size_t i = 0; i < cx_export_count; i++) {
    const struct cx_export *e = &cx_exports[i];
    if ((!LAZY && cx_export_addr(e) == NULL) || e->hash != cx_gnu_hash(cx_export_name(e)) ||
        cx_export_find(cx_export_name(e), e->hash) != e)
      failed = 1, printf("bad entry %s\n", cx_export_name(e));
  }
  printf("hash %u\n", (unsigned)cx_gnu_hash("\xff\x80Py"));
  printf("count %zu failed %d\n", cx_export_count, failed);
  return failed;
}
"""
TEST_C = r"""
#include "cxexports.h"
const void *cx_test_lookup(const char *name) {
  const struct cx_export *e = cx_export_find(name, cx_gnu_hash(name));
  return e ? cx_export_addr(e) : NULL;
}
"""


def gnu_hash(data: bytes) -> int:
    h = 5381
    for byte in data:
        h = (h * 33 + byte) % 2**32
    return h


def run_gen(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(GEN), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def gen_ok(out: Path, python: Path, listing: Path, *libc_libs: str | Path,
           lazy: bool = False) -> tuple[int, int, int]:
    """Run the generator successfully; return (python, libc, missing) counts."""
    libc_opts = [x for lib in libc_libs for x in ("--libc-lib", lib)]
    proc = run_gen("--out", out, "--python-lib", python, "--libc-list", listing, *libc_opts,
                   *(["--lazy"] if lazy else []))
    assert proc.returncode == 0, proc.stderr
    m = SUMMARY.fullmatch(proc.stderr.strip())
    assert m, proc.stderr
    n_py, n_libc, missing = map(int, m.groups())
    return n_py, n_libc, missing


def run(*cmd: str | Path) -> str:
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def parse_table(text: str) -> list[tuple[int, str]]:
    lines = text.splitlines()
    assert lines[:7] == [
        "/* generated by gen_exports.py: do not edit */",
        *HEADER,
        "#if CX_EXPORTS_LAZY",
        '#error "a static export table: compile without CX_EXPORTS_LAZY"',
        "#endif",
    ]
    start = lines.index("const struct cx_export cx_exports[] = {")
    end = lines.index("};", start)
    externs = lines[7:start]
    entries = []
    for line in lines[start + 1 : end]:
        m = ENTRY.fullmatch(line)
        assert m, line
        entries.append((int(m[1], 16), m[2]))
    assert sorted(externs) == sorted(f"extern char {n};" for _, n in entries)
    assert lines[end + 1 :] == [f"const size_t cx_export_count = {len(entries)};"]
    return entries


@needs_libpython

def run_table_checks(tmp_path: Path, cflags: list[str], table_c: Path, libs: list[str],
                     collider: str, prefix: str) -> str:
    """Build MAIN_C (after PREFIX) against TABLE_C, run it, and check that every CHECKED
    name's table address equals the linker's; return the program's output."""
    checks = "\n  ".join(f'check("{n}", (const void *)&{n});' for n in CHECKED)
    (tmp_path / "main.c").write_text(
        prefix + MAIN_C.replace("CHECKS", checks).replace("COLLIDER", f'"{collider}"'))
    exe = tmp_path / "main"
    run("gcc", *cflags, tmp_path / "main.c", table_c, *libs, f"-Wl,-rpath,{LIBDIR}", "-o", exe)
    out = run(exe)
    got = {}
    for line in out.splitlines():
        kind, name, *addrs = line.split(" ")
        if kind == "sym":
            got[name] = tuple(addrs)
        elif kind == "absent":
            assert addrs == ["(nil)"], line
    assert set(got) == set(CHECKED)
    for name, (found, want) in got.items():
        assert found == want != "(nil)", f"{name}: table {found}, linker {want}"
    return out

def test_shared_table_resolves_to_real_addresses(tmp_path: Path) -> None:
    gen_c = tmp_path / "gen.c"
    n_py, n_libc, _ = gen_ok(gen_c, LIBPYTHON, LIBC_LIST, LIBC_SO, LIBM_SO, LIBC_NONSHARED)
    assert n_py > 1000 and n_libc > 1000

    entries = parse_table(gen_c.read_text())
    names = [n for _, n in entries]
    assert entries == sorted(entries)
    assert len(set(names)) == len(names) == n_py + n_libc
    assert all(h == gnu_hash(n.encode()) for h, n in entries)
    assert sum(n.startswith(("Py", "_Py", "PY", "_PY")) for n in names) == n_py
    assert set(CHECKED) <= set(names)
    reserved = {"dlopen", "dlsym", "dlclose", "__tls_get_addr", "_dl_find_object"}
    assert not reserved & set(names)

    cflags = ["-fno-builtin", "-Wall", "-Werror", f"-I{RUNTIME}", f"-I{PY_INCLUDE}"]
    libs = [f"-L{LIBDIR}", f"-l{PY_LINK}", "-lm"]
    (tmp_path / "test.c").write_text(TEST_C)
    so = tmp_path / "t.so"
    shared = ["-shared", "-fPIC", "-Wl,-z,defs"]
    run("gcc", *shared, *cflags, gen_c, tmp_path / "test.c", *libs, "-o", so)

    # Same GNU hash as a real entry ("Lo" -> "MN" keeps h*33+c): the lookup
    # must compare names, not just hashes.
    collider = "PyMNng_FromLong"
    assert gnu_hash(collider.encode()) == gnu_hash(b"PyLong_FromLong")
    out = run_table_checks(tmp_path, cflags, gen_c, libs, collider, prefix="")
    assert f"hash {gnu_hash(bytes([0xFF, 0x80]) + b'Py')}" in out
    assert f"count {len(entries)} failed 0" in out

    # The shared object loads and its lookup agrees with this process's libpython.
    lib = ctypes.CDLL(str(so))
    lookup = lib.cx_test_lookup
    lookup.restype = ctypes.c_void_p
    lookup.argtypes = [ctypes.c_char_p]
    real = ctypes.cast(ctypes.pythonapi.PyLong_FromLong, ctypes.c_void_p).value
    assert lookup(b"PyLong_FromLong") == real
    assert lookup(b"dlopen") is None
    assert lookup(collider.encode()) is None


def parse_lazy_table(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """The (hash, name) entries of a --lazy table and the names it links statically."""
    lines = text.splitlines()
    assert lines[:7] == [
        "/* generated by gen_exports.py --lazy: do not edit */",
        *HEADER,
        "#if !CX_EXPORTS_LAZY",
        '#error "a lazy export table: compile with -DCX_EXPORTS_LAZY=1"',
        "#endif",
    ]
    blob_at = lines.index("const char cx_export_names[] =")
    start = lines.index("const struct cx_export cx_exports[] = {")
    end = lines.index("};", start)
    # C literals "NAME\0": the blob is the NUL-terminated names back to back.
    pieces = [ln.strip().rstrip(";") for ln in lines[blob_at + 1 : start]]
    assert all(re.fullmatch(r'"[A-Za-z_][A-Za-z0-9_]*\\0"', x) for x in pieces), pieces[:3]
    blob = "".join(x[1:-3] + "\0" for x in pieces)
    names = blob.split("\0")
    assert names[-1] == ""
    entries = []
    for line in lines[start + 1 : end]:
        m = LAZY_ENTRY.fullmatch(line)
        assert m, line
        off = int(m[2])
        name = blob[off:].split("\0", 1)[0]
        entries.append((int(m[1], 16), name))
    assert [n for _, n in entries] == names[:-1]
    assert lines[end + 1] == "const void **cx_export_cache;"
    assert lines[end + 2] == "const void *(*cx_export_lookup)(const char *, uint32_t);"
    fixed_end = lines.index("};", end + 3)
    fixed = []
    for line in lines[end + 4 : fixed_end - 1]:
        m = re.fullmatch(r"  \{(\d+)u, &([A-Za-z_][A-Za-z0-9_]*)\},", line)
        assert m, line
        assert entries[int(m[1])][1] == m[2]
        fixed.append(m[2])
    assert lines[fixed_end - 1] == "  {0u, NULL},"
    assert sorted(lines[7:blob_at]) == sorted(f"extern char {n};" for n in fixed)
    assert lines[fixed_end + 1 :] == [f"const size_t cx_export_count = {len(entries)};"]
    return entries, fixed


@needs_libpython
def test_lazy_table_resolves_like_the_linker(tmp_path: Path) -> None:
    """--lazy: names only, dlsym on first use; the same addresses as a static
    link (atexit, only in libc_nonshared.a, keeps the linker's), and no
    relocation per name in a shared object."""
    lazy_c, static_c = tmp_path / "lazy.c", tmp_path / "static.c"
    libs_c = (LIBC_SO, LIBM_SO, LIBC_NONSHARED)
    counts = gen_ok(lazy_c, LIBPYTHON, LIBC_LIST, *libs_c, lazy=True)
    assert counts == gen_ok(static_c, LIBPYTHON, LIBC_LIST, *libs_c)
    entries, fixed = parse_lazy_table(lazy_c.read_text())
    assert entries == parse_table(static_c.read_text())
    assert "atexit" in fixed and "malloc" not in fixed and len(fixed) < 10

    cflags = ["-fno-builtin", "-Wall", "-Werror", "-DCX_EXPORTS_LAZY=1", f"-I{RUNTIME}",
              f"-I{PY_INCLUDE}"]
    libs = [f"-L{LIBDIR}", f"-l{PY_LINK}", "-Wl,--no-as-needed", "-lm", "-ldl"]
    collider = "PyMNng_FromLong"
    out = run_table_checks(tmp_path, cflags, lazy_c, libs, collider, prefix="#define LAZY 1\n")
    assert f"count {len(entries)} failed 0" in out

    (tmp_path / "test.c").write_text(TEST_C)
    so = tmp_path / "t.so"
    run("gcc", "-shared", "-fPIC", "-Wl,-z,defs", *cflags, lazy_c, tmp_path / "test.c", *libs,
        "-o", so)
    relocs = run("readelf", "-rW", so).count("R_X86_64_")
    assert relocs < 50, f"{relocs} relocations for a lazy table of {len(entries)} names"
    lib = ctypes.CDLL(str(so))
    lookup = lib.cx_test_lookup
    lookup.restype = ctypes.c_void_p
    lookup.argtypes = [ctypes.c_char_p]
    real = ctypes.cast(ctypes.pythonapi.PyLong_FromLong, ctypes.c_void_p).value
    assert lookup(b"PyLong_FromLong") == real
    assert lookup(b"dlopen") is None and lookup(collider.encode()) is None
    # Compiled against the other layout, each table refuses to build.
    for c_file, flag in ((lazy_c, "-DCX_EXPORTS_LAZY=0"), (static_c, "-DCX_EXPORTS_LAZY=1")):
        proc = subprocess.run(["gcc", "-c", "-fno-builtin", flag, f"-I{RUNTIME}", str(c_file),
                               "-o", str(tmp_path / "x.o")], capture_output=True, text=True)
        assert proc.returncode != 0 and "#error" in proc.stderr, proc.stderr[-500:]


@needs_libpython
def test_python_wins_and_missing_names_counted(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    # pthread_atfork is only a compat (non-default) version in libc.so.6; its
    # linkable definition lives in libc_nonshared.a, which is not given here.
    listing.write_text(
        "# test\nmalloc  # comment\nPyLong_FromLong\nno_such_fn_xyz\npthread_atfork\n"
    )
    out = tmp_path / "gen.c"
    _, n_libc, missing = gen_ok(out, LIBPYTHON, listing, LIBC_SO, LIBPYTHON)
    assert (n_libc, missing) == (1, 2)
    names = [n for _, n in parse_table(out.read_text())]
    assert names.count("PyLong_FromLong") == 1 and "malloc" in names
    assert "no_such_fn_xyz" not in names and "pthread_atfork" not in names


def test_errors(tmp_path: Path) -> None:
    out = tmp_path / "gen.c"
    listing = tmp_path / "list.txt"
    listing.write_text("malloc\ndlopen\n")
    cases: list[tuple[str, list[str | Path]]] = [
        ("library not found", ["--python-lib", tmp_path / "missing.so"]),
        ("no Python symbols", ["--python-lib", LIBC_SO]),
        ("false failed", ["--python-lib", LIBC_SO, "--nm", "false"]),
        ("list.txt:2: dlopen is reserved", ["--libc-list", listing]),
    ]
    for expected, args in cases:
        proc = run_gen("--out", out, *args)
        assert proc.returncode == 2, args
        assert proc.stderr.startswith("gen_exports: error: "), proc.stderr
        assert expected in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not out.exists()


@pytest.mark.skipif(not STATIC_PY.exists(), reason=f"needs libpython{PY_VERSION}-dev")
def test_static_archives_compile(tmp_path: Path) -> None:
    gen_c = tmp_path / "gen_static.c"
    # libm.a is a GNU ld script naming libm-2.36.a and libmvec.a.
    libs = (f"{MULTIARCH}/libc.a", f"{MULTIARCH}/libm.a")
    n_py, n_libc, _ = gen_ok(gen_c, STATIC_PY, LIBC_LIST, *libs)
    assert n_py > 1000 and n_libc > 1000
    entries = parse_table(gen_c.read_text())
    assert entries == sorted(entries) and "sin" in {n for _, n in entries}
    cflags = ["-fno-builtin", "-Wall", "-Wextra", "-Werror", f"-I{RUNTIME}"]
    run("gcc", "-c", *cflags, gen_c, "-o", tmp_path / "gen_static.o")
