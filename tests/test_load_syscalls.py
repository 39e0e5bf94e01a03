"""The loader's read/map path, seen from the kernel (strace): importing a small C
module costs no more system calls than dlopen of the same module built as a .so;
nothing is mapped from the file; the image is one mapping, over-reserved only when
its header's ``align`` exceeds the page size; and a file already loaded is found
from the fstat of the open file (no separate stat), giving back the same image."""

from __future__ import annotations

import json
import mmap
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from support.build import build_ext, reseal
from support.extensions import cflags, sources

from cosmoext import format as fmt

NAME = "cx_tables"

CHILD = r"""
import importlib, importlib.machinery, os, sys
import cosmoext._runtime
where = sys.argv[1]
sys.path.insert(0, where)
importlib.machinery.PathFinder.find_spec("_cx_absent_", [where])
try: os.stat("/_cx_mark_start_")
except OSError: pass
importlib.import_module(sys.argv[2])
try: os.stat("/_cx_mark_end_")
except OSError: pass
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("syscalls")
    build_ext(name=NAME, sources=sources(NAME), output=str(d / f"{NAME}.cosmoext"), pic=True,
              cflags=cflags(NAME))
    return d / f"{NAME}.cosmoext"


def _strace() -> str:
    s = shutil.which("strace")
    if s is None:
        pytest.fail("strace is needed (CI installs it)")
    return s


def _calls(where: Path, tmp_path: Path, name: str = NAME) -> list[str]:
    """The system calls of one import of ``name`` from ``where``, in a fresh interpreter."""
    log = tmp_path / f"strace-{where.name}.txt"
    p = subprocess.run([_strace(), "-f", "-o", str(log), sys.executable, "-c", CHILD,
                        str(where), name], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    lines = [re.sub(r"^\d+\s+", "", ln) for ln in log.read_text().splitlines()]
    start = next(i for i, ln in enumerate(lines) if "/_cx_mark_start_" in ln)
    end = next(i for i, ln in enumerate(lines) if "/_cx_mark_end_" in ln)
    return [ln for ln in lines[start + 1:end] if not ln.startswith(("+++", "---"))]


def _names(calls: list[str]) -> list[str]:
    return [ln.split("(", 1)[0] for ln in calls]


def _with_align(data: bytes, align: int) -> bytes:
    buf = bytearray(data)
    table = fmt.FILE_HDR.unpack_from(buf, 0)[7]
    off = fmt.IMAGE_ENT.unpack_from(buf, table)[3]
    at = off + 12  # the image header's align
    buf[at:at + 4] = align.to_bytes(4, "little")
    return reseal(buf)


def test_fewer_system_calls_than_dlopen(built: Path, tmp_path: Path) -> None:
    cx = _calls(built.parent, tmp_path)
    names = _names(cx)
    path = str(built)
    # the file: one open, one fstat of the open file, one pread (it is small), one close;
    # the only stat by path is the import system's (the loader's own was dropped)
    assert [ln for ln in cx if path in ln and ln.startswith("openat")], cx
    assert sum(1 for ln in cx if path in ln and ln.startswith("newfstatat")) == 1, cx
    assert names.count("pread64") == 1 and "read" not in names, cx
    # nothing mapped from the file; one anonymous mapping for the image, no trimming
    mmaps = [ln for ln in cx if ln.startswith("mmap(")]
    assert len(mmaps) == 1 and "MAP_ANONYMOUS" in mmaps[0], cx
    assert "munmap" not in names, cx
    # final protections: text RX, then rodata+relro (and the gaps) R; data stays RW
    prots = [ln for ln in cx if ln.startswith("mprotect(")]
    assert len(prots) == 2 and "PROT_EXEC" in prots[0] and "PROT_EXEC" not in prots[1], cx
    assert not any("PROT_WRITE" in ln and "PROT_EXEC" in ln for ln in cx), cx

    # the same module as an ordinary extension, loaded by dlopen
    so_dir = tmp_path / "so"
    so_dir.mkdir()
    so = so_dir / (NAME + sysconfig.get_config_var("EXT_SUFFIX"))
    cc = os.environ.get("CC", "gcc")
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-I" + sysconfig.get_paths()["include"],
                    *sources(NAME), "-o", str(so)], check=True, capture_output=True)
    so_calls = _calls(so_dir, tmp_path)
    assert any(".so" in ln and ln.startswith("openat") for ln in so_calls), so_calls
    assert len(cx) <= len(so_calls), (cx, so_calls)


@pytest.mark.parametrize("align", [0x1000, 0x10000])
def test_base_alignment_from_the_header(built: Path, tmp_path: Path, align: int) -> None:
    """align <= the page size: one plain mmap; larger: over-reserved, then trimmed."""
    d = tmp_path / "img"
    d.mkdir()
    (d / built.name).write_bytes(_with_align(built.read_bytes(), align))
    cx = _calls(d, tmp_path)
    names = _names(cx)
    assert names.count("mmap") == 1, cx
    if align <= mmap.PAGESIZE:
        assert "munmap" not in names, cx
    else:
        assert 1 <= names.count("munmap") <= 2, cx
        m = re.search(r"^mmap\(NULL, (\d+),.*= (0x[0-9a-f]+)$",
                      next(ln for ln in cx if ln.startswith("mmap(")))
        assert m, cx
        # the image starts at the first align boundary in the over-sized mapping
        base = (int(m.group(2), 16) + align - 1) & ~(align - 1)
        assert any(ln.startswith(f"mprotect({base:#x},") for ln in cx), (hex(base), cx)


def test_a_file_loaded_already_gives_the_same_image(built: Path, tmp_path: Path) -> None:
    """As dlopen returns the same handle: the loader recognises the file (device, inode,
    size, mtime) from the fstat of the file it opened, and maps nothing; a new mtime
    is a new file."""
    path = tmp_path / built.name
    shutil.copyfile(built, path)
    child = r"""
import json, os, sys, cosmoext
from cosmoext import _runtime as rt
path, name = sys.argv[1], sys.argv[2]
m1 = cosmoext.load(path, name); sys.modules.pop(name)
c1 = rt.counters()
m2 = cosmoext.load(path, name); sys.modules.pop(name)
c2 = rt.counters()
os.utime(path, ns=(10**18, 10**18))
m3 = cosmoext.load(path, name); sys.modules.pop(name)
c3 = rt.counters()
print(json.dumps([c1, c2, c3, [i["base"] for i in rt.images()]]))
"""
    p = subprocess.run([sys.executable, "-c", child, str(path), NAME], capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    c1, c2, c3, bases = json.loads(p.stdout)
    assert c1["loaded"] == 1 and c2 == c1, (c1, c2)
    assert c3["loaded"] == 2 and len(set(bases)) == 2, (c3, bases)
