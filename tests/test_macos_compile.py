"""The runtime's platform files, compiled for macOS: compiled, not run.

There is no Mac and no Apple SDK here.  cosmoext/runtime/cxcodemem.c (image
memory: the MAP_JIT + pthread_jit_write_protect_np + sys_icache_invalidate
path on Apple silicon), cosmoext/runtime/cxclosure.c (the closure stubs,
Mach-O assembly) and cosmoext/runtime/cxcrc32c.c (the CRC-32C instructions)
are compiled with ``clang --target=arm64-apple-macos11``
and ``--target=x86_64-apple-macos11``, without any system headers
(-nostdlibinc): the files then take their declarations from
cosmoext/runtime/compat/cx_darwin.h, our own.  The objects are then read
back (tests/harness/macho.py) to check that the Apple path really is the
one compiled in and that the stub block has the expected shape.

This fails if clang is missing: .ci/setup.sh installs it.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from harness import macho

ROOT = Path(__file__).resolve().parent.parent
RT = ROOT / "cosmoext" / "runtime"
POOL = 16384
TARGETS = {"arm64-apple-macos11": macho.CPU_TYPE_ARM64,
           "x86_64-apple-macos11": macho.CPU_TYPE_X86_64}
PLATFORM_FILES = ("cxcodemem.c", "cxclosure.c", "cxcrc32c.c")  # cxcrc32c: its CRC instructions


def _clang() -> str:
    clang = shutil.which("clang")
    assert clang, "the macOS compile checks need clang: apt-get install clang (.ci/setup.sh)"
    return clang


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], macho.MachO]:
    clang = _clang()
    out = tmp_path_factory.mktemp("macos")
    objs = {}
    for target in TARGETS:
        for src in PLATFORM_FILES:
            obj = out / f"{target}-{src}.o"
            cmd = [clang, f"--target={target}", "-nostdlibinc", "-std=c11", "-O2", "-Wall",
                   "-Wextra", "-Werror", "-c", str(RT / src), "-o", str(obj)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stderr
            objs[(target, src)] = macho.read(str(obj))
    return objs


@pytest.mark.parametrize("target", TARGETS)
def test_objects_are_macho_for_the_target(objects, target: str) -> None:
    for src in PLATFORM_FILES:
        assert objects[(target, src)].cputype == TARGETS[target]


def test_no_sdk_here() -> None:
    # The compat header is what made the compile work: the Apple headers are absent.
    proc = subprocess.run([_clang(), "--target=arm64-apple-macos11", "-nostdlibinc", "-E", "-x",
                           "c", "-", "-o", "/dev/null"], input="#include <sys/mman.h>\n",
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "sys/mman.h" in proc.stderr


def test_apple_silicon_takes_the_map_jit_path(objects) -> None:
    m = objects[("arm64-apple-macos11", "cxcodemem.c")]
    assert {"_pthread_jit_write_protect_np", "_pthread_jit_write_protect_supported_np",
            "_sys_icache_invalidate", "_mmap", "_munmap"} <= m.undefined
    assert {"_cx_codemem_reserve", "_cx_codemem_map", "_cx_codemem_protect",
            "_cx_codemem_kind"} <= set(m.defined)


def test_intel_macos_uses_mprotect(objects) -> None:
    m = objects[("x86_64-apple-macos11", "cxcodemem.c")]
    assert "_pthread_jit_write_protect_np" not in m.undefined
    assert {"_mmap", "_mprotect"} <= m.undefined


@pytest.mark.parametrize("target", TARGETS)
def test_closure_stub_block(objects, target: str) -> None:
    m = objects[(target, "cxclosure.c")]
    assert {"_cx_closure_stubs", "_cosmoext_closure_new", "_cosmoext_closure_free",
            "_cosmoext_closure_userdata", "_cx_closure_enter_c"} <= set(m.defined)
    assert "_cx_closure_slots" in m.defined
    text = m.section("__TEXT", "__text")
    block = m.symbol_bytes("_cx_closure_stubs", POOL * 16)
    if TARGETS[target] == macho.CPU_TYPE_ARM64:
        for i in (0, 1, POOL // 2, POOL - 1):
            bti, adrp, add, b = struct.unpack_from("<4I", block, 16 * i)
            assert bti == 0xD503245F  # hint #34 (bti c)
            assert adrp & 0x9F00001F == 0x90000010  # adrp x16, slot@PAGE
            assert add & 0xFFC003FF == 0x91000210  # add x16, x16, slot@PAGEOFF
            assert b & 0xFC000000 == 0x14000000  # b enter
        # adrp and add of every stub carry a PAGE21/PAGEOFF12 relocation (+ addends)
        assert text.nreloc >= 2 * POOL
    else:
        for i in (0, 1, POOL // 2, POOL - 1):
            stub = block[16 * i:16 * i + 16]
            assert stub[:7] == bytes.fromhex("f30f1efa4c8d1d")  # endbr64; lea disp(%rip), %r11
            assert stub[11] in (0xE9, 0xEB)  # jmp enter
        assert text.nreloc >= POOL
