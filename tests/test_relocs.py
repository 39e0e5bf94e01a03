"""x86_64 relocation coverage: every type the issue lists is produced by some
build of tests/ext/reloc/cx_reloc.c, linked by cosmoext, and (where this
dynamic host can load it) run; the module checks its own answers."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from cosmoext import format as fmt
from cosmoext.link import elf
from cosmoext.link.x86_64 import NAMES
from cosmoext.toolchain import get_toolchain

SRC = Path(__file__).parent / "ext" / "reloc" / "cx_reloc.c"
REQUIRED = {
    "64", "32", "32S", "PC32", "PC64", "PLT32", "GOTPCREL", "GOTPCRELX", "REX_GOTPCRELX",
    "GOTOFF64", "GOTPC32", "TLSGD", "TLSLD", "DTPOFF32", "DTPOFF64", "GOTTPOFF", "TPOFF32",
}
# (id, pic, extra flags, expected outcome in this dynamic host)
VARIANTS = [
    ("pic", True, [], "runs"),
    ("pic-norelax", True, ["-Wa,-mrelax-relocations=no"], "runs"),
    ("pic-noplt", True, ["-fno-plt"], "runs"),
    ("pic-large", True, ["-mcmodel=large"], "runs"),
    ("pic-initial-exec", True, ["-ftls-model=initial-exec"], "static-tls"),
    ("nopic", False, [], "refused"),
    ("nopic-large", False, ["-mcmodel=large"], "static-tls"),
]


def _types(obj: Path) -> set[str]:
    return {NAMES[r.type].removeprefix("R_X86_64_")
            for s in elf.read(str(obj)).sections for r in s.relocs}


def _compile(tmp: Path, pic: bool, flags: list[str]) -> Path:
    tc = get_toolchain("gnu", "x86_64")
    obj = tmp / "cx_reloc.o"
    inc = sysconfig.get_paths()["include"]
    subprocess.run([tc.cc, "-c", *tc.flags(pic), *flags, f"-I{inc}", str(SRC), "-o", str(obj)],
                   check=True)
    return obj


@pytest.mark.parametrize(("vid", "pic", "flags", "outcome"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant(tmp_path: Path, vid: str, pic: bool, flags: list[str], outcome: str) -> None:
    obj = _compile(tmp_path, pic, flags)
    assert _types(obj)
    out = tmp_path / "cx_reloc.cosmoext"
    subprocess.run([sys.executable, "-m", "cosmoext", "link", "--name", "cx_reloc", str(obj),
                    "-o", str(out)], check=True, capture_output=True)
    (img,) = fmt.parse(out.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys, cosmoext; m = cosmoext.load(sys.argv[1]);"
         "print(m.check()); print(m.check())", str(out)],
        capture_output=True, text=True)
    if outcome == "runs":
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.split("\n")[:2] == ["(True, 1, 6)", "(True, 2, 7)"], proc.stdout
    elif outcome == "static-tls":
        assert img.flags & fmt.F_STATIC_TLS
        assert "static (local-exec/initial-exec) thread-local storage" in proc.stderr
        assert "rebuild with --pic" in proc.stderr
    else:
        assert img.flags & (fmt.F_NEAR_HOST | fmt.F_LOW_HOST | fmt.F_LOW_IMAGE)
        assert "ImportError" in proc.stderr and "--pic" in proc.stderr


def test_all_required_types_covered(tmp_path: Path) -> None:
    seen: set[str] = set()
    for vid, pic, flags, _ in VARIANTS:
        (tmp_path / vid).mkdir()
        seen |= _types(_compile(tmp_path / vid, pic, flags))
    assert seen >= REQUIRED, sorted(REQUIRED - seen)


def test_unsupported_relocation_is_named(tmp_path: Path) -> None:
    obj = _compile(tmp_path, True, ["-mtls-dialect=gnu2"])
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "link", "--name", "cx_reloc",
                           str(obj), "-o", str(tmp_path / "x.cosmoext")],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.count("\n") == 0, line
    assert line.startswith(f"cosmoext: error: {obj}: section .text")
    assert "offset 0x" in line and "R_X86_64_GOTPC32_TLSDESC (34)" in line
    assert "-mtls-dialect=gnu" in line
    assert not (tmp_path / "x.cosmoext").exists()


def test_missing_pyinit_is_a_build_error(tmp_path: Path) -> None:
    obj = _compile(tmp_path, True, [])
    proc = subprocess.run([sys.executable, "-m", "cosmoext", "link", "--name", "nope", str(obj),
                           "-o", str(tmp_path / "nope.cosmoext")], capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.startswith("cosmoext: error: ")
    assert "no definition of PyInit_nope in cx_reloc.o (found PyInit_cx_reloc: is --name right?)" \
        in proc.stderr
