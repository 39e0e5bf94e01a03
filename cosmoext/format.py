"""The .cosmoext container format, version 2.0 (see docs/format.md).

All integers are little-endian.  The layout here is the single source of
truth for the Python side; ``cosmoext/runtime/cxformat.h`` mirrors it for
the loader.  ``pack`` writes a file, ``parse`` reads one back with the same
checks the loader makes (used by ``inspect`` and the tests).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

MAGIC = b"COSMOEXT"
IMAGE_MAGIC = b"CXIM"
VERSION_MAJOR = 2  # 2.0 packed the file; loaders refuse 1.x files
VERSION_MINOR = 0
ALIGN = 0x10000  # segment vaddrs and vsize: 64 KiB (16 KiB Apple pages, 64 KiB Windows)
FILE_ALIGN = 16  # images and segment data are packed in the file at this alignment
MIN_BASE_ALIGN = 0x1000  # an image header's align: a power of two in [4 KiB, ALIGN]
HEAD_MAX = 0x10000  # the image table lies in the file's first 64 KiB
MAX_IMAGES = 8

EM_X86_64 = 62
EM_AARCH64 = 183
ARCH_NAMES = {EM_X86_64: "x86_64", EM_AARCH64: "aarch64"}

# Image header flags.  The loader re-derives the placement requirements from
# the fixups and refuses an image whose flags disagree with them.
F_PIC = 1 << 0  # built from -fPIC objects (informational)
F_NEAR_HOST = 1 << 1  # PC-relative 32-bit fixups reach host symbols
F_LOW_IMAGE = 1 << 2  # 32-bit absolute fixups hold image addresses
F_LOW_HOST = 1 << 3  # 32-bit absolute fixups hold host addresses
F_STATIC_TLS = 1 << 4  # TPOFF fixups: needs a static TLS reserve
F_DYNAMIC_TLS = 1 << 5  # DTPMOD fixups: uses the loader's __tls_get_addr
FLAG_NAMES = {
    F_PIC: "pic",
    F_NEAR_HOST: "near-host",
    F_LOW_IMAGE: "low-image",
    F_LOW_HOST: "low-host",
    F_STATIC_TLS: "static-tls",
    F_DYNAMIC_TLS: "dynamic-tls",
}

PROT_R, PROT_W, PROT_X = 1, 2, 4
SEG_TEXT, SEG_RODATA, SEG_RELRO, SEG_DATA = 1, 2, 3, 4
SEG_NAMES = {SEG_TEXT: "text", SEG_RODATA: "rodata", SEG_RELRO: "relro", SEG_DATA: "data"}
SEG_PROT = {
    SEG_TEXT: PROT_R | PROT_X,
    SEG_RODATA: PROT_R,
    SEG_RELRO: PROT_R,
    SEG_DATA: PROT_R | PROT_W,
}

# Normalised fixup kinds (S = symbol or image base, A = addend, P = place,
# T = offset of the image's TLS block from the thread pointer).
FX_ABS64 = 1  # u64 S+A
FX_ABS32 = 2  # u32 S+A, must fit zero-extended
FX_ABS32S = 3  # s32 S+A, must fit sign-extended
FX_PC32 = 4  # s32 S+A-P
FX_PC64 = 5  # s64 S+A-P
FX_TPOFF64 = 6  # s64 T+A
FX_TPOFF32 = 7  # s32 T+A
FX_DTPMOD64 = 8  # u64 module handle for the loader's __tls_get_addr
# aarch64: instruction fields (V = S+A; page(x) = x & ~0xfff).  With the
# FX_A64_CHECK bit, V must fit the field with nothing cut off.
FX_A64_ADRP = 16  # ADRP imm21 = (page(V) - page(P)) >> 12, +-4 GiB
FX_A64_ADD_LO12 = 17  # ADD imm12 = V & 0xfff  (checked: 0 <= V < 4096)
FX_A64_LDST8_LO12 = 18  # LD/ST imm12 = (V & 0xfff) >> 0, V aligned to the access
FX_A64_LDST16_LO12 = 19  # ... >> 1
FX_A64_LDST32_LO12 = 20  # ... >> 2
FX_A64_LDST64_LO12 = 21  # ... >> 3
FX_A64_LDST128_LO12 = 22  # ... >> 4
FX_A64_MOVW_G0 = 23  # MOVZ/MOVK imm16 = V >> 0 & 0xffff  (checked: 0 <= V < 2**16)
FX_A64_MOVW_G1 = 24  # V >> 16  (checked: V < 2**32, a low-image/low-host requirement)
FX_A64_MOVW_G2 = 25  # V >> 32  (checked: V < 2**48)
FX_A64_MOVW_G3 = 26  # V >> 48
FX_A64_TLSDESC = 27  # 16-byte TLS descriptor {resolver, argument} for block offset A
FX_A64_ADD_HI12 = 28  # ADD imm12 = V >> 12 & 0xfff, 0 <= V < 2**24 (always checked)
FX_A64_CHECK = 0x100  # modifier bit on kinds 17..26
FIXUP_NAMES = {
    FX_ABS64: "abs64",
    FX_ABS32: "abs32",
    FX_ABS32S: "abs32s",
    FX_PC32: "pc32",
    FX_PC64: "pc64",
    FX_TPOFF64: "tpoff64",
    FX_TPOFF32: "tpoff32",
    FX_DTPMOD64: "dtpmod64",
    FX_A64_ADRP: "a64-adrp",
    FX_A64_ADD_LO12: "a64-add-lo12",
    FX_A64_LDST8_LO12: "a64-ldst8-lo12",
    FX_A64_LDST16_LO12: "a64-ldst16-lo12",
    FX_A64_LDST32_LO12: "a64-ldst32-lo12",
    FX_A64_LDST64_LO12: "a64-ldst64-lo12",
    FX_A64_LDST128_LO12: "a64-ldst128-lo12",
    FX_A64_MOVW_G0: "a64-movw-g0",
    FX_A64_MOVW_G1: "a64-movw-g1",
    FX_A64_MOVW_G2: "a64-movw-g2",
    FX_A64_MOVW_G3: "a64-movw-g3",
    FX_A64_TLSDESC: "a64-tlsdesc",
    FX_A64_ADD_HI12: "a64-add-hi12",
}
FIXUP_NAMES.update({k | FX_A64_CHECK: FIXUP_NAMES[k] + "-checked"
                    for k in range(FX_A64_ADD_LO12, FX_A64_MOVW_G3 + 1)})
SYM_BASE = 0xFFFFFFFF  # S is the image's load address
SYM_NONE = 0xFFFFFFFE  # no symbol (TLS kinds)
SYM_TP = 0xFFFFFFFD  # S is T, the image's static TLS block offset (aarch64 local exec)
IMP_WEAK = 1

FILE_HDR = struct.Struct("<8sHHIII Q Q I 20x")  # 64 bytes
IMAGE_ENT = struct.Struct("<HHI Q Q 32s 8x")  # 64 bytes; the u32 at 4 is the image's CRC-32C
IMAGE_HDR = struct.Struct(
    "<4sHHII16s16s QQ II II II II II QII Q QI4x QQ QII I4x Q 32s"
)  # 224 bytes
META_DIGEST_AT = 192  # meta_sha256: over image[0:192] + image[224:meta_end]
# Checksums (CRC-32C): head_crc32c, at HEAD_CRC_AT in the file header, covers the
# file header and image table (bytes 0 to the table's end) without the field
# itself; each image table entry's crc32c covers its image.
CRC32C_POLY = 0x82F63B78  # reflected Castagnoli polynomial
HEAD_CRC_AT = 40
SEGMENT = struct.Struct("<QQQQII")  # 40 bytes
IMPORT = struct.Struct("<IIII")  # 16 bytes
FIXUP = struct.Struct("<QIIq")  # 24 bytes
assert FILE_HDR.size == 64 and IMAGE_ENT.size == 64 and IMAGE_HDR.size == 224


class FormatError(ValueError):
    """A file that is not a valid .cosmoext (the message says why)."""


def _crc_table() -> tuple[int, ...]:
    out = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ CRC32C_POLY if c & 1 else c >> 1
        out.append(c)
    return tuple(out)


_CRC_TABLE = _crc_table()


def _multmodp(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC-32C polynomial, reflected (bit 31 is x^0)."""
    p = 0
    for _ in range(32):
        if a & 0x80000000:
            p ^= b
        a = (a << 1) & 0xFFFFFFFF
        b = (b >> 1) ^ CRC32C_POLY if b & 1 else b >> 1
    return p


def crc32c_xpow8n(n: int) -> int:
    """x^(8n) modulo the polynomial: what n zero bytes multiply a CRC register by."""
    r, sq = 0x80000000, 0x40000000  # x^0, x^1
    n *= 8
    while n:
        if n & 1:
            r = _multmodp(sq, r)
        sq = _multmodp(sq, sq)
        n >>= 1
    return r


_ZERO_RUN = 4096
_ZEROS = bytes(_ZERO_RUN)
_ZERO_OP = crc32c_xpow8n(_ZERO_RUN)


def crc32c_py(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C in pure Python (table-driven; 4 KiB runs of zeros, such as
    zero-filled data, cost one multiplication instead of 4096 steps)."""
    t = _CRC_TABLE
    r = crc ^ 0xFFFFFFFF
    mv = memoryview(data).cast("B")
    for i in range(0, len(mv), _ZERO_RUN):
        chunk = mv[i:i + _ZERO_RUN]
        if chunk == _ZEROS:
            r = _multmodp(_ZERO_OP, r)
            continue
        for b in bytes(chunk):
            r = t[(r ^ b) & 0xFF] ^ (r >> 8)
    return r ^ 0xFFFFFFFF


def _native_crc32c() -> Callable[..., int] | None:
    try:
        from cosmoext import _runtime
    except ImportError:  # a build of cosmoext without its runtime: Python's is used
        return None
    return getattr(_runtime, "crc32c", None)


_crc_native: list[Callable[..., int] | None] = []


def crc32c(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of data, continuing from crc: the runtime's (hardware)
    when it is importable, else :func:`crc32c_py`; both give the same value."""
    if not _crc_native:
        _crc_native.append(_native_crc32c())
    fast = _crc_native[0]
    return fast(data, crc) if fast else crc32c_py(data, crc)


def table_end(data: bytes | bytearray) -> int:
    """End of the image table, from the file header's table_offset and image_count."""
    f = FILE_HDR.unpack_from(data, 0)
    return int(f[7] + f[4] * IMAGE_ENT.size)


def head_crc32c(data: bytes | bytearray) -> int:
    """The file header's head_crc32c: the header and the image table (up to
    :func:`table_end`) without the field itself."""
    head = memoryview(data)[:table_end(data)]
    return crc32c(head[HEAD_CRC_AT + 4:], crc32c(head[:HEAD_CRC_AT]))


def gnu_hash(name: str | bytes) -> int:
    """The GNU ELF symbol hash; the loader's export table uses the same."""
    h = 5381
    for c in name.encode() if isinstance(name, str) else name:
        h = (h * 33 + c) & 0xFFFFFFFF
    return h


def align_up(x: int, a: int = ALIGN) -> int:
    return (x + a - 1) & ~(a - 1)


@dataclass
class Segment:
    kind: int
    vaddr: int
    memsz: int
    data: bytes  # file contents; len(data) == filesz <= memsz

    @property
    def prot(self) -> int:
        return SEG_PROT[self.kind]


@dataclass
class Import:
    name: str
    weak: bool = False


@dataclass
class Fixup:
    vaddr: int
    kind: int
    sym: int
    addend: int


@dataclass
class Image:
    arch: int
    target: str
    python_abi: str
    name: str
    entry: int
    segments: list[Segment]
    imports: list[Import] = field(default_factory=list)
    fixups: list[Fixup] = field(default_factory=list)
    flags: int = 0
    init_array: tuple[int, int] = (0, 0)  # vaddr, count
    fini_array: tuple[int, int] = (0, 0)
    eh_frame: tuple[int, int] = (0, 0)  # vaddr, size
    eh_frame_hdr: tuple[int, int] = (0, 0)
    tls: tuple[int, int, int, int] = (0, 0, 0, 0)  # vaddr, filesz, memsz, align
    sha256: bytes = b""
    align: int = ALIGN  # base alignment it needs (the linker writes its sections' largest)

    @property
    def vsize(self) -> int:
        return max((align_up(s.vaddr + s.memsz) for s in self.segments), default=0)

    @property
    def arch_name(self) -> str:
        return ARCH_NAMES.get(self.arch, f"machine-{self.arch}")


def _cstr(s: str, n: int) -> bytes:
    b = s.encode()
    if len(b) >= n:
        raise FormatError(f"string {s!r} longer than {n - 1} bytes")
    return b


def _pack_image(img: Image) -> bytes:
    segs = sorted(img.segments, key=lambda s: s.vaddr)
    strtab = bytearray(b"\0")
    offsets: dict[str, int] = {}

    def intern(s: str) -> int:
        if s not in offsets:
            offsets[s] = len(strtab)
            strtab.extend(s.encode() + b"\0")
        return offsets[s]

    name_off = intern(img.name)
    imp_blob = b"".join(
        IMPORT.pack(intern(i.name), gnu_hash(i.name), IMP_WEAK if i.weak else 0, 0)
        for i in img.imports
    )
    fix_blob = b"".join(
        FIXUP.pack(f.vaddr, f.kind, f.sym, f.addend)
        for f in sorted(img.fixups, key=lambda f: f.vaddr)
    )
    seg_off = IMAGE_HDR.size
    imp_off = seg_off + SEGMENT.size * len(segs)
    fix_off = imp_off + len(imp_blob)
    str_off = fix_off + len(fix_blob)
    meta_end = str_off + len(strtab)
    seg_blob = bytearray()
    data_off = align_up(meta_end, FILE_ALIGN)
    file_offsets = []
    for s in segs:
        file_offsets.append(data_off if s.data else 0)
        data_off = align_up(data_off + len(s.data), FILE_ALIGN)
    for s, off in zip(segs, file_offsets, strict=True):
        seg_blob += SEGMENT.pack(s.vaddr, s.memsz, off, len(s.data), s.prot, s.kind)
    if img.align & (img.align - 1) or not MIN_BASE_ALIGN <= img.align <= ALIGN:
        raise FormatError(f"image alignment {img.align:#x} is not a power of two from "
                          f"{MIN_BASE_ALIGN:#x} to {ALIGN:#x}")
    hdr = IMAGE_HDR.pack(
        IMAGE_MAGIC, img.arch, IMAGE_HDR.size, img.flags, img.align,
        _cstr(img.target, 16), _cstr(img.python_abi, 16),
        img.vsize, img.entry,
        name_off, 0,
        seg_off, len(segs),
        imp_off, len(img.imports),
        fix_off, len(img.fixups),
        str_off, len(strtab),
        img.init_array[0], img.init_array[1], img.fini_array[1],
        img.fini_array[0],
        img.eh_frame_hdr[0], img.eh_frame_hdr[1],
        img.eh_frame[0], img.eh_frame[1],
        img.tls[0], img.tls[1], img.tls[2],
        img.tls[3],
        0,
        b"\0" * 32,
    )
    out = bytearray(hdr + seg_blob + imp_blob + fix_blob + strtab)
    out[META_DIGEST_AT:META_DIGEST_AT + 32] = meta_digest(out)
    for s, off in zip(segs, file_offsets, strict=True):
        if s.data:
            out.extend(b"\0" * (off - len(out)))
            out.extend(s.data)
    return bytes(out)


def pack(images: list[Image]) -> bytes:
    """Serialise images (one per architecture) into a .cosmoext file."""
    if not 1 <= len(images) <= MAX_IMAGES:
        raise FormatError(f"a file holds 1..{MAX_IMAGES} images, got {len(images)}")
    if len({i.arch for i in images}) != len(images):
        raise FormatError("two images for the same architecture")
    blobs = [_pack_image(i) for i in images]
    off = align_up(FILE_HDR.size + IMAGE_ENT.size * len(images), FILE_ALIGN)
    table = bytearray()
    body = bytearray()
    for img, blob in zip(images, blobs, strict=True):
        img.sha256 = hashlib.sha256(blob).digest()
        table += IMAGE_ENT.pack(img.arch, 0, crc32c(blob), off, len(blob), img.sha256)
        body += b"\0" * (off - len(body)) + blob  # body is indexed by file offset
        off = align_up(off + len(blob), FILE_ALIGN)
    hdr = FILE_HDR.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, FILE_HDR.size,
                        len(images), IMAGE_ENT.size, len(body), FILE_HDR.size, 0)
    head = hdr + bytes(table)
    out = bytearray(head + bytes(body[len(head):]))
    struct.pack_into("<I", out, HEAD_CRC_AT, head_crc32c(out))
    return bytes(out)


def meta_end(image: bytes | bytearray) -> int:
    """End of the metadata (header, tables, string table) of an image."""
    f = IMAGE_HDR.unpack_from(image, 0)
    seg_off, seg_n, imp_off, imp_n, fix_off, fix_n, str_off, str_size = f[11:19]
    return max(IMAGE_HDR.size, seg_off + seg_n * SEGMENT.size, imp_off + imp_n * IMPORT.size,
               fix_off + fix_n * FIXUP.size, str_off + str_size)


def meta_digest(image: bytes | bytearray) -> bytes:
    """SHA-256 of an image's metadata, skipping the digest field itself."""
    end = min(meta_end(image), len(image))
    h = hashlib.sha256(bytes(image[:META_DIGEST_AT]))
    h.update(bytes(image[IMAGE_HDR.size:end]))
    return h.digest()


def _read_cstr(blob: bytes, off: int, limit: int, what: str) -> str:
    if off >= limit:
        raise FormatError(f"{what}: string offset {off} outside string table")
    end = blob.find(b"\0", off, limit)
    if end < 0:
        raise FormatError(f"{what}: unterminated string")
    return blob[off:end].decode("utf-8", "replace")


def _parse_image(arch: int, blob: bytes) -> Image:
    if len(blob) < IMAGE_HDR.size:
        raise FormatError("image shorter than its header")
    (magic, iarch, hsize, flags, align, target, abi, vsize, entry, name_off, _r0,
     seg_off, seg_n, imp_off, imp_n, fix_off, fix_n, str_off, str_size,
     init_va, init_n, fini_n, fini_va, ehh_va, ehh_sz, eh_va, eh_sz,
     tls_va, tls_filesz, tls_memsz, tls_align, _r1, mdigest) = IMAGE_HDR.unpack_from(blob, 0)
    if magic != IMAGE_MAGIC:
        raise FormatError("bad image magic")
    if meta_digest(blob) != mdigest:
        raise FormatError("image metadata is corrupt (SHA-256 mismatch)")
    if iarch != arch or hsize != IMAGE_HDR.size:
        raise FormatError("image header disagrees with the file's image table")
    if align & (align - 1) or not MIN_BASE_ALIGN <= align <= ALIGN:
        raise FormatError(f"bad image alignment {align:#x}")

    def table(off: int, n: int, st: struct.Struct, what: str) -> list[tuple]:
        end = off + n * st.size
        if off < IMAGE_HDR.size or end > len(blob):
            raise FormatError(f"{what} table out of bounds")
        return [st.unpack_from(blob, off + k * st.size) for k in range(n)]

    if str_off + str_size > len(blob) or str_size == 0:
        raise FormatError("string table out of bounds")
    strend = str_off + str_size
    segs = []
    for va, memsz, off, filesz, _prot, kind in table(seg_off, seg_n, SEGMENT, "segment"):
        if kind not in SEG_NAMES or off + filesz > len(blob) or filesz > memsz or \
                (filesz and (off % FILE_ALIGN or off < IMAGE_HDR.size)):
            raise FormatError("bad segment entry")
        segs.append(Segment(kind, va, memsz, blob[off:off + filesz]))
    imports = []
    for noff, h, fl, _ in table(imp_off, imp_n, IMPORT, "import"):
        name = _read_cstr(blob, str_off + noff, strend, "import")
        if gnu_hash(name) != h:
            raise FormatError(f"import {name!r}: hash mismatch")
        imports.append(Import(name, bool(fl & IMP_WEAK)))
    fixups = [Fixup(*t) for t in table(fix_off, fix_n, FIXUP, "fixup")]
    return Image(
        arch=arch,
        target=target.rstrip(b"\0").decode(),
        python_abi=abi.rstrip(b"\0").decode(),
        name=_read_cstr(blob, str_off + name_off, strend, "module name"),
        entry=entry,
        segments=segs,
        imports=imports,
        fixups=fixups,
        flags=flags,
        init_array=(init_va, init_n),
        fini_array=(fini_va, fini_n),
        eh_frame=(eh_va, eh_sz),
        eh_frame_hdr=(ehh_va, ehh_sz),
        tls=(tls_va, tls_filesz, tls_memsz, tls_align),
        align=align,
    )


def parse(data: bytes, *, verify: bool = True) -> list[Image]:
    """Parse a .cosmoext file into its images (raises FormatError).  The checksums
    are always checked; ``verify`` adds every image's SHA-256."""
    if len(data) < FILE_HDR.size:
        raise FormatError("file shorter than its header")
    (magic, vmaj, vmin, hsize, count, esize, fsize, table,
     head_crc) = FILE_HDR.unpack_from(data, 0)
    if magic != MAGIC:
        raise FormatError("not a .cosmoext file (bad magic)")
    if vmaj == 1:
        raise FormatError(f"format version {vmaj}.{vmin}; rebuild with this cosmoext "
                          f"(it reads {VERSION_MAJOR}.x)")
    if vmaj != VERSION_MAJOR:
        raise FormatError(f"format version {vmaj}.{vmin} is not supported "
                          f"(this reads {VERSION_MAJOR}.x)")
    if hsize != FILE_HDR.size or esize != IMAGE_ENT.size or not 1 <= count <= MAX_IMAGES:
        raise FormatError("bad file header")
    if fsize != len(data):
        raise FormatError(f"file size is {len(data)}, header says {fsize} (truncated?)")
    tend = table + count * IMAGE_ENT.size
    if table < FILE_HDR.size or tend > min(HEAD_MAX, len(data)):
        raise FormatError("image table out of bounds")
    if head_crc32c(data) != head_crc:
        raise FormatError("file header or image table is corrupt (CRC-32C mismatch)")
    images = []
    covered = [(0, tend)]
    for i in range(count):
        pos = table + i * IMAGE_ENT.size
        arch, _, crc, off, size, digest = IMAGE_ENT.unpack_from(data, pos)
        if off % FILE_ALIGN or off < tend or off + size > len(data):
            raise FormatError("image out of bounds")
        blob = data[off:off + size]
        if crc32c(blob) != crc:
            raise FormatError(f"{ARCH_NAMES.get(arch, arch)} image: CRC-32C mismatch")
        if verify and hashlib.sha256(blob).digest() != digest:
            raise FormatError(f"{ARCH_NAMES.get(arch, arch)} image: SHA-256 mismatch")
        covered.append((off, off + size))
        img = _parse_image(arch, blob)
        img.sha256 = digest
        images.append(img)
    # bytes no checksum covers (padding before and between images) must be zero
    covered.sort()
    for (_, end), (start, _) in zip(covered, [*covered[1:], (len(data), 0)], strict=True):
        if start > end and data[end:start].count(0) != start - end:
            raise FormatError(f"non-zero bytes between images at {end:#x}")
    return images
