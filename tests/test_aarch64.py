"""aarch64, verified under qemu-user emulation (not on real hardware).

Two arm64 interpreters (fixtures of tests/support/aarch64.py) run under
``qemu-aarch64``:

(a) an ordinary dynamic CPython: a tiny ``Py_BytesMain`` program linked with
    Debian's arm64 ``libpython3.X.so``, with ``cosmoext._runtime`` built as
    an arm64 extension module (export table from that libpython and the arm64
    libc/libm) next to a copy of the pure-Python package;
(b) ``cosmoext embed --arch aarch64``: a static arm64 interpreter from the
    arm64 ``libpython3.X.a`` and ``libc.a``, the loader built in.

The test-extension suite runs in (a) from PIC images and in (b) from non-PIC
(cosmocc-shaped) and PIC images; after every test a pytest plugin audits
``/proc/self/maps`` (the guest's view under qemu) for writable+executable
mappings, since qemu refuses seccomp.  cx_reloc.c is built in several code
models and TLS dialects to cover the aarch64 relocation types, and run.

Nothing here is skipped: without the cross compilers, qemu-user or the arm64
CPython the tests fail and say to run ``bash .ci/setup.sh``.  The tests that
run something under emulation are marked ``qemu``; the relocation-coverage
and build-error tests need only the cross compilers.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from support.aarch64 import (
    ARM64_INCLUDE,
    COMMON_INCLUDE,
    QEMU,
    check,
    cpython_cmd,
    cpython_env,
    run,
)
from support.aarch64 import env as qemu_env
from support.build import build_ext, build_suite
from support.extensions import CPP, EXTENSIONS, image_path
from support.refusal import IMPORT_CHILD, STATIC_TLS, refused_in_child
from support.runs import EXT_SUITE, assert_all_passed

from cosmoext import format as fmt
from cosmoext.errors import CosmoextError
from cosmoext.link import elf
from cosmoext.link.aarch64 import NAMES
from cosmoext.toolchain import get_toolchain

HERE = Path(__file__).parent
SUITE = str(EXT_SUITE)
RELOC_SRC = HERE / "ext" / "reloc" / "cx_reloc.c"
RELOC_ABS = HERE / "ext" / "reloc" / "cx_reloc_a64abs.s"


@pytest.fixture(scope="session")
def a64_pic_dir(a64_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_suite(tmp_path_factory.mktemp("a64-pic"), pic=True, arch=["aarch64"])


@pytest.fixture(scope="session")
def a64_nopic_dir(a64_tools: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_suite(tmp_path_factory.mktemp("a64-nopic"), pic=False, arch=["aarch64"])


def _suite(python_cmd: list[str], env: dict[str, str], log: Path) -> None:
    """The test-extension suite with the W^X audit after every test."""
    env = dict(env, CX_WX_AUDIT_LOG=str(log))
    proc = run([*python_cmd, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "-p", "harness.wx_audit_plugin", SUITE], env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    passed = assert_all_passed(proc.stdout)
    audits = [line.split() for line in log.read_text().splitlines()]
    assert len(audits) == passed  # one audit after every test
    assert all(a[-1] == "0" for a in audits)  # no writable+executable mapping, ever
    assert int(audits[-1][-2]) == len(EXTENSIONS)  # ... with every image loaded, once


# ---------------------------------------------------------------------------
# (a) the dynamic arm64 CPython


@pytest.mark.qemu
def test_runtime_extension_is_arm64(a64_cpython: tuple[Path, Path]) -> None:
    code = ("import platform, cosmoext._runtime as r; i = r.info();"
            "print(platform.machine(), i['machine'], i['mode'], i['exports'] > 2000)")
    out = check(cpython_cmd(a64_cpython, "-c", code), env=cpython_env(a64_cpython))
    assert out.split() == ["aarch64", "aarch64", "extension", "True"]


@pytest.mark.qemu
def test_suite_pic_in_arm64_cpython(a64_cpython: tuple[Path, Path], a64_site: Path,
                                    a64_pic_dir: Path, tmp_path: Path) -> None:
    env = cpython_env(a64_cpython, a64_site, HERE, CX_TEST_PIC_DIR=str(a64_pic_dir))
    _suite(cpython_cmd(a64_cpython), env, tmp_path / "wx.log")


@pytest.mark.qemu
def test_wx_audit_sees_the_guest_mappings(a64_cpython: tuple[Path, Path]) -> None:
    """The audit is not blind under qemu: a W+X mapping made by the guest shows."""
    code = ("import mmap; from harness.wx_guard import maps_wx_violations as v\n"
            "before = len(v()); m = mmap.mmap(-1, 65536, prot=7)\n"
            "print(before, len(v()))\n")
    out = check(cpython_cmd(a64_cpython, "-c", code), env=cpython_env(a64_cpython, HERE))
    assert out.split() == ["0", "1"]


@pytest.mark.qemu
def test_static_tls_image_refused_by_dynamic_cpython(a64_cpython: tuple[Path, Path],
                                                     a64_nopic_dir: Path) -> None:
    out = check(cpython_cmd(a64_cpython, "-c", IMPORT_CHILD, str(a64_nopic_dir), "cx_tls"),
                env=cpython_env(a64_cpython))
    refused_in_child(json.loads(out)["cx_tls"], image_path(a64_nopic_dir, "cx_tls"), *STATIC_TLS)


# ---------------------------------------------------------------------------
# (b) the static arm64 interpreter of `cosmoext embed --arch aarch64`


@pytest.mark.qemu
@pytest.mark.parametrize("variant", ["nopic", "pic"])
def test_suite_in_embedded_arm64(a64_embed: Path, a64_site: Path, variant: str,
                                 request: pytest.FixtureRequest, tmp_path: Path) -> None:
    images = request.getfixturevalue(f"a64_{variant}_dir")
    env = qemu_env(PYTHONPATH=os.pathsep.join([str(a64_site), str(HERE)]),
               CX_TEST_PIC_DIR=str(images))
    _suite([*QEMU, str(a64_embed)], env, tmp_path / "wx.log")


@pytest.mark.qemu
def test_embedded_arm64_interpreter(a64_embed: Path) -> None:
    code = ("import importlib.machinery as m, platform, cosmoext._runtime as r; i = r.info();"
            "print(platform.machine(), i['mode'], i['static_tls_reserve'], "
            "m.EXTENSION_SUFFIXES)")
    out = check([*QEMU, str(a64_embed), "-c", code])
    assert out.strip() == "aarch64 embedded 65536 []"


@pytest.mark.qemu
def test_nonpic_images_are_within_adrp_reach(a64_embed: Path, a64_nopic_dir: Path) -> None:
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import cx_tables, cx_cpp, cx_tls, cosmoext._runtime as r\n"
            "host = r.resolve('_Py_NoneStruct')\n"
            "for i in r.images():\n"
            "    far = max(abs(i['base'] - host), abs(i['base'] + i['vsize'] - host))\n"
            "    print(i['name'], i['flags'], far < (1 << 32))\n")
    out = check([*QEMU, str(a64_embed), "-c", code, str(a64_nopic_dir)])
    rows = [line.split() for line in out.splitlines()]
    assert {r[0] for r in rows} == {"cx_tables", "cx_cpp", "cx_tls"}
    for name, flags, near in rows:
        assert int(flags) & fmt.F_NEAR_HOST and near == "True", (name, flags)
    assert int(dict((r[0], r[1]) for r in rows)["cx_tls"]) & fmt.F_STATIC_TLS


@pytest.mark.qemu
def test_initialised_static_tls_needs_a_single_thread(a64_embed: Path,
                                                      a64_nopic_dir: Path) -> None:
    # qemu's own host threads show in /proc/self/task; only guest threads count.
    code = ("import sys, threading; sys.path.insert(0, sys.argv[1])\n"
            "ev = threading.Event(); t = threading.Thread(target=ev.wait); t.start()\n"
            "try:\n    import cx_tls\nexcept ImportError as e:\n    print(e)\n"
            "ev.set(); t.join()\n"
            # the joined thread's task may linger a moment in /proc/self/task
            "import time\n"
            "for _ in range(200):\n"
            "    try:\n        import cx_tls; break\n"
            "    except ImportError:\n        time.sleep(0.05)\n"
            "print(cx_tls.get2())\n")
    out = check([*QEMU, str(a64_embed), "-c", code, str(a64_nopic_dir)])
    assert "only be set up while the interpreter runs one thread (1 others)" in out
    assert out.splitlines()[-1] == "7"


# ---------------------------------------------------------------------------
# fat files


@pytest.mark.qemu
def test_fat_file_loads_on_both_machines(a64_cpython: tuple[Path, Path],
                                         tmp_path: Path) -> None:
    src = str(HERE / "ext" / "cx_tables.c")
    fat = tmp_path / "fat" / "cx_tables.cosmoext"
    check([sys.executable, "-m", "cosmoext", "build-ext", "--name", "cx_tables", src,
            "--arch", "x86_64,aarch64", "-o", str(fat)])
    assert [i.arch_name for i in fmt.parse(fat.read_bytes())] == ["x86_64", "aarch64"]
    code = ("import sys, platform; sys.path.insert(0, sys.argv[1])\n"
            "import cosmoext._hook as h; h.install(); import cx_tables\n"
            "print(platform.machine(), cx_tables.__file__.endswith('.cosmoext'))\n")
    native = check([sys.executable, "-c", code, str(fat.parent)])
    assert native.split() == ["x86_64", "True"]
    emulated = check(cpython_cmd(a64_cpython, "-c", code, str(fat.parent)),
                      env=cpython_env(a64_cpython))
    assert emulated.split() == ["aarch64", "True"]
    one = tmp_path / "x86" / "cx_tables.cosmoext"
    check([sys.executable, "-m", "cosmoext", "build-ext", "--name", "cx_tables", src,
            "-o", str(one)])
    proc = run(cpython_cmd(a64_cpython, "-c", code, str(one.parent)),
                env=cpython_env(a64_cpython))
    assert "no image for this machine (aarch64); the file has: x86_64" in proc.stderr


# ---------------------------------------------------------------------------
# relocation coverage

REQUIRED = {
    "ABS64", "ABS32", "PREL32", "PREL64", "CALL26", "JUMP26", "CONDBR19", "TSTBR14",
    "ADR_PREL_PG_HI21", "ADR_PREL_PG_HI21_NC", "ADR_PREL_LO21", "ADD_ABS_LO12_NC",
    "LDST8_ABS_LO12_NC", "LDST16_ABS_LO12_NC", "LDST32_ABS_LO12_NC", "LDST64_ABS_LO12_NC",
    "LDST128_ABS_LO12_NC", "ADR_GOT_PAGE", "LD64_GOT_LO12_NC",
    "MOVW_UABS_G0", "MOVW_UABS_G0_NC", "MOVW_UABS_G1", "MOVW_UABS_G1_NC", "MOVW_UABS_G2",
    "MOVW_UABS_G2_NC", "MOVW_UABS_G3",
    "TLSLE_ADD_TPREL_HI12", "TLSLE_ADD_TPREL_LO12", "TLSLE_ADD_TPREL_LO12_NC",
    "TLSLE_MOVW_TPREL_G2", "TLSLE_MOVW_TPREL_G1", "TLSLE_MOVW_TPREL_G1_NC",
    "TLSLE_MOVW_TPREL_G0_NC", "TLSLE_LDST64_TPREL_LO12_NC",
    "TLSIE_ADR_GOTTPREL_PAGE21", "TLSIE_LD64_GOTTPREL_LO12_NC",
    "TLSDESC_ADR_PAGE21", "TLSDESC_LD64_LO12", "TLSDESC_ADD_LO12", "TLSDESC_CALL",
    "TLSGD_ADR_PAGE21", "TLSGD_ADD_LO12_NC", "LD64_GOTPAGE_LO15",
    # beyond the list
    "ABS16", "LD_PREL_LO19", "GOT_LD_PREL19", "MOVW_SABS_G0", "TLSLD_ADD_DTPREL_HI12",
    "TLSLD_ADD_DTPREL_LO12_NC",
}
# (id, flags, where it runs: "both" interpreters, or "embedded" only (static TLS))
VARIANTS = [
    ("pic", ["-fPIC"], "both"),
    ("pic-tls-trad", ["-fPIC", "-mtls-dialect=trad"], "both"),
    ("pic-small", ["-fpic"], "both"),
    ("pic-initial-exec", ["-fPIC", "-ftls-model=initial-exec"], "embedded"),
    ("nopic", ["-fno-pic", "-fno-pie"], "embedded"),
    ("nopic-tls12", ["-fno-pic", "-fno-pie", "-mtls-size=12"], "embedded"),
    ("nopic-tls32", ["-fno-pic", "-fno-pie", "-mtls-size=32"], "embedded"),
    ("nopic-large", ["-fno-pic", "-fno-pie", "-mcmodel=large"], "embedded"),
]
RUN_CHECK = ("import sys, cosmoext; m = cosmoext.load(sys.argv[1]); print(m.check()); "
             "print(m.check())")


def _reloc_types(obj: Path) -> set[str]:
    return {NAMES[r.type].removeprefix("R_AARCH64_")
            for s in elf.read(str(obj)).sections for r in s.relocs}


def _reloc_build(tmp: Path, flags: list[str]) -> tuple[Path, Path]:
    tc = get_toolchain("gnu", "aarch64")
    tmp.mkdir(parents=True, exist_ok=True)
    obj, abs_obj = tmp / "cx_reloc.o", tmp / "cx_reloc_a64abs.o"
    base = [f for f in tc.flags("-fPIC" in flags or "-fpic" in flags)
            if f not in ("-fPIC", "-mcmodel=small")]
    check([tc.cc, "-c", *base, *flags, f"-I{ARM64_INCLUDE}", f"-I{COMMON_INCLUDE}",
            str(RELOC_SRC), "-o", str(obj)])
    check([tc.cc, "-c", str(RELOC_ABS), "-o", str(abs_obj)])
    out = tmp / "cx_reloc.cosmoext"
    check([sys.executable, "-m", "cosmoext", "link", "--arch", "aarch64", "--name",
            "cx_reloc", str(obj), str(abs_obj), "-o", str(out)])
    return obj, out


@pytest.fixture(scope="session")
def reloc_builds(a64_cross: None, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("a64-reloc")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        built = list(pool.map(lambda v: _reloc_build(root / v[0], v[1]), VARIANTS))
    return {v[0]: b for v, b in zip(VARIANTS, built, strict=True)}


def test_all_required_relocation_types_covered(reloc_builds) -> None:
    seen: set[str] = set()
    for obj, _ in reloc_builds.values():
        seen |= _reloc_types(obj)
    assert seen >= REQUIRED, sorted(REQUIRED - seen)


@pytest.mark.qemu
@pytest.mark.parametrize(("vid", "flags", "runs"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_reloc_variant_runs(reloc_builds, a64_cpython: tuple[Path, Path], a64_embed: Path,
                            vid: str, flags: list[str], runs: str) -> None:
    _, image = reloc_builds[vid]
    (img,) = fmt.parse(image.read_bytes())
    assert img.arch == fmt.EM_AARCH64
    expect = ["(True, 1, 6)", "(True, 2, 7)"]  # the module checks its own answers
    out = check([*QEMU, str(a64_embed), "-c", RUN_CHECK, str(image)])
    assert out.splitlines() == expect
    proc = run(cpython_cmd(a64_cpython, "-c", RUN_CHECK, str(image)),
                env=cpython_env(a64_cpython))
    if runs == "both":
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == expect
    else:
        assert img.flags & fmt.F_STATIC_TLS
        assert all(frag in proc.stderr for frag in STATIC_TLS), proc.stderr


# ---------------------------------------------------------------------------
# veneers and errors

FAR = r'''
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* A callee first in the code, then 129 MiB of code (kept by the R flag), then
   the caller: BL reaches +-128 MiB, so the call must go through a veneer. */
__asm__(".pushsection .text.unlikely.cx_far_callee,\"ax\",%progbits\n"
        ".globl cx_far_callee\n.type cx_far_callee,%function\n"
        "cx_far_callee: add x0, x0, #5\n  ret\n"
        ".popsection\n"
        ".pushsection .text.exit.cx_far_gap,\"axR\",%progbits\n"
        "  .skip 0x8100000\n"
        ".popsection\n");
long cx_far_callee(long);
static PyObject *call(PyObject *self, PyObject *arg) {
  (void)self;
  return PyLong_FromLong(cx_far_callee(PyLong_AsLong(arg)));
}
static PyMethodDef methods[] = {{"call", call, METH_O, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cx_far", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_cx_far(void) { return PyModule_Create(&def); }
'''
VENEER_WORDS = (0xF0000010, 0x91000210, 0xD61F0200)  # adrp x16 (immlo masked), add, br x16


@pytest.mark.qemu
def test_call_beyond_128_mib_goes_through_a_veneer(a64_cpython: tuple[Path, Path],
                                                   tmp_path: Path) -> None:
    src = tmp_path / "cx_far.c"
    src.write_text(FAR)
    out = tmp_path / "cx_far.cosmoext"
    check([sys.executable, "-m", "cosmoext", "build-ext", "--arch", "aarch64", "--name",
            "cx_far", str(src), "-o", str(out)])
    (img,) = fmt.parse(out.read_bytes())
    text = next(s for s in img.segments if s.kind == fmt.SEG_TEXT)
    assert len(text.data) > 128 << 20
    tail = text.data[-256:]
    words = struct.unpack(f"<{len(tail) // 4}I", tail)
    assert any(words[i] & 0x9F00001F == 0x90000010 and words[i + 1] == VENEER_WORDS[1]
               and words[i + 2] == VENEER_WORDS[2] for i in range(len(words) - 2)), \
        "no veneer after the code"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import cosmoext._hook as h; "
            "h.install(); import cx_far; print(cx_far.call(37))")
    assert check(cpython_cmd(a64_cpython, "-c", code, str(tmp_path)),
                  env=cpython_env(a64_cpython)).strip() == "42"
    out.unlink()  # 130 MB


EDGE = r'''
#define PY_SSIZE_T_CLEAN
#include <Python.h>
/* low(): PyExc_TypeError's address by a checked MOVZ #:abs_g1: (it must lie
   below 4 GiB); weak(): ADRP+ADD of a weak symbol no interpreter exports. */
static PyObject *low(PyObject *self, PyObject *noargs) {
  unsigned long v;
  (void)self; (void)noargs;
  __asm__("movz %0, #:abs_g1:PyExc_TypeError\n\tmovk %0, #:abs_g0_nc:PyExc_TypeError"
          : "=r"(v));
  return PyBool_FromLong(v == (unsigned long)&PyExc_TypeError);
}
static PyObject *weak(PyObject *self, PyObject *noargs) {
  void *v;
  (void)self; (void)noargs;
  __asm__(".weak cx_absent\n\tadrp %0, cx_absent\n\tadd %0, %0, :lo12:cx_absent" : "=r"(v));
  return PyLong_FromVoidPtr(v);
}
static PyMethodDef methods[] = {{"low", low, METH_NOARGS, NULL},
                                {"weak", weak, METH_NOARGS, NULL}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "cx_edge", NULL, -1, methods,
                                 NULL, NULL, NULL, NULL};
PyMODINIT_FUNC PyInit_cx_edge(void) { return PyModule_Create(&def); }
'''


@pytest.mark.qemu
def test_loader_checked_movw_and_absent_weak_adrp(a64_cpython: tuple[Path, Path],
                                                  a64_embed: Path, tmp_path: Path) -> None:
    src = tmp_path / "cx_edge.c"
    src.write_text(EDGE)
    check([sys.executable, "-m", "cosmoext", "build-ext", "--arch", "aarch64", "--no-pic",
            "--name", "cx_edge", str(src), "-o", str(tmp_path / "cx_edge.cosmoext")])
    (img,) = fmt.parse((tmp_path / "cx_edge.cosmoext").read_bytes())
    assert img.flags & fmt.F_LOW_HOST and img.flags & fmt.F_NEAR_HOST
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import cosmoext._hook as h; "
            "h.install(); import cx_edge; print(cx_edge.low(), cx_edge.weak())")
    # the static interpreter lies in the low 4 GiB; the absent weak symbol is 0
    out = check([*QEMU, str(a64_embed), "-c", code, str(tmp_path)])
    assert out.strip() == "True 0"
    proc = run(cpython_cmd(a64_cpython, "-c", code, str(tmp_path)),
                env=cpython_env(a64_cpython))
    assert "non-PIC image: MOVZ of PyExc_TypeError needs its address below 4 GiB" \
        in proc.stderr, proc.stderr


def _build_error(tmp_path: Path, source: str, body: str = "", name: str = "cx_bad") -> str:
    src = tmp_path / f"{name}.c"
    src.write_text("#include <Python.h>\n" + source + "\nPyMODINIT_FUNC PyInit_" + name +
                   "(void) { " + body + " return NULL; }\n")
    with pytest.raises(CosmoextError) as exc:
        build_ext(name=name, sources=[str(src)], arch=["aarch64"], quiet=True,
                            output=str(tmp_path / f"{name}.cosmoext"))
    assert not (tmp_path / f"{name}.cosmoext").exists()
    return str(exc.value)


def test_unsupported_relocation_is_named(a64_cross: None, tmp_path: Path) -> None:
    msg = _build_error(tmp_path, '__asm__(".text\\n movz x0, #:gotoff_g1:PyExc_TypeError\\n");')
    assert "section .text offset 0x" in msg
    assert "unsupported relocation R_AARCH64_MOVW_GOTOFF_G1 (302)" in msg
    assert "GOT-relative MOVW" in msg


def test_adr_to_a_host_symbol_is_a_build_error(a64_cross: None, tmp_path: Path) -> None:
    msg = _build_error(tmp_path, "", '__asm__ volatile("adr x0, PyExc_TypeError" ::: "x0");')
    assert "R_AARCH64_ADR_PREL_LO21: ADR of PyExc_TypeError, which is not in this image" in msg


def test_unreachable_veneer_is_a_build_error(a64_cross: None, tmp_path: Path) -> None:
    far = ('__asm__(".pushsection .text.unlikely.cx_c,\\"axR\\",%progbits\\n b cx_late\\n"\n'
           '        ".popsection\\n.pushsection .text.exit.cx_gap,\\"axR\\",%progbits\\n"\n'
           '        " .skip 0x8100000\\n.popsection\\n"\n'
           '        ".pushsection .text.cx_late,\\"ax\\",%progbits\\n.globl cx_late\\n'
           'cx_late: ret\\n.popsection\\n");')
    msg = _build_error(tmp_path, far)
    assert "R_AARCH64_JUMP26: veneer for cx_late" in msg and "128 MiB" in msg


@pytest.mark.qemu
def test_shared_cxx_runtime_in_arm64_cpython(a64_cpython: tuple[Path, Path], a64_site: Path,
                                             tmp_path: Path) -> None:
    """cxx-runtime = shared on aarch64: the suite's C++ tests against images
    that import the C++ runtime from the arm64 libstdc++.so.6."""
    images = build_suite(tmp_path / "shared", pic=True, arch=["aarch64"], names=sorted(CPP),
                         cxx_runtime="shared")
    env = cpython_env(a64_cpython, a64_site, HERE, CX_TEST_PIC_DIR=str(images))
    proc = run([*cpython_cmd(a64_cpython), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "-k", "cpp", SUITE], env=env)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    assert assert_all_passed(proc.stdout, select=("-k", "cpp")) > 0
    code = ("import sys, cosmoext._hook as h; h.install(); sys.path.insert(0, sys.argv[1])\n"
            "import cx_throw, cx_catch\n"
            "print(cx_catch.call_and_catch(cx_throw.throw_std), "
            "any('libstdc++.so' in l for l in open('/proc/self/maps')))\n")
    out = check(cpython_cmd(a64_cpython, "-c", code, str(images)), env=cpython_env(a64_cpython))
    assert out.strip() == "caught std: boom from cx_throw True"
