"""The closure stubs without Python: tests/closures/closure_selftest.c linked
with cosmoext/runtime/cxclosure.c.

- x86_64: built with gcc (PIE) and clang (non-PIE, the embedded/cosmocc
  shape) and run natively, once more under the seccomp W^X filter;
- aarch64: built with aarch64-linux-gnu-gcc with cosmocc's -ffixed-x18
  -ffixed-x28, non-PIC and static-PIE, the stub encodings read back from the
  ELF, and run under qemu-aarch64 (qemu-user, installed by .ci/setup.sh).  The binaries are
  static, so they need no arm64 libc at run time (with the cross toolchain's
  sysroot, ``qemu-aarch64 -L /usr/aarch64-linux-gnu``, a dynamically linked
  guest hangs in pthread_create on this machine).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SELFTEST = ROOT / "tests" / "closures" / "closure_selftest.c"
CLOSURE_C = ROOT / "cosmoext" / "runtime" / "cxclosure.c"
INCLUDE = ROOT / "cosmoext" / "include"
POOL = 16384
A64_CC = "aarch64-linux-gnu-gcc"


def _build(cc: str, out: Path, *flags: str) -> Path:
    cmd = [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", f"-I{INCLUDE}", *flags,
           str(SELFTEST), str(CLOSURE_C), "-o", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, " ".join(cmd) + "\n" + proc.stderr
    return out


def _check_output(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "checks passed" in proc.stdout, proc.stdout


@pytest.mark.parametrize("cc,flags", [("gcc", ("-fPIE", "-pie")),
                                      ("clang", ("-fno-pic", "-no-pie"))])
def test_native_x86_64(tmp_path: Path, cc: str, flags: tuple[str, ...]) -> None:
    if shutil.which(cc) is None:
        pytest.fail(f"{cc} not installed (.ci/setup.sh installs it)")
    exe = _build(cc, tmp_path / f"selftest-{cc}", *flags)
    _check_output(subprocess.run([str(exe)], capture_output=True, text=True, timeout=300))


def test_native_under_wx_filter(tmp_path: Path) -> None:
    from harness.wx_guard import run_under_wx_filter

    exe = _build("gcc", tmp_path / "selftest")
    code = ("import subprocess, sys\n"
            f"p = subprocess.run([{str(exe)!r}], capture_output=True, text=True)\n"
            "sys.stdout.write(p.stdout); sys.stderr.write(p.stderr); sys.exit(p.returncode)\n")
    _check_output(run_under_wx_filter(code, timeout=300))


def _elf_symbol_bytes(path: Path, name: str, size: int) -> bytes:
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        elf = ELFFile(f)
        sym = elf.get_section_by_name(".symtab").get_symbol_by_name(name)[0]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and \
                    seg["p_vaddr"] <= sym["st_value"] < seg["p_vaddr"] + seg["p_filesz"]:
                off = seg["p_offset"] + sym["st_value"] - seg["p_vaddr"]
                f.seek(off)
                return f.read(size)
    raise AssertionError(f"{name} not in a loaded segment")


@pytest.fixture(scope="module")
def a64_binaries(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    if shutil.which(A64_CC) is None:
        pytest.fail(f"{A64_CC} not installed; apt-get install gcc-aarch64-linux-gnu "
                    "(.ci/setup.sh installs it)")
    d = tmp_path_factory.mktemp("a64")
    cosmo_like = ("-ffixed-x18", "-ffixed-x28")
    return [
        _build(A64_CC, d / "selftest-nopic", *cosmo_like, "-static", "-fno-pic", "-no-pie"),
        _build(A64_CC, d / "selftest-pie", *cosmo_like, "-static-pie", "-fPIE"),
    ]


def test_aarch64_stub_encoding(a64_binaries: list[Path]) -> None:
    for exe in a64_binaries:
        block = _elf_symbol_bytes(exe, "cx_closure_stubs", POOL * 16)
        for i in range(POOL):
            bti, adrp, add, b = struct.unpack_from("<4I", block, 16 * i)
            assert bti == 0xD503245F, (exe.name, i)
            assert adrp & 0x9F00001F == 0x90000010, (exe.name, i)
            assert add & 0xFFC003FF == 0x91000210, (exe.name, i)
            assert b & 0xFC000000 == 0x14000000, (exe.name, i)
            # every stub branches to the same `enter`, right after the block
            imm26 = b & 0x3FFFFFF
            assert imm26 * 4 == POOL * 16 - (16 * i + 12), (exe.name, i)


def test_aarch64_run_under_qemu(a64_binaries: list[Path]) -> None:
    qemu = shutil.which("qemu-aarch64")
    if qemu is None:
        pytest.fail("qemu-aarch64 not installed (apt-get install qemu-user; .ci/setup.sh "
                    "installs it); without it the aarch64 stubs are compiled, not run")
    for exe in a64_binaries:
        proc = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, QEMU_LD_PREFIX="/usr/aarch64-linux-gnu"))
        _check_output(proc)
