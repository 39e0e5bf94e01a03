"""Bad input to the loader: every malformed .cosmoext is an ImportError, never a crash.

One small real extension (tests/ext/bad/cxbad.c) is built once per module;
every case derives a corrupted copy of it in a temporary directory and loads
it with ``cosmoext.load(path, name)``.  A refusal must

* be an ``ImportError`` whose one-line message is ``cannot load PATH: REASON``
  (and whose ``.name``/``.path`` are set),
* leave the module name out of ``sys.modules``,
* leave nothing mapped: the loader's live counters are unchanged, no mapping
  of the file remains and no PROT_NONE reservation was left behind.

Corruptions of the tables are followed by ``support.build.reseal()`` so the SHA-256
digests match and the loader's own structural validation has to catch them.
The fuzz tests run their loads in child processes, so a crash shows up as a
failing return code (naming the corruption) instead of killing pytest.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.build import reseal
from support.refusal import refused

import cosmoext
import cosmoext.format as fmt
from cosmoext import _runtime

HERE = Path(__file__).parent
SRC = HERE / "ext" / "bad" / "cxbad.c"
NAME = "cxbad"
INFO = _runtime.info()
MACHINE = INFO["machine"]

# Field offsets inside the on-disk records (cosmoext/runtime/cxformat.h).
FILE_FIELDS = {
    "magic": (0, "8s"), "version_major": (8, "H"), "version_minor": (10, "H"),
    "header_size": (12, "I"), "image_count": (16, "I"), "entry_size": (20, "I"),
    "file_size": (24, "Q"), "table_offset": (32, "Q"),
}
ENT_FIELDS = {"machine": (0, "H"), "offset": (8, "Q"), "size": (16, "Q"), "sha256": (24, "32s")}
HDR_FIELDS = {
    "magic": (0, "4s"), "machine": (4, "H"), "header_size": (6, "H"), "flags": (8, "I"),
    "align": (12, "I"), "target": (16, "16s"), "python_abi": (32, "16s"), "vsize": (48, "Q"),
    "entry": (56, "Q"), "name_off": (64, "I"), "seg_off": (72, "I"), "seg_count": (76, "I"),
    "imp_off": (80, "I"), "imp_count": (84, "I"), "fix_off": (88, "I"), "fix_count": (92, "I"),
    "str_off": (96, "I"), "str_size": (100, "I"), "init_vaddr": (104, "Q"),
    "init_count": (112, "I"), "fini_count": (116, "I"), "fini_vaddr": (120, "Q"),
    "ehhdr_vaddr": (128, "Q"), "ehhdr_size": (136, "I"), "eh_vaddr": (144, "Q"),
    "eh_size": (152, "Q"), "tls_vaddr": (160, "Q"), "tls_filesz": (168, "I"),
    "tls_memsz": (172, "I"), "tls_align": (176, "I"),
}
SEG_FIELDS = {"vaddr": (0, "Q"), "memsz": (8, "Q"), "offset": (16, "Q"), "filesz": (24, "Q"),
              "prot": (32, "I"), "kind": (36, "I")}
IMP_FIELDS = {"name_off": (0, "I"), "hash": (4, "I"), "flags": (8, "I")}
FIX_FIELDS = {"vaddr": (0, "Q"), "kind": (8, "I"), "sym": (12, "I"), "addend": (16, "q")}
RECORD_SIZES = {"seg": fmt.SEGMENT.size, "imp": fmt.IMPORT.size, "fix": fmt.FIXUP.size}


# ---- the test extension and its layout -------------------------------------------------------


def build(out: Path, *extra: str, name: str = NAME) -> subprocess.CompletedProcess[str]:
    """``cosmoext build-ext --pic`` of tests/ext/bad/cxbad.c."""
    cmd = [sys.executable, "-m", "cosmoext", "build-ext", "--name", name, "--pic", *extra,
           str(SRC), "-o", str(out)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def build_ok(out: Path, *extra: str, name: str = NAME) -> Path:
    p = build(out, *extra, name=name)
    assert p.returncode == 0, f"build-ext {' '.join(extra)} failed:\n{p.stdout}{p.stderr}"
    return out


@dataclass(frozen=True)
class Record:
    """One segment / import / fixup entry, with its file offset."""

    pos: int
    values: dict[str, int]

    def __getattr__(self, key: str) -> int:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None


@dataclass(frozen=True)
class Layout:
    """Where everything is in the pristine file (all offsets are file offsets)."""

    data: bytes
    table: int
    img: int
    img_size: int
    hdr: dict[str, int | bytes]
    segs: list[Record]
    imps: list[Record]
    fixes: list[Record]
    strtab: int  # file offset of the string table
    strtab_end: int

    @classmethod
    def of(cls, data: bytes) -> Layout:
        table = struct.unpack_from("<Q", data, FILE_FIELDS["table_offset"][0])[0]
        img, img_size = struct.unpack_from("<QQ", data, table + 8)
        hdr = {k: struct.unpack_from("<" + f, data, img + o)[0] for k, (o, f) in HDR_FIELDS.items()}

        def records(kind: str, fields: dict[str, tuple[int, str]]) -> list[Record]:
            off, n = hdr[f"{kind}_off"], hdr[f"{kind}_count"]
            size = RECORD_SIZES[kind]
            out = []
            for i in range(n):
                pos = img + off + i * size
                out.append(Record(pos, {k: struct.unpack_from("<" + f, data, pos + o)[0]
                                        for k, (o, f) in fields.items()}))
            return out

        strtab = img + hdr["str_off"]
        return cls(data, table, img, img_size, hdr, records("seg", SEG_FIELDS),
                   records("imp", IMP_FIELDS), records("fix", FIX_FIELDS), strtab,
                   strtab + hdr["str_size"])

    # -- finding things --
    def seg_of_kind(self, kind: int) -> int:
        return next(i for i, s in enumerate(self.segs) if s.kind == kind)

    def seg_holding(self, vaddr: int) -> int:
        return next(i for i, s in enumerate(self.segs) if s.vaddr <= vaddr < s.vaddr + s.memsz)

    def imp_name(self, i: int) -> str:
        start = self.strtab + self.imps[i].name_off
        return self.data[start:self.data.index(b"\0", start)].decode()

    def fixup(self, pred: Callable[[Record], bool]) -> int:
        return next(i for i, f in enumerate(self.fixes) if pred(f))

    @property
    def first_segment_data(self) -> int:
        return self.img + min(s.offset for s in self.segs if s.filesz)

    def describe(self, pos: int) -> str:
        """Name the field at file offset pos (for failure messages)."""
        def field(base: int, fields: dict[str, tuple[int, str]]) -> str:
            for k, (o, f) in fields.items():
                if base + o <= pos < base + o + struct.calcsize("<" + f):
                    return k
            return "reserved"

        if pos < fmt.FILE_HDR.size:
            return "file header " + field(0, FILE_FIELDS)
        if self.table <= pos < self.table + fmt.IMAGE_ENT.size:
            return "image table " + field(self.table, ENT_FIELDS)
        if self.img <= pos < self.img + fmt.IMAGE_HDR.size:
            return "image header " + field(self.img, HDR_FIELDS)
        for what, recs, fields in (("segment", self.segs, SEG_FIELDS),
                                   ("import", self.imps, IMP_FIELDS),
                                   ("fixup", self.fixes, FIX_FIELDS)):
            for i, r in enumerate(recs):
                if r.pos <= pos < r.pos + RECORD_SIZES[what[:3]]:
                    return f"{what} {i} " + field(r.pos, fields)
        if self.strtab <= pos < self.strtab_end:
            return f"string table +{pos - self.strtab}"
        for i, s in enumerate(self.segs):
            if s.filesz and self.img + s.offset <= pos < self.img + s.offset + s.filesz:
                return f"segment {i} data +{pos - self.img - s.offset:#x}"
        return "padding"


class Mut:
    """A mutable copy of the pristine file with field-level setters."""

    def __init__(self, lay: Layout) -> None:
        self.L = lay
        self.buf = bytearray(lay.data)

    def _put(self, pos: int, f: str, value: int | bytes) -> Mut:
        struct.pack_into("<" + f, self.buf, pos, value)
        return self

    def file(self, key: str, value: int | bytes) -> Mut:
        o, f = FILE_FIELDS[key]
        return self._put(o, f, value)

    def ent(self, key: str, value: int | bytes) -> Mut:
        o, f = ENT_FIELDS[key]
        return self._put(self.L.table + o, f, value)

    def hdr(self, key: str, value: int | bytes) -> Mut:
        o, f = HDR_FIELDS[key]
        return self._put(self.L.img + o, f, value)

    def seg(self, i: int, key: str, value: int) -> Mut:
        o, f = SEG_FIELDS[key]
        return self._put(self.L.segs[i].pos + o, f, value)

    def imp(self, i: int, key: str, value: int) -> Mut:
        o, f = IMP_FIELDS[key]
        return self._put(self.L.imps[i].pos + o, f, value)

    def fix(self, i: int, key: str, value: int) -> Mut:
        o, f = FIX_FIELDS[key]
        return self._put(self.L.fixes[i].pos + o, f, value)

    def sealed(self) -> bytes:
        return reseal(self.buf)

    def raw(self) -> bytes:
        return bytes(self.buf)


@pytest.fixture(scope="module")
def pristine_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ok(tmp_path_factory.mktemp("cxbad") / "cxbad.cosmoext")


@pytest.fixture(scope="module")
def lay(pristine_path: Path) -> Layout:
    return Layout.of(pristine_path.read_bytes())


def write(dirpath: Path, data: bytes, stem: str = NAME) -> Path:
    """Write data as a fresh file (new inode: never an already-loaded image)."""
    for n in itertools.count():
        path = dirpath / (f"{stem}.cosmoext" if n == 0 else f"{stem}-{n}.cosmoext")
        if not path.exists():
            path.write_bytes(data)
            return path
    raise AssertionError("unreachable")


# ---- what a refusal must look like: support.refusal.refused() --------------------------------


@contextlib.contextmanager
def digests(on: bool) -> Iterator[None]:
    old = _runtime.set_verify(on)
    try:
        yield
    finally:
        _runtime.set_verify(old)


def works(mod) -> None:
    """The pristine module's behaviour (fresh image: its counter starts at 40)."""
    assert mod.add(2, 3) == 5
    assert [mod.greet(i) for i in range(3)] == ["hello", "bonjour", "hallo"]
    assert mod.MAGIC == 4242
    assert mod.bump() == 82 and mod.bump() == 84
    with pytest.raises(IndexError, match="no greeting 7"):
        mod.greet(7)


# ---- sanity: the pristine file is good, so every failure below is the corruption's ----------


def test_pristine_loads_and_works(lay: Layout, tmp_path: Path) -> None:
    assert fmt.parse(lay.data)[0].name == NAME
    path = write(tmp_path, lay.data)
    before = _runtime.counters()
    sys.modules.pop(NAME, None)
    try:
        mod = cosmoext.load(str(path), NAME)
        works(mod)
        assert sys.modules[NAME] is mod
        after = _runtime.counters()
        assert after["live_regions"] == before["live_regions"] + 1
        # mapped: up to the last segment's last page (at most vsize), all of it counted
        mapped = next(i["vsize"] for i in _runtime.images() if i["path"] == str(path))
        last = lay.segs[-1]
        assert last.vaddr + last.memsz <= mapped <= lay.hdr["vsize"]
        assert after["live_bytes"] == before["live_bytes"] + mapped
        # A resealed but unchanged copy is just as good.
        mod2 = cosmoext.load(str(write(tmp_path, Mut(lay).sealed())), NAME)
        works(mod2)
    finally:
        sys.modules.pop(NAME, None)


def test_layout_matches_format_module(lay: Layout) -> None:
    """The field offsets used here agree with cosmoext.format's view of the same file."""
    (img,) = fmt.parse(lay.data)
    assert lay.hdr["entry"] == img.entry and lay.hdr["flags"] == img.flags
    assert lay.hdr["target"].rstrip(b"\0").decode() == img.target == INFO["target"]
    assert lay.hdr["python_abi"].rstrip(b"\0").decode() == img.python_abi == INFO["python_abi"]
    assert [(s.vaddr, s.memsz, s.filesz) for s in lay.segs] == \
        [(s.vaddr, s.memsz, len(s.data)) for s in img.segments]
    assert [lay.imp_name(i) for i in range(len(lay.imps))] == [i.name for i in img.imports]
    assert [(f.vaddr, f.kind, f.sym, f.addend) for f in lay.fixes] == \
        [(f.vaddr, f.kind, f.sym, f.addend) for f in img.fixups]
    # What the cases below rely on: pointers in static data and imports of the host.
    assert any(f.sym == fmt.SYM_BASE for f in lay.fixes)
    assert any(f.sym < len(lay.imps) for f in lay.fixes)
    assert len(lay.segs) >= 3 and lay.hdr["init_count"] == 0


# ---- file-level damage ------------------------------------------------------------------------


def _cut_points(lay: Layout) -> dict[str, int]:
    h = lay.hdr
    seg0 = lay.segs[0]
    return {
        "empty": 0,
        "inside-file-header": 10,
        "just-the-file-header": fmt.FILE_HDR.size,
        "inside-image-table": lay.table + 20,
        "inside-image-header": lay.img + 100,
        "inside-segment-table": lay.img + h["seg_off"] + fmt.SEGMENT.size + 7,
        "inside-import-table": lay.img + h["imp_off"] + 5,
        "inside-fixup-table": lay.img + h["fix_off"] + 3 * fmt.FIXUP.size + 11,
        "inside-string-table": lay.strtab + 3,
        "before-segment-data": lay.first_segment_data - 1,
        "inside-segment-data": lay.img + seg0.offset + seg0.filesz // 2,
        "last-byte-missing": len(lay.data) - 1,
    }


CUTS = ["empty", "inside-file-header", "just-the-file-header", "inside-image-table",
        "inside-image-header", "inside-segment-table", "inside-import-table",
        "inside-fixup-table", "inside-string-table", "before-segment-data",
        "inside-segment-data", "last-byte-missing"]


@pytest.mark.parametrize("where", CUTS)
def test_truncated_file(lay: Layout, tmp_path: Path, where: str) -> None:
    cut = _cut_points(lay)[where]
    path = write(tmp_path, lay.data[:cut])
    if cut == 0:
        refused(path, NAME, "not a regular file of plausible size")
    elif cut < fmt.FILE_HDR.size:
        refused(path, NAME, f"file is {cut} bytes, shorter than the 64-byte header (truncated?)")
    else:
        refused(path, NAME,
                f"file is {cut} bytes but its header says {len(lay.data)} (truncated or padded)")


@pytest.mark.parametrize("where", ["inside-image-header", "inside-segment-table",
                                   "inside-fixup-table", "inside-string-table",
                                   "before-segment-data", "inside-segment-data",
                                   "last-byte-missing"])
def test_truncated_file_with_consistent_sizes(lay: Layout, tmp_path: Path, where: str) -> None:
    """Truncated, with the file and image sizes rewritten to match and the digest resealed:
    the bounds checks on the image, its tables and its segments must catch it."""
    cut = _cut_points(lay)[where]
    m = Mut(lay)
    m.buf = m.buf[:cut]
    m.file("file_size", cut).ent("size", cut - lay.img)
    path = write(tmp_path, m.sealed())
    if cut - lay.img < fmt.IMAGE_HDR.size:
        refused(path, NAME, f"image 0 ({MACHINE}) out of bounds or misaligned")
    elif cut < lay.strtab_end:
        refused(path, NAME, "string table out of bounds or unterminated")
    else:
        i = next(i for i, s in enumerate(lay.segs)
                 if s.filesz and lay.img + s.offset + s.filesz > cut)
        refused(path, NAME, f"segment {i}: file range out of bounds")


@pytest.mark.parametrize("magic", [b"COSMOEXX", b"\x7fELF\x02\x01\x01\x00", b"\0" * 8])
def test_wrong_magic(lay: Layout, tmp_path: Path, magic: bytes) -> None:
    path = write(tmp_path, Mut(lay).file("magic", magic).raw())
    refused(path, NAME, "not a .cosmoext file (bad magic)")


def test_real_elf_shared_object() -> None:
    """An ordinary extension module (an ELF .so) is not a .cosmoext."""
    refused(_runtime.__file__, NAME, "not a .cosmoext file (bad magic)")


def test_text_file(tmp_path: Path) -> None:
    path = tmp_path / "cxbad.cosmoext"
    path.write_text("this is not an extension module\n" * 10)
    refused(path, NAME, "not a .cosmoext file (bad magic)")


@pytest.mark.parametrize("version", [0, 3, 0xFFFF])
def test_unsupported_format_version(lay: Layout, tmp_path: Path, version: int) -> None:
    path = write(tmp_path, Mut(lay).file("version_major", version).raw())
    refused(path, NAME, f"format version {version}.0 is not supported (this loader reads 2.x)")


@pytest.mark.parametrize("key,value", [("header_size", 65), ("header_size", 0),
                                       ("entry_size", 32), ("entry_size", 128)])
def test_bad_file_header_sizes(lay: Layout, tmp_path: Path, key: str, value: int) -> None:
    path = write(tmp_path, Mut(lay).file(key, value).raw())
    refused(path, NAME, "bad file header (header or entry size)")


@pytest.mark.parametrize("delta", [1, -1, 1 << 32])
def test_file_size_field_mismatch(lay: Layout, tmp_path: Path, delta: int) -> None:
    path = write(tmp_path, Mut(lay).file("file_size", len(lay.data) + delta).raw())
    refused(path, NAME, f"file is {len(lay.data)} bytes but its header says "
                        f"{len(lay.data) + delta} (truncated or padded)")


def test_padded_file(lay: Layout, tmp_path: Path) -> None:
    path = write(tmp_path, lay.data + b"\0" * 100)
    refused(path, NAME, f"file is {len(lay.data) + 100} bytes but its header says "
                        f"{len(lay.data)} (truncated or padded)")


@pytest.mark.parametrize("count", [0, fmt.MAX_IMAGES + 1, 0xFFFFFFFF])
def test_bad_image_count(lay: Layout, tmp_path: Path, count: int) -> None:
    path = write(tmp_path, Mut(lay).file("image_count", count).raw())
    refused(path, NAME, f"bad image count {count}")


@pytest.mark.parametrize("where", ["past-end", "straddles-end", "inside-file-header", "huge"])
def test_image_table_out_of_bounds(lay: Layout, tmp_path: Path, where: str) -> None:
    table = {"past-end": len(lay.data), "straddles-end": len(lay.data) - 32,
             "inside-file-header": 8, "huge": 2**64 - 16}[where]
    path = write(tmp_path, Mut(lay).file("table_offset", table).raw())
    refused(path, NAME, "image table out of bounds")


@pytest.mark.parametrize("where", ["misaligned", "zero", "in-table", "past-end", "size-past-end",
                                   "size-wraps", "smaller-than-header"])
def test_image_offset_misaligned_or_out_of_bounds(lay: Layout, tmp_path: Path, where: str) -> None:
    m = Mut(lay)
    if where == "misaligned":
        m.ent("offset", lay.img + fmt.FILE_ALIGN // 2).ent("size", lay.img_size - fmt.FILE_ALIGN)
    elif where == "zero":
        m.ent("offset", 0)
    elif where == "in-table":  # images start after the table, which the head checksum covers
        m.ent("offset", lay.table)
    elif where == "past-end":
        m.ent("offset", fmt.align_up(len(lay.data)) + fmt.ALIGN)
    elif where == "size-past-end":
        m.ent("size", lay.img_size + 1)
    elif where == "size-wraps":
        m.ent("size", 2**64 - fmt.ALIGN)
    else:
        m.ent("size", fmt.IMAGE_HDR.size - 1)
    # resealed: the checksum of the image table matches, the bounds checks must catch it
    refused(write(tmp_path, m.sealed()), NAME, f"image 0 ({MACHINE}) out of bounds or misaligned")
    # as it is, the checksum catches it first
    refused(write(tmp_path, m.raw()), NAME,
            "file header or image table is corrupt (CRC-32C mismatch)")


SHA_CASES = ["segment-data", "image-header", "string-table", "padding", "digest"]


def _padding_pos(lay: Layout) -> int:
    """A byte of the image that no table or segment holds (the packing's alignment)."""
    used = [(lay.img, lay.strtab_end)] + [(lay.img + s.offset, lay.img + s.offset + s.filesz)
                                          for s in lay.segs if s.filesz]
    used.sort()
    for (_, end), (start, _) in zip(used, used[1:], strict=False):
        if start > end:
            return end
    raise AssertionError("the image has no padding between its parts")


def _flip_pos(lay: Layout, where: str) -> int:
    return {"segment-data": lay.img + lay.segs[0].offset + 10,
            "image-header": lay.img + HDR_FIELDS["vsize"][0] + 7,
            "string-table": lay.strtab + 2,
            "padding": _padding_pos(lay),
            "digest": lay.table + ENT_FIELDS["sha256"][0] + 31}[where]


@pytest.mark.parametrize("where", SHA_CASES)
def test_sha256_mismatch(lay: Layout, tmp_path: Path, where: str) -> None:
    """A flipped byte anywhere in the image, with the checksums (not the SHA-256)
    recomputed, fails the SHA-256 check when it is on (level 2, COSMOEXT_VERIFY=1)."""
    m = Mut(lay)
    m.buf[_flip_pos(lay, where)] ^= 0x20
    path = write(tmp_path, reseal(m.buf, sha256=False))
    with digests(True):
        refused(path, NAME, f"{MACHINE} image is corrupt (SHA-256 mismatch)")


@pytest.mark.parametrize("where", [*SHA_CASES, "file-header-reserved", "table-reserved"])
def test_checksum_mismatch_by_default(lay: Layout, tmp_path: Path, where: str) -> None:
    """The same flips, not resealed, at the default level: the CRC-32C checksums catch
    them (the image's, or the file head's for the file header and image table)."""
    pos = {"file-header-reserved": 50, "table-reserved": lay.table + 59}.get(
        where) or _flip_pos(lay, where)
    m = Mut(lay)
    m.buf[pos] ^= 0x20
    head = pos < fmt.table_end(lay.data)
    assert head == (where in ("digest", "file-header-reserved", "table-reserved"))
    refused(write(tmp_path, m.raw()), NAME,
            "file header or image table is corrupt (CRC-32C mismatch)" if head
            else f"{MACHINE} image is corrupt (CRC-32C mismatch)")


@pytest.mark.parametrize("minor", [0, 1])
def test_old_format_version_refused(lay: Layout, tmp_path: Path, minor: int) -> None:
    """A 1.x file (64 KiB-aligned offsets, which 2.0 packs) is refused with the version
    and what to do, at every check level."""
    m = Mut(lay).file("version_major", 1).file("version_minor", minor)
    for level in (0, 1, 2):
        old = _runtime.set_verify(level)
        try:
            refused(write(tmp_path, m.raw()), NAME, f"format version 1.{minor}; rebuild with "
                    "this cosmoext (this loader reads 2.x)")
        finally:
            _runtime.set_verify(old)
    with pytest.raises(fmt.FormatError, match=rf"format version 1\.{minor}; rebuild"):
        fmt.parse(m.raw())


def test_wrong_architecture(lay: Layout, tmp_path: Path) -> None:
    m = Mut(lay).ent("machine", fmt.EM_AARCH64).hdr("machine", fmt.EM_AARCH64)
    path = write(tmp_path, m.sealed())
    refused(path, NAME, f"no image for this machine ({MACHINE}); the file has: aarch64")


def test_wrong_architecture_two_images(lay: Layout, tmp_path: Path) -> None:
    """Two images, neither for this machine: the message lists both."""
    img = fmt.parse(lay.data)[0]
    other = fmt.parse(lay.data)[0]
    img.arch = fmt.EM_AARCH64
    other.arch = 40  # EM_ARM: a machine the loader has no name for
    path = write(tmp_path, fmt.pack([img, other]))
    refused(path, NAME, f"no image for this machine ({MACHINE}); the file has: aarch64, unknown")


def test_image_header_machine_disagrees_with_table(lay: Layout, tmp_path: Path) -> None:
    path = write(tmp_path, Mut(lay).hdr("machine", fmt.EM_AARCH64).sealed())
    refused(path, NAME, "bad image header")


# ---- identity: ABI, target, name --------------------------------------------------------------


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real builds of the source with the wrong ABI / target or with undefined symbols."""
    d = tmp_path_factory.mktemp("variants")
    return {
        "cp310": build_ok(d / "cp310" / "cxbad.cosmoext", "--python-abi", "cp310"),
        "cosmo": build_ok(d / "cosmo" / "cxbad.cosmoext", "--target", "cosmo"),
        "missing1": build_ok(d / "missing1" / "cxbad.cosmoext", "-D", "CXBAD_MISSING=1"),
        "missing2": build_ok(d / "missing2" / "cxbad.cosmoext", "-D", "CXBAD_MISSING=2"),
    }


@pytest.mark.parametrize("abi", ["cp310", "cp311d", "cp312", "abi3", "cp3111"])
def test_wrong_python_abi(lay: Layout, tmp_path: Path, abi: str) -> None:
    if abi == INFO["python_abi"]:
        pytest.skip("that is this interpreter's ABI")
    path = write(tmp_path, Mut(lay).hdr("python_abi", abi.encode()).sealed())
    refused(path, NAME, f"built for Python ABI '{abi}', this interpreter is '{INFO['python_abi']}'")


def test_wrong_python_abi_real_build(variants: dict[str, Path]) -> None:
    refused(variants["cp310"], NAME,
            f"built for Python ABI 'cp310', this interpreter is '{INFO['python_abi']}'")


def test_unterminated_python_abi_field(lay: Layout, tmp_path: Path) -> None:
    path = write(tmp_path, Mut(lay).hdr("python_abi", b"cp311" + b"x" * 11).sealed())
    refused(path, NAME, "built for Python ABI 'cp311xxxxxxxxxx', this interpreter is")


@pytest.mark.parametrize("target", ["cosmo", "linux-musl", "darwin", "linux-gnux"])
def test_wrong_target(lay: Layout, tmp_path: Path, target: str) -> None:
    path = write(tmp_path, Mut(lay).hdr("target", target.encode()).sealed())
    refused(path, NAME, f"built for target '{target}', this interpreter is '{INFO['target']}'")


def test_wrong_target_real_build(variants: dict[str, Path]) -> None:
    refused(variants["cosmo"], NAME, f"built for target 'cosmo', this interpreter is "
                                     f"'{INFO['target']}'")


def test_module_name_mismatch(lay: Layout, tmp_path: Path) -> None:
    """File holds 'cxbad', imported as 'other': refused before anything is mapped (and
    before its initialisers could run); the same file still loads under its own name."""
    path = write(tmp_path, lay.data)
    refused(path, "other", "it holds module 'cxbad', not 'other'")
    refused(path, "cxbad_", "it holds module 'cxbad', not 'cxbad_'")
    try:
        works(cosmoext.load(str(path), NAME))
    finally:
        sys.modules.pop(NAME, None)


def test_module_name_mismatch_already_loaded(lay: Layout, tmp_path: Path) -> None:
    """The same file, already loaded as 'cxbad', imported again as 'other'."""
    path = write(tmp_path, lay.data)
    try:
        works(cosmoext.load(str(path), NAME))
    finally:
        sys.modules.pop(NAME, None)
    refused(path, "other", "it holds module 'cxbad', not 'other'")


def test_module_name_mismatch_in_package(lay: Layout, tmp_path: Path) -> None:
    path = write(tmp_path, lay.data)
    refused(path, "pkg.other", "it holds module 'cxbad', not 'other'")


# ---- missing PyInit ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["no-pyinit-at-all", "wrong-name"])
def test_build_without_pyinit_fails(tmp_path: Path, how: str) -> None:
    """Linking a source without PyInit_<name> fails with one ``cosmoext: error:`` line."""
    if how == "no-pyinit-at-all":
        name, extra = NAME, ["-D", "CXBAD_NO_PYINIT"]
    else:
        name, extra = "cxother", []
    out = tmp_path / f"{name}.cosmoext"
    p = build(out, *extra, name=name)
    assert p.returncode == 1, p.stdout + p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("cosmoext: error:")]
    assert len(errors) == 1, p.stderr
    assert f"PyInit_{name}" in errors[0]
    assert p.stderr.strip() == errors[0], p.stderr  # nothing else, no traceback
    assert not out.exists() and not Path(f"{out}.tmp").exists()


@pytest.mark.parametrize("where", ["rodata", "relro", "data", "past-vsize", "gap", "huge"])
def test_entry_point_outside_code(lay: Layout, tmp_path: Path, where: str) -> None:
    text = lay.segs[lay.seg_of_kind(fmt.SEG_TEXT)]
    entry = {
        "rodata": lay.segs[lay.seg_of_kind(fmt.SEG_RODATA)].vaddr,
        "relro": lay.segs[lay.seg_of_kind(fmt.SEG_RELRO)].vaddr + 8,
        "data": lay.segs[lay.seg_of_kind(fmt.SEG_DATA)].vaddr,
        "past-vsize": lay.hdr["vsize"],
        "gap": text.vaddr + text.memsz,  # between text and the next segment
        "huge": 2**64 - 1,
    }[where]
    path = write(tmp_path, Mut(lay).hdr("entry", entry).sealed())
    refused(path, NAME, "module entry point PyInit_cxbad is missing or not in code")


# ---- undefined symbols ------------------------------------------------------------------------


def test_undefined_symbol(variants: dict[str, Path]) -> None:
    assert _runtime.resolve("cx_no_such_function") is None
    msg = refused(variants["missing1"], NAME,
                  "1 undefined symbol not exported by this interpreter: cx_no_such_function")
    assert msg.endswith(": cx_no_such_function")


def test_two_undefined_symbols_in_one_message(variants: dict[str, Path]) -> None:
    msg = refused(variants["missing2"], NAME, "2 undefined symbols not exported by this "
                                              "interpreter: ")
    listed = msg.rsplit(": ", 1)[1].split(", ")
    assert sorted(listed) == ["cx_also_missing", "cx_no_such_function"], msg


def test_undefined_symbol_crafted(lay: Layout, tmp_path: Path) -> None:
    """An import renamed in the string table (hash updated): resolution fails cleanly."""
    i = next(i for i in range(len(lay.imps)) if len(lay.imp_name(i)) > 4)
    old = lay.imp_name(i)
    new = old[:-1] + ("X" if old[-1] != "X" else "Y")
    m = Mut(lay)
    start = lay.strtab + lay.imps[i].name_off
    m.buf[start:start + len(new)] = new.encode()
    m.imp(i, "hash", fmt.gnu_hash(new))
    path = write(tmp_path, m.sealed())
    refused(path, NAME, f"1 undefined symbol not exported by this interpreter: {new}")


def test_many_undefined_symbols_message_is_bounded(lay: Layout, tmp_path: Path) -> None:
    """Every import renamed to a long unknown name: one bounded line that ends in '...'."""
    m = Mut(lay)
    names = []
    for i in range(len(lay.imps)):
        start = lay.strtab + lay.imps[i].name_off
        n = len(lay.imp_name(i))
        new = f"cx_missing_{i:02d}_" + "q" * 80
        new = (new * 2)[:n] if n < len(new) else new.ljust(n, "q")
        names.append(new)
        m.buf[start:start + n] = new.encode()
        m.imp(i, "hash", fmt.gnu_hash(new))
    path = write(tmp_path, m.sealed())
    msg = refused(path, NAME, f"{len(set(names))} undefined symbols not exported by this "
                              f"interpreter: {names[0]}")
    assert len(msg) < 2048


# ---- structural corruption with the digest resealed -------------------------------------------

# Each case mutates a copy and returns the message fragments the refusal must contain.
CASES: dict[str, Callable[[Mut], list[str]]] = {}


def case(fn: Callable[[Mut], list[str]]) -> Callable[[Mut], list[str]]:
    CASES[fn.__name__] = fn
    return fn


def _text(L: Layout) -> int:
    return L.seg_of_kind(fmt.SEG_TEXT)


def _last(L: Layout) -> int:
    return len(L.segs) - 1


# image header
@case
def image_magic(m: Mut) -> list[str]:
    m.hdr("magic", b"CXIX")
    return ["bad image header"]


@case
def image_header_size(m: Mut) -> list[str]:
    m.hdr("header_size", 200)
    return ["bad image header"]


@case
def image_align(m: Mut) -> list[str]:
    m.hdr("align", 0x3000)  # not a power of two
    return ["bad image header"]


@case
def image_align_small(m: Mut) -> list[str]:
    m.hdr("align", 0x800)
    return ["bad image header"]


@case
def image_align_large(m: Mut) -> list[str]:
    m.hdr("align", 2 * fmt.ALIGN)
    return ["bad image header"]


@case
def vsize_zero(m: Mut) -> list[str]:
    m.hdr("vsize", 0)
    return ["bad image size 0"]


@case
def vsize_unaligned(m: Mut) -> list[str]:
    v = m.L.hdr["vsize"] + 0x1000
    m.hdr("vsize", v)
    return [f"bad image size {v}"]


@case
def vsize_huge(m: Mut) -> list[str]:
    m.hdr("vsize", 1 << 40)
    return [f"bad image size {1 << 40}"]


@case
def vsize_too_small_for_segments(m: Mut) -> list[str]:
    last = m.L.segs[_last(m.L)]
    m.hdr("vsize", last.vaddr)
    return [f"segment {_last(m.L)}: bad address range"]


# string table
@case
def strtab_unterminated(m: Mut) -> list[str]:
    m.buf[m.L.strtab_end - 1] = ord("x")
    return ["string table out of bounds or unterminated"]


@case
def strtab_size_zero(m: Mut) -> list[str]:
    m.hdr("str_size", 0)
    return ["string table out of bounds or unterminated"]


@case
def strtab_past_image(m: Mut) -> list[str]:
    m.hdr("str_size", m.L.img_size)
    return ["string table out of bounds or unterminated"]


@case
def strtab_offset_wraps(m: Mut) -> list[str]:
    m.hdr("str_off", 0xFFFFFFF0).hdr("str_size", 0x20)
    return ["string table out of bounds or unterminated"]


@case
def strtab_inside_header(m: Mut) -> list[str]:
    m.hdr("str_off", 8)
    return ["string table out of bounds or unterminated"]


# tables
@case
def segment_count_zero(m: Mut) -> list[str]:
    m.hdr("seg_count", 0)
    return ["segment table out of bounds"]


@case
def segment_count_too_many(m: Mut) -> list[str]:
    m.hdr("seg_count", 9)
    return ["segment table out of bounds"]


@case
def segment_table_past_image(m: Mut) -> list[str]:
    m.hdr("seg_off", m.L.img_size - 8)
    return ["segment table out of bounds"]


@case
def segment_table_inside_header(m: Mut) -> list[str]:
    m.hdr("seg_off", 0)
    return ["segment table out of bounds"]


@case
def import_table_past_image(m: Mut) -> list[str]:
    m.hdr("imp_off", 0xFFFFFFF8)
    return ["import table out of bounds"]


@case
def import_count_huge(m: Mut) -> list[str]:
    m.hdr("imp_count", 0x10000000)
    return ["import table out of bounds"]


@case
def fixup_table_past_image(m: Mut) -> list[str]:
    m.hdr("fix_count", m.L.img_size // fmt.FIXUP.size + 1)
    return ["fixup table out of bounds"]


@case
def fixup_table_inside_header(m: Mut) -> list[str]:
    m.hdr("fix_off", 100)
    return ["fixup table out of bounds"]


# module name
@case
def name_not_identifier(m: Mut) -> list[str]:
    pos = m.L.strtab + m.L.hdr["name_off"] + 3
    m.buf[pos] = ord("-")
    return ["bad module name in image header"]


@case
def name_empty(m: Mut) -> list[str]:
    m.hdr("name_off", 0)
    return ["bad module name in image header"]


@case
def name_offset_outside_strtab(m: Mut) -> list[str]:
    m.hdr("name_off", m.L.hdr["str_size"])
    return ["bad module name in image header"]


@case
def name_offset_huge(m: Mut) -> list[str]:
    m.hdr("name_off", 0xFFFFFFFF)
    return ["bad module name in image header"]


@case
def name_starts_with_digit(m: Mut) -> list[str]:
    m.buf[m.L.strtab + m.L.hdr["name_off"]] = ord("9")
    return ["bad module name in image header"]


@case
def name_is_another_identifier(m: Mut) -> list[str]:
    # the module name pointing at an import's name: a valid identifier, the wrong module
    m.hdr("name_off", m.L.imps[0].name_off)
    return [f"it holds module '{m.L.imp_name(0)}', not 'cxbad'"]


# segments
@case
def segment_vaddr_unaligned(m: Mut) -> list[str]:
    m.seg(1, "vaddr", m.L.segs[1].vaddr + 0x100)
    return ["segment 1: bad address range"]


@case
def segments_overlap(m: Mut) -> list[str]:
    m.seg(0, "memsz", m.L.segs[1].vaddr - m.L.segs[0].vaddr + 1)
    return ["segment 1: bad address range"]


@case
def segments_out_of_order(m: Mut) -> list[str]:
    m.seg(1, "vaddr", m.L.segs[0].vaddr)
    return ["segment 1: bad address range"]


@case
def segment_filesz_exceeds_memsz(m: Mut) -> list[str]:
    s = m.L.segs[2]
    m.seg(2, "filesz", s.memsz + 8)
    return ["segment 2: bad address range"]


@case
def segment_memsz_zero(m: Mut) -> list[str]:
    m.seg(1, "memsz", 0)
    return ["segment 1: bad address range"]


@case
def segment_past_vsize(m: Mut) -> list[str]:
    i = _last(m.L)
    m.seg(i, "vaddr", m.L.hdr["vsize"])
    return [f"segment {i}: bad address range"]


@case
def segment_memsz_wraps(m: Mut) -> list[str]:
    i = _last(m.L)
    m.seg(i, "memsz", 2**64 - 0x1000)
    return [f"segment {i}: bad address range"]


@case
def segment_file_range_past_image(m: Mut) -> list[str]:
    i = _last(m.L)
    m.seg(i, "offset", fmt.align_up(m.L.img_size))
    return [f"segment {i}: file range out of bounds"]


@case
def segment_file_offset_unaligned(m: Mut) -> list[str]:
    m.seg(1, "offset", m.L.segs[1].offset + 8)
    return ["segment 1: file range out of bounds"]


@case
def segment_file_offset_zero(m: Mut) -> list[str]:
    m.seg(0, "offset", 0)
    return ["segment 0: file range out of bounds"]


@case
def segment_filesz_past_image(m: Mut) -> list[str]:
    i = _last(m.L)
    s = m.L.segs[i]
    m.seg(i, "memsz", fmt.ALIGN).seg(i, "filesz", m.L.img_size - s.offset + 1)
    return [f"segment {i}: file range out of bounds"]


@case
def segment_text_writable(m: Mut) -> list[str]:
    i = _text(m.L)
    m.seg(i, "prot", fmt.PROT_R | fmt.PROT_W | fmt.PROT_X)  # never W and X
    return [f"segment {i}: bad kind or protection"]


@case
def segment_data_executable(m: Mut) -> list[str]:
    i = m.L.seg_of_kind(fmt.SEG_DATA)
    m.seg(i, "prot", fmt.PROT_R | fmt.PROT_W | fmt.PROT_X)
    return [f"segment {i}: bad kind or protection"]


@case
def segment_kind_unknown(m: Mut) -> list[str]:
    m.seg(1, "kind", 9)
    return ["segment 1: bad kind or protection"]


@case
def segment_kind_zero(m: Mut) -> list[str]:
    m.seg(0, "kind", 0).seg(0, "prot", 0)
    return ["segment 0: bad kind or protection"]


# ranges in the header
@case
def init_array_out_of_bounds(m: Mut) -> list[str]:
    m.hdr("init_vaddr", m.L.hdr["vsize"]).hdr("init_count", 1)
    return [".init_array out of bounds"]


@case
def init_array_misaligned(m: Mut) -> list[str]:
    m.hdr("init_vaddr", m.L.segs[1].vaddr + 4).hdr("init_count", 1)
    return [".init_array out of bounds"]


@case
def init_array_runs_past_segment(m: Mut) -> list[str]:
    s = m.L.segs[1]
    m.hdr("init_vaddr", s.vaddr).hdr("init_count", s.memsz // 8 + 1)
    return [".init_array out of bounds"]


@case
def init_array_count_huge(m: Mut) -> list[str]:
    m.hdr("init_vaddr", 0).hdr("init_count", 0xFFFFFFFF)
    return ["too many initialisers"]


@case
def init_array_entry_not_code(m: Mut) -> list[str]:
    # .init_array pointing at a relocated pointer to a string: caught after mapping,
    # before any initialiser runs; the mapped image must be torn down again.
    L = m.L
    ro = L.segs[L.seg_of_kind(fmt.SEG_RODATA)]
    i = L.fixup(lambda f: f.sym == fmt.SYM_BASE and f.kind == fmt.FX_ABS64
                and ro.vaddr <= f.addend < ro.vaddr + ro.memsz and f.vaddr % 8 == 0)
    m.hdr("init_vaddr", L.fixes[i].vaddr).hdr("init_count", 1)
    return [".init_array entry 0 does not point into the image's code"]


@case
def fini_array_out_of_bounds(m: Mut) -> list[str]:
    m.hdr("fini_vaddr", 2**63).hdr("fini_count", 2)
    return [".fini_array out of bounds"]


@case
def eh_frame_out_of_bounds(m: Mut) -> list[str]:
    m.hdr("eh_size", m.L.hdr["vsize"] + 1)
    return [".eh_frame out of bounds"]


@case
def eh_frame_hdr_too_small(m: Mut) -> list[str]:
    m.hdr("ehhdr_size", 4)
    return [".eh_frame_hdr out of bounds"]


@case
def tls_filesz_exceeds_memsz(m: Mut) -> list[str]:
    m.hdr("tls_vaddr", m.L.segs[1].vaddr).hdr("tls_filesz", 16).hdr("tls_memsz", 8)
    m.hdr("tls_align", 8)
    return ["bad thread-local storage template"]


@case
def tls_align_not_power_of_two(m: Mut) -> list[str]:
    m.hdr("tls_vaddr", m.L.segs[1].vaddr).hdr("tls_memsz", 8).hdr("tls_align", 24)
    return ["bad thread-local storage template"]


@case
def tls_template_without_block(m: Mut) -> list[str]:
    m.hdr("tls_vaddr", m.L.segs[1].vaddr).hdr("tls_filesz", 8)
    return ["bad thread-local storage template"]


# imports
@case
def import_name_outside_strtab(m: Mut) -> list[str]:
    m.imp(0, "name_off", m.L.hdr["str_size"])
    return ["import 0: bad entry"]


@case
def import_name_offset_huge(m: Mut) -> list[str]:
    m.imp(1, "name_off", 0xFFFFFFFF)
    return ["import 1: bad entry"]


@case
def import_name_empty(m: Mut) -> list[str]:
    m.imp(2, "name_off", 0)
    return ["import 2: bad entry"]


@case
def import_hash_mismatch(m: Mut) -> list[str]:
    i = len(m.L.imps) - 1
    m.imp(i, "hash", m.L.imps[i].hash ^ 1)
    return [f"import {i}: bad entry"]


@case
def import_name_byte_flipped(m: Mut) -> list[str]:
    # the string table changed under an import: its hash no longer matches
    m.buf[m.L.strtab + m.L.imps[0].name_off + 2] ^= 0x20
    return ["import 0: bad entry"]


@case
def import_unknown_flags(m: Mut) -> list[str]:
    m.imp(0, "flags", 0x80)
    return ["import 0: bad entry"]


# fixups
def _fx_base(L: Layout) -> int:
    return L.fixup(lambda f: f.sym == fmt.SYM_BASE)


def _fx_import(L: Layout) -> int:
    return L.fixup(lambda f: f.sym < len(L.imps))


@case
def fixup_unknown_kind(m: Mut) -> list[str]:
    m.fix(0, "kind", 99)
    return ["fixup 0: unknown kind 99"]


@case
def fixup_kind_zero(m: Mut) -> list[str]:
    i = len(m.L.fixes) - 1
    m.fix(i, "kind", 0)
    return [f"fixup {i}: unknown kind 0"]


@case
def fixup_kind_of_other_machine(m: Mut) -> list[str]:
    if MACHINE != "x86_64":
        pytest.skip("aarch64 kinds are valid here")
    m.fix(1, "kind", fmt.FX_A64_ADRP)
    return [f"fixup 1: unknown kind {fmt.FX_A64_ADRP}"]


@case
def fixup_vaddr_past_image(m: Mut) -> list[str]:
    v = m.L.hdr["vsize"] + 0x100
    m.fix(0, "vaddr", v)
    return [f"fixup 0: target {v:#x} outside the image's data"]


@case
def fixup_vaddr_huge(m: Mut) -> list[str]:
    m.fix(0, "vaddr", 2**64 - 4)
    return [f"fixup 0: target {2**64 - 4:#x} outside the image's data"]


@case
def fixup_vaddr_in_gap(m: Mut) -> list[str]:
    text = m.L.segs[_text(m.L)]
    v = text.vaddr + fmt.align_up(text.memsz, 0x1000) + 0x100
    i = _fx_base(m.L)
    m.fix(i, "vaddr", v)
    return [f"fixup {i}: target {v:#x} outside the image's data"]


@case
def fixup_straddles_segment_end(m: Mut) -> list[str]:
    s = m.L.segs[1]
    v = s.vaddr + s.memsz - 4  # an 8-byte write hanging over the end
    m.fix(0, "vaddr", v)
    return [f"fixup 0: target {v:#x} outside the image's data"]


@case
def fixup_in_zero_filled_tail(m: Mut) -> list[str]:
    i = _last(m.L)
    s = m.L.segs[i]
    m.seg(i, "memsz", fmt.ALIGN)  # give the last segment a zero-filled (bss) tail
    v = s.vaddr + fmt.align_up(s.filesz, 8) + 0x100
    m.fix(0, "vaddr", v)
    return [f"fixup 0: target {v:#x} outside the image's data"]


@case
def fixup_symbol_out_of_range(m: Mut) -> list[str]:
    i = _fx_import(m.L)
    m.fix(i, "sym", len(m.L.imps))
    return [f"fixup {i}: bad symbol index {len(m.L.imps)}"]


@case
def fixup_symbol_huge(m: Mut) -> list[str]:
    i = _fx_base(m.L)
    m.fix(i, "sym", 0x7FFFFFFF)
    return [f"fixup {i}: bad symbol index {0x7FFFFFFF}"]


@case
def fixup_symbol_none_for_abs64(m: Mut) -> list[str]:
    i = _fx_base(m.L)
    m.fix(i, "sym", fmt.SYM_NONE)
    return [f"fixup {i}: bad symbol index {fmt.SYM_NONE}"]


@case
def fixup_tls_kind_with_symbol(m: Mut) -> list[str]:
    i = _fx_import(m.L)
    m.fix(i, "kind", fmt.FX_DTPMOD64)
    return [f"fixup {i}: bad symbol index"]


@case
def fixup_tls_without_tls(m: Mut) -> list[str]:
    m.fix(0, "kind", fmt.FX_DTPMOD64).fix(0, "sym", fmt.SYM_NONE)
    return ["fixup 0: TLS fixup in an image without TLS"]


# header flags vs fixups
@case
def flags_claim_near_host(m: Mut) -> list[str]:
    flags = m.L.hdr["flags"]
    m.hdr("flags", flags | fmt.F_NEAR_HOST)
    return [f"image header flags {fmt.F_NEAR_HOST:#x} disagree with its fixups (0)"]


@case
def flags_claim_static_tls(m: Mut) -> list[str]:
    m.hdr("flags", m.L.hdr["flags"] | fmt.F_STATIC_TLS)
    return [f"image header flags {fmt.F_STATIC_TLS:#x} disagree with its fixups (0)"]


@case
def flags_deny_low_image(m: Mut) -> list[str]:
    # an abs32 reference to the image itself needs F_LOW_IMAGE, which the header lacks
    i = _fx_base(m.L)
    m.fix(i, "kind", fmt.FX_ABS32)
    return [f"image header flags 0 disagree with its fixups ({fmt.F_LOW_IMAGE:#x})"]


@case
def flags_deny_dynamic_tls(m: Mut) -> list[str]:
    m.hdr("tls_vaddr", m.L.segs[1].vaddr).hdr("tls_memsz", 8).hdr("tls_align", 8)
    m.fix(0, "kind", fmt.FX_DTPMOD64).fix(0, "sym", fmt.SYM_NONE)
    return [f"image header flags 0 disagree with its fixups ({fmt.F_DYNAMIC_TLS:#x})"]


@case
def static_tls_in_a_dynamic_host(m: Mut) -> list[str]:
    if INFO["static_tls_reserve"]:
        pytest.skip("this interpreter has a static TLS reserve")
    m.hdr("tls_vaddr", m.L.segs[1].vaddr).hdr("tls_memsz", 8).hdr("tls_align", 8)
    m.hdr("flags", m.L.hdr["flags"] | fmt.F_STATIC_TLS)
    m.fix(0, "kind", fmt.FX_TPOFF64).fix(0, "sym", fmt.SYM_NONE)
    return ["needs the static TLS reserve of an interpreter made by 'cosmoext embed'"]


@case
def abs32_host_reference_does_not_fit(m: Mut) -> list[str]:
    # caught while applying fixups, i.e. after mapping: the image must be unmapped again
    L = m.L
    i = _fx_import(L)
    name = L.imp_name(L.fixes[i].sym)
    if (_runtime.resolve(name) or 0) + L.fixes[i].addend <= 0xFFFFFFFF:
        pytest.skip(f"{name} is in the low 4 GiB here")
    m.fix(i, "kind", fmt.FX_ABS32).hdr("flags", L.hdr["flags"] | fmt.F_LOW_HOST)
    return [f"32-bit absolute reference to {name} does not fit 32 bits"]


def make_case(lay: Layout, name: str) -> tuple[bytes, list[str]]:
    m = Mut(lay)
    frags = CASES[name](m)
    return m.sealed(), frags


@pytest.mark.parametrize("name", list(CASES))
def test_resealed_corruption_refused(lay: Layout, tmp_path: Path, name: str) -> None:
    data, frags = make_case(lay, name)
    assert data != lay.data
    with digests(True):  # the digest matches: the structural checks must catch it
        refused(write(tmp_path, data), NAME, *frags)


@pytest.mark.parametrize("name", list(CASES))
def test_unsealed_corruption_refused_with_digest_check_off(
        lay: Layout, tmp_path: Path, name: str) -> None:
    """With the SHA-256 check off (the default) the same files, not resealed, are refused
    with the same reasons."""
    m = Mut(lay)
    frags = CASES[name](m)
    with digests(False):
        refused(write(tmp_path, m.raw()), NAME, *frags)


# ---- odd paths --------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    refused(tmp_path / "nope.cosmoext", NAME, "No such file or directory")


def test_directory(tmp_path: Path) -> None:
    d = tmp_path / "cxbad.cosmoext"
    d.mkdir()
    refused(d, NAME, "not a regular file of plausible size")


def test_fifo_does_not_block(tmp_path: Path) -> None:
    """A FIFO named like an image is refused at once (it used to block in open())."""
    fifo = tmp_path / "cxbad.cosmoext"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        import cosmoext
        try:
            cosmoext.load({str(fifo)!r}, "cxbad")
        except ImportError as e:
            print(e)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == f"cannot load {fifo}: not a regular file of plausible size"
    refused(fifo, NAME, "not a regular file of plausible size")


def test_device(tmp_path: Path) -> None:
    refused("/dev/zero", NAME, "not a regular file of plausible size")


def test_implausibly_large_sparse_file(lay: Layout, tmp_path: Path) -> None:
    path = write(tmp_path, lay.data)
    with open(path, "r+b") as f:
        f.truncate(5 << 30)  # sparse: no disk space used
    refused(path, NAME, "not a regular file of plausible size")


# ---- many failures in one process: nothing accumulates ----------------------------------------

MAPS_CHILD = r"""
import gc, json, os, sys
import cosmoext
from cosmoext import _runtime

jobs = json.load(open(sys.argv[1]))
target = int(sys.argv[2])

def maps():
    with open("/proc/self/maps") as f:
        return f.read().splitlines()

def one_round():
    for path, name in jobs:
        try:
            cosmoext.load(path, name)
        except ImportError as e:
            assert name not in sys.modules, path
        else:
            raise SystemExit(f"{path} loaded as {name}")

one_round()  # warm-up: Python's own caches and arenas settle
gc.collect()
m0, fd0, c0 = len(maps()), len(os.listdir("/proc/self/fd")), _runtime.counters()
loads = 0
while loads < target:
    one_round()
    loads += len(jobs)
gc.collect()
m1 = maps()
c1 = _runtime.counters()
print(json.dumps({
    "loads": loads, "maps_before": m0, "maps_after": len(m1),
    "fds_before": fd0, "fds_after": len(os.listdir("/proc/self/fd")),
    "counters_before": c0, "counters_after": c1,
    "left": [line for line in m1 if os.path.dirname(sys.argv[1]) in line],
}))
"""


def _failing_files(lay: Layout, variants: dict[str, Path], d: Path) -> list[tuple[str, str]]:
    """One of each kind of refusal, as (path, module name) pairs."""
    jobs: list[tuple[str, str]] = []
    for name in CASES:
        try:
            data, _ = make_case(lay, name)
        except pytest.skip.Exception:
            continue
        jobs.append((str(write(d, data, name)), NAME))
    for where, cut in _cut_points(lay).items():
        jobs.append((str(write(d, lay.data[:cut], f"cut-{where}")), NAME))
    for what, m in {
        "magic": Mut(lay).file("magic", b"COSMOEXX"),
        "version": Mut(lay).file("version_major", 3),
        "count": Mut(lay).file("image_count", 0),
        "table": Mut(lay).file("table_offset", len(lay.data)),
        "offset": Mut(lay).ent("offset", lay.img + 8),
        "arch": Mut(lay).ent("machine", fmt.EM_AARCH64).hdr("machine", fmt.EM_AARCH64),
        "abi": Mut(lay).hdr("python_abi", b"cp310"),
        "target": Mut(lay).hdr("target", b"cosmo"),
    }.items():
        jobs.append((str(write(d, m.sealed() if what in ("arch", "abi", "target") else m.raw(),
                               what)), NAME))
    jobs.append((str(write(d, lay.data, "mismatch")), "other"))
    jobs.append((str(d / "does-not-exist.cosmoext"), NAME))
    (d / "dir.cosmoext").mkdir()
    jobs.append((str(d / "dir.cosmoext"), NAME))
    for v in ("missing1", "missing2", "cp310", "cosmo"):
        jobs.append((str(variants[v]), NAME))
    return jobs


def test_many_failed_loads_leave_nothing_behind(lay: Layout, variants: dict[str, Path],
                                                tmp_path: Path) -> None:
    """~200 failing loads of every kind in one process: /proc/self/maps, the open file
    descriptors and the loader's live counters do not grow."""
    d = tmp_path / "jobs"
    d.mkdir()
    jobs = _failing_files(lay, variants, d)
    # the loads that fail only after mapping are in the mix
    assert any("init_array_entry_not_code" in p for p, _ in jobs)
    manifest = d / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    p = subprocess.run([sys.executable, "-c", MAPS_CHILD, str(manifest), "200"],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, f"child failed ({p.returncode}):\n{p.stdout}\n{p.stderr[-3000:]}"
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["loads"] >= 200
    c0, c1 = r["counters_before"], r["counters_after"]
    assert c1["live_regions"] == c0["live_regions"] == 0
    assert c1["live_bytes"] == c0["live_bytes"] == 0
    assert c1["loaded"] == c0["loaded"] == 0
    assert r["maps_after"] - r["maps_before"] <= 2, r
    assert r["fds_after"] == r["fds_before"], r
    assert r["left"] == [], r["left"]


# ---- fuzzing the metadata ---------------------------------------------------------------------

FUZZ_CHILD = r"""
import json, os, sys
import cosmoext
from cosmoext import _runtime

jobs = json.load(open(sys.argv[1]))

def live():
    c = _runtime.counters()
    return [c["live_regions"], c["live_bytes"]]

loaded = []
for i, path in enumerate(jobs):
    print(json.dumps({"start": i}), flush=True)
    rec = {"i": i}
    before = live()
    try:
        m = cosmoext.load(path, "cxbad")
    except ImportError as e:
        rec.update(status="refused", type=type(e).__name__, msg=str(e),
                   attrs=[e.name, e.path], leaked=live() != before,
                   in_modules="cxbad" in sys.modules)
    except BaseException as e:
        rec.update(status="other", type=type(e).__name__, msg=str(e))
    else:
        try:
            ok = (m.add(2, 3) == 5 and m.greet(1) == "bonjour" and m.MAGIC == 4242
                  and m.bump() == 82 and sys.modules.get("cxbad") is m)
        except BaseException as e:
            ok = f"{type(e).__name__}: {e}"
        rec.update(status="loaded", works=ok)
        loaded.append(path)
        sys.modules.pop("cxbad", None)
    print(json.dumps(rec), flush=True)
with open("/proc/self/maps") as f:
    mapped = {line.split()[-1] for line in f if line.rstrip().endswith(".cosmoext")}
print(json.dumps({"done": True, "counters": _runtime.counters(), "loaded": loaded,
                  "mapped": sorted(mapped)}), flush=True)
"""


def payload_ranges(lay: Layout) -> list[tuple[int, int]]:
    """Byte ranges whose every well-formed value is plausible, so that no loader can tell a
    corrupted value from the right one; only the SHA-256 vouches for them.  A flipped bit
    here makes a well-formed image that computes the wrong thing (and may crash in PyInit):
    the entry point, how many fixups there are, each fixup (where, what kind, which symbol,
    what addend) and where each segment's bytes come from (file offset and size)."""
    h = lay.img
    out = [(h + HDR_FIELDS["entry"][0], h + HDR_FIELDS["entry"][0] + 8),
           (h + HDR_FIELDS["fix_count"][0], h + HDR_FIELDS["fix_count"][0] + 4)]
    out += [(s.pos + 16, s.pos + 32) for s in lay.segs]  # offset, filesz
    if lay.fixes:
        out.append((lay.fixes[0].pos, lay.fixes[-1].pos + fmt.FIXUP.size))
    return out


def reseal_if_possible(lay: Layout, buf: bytearray) -> bytes:
    """support.build.reseal(), unless the file header no longer locates the pristine image table
    (then resealing would write digests into random places; the loader must refuse the
    file on its header alone)."""
    count, table = struct.unpack_from("<I", buf, 16)[0], struct.unpack_from("<Q", buf, 32)[0]
    if 1 <= count <= fmt.MAX_IMAGES and fmt.FILE_HDR.size <= table and \
            table + count * fmt.IMAGE_ENT.size <= lay.img:
        return reseal(buf)
    return bytes(buf)


def run_fuzz_child(jobs: list[str], env_verify: str, d: Path) -> tuple[int, list[dict], str]:
    manifest = d / "jobs.json"
    manifest.write_text(json.dumps(jobs))
    env = dict(os.environ, COSMOEXT_VERIFY=env_verify)
    p = subprocess.run([sys.executable, "-c", FUZZ_CHILD, str(manifest)], capture_output=True,
                       text=True, timeout=300, env=env)
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines() if line], p.stderr


def check_fuzz(lay: Layout, jobs: list[str], changes: list[dict[int, int]],
               rc: int, recs: list[dict], stderr: str) -> list[str]:
    """Everything that went wrong in one child's run, each naming the corruption."""
    def what(i: int) -> str:
        ch = changes[i]
        return f"{jobs[i]}: " + ", ".join(
            f"{lay.describe(p)} @{p:#x}: {lay.data[p]:#04x} -> {v:#04x}"
            for p, v in sorted(ch.items()))

    problems = []
    results = [r for r in recs if "status" in r]
    started = [r["start"] for r in recs if "start" in r]
    if rc != 0:
        culprit = started[-1] if started else None
        problems.append(f"child died with return code {rc} "
                        f"(signal {-rc if rc < 0 else 0}) on "
                        f"{what(culprit) if culprit is not None else '?'}\n{stderr[-2000:]}")
    for r in results:
        i = r["i"]
        path = os.path.abspath(jobs[i])
        if r["status"] == "other":
            problems.append(f"{r['type']} instead of ImportError ({r['msg']}) for {what(i)}")
        elif r["status"] == "refused":
            if not r["msg"].startswith(f"cannot load {path}: ") or "\n" in r["msg"]:
                problems.append(f"bad message {r['msg']!r} for {what(i)}")
            if r["leaked"]:
                problems.append(f"failed load left an image mapped: {what(i)}")
            if r["in_modules"]:
                problems.append(f"failed load left cxbad in sys.modules: {what(i)}")
            if r["attrs"] != ["cxbad", path]:
                problems.append(f"ImportError name/path {r['attrs']} for {what(i)}")
        elif r["works"] is not True:
            problems.append(f"loaded but broken ({r['works']}) for {what(i)}")
    if rc == 0:
        done = recs[-1]
        assert done.get("done"), recs[-1]
        n_loaded = len(done["loaded"])
        if done["counters"]["live_regions"] != n_loaded:
            problems.append(f"{done['counters']['live_regions']} live images, "
                            f"{n_loaded} successful loads")
        stray = set(done["mapped"]) - set(done["loaded"])
        if stray:
            problems.append(f"files still mapped after failing to load: {sorted(stray)}")
    return problems


FUZZ_BATCH = 160


def corruption(data: st.DataObject, positions: list[int], allowed: set[int] | range,
               limit: int) -> list[int]:
    """Positions to change: one byte, a few scattered bytes, or a short run."""
    anywhere = st.integers(0, limit - 1).filter(lambda p: p in allowed)
    pos = st.one_of(st.sampled_from(positions), st.sampled_from(positions), anywhere)
    shape = data.draw(st.sampled_from(["byte", "byte", "scattered", "run"]))
    if shape == "byte":
        return [data.draw(pos)]
    if shape == "scattered":
        return sorted(set(data.draw(st.lists(pos, min_size=2, max_size=4))))
    start, n = data.draw(pos), data.draw(st.integers(2, 8))
    return [p for p in range(start, min(start + n, limit)) if p in allowed]


FUZZ_SETTINGS = settings(
    max_examples=3, deadline=None, database=None, phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_resealed_metadata(lay: Layout, tmp_path_factory: pytest.TempPathFactory,
                                data: st.DataObject) -> None:
    """Random corruption of the metadata (everything before the first segment's data: file
    header, image table, image header, segment/import/fixup tables, string table, padding),
    resealed, digest check at its default (off): each load either works or is refused."""
    limit = lay.first_segment_data
    payload = {p for lo, hi in payload_ranges(lay) for p in range(lo, hi)}
    allowed = {p for p in range(limit) if p not in payload}
    # the bytes that mean something, sampled far more often than the zero padding
    dense = [p for p in sorted(allowed)
             if p < lay.table + fmt.IMAGE_ENT.size or lay.img <= p < lay.strtab_end]
    d = tmp_path_factory.mktemp("fuzz")
    jobs, changes = [], []
    for k in range(FUZZ_BATCH):
        buf = bytearray(lay.data)
        change = {}
        for p in corruption(data, dense, allowed, limit):
            buf[p] ^= data.draw(st.integers(1, 255))
            change[p] = buf[p]
        if not change:
            continue
        jobs.append(str(write(d, reseal_if_possible(lay, buf), f"f{k:03d}")))
        changes.append(change)
    rc, recs, stderr = run_fuzz_child(jobs, "0", d)
    problems = check_fuzz(lay, jobs, changes, rc, recs, stderr)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])
    # the batch exercised both outcomes
    statuses = {r["status"] for r in recs if "status" in r}
    assert "refused" in statuses


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_unsealed_anywhere_with_digest_check(
        lay: Layout, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject) -> None:
    """With COSMOEXT_VERIFY=1, random corruption anywhere in the file (payload and segment
    data included), not resealed: each load either works or is refused."""
    limit = len(lay.data)
    everything = range(limit)
    dense = [*range(lay.table + fmt.IMAGE_ENT.size), *range(lay.img, lay.strtab_end)]
    for s in lay.segs:
        dense += range(lay.img + s.offset, lay.img + s.offset + s.filesz)
    d = tmp_path_factory.mktemp("fuzz-verify")
    jobs, changes = [], []
    for k in range(FUZZ_BATCH // 2):
        buf = bytearray(lay.data)
        change = {}
        for p in corruption(data, dense, everything, limit):
            buf[p] ^= data.draw(st.integers(1, 255))
            change[p] = buf[p]
        jobs.append(str(write(d, bytes(buf), f"v{k:03d}")))
        changes.append(change)
    rc, recs, stderr = run_fuzz_child(jobs, "1", d)
    problems = check_fuzz(lay, jobs, changes, rc, recs, stderr)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])


def test_fuzz_harness_catches_a_crash(lay: Layout, tmp_path: Path) -> None:
    """The fuzz harness is not vacuous: a payload corruption that makes PyInit fault (a
    pointer to the module's name relocated to a non-canonical address) is reported as a
    crash naming the field; at the default level (the checksums), the same file is refused,
    and with only the SHA-256 left to catch it, that does."""
    ro = lay.segs[lay.seg_of_kind(fmt.SEG_RODATA)]
    ro_bytes = lay.data[lay.img + ro.offset:lay.img + ro.offset + ro.filesz]
    name_vaddr = ro.vaddr + ro_bytes.index(b"cxbad\0")
    i = lay.fixup(lambda f: f.sym == fmt.SYM_BASE and f.addend == name_vaddr
                  and lay.segs[lay.seg_holding(f.vaddr)].kind == fmt.SEG_DATA)
    m = Mut(lay).fix(i, "addend", 1 << 62)
    good = write(tmp_path, lay.data, "good")
    bad = write(tmp_path, m.raw(), "bad")
    jobs = [str(good), str(bad), str(good)]
    pos = lay.fixes[i].pos + FIX_FIELDS["addend"][0] + 7
    changes = [{}, {pos: m.buf[pos]}, {}]
    rc, recs, stderr = run_fuzz_child(jobs, "0", tmp_path)
    problems = check_fuzz(lay, jobs, changes, rc, recs, stderr)
    assert rc != 0 and len(problems) == 1, problems
    assert f"fixup {i} addend" in problems[0] and str(bad) in problems[0]
    refused(bad, NAME, f"{MACHINE} image is corrupt (CRC-32C mismatch)")  # the default
    with digests(True):
        refused(write(tmp_path, reseal(m.buf, sha256=False), "bad-sha"), NAME,
                f"{MACHINE} image is corrupt (SHA-256 mismatch)")


DEFAULT_FLIP_CHILD = r"""
import json, sys, cosmoext
out = {"refused": 0, "loaded": [], "other": []}
for path in json.loads(open(sys.argv[1]).read()):
    try:
        cosmoext.load(path, sys.argv[2])
        out["loaded"].append(path)
    except ImportError:
        out["refused"] += 1
    except Exception as e:  # noqa: BLE001 - reported, not hidden
        out["other"].append(f"{path}: {type(e).__name__}: {e}")
    sys.modules.pop(sys.argv[2], None)
print(json.dumps(out))
"""


def test_every_metadata_byte_flip_is_refused_by_default(pristine_path: Path,
                                                        tmp_path: Path) -> None:
    """At the default verification level (the metadata digest), flipping any byte of an
    image's header, tables or string table is refused up front: no resealing, no crash."""
    data = pristine_path.read_bytes()
    table = fmt.FILE_HDR.unpack_from(data, 0)[7]
    off = fmt.IMAGE_ENT.unpack_from(data, table)[3]
    end = off + fmt.meta_end(data[off:])
    paths = []
    for i in range(off, end):
        buf = bytearray(data)
        buf[i] ^= 0xFF
        p = tmp_path / f"flip{i}.cosmoext"
        p.write_bytes(buf)
        paths.append(str(p))
    manifest = tmp_path / "jobs.json"
    manifest.write_text(json.dumps(paths))
    env = {k: v for k, v in os.environ.items() if k != "COSMOEXT_VERIFY"}
    proc = subprocess.run([sys.executable, "-c", DEFAULT_FLIP_CHILD, str(manifest), NAME],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["loaded"] == [] and res["other"] == [], (res["loaded"][:3], res["other"][:3])
    assert res["refused"] == end - off > 500


# ---- every 2 KiB block of a multi-segment image: zeroed, and one byte flipped ----------------

BLOCK = 2048
CPP_NAME = "cx_cpp"

BLOCK_CHILD = r"""
import json, sys, cosmoext
name = sys.argv[2]
out = []
for path in json.loads(open(sys.argv[1]).read()):
    try:
        cosmoext.load(path, name)
    except ImportError as e:
        out.append({"path": path, "status": "refused", "msg": str(e),
                    "attrs": [e.name, e.path], "in_modules": name in sys.modules})
    except BaseException as e:  # noqa: BLE001 - reported, not hidden
        out.append({"path": path, "status": "other", "msg": f"{type(e).__name__}: {e}"})
    else:
        out.append({"path": path, "status": "loaded", "msg": ""})
    sys.modules.pop(name, None)
    print(json.dumps(out[-1]), flush=True)
"""


@pytest.fixture(scope="module")
def cpp_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/ext/cx_cpp.cpp (C++, libstdc++ linked in): four segments, ~550 KiB."""
    from support.build import build_ext
    from support.extensions import cflags, sources
    out = tmp_path_factory.mktemp("cpp") / f"{CPP_NAME}.cosmoext"
    build_ext(name=CPP_NAME, sources=sources(CPP_NAME), output=str(out), pic=True,
              cflags=cflags(CPP_NAME))
    return out


def _run_blocks(files: list[tuple[int, Path]], d: Path) -> dict[int, dict]:
    """Load every file in child processes (several per child); a crash names the file."""
    results: dict[int, dict] = {}
    by_path = {str(p): k for k, p in files}
    for start in range(0, len(files), 60):
        batch = [str(p) for _, p in files[start:start + 60]]
        manifest = d / f"jobs{start}.json"
        manifest.write_text(json.dumps(batch))
        env = {k: v for k, v in os.environ.items() if k != "COSMOEXT_VERIFY"}  # the default
        p = subprocess.run([sys.executable, "-c", BLOCK_CHILD, str(manifest), CPP_NAME],
                           capture_output=True, text=True, timeout=600, env=env)
        recs = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
        for r in recs:
            results[by_path[r["path"]]] = r
        if p.returncode != 0:
            culprit = batch[len(recs)] if len(recs) < len(batch) else "?"
            pytest.fail(f"child died ({p.returncode}) loading {culprit}:\n{p.stderr[-2000:]}")
        for path in batch:
            os.unlink(path)
    return results


def _check_blocks(results: dict[int, dict], files: list[tuple[int, Path]], what: str) -> None:
    bad = []
    for k, path in files:
        r = results.get(k)
        if r is None or r["status"] != "refused":
            bad.append(f"block {k} {what}: {r}")
        elif (not r["msg"].startswith(f"cannot load {path}: ") or "\n" in r["msg"]
              or r["attrs"] != [CPP_NAME, str(path)] or r["in_modules"]):
            bad.append(f"block {k} {what}: bad refusal {r}")
    assert not bad, f"{len(bad)} of {len(files)} blocks:\n" + "\n".join(bad[:20])


def test_every_block_zeroed_is_refused(cpp_image: Path, tmp_path: Path) -> None:
    """Each 2 KiB block of a C++ image zeroed in turn, at the default level: refused with
    an ImportError naming the file, every block.  A block that is already all zero (the
    file is packed: few, if any) cannot be zeroed: that file is the pristine one, which
    loads."""
    data = cpp_image.read_bytes()
    nblocks = (len(data) + BLOCK - 1) // BLOCK
    files, unchanged = [], []
    for k in range(nblocks):
        buf = bytearray(data)
        end = min(len(data), (k + 1) * BLOCK)
        buf[k * BLOCK:end] = bytes(end - k * BLOCK)
        if buf == data:
            unchanged.append(k)
            continue
        p = tmp_path / f"z{k:04d}" / f"{CPP_NAME}.cosmoext"
        p.parent.mkdir()
        p.write_bytes(buf)
        files.append((k, p))
    results = _run_blocks(files, tmp_path)
    _check_blocks(results, files, "zeroed")
    assert len(results) + len(unchanged) == nblocks > 100
    # the unchanged ones are exactly the all-zero blocks, and the pristine file loads
    assert unchanged == [k for k in range(nblocks)
                         if not any(data[k * BLOCK:(k + 1) * BLOCK])]
    assert len(unchanged) < nblocks // 3
    good = tmp_path / "good" / f"{CPP_NAME}.cosmoext"
    good.parent.mkdir()
    good.write_bytes(data)
    res = _run_blocks([(-1, good)], tmp_path)
    assert res[-1]["status"] == "loaded", res


def test_every_block_with_a_flipped_byte_is_refused(cpp_image: Path, tmp_path: Path) -> None:
    """One byte flipped in each 2 KiB block of a C++ image in turn (a different place in
    each block; in the first, a byte of the image table), at the default level: refused
    with an ImportError naming the file, for every block of the file."""
    data = cpp_image.read_bytes()
    nblocks = (len(data) + BLOCK - 1) // BLOCK
    files = []
    for k in range(nblocks):
        size = min(BLOCK, len(data) - k * BLOCK)
        pos = k * BLOCK + (k * 2654435761 + 100) % size
        buf = bytearray(data)
        buf[pos] ^= 1 << (k % 8)
        p = tmp_path / f"f{k:04d}" / f"{CPP_NAME}.cosmoext"
        p.parent.mkdir()
        p.write_bytes(buf)
        files.append((k, p))
    results = _run_blocks(files, tmp_path)
    _check_blocks(results, files, "flipped")
    assert len(results) == nblocks > 100
    # what caught them: the checksums, but for the file-header fields checked before them
    reasons = {r["msg"].split(": ", 1)[1] for r in results.values()}
    assert "x86_64 image is corrupt (CRC-32C mismatch)" in reasons or MACHINE != "x86_64"
    assert "file header or image table is corrupt (CRC-32C mismatch)" in reasons
