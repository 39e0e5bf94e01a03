"""Build ``.eh_frame_hdr`` (with its sorted lookup table) for an image.

The unwinder finds an image's FDEs through the loader's ``_dl_find_object``
/ ``dl_iterate_phdr`` answers, which point at this header, as they would at
a PT_GNU_EH_FRAME segment.  FDEs whose code was dropped by ``--gc-sections``
(their pc_begin no longer points into text) are left out of the table.
"""

from __future__ import annotations

import struct

DW_EH_PE_omit = 0xFF
PCREL_SDATA4 = 0x1B
UDATA4 = 0x03
DATAREL_SDATA4 = 0x3B


def _records(data: bytes):
    """Yield (offset, length_field_size, body_start, end, cie_id) per record."""
    off = 0
    while off + 4 <= len(data):
        (length,) = struct.unpack_from("<I", data, off)
        if length == 0:
            return
        if length == 0xFFFFFFFF:
            raise ValueError("64-bit .eh_frame records are not supported")
        body = off + 4
        end = body + length
        if end > len(data) or length < 4:
            raise ValueError("truncated .eh_frame record")
        (cie_id,) = struct.unpack_from("<I", data, body)
        yield off, body, end, cie_id
        off = end


def count_fdes(data: bytes) -> int:
    try:
        return sum(1 for _, _, _, cid in _records(data) if cid != 0)
    except ValueError:
        return 0


def hdr_size(fde_count: int) -> int:
    return 12 + 8 * fde_count


def _uleb(data: bytes, pos: int) -> tuple[int, int]:
    val = shift = 0
    while True:
        b = data[pos]
        pos += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, pos


def _cie_fde_encoding(data: bytes, body: int) -> int:
    pos = body + 4
    version = data[pos]
    pos += 1
    end = data.index(b"\0", pos)
    aug = data[pos:end].decode("ascii")
    pos = end + 1
    _, pos = _uleb(data, pos)  # code alignment
    _, pos = _uleb(data, pos)  # data alignment (sleb; only skipped)
    if version == 1:
        pos += 1
    else:
        _, pos = _uleb(data, pos)
    if not aug.startswith("z"):
        return 0  # absptr
    _, pos = _uleb(data, pos)
    for c in aug[1:]:
        if c == "R":
            return data[pos]
        if c == "P":
            enc = data[pos]
            pos += 1 + _enc_size(enc)
        elif c == "L":
            pos += 1
        elif c not in "SB":
            raise ValueError(f"unknown CIE augmentation {aug!r}")
    return 0


def _enc_size(enc: int) -> int:
    return {0x00: 8, 0x02: 2, 0x03: 4, 0x04: 8, 0x0A: 2, 0x0B: 4, 0x0C: 8}[enc & 0x0F]


def _read_enc(data: bytes, pos: int, enc: int, field_va: int) -> int:
    code = {0x00: "<Q", 0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}
    (v,) = struct.unpack_from(code[enc & 0x0F], data, pos)
    app = enc & 0x70
    if app == 0x10:
        return int(v) + field_va
    if app == 0:
        return int(v)
    raise ValueError(f"unsupported FDE pointer encoding {enc:#x}")


def build_hdr(data: bytes, eh_va: int, hdr_va: int, fde_count: int,
              text: tuple[int, int] | None = None) -> bytes:
    """Return the header bytes (exactly ``hdr_size(fde_count)`` long)."""
    size = hdr_size(fde_count)
    entries: list[tuple[int, int]] = []
    try:
        encodings: dict[int, int] = {}
        for off, body, _end, cid in _records(data):
            if cid == 0:
                encodings[off] = _cie_fde_encoding(data, body)
                continue
            cie = body - cid
            enc = encodings[cie] if cie in encodings else _cie_fde_encoding(data, cie + 4)
            pc = _read_enc(data, body + 4, enc, eh_va + body + 4)
            if text is None or text[0] <= pc < text[1]:
                entries.append((pc, eh_va + off))
        entries.sort()
        table_ok = True
    except (ValueError, KeyError, IndexError):
        table_ok = False
    ptr = eh_va - (hdr_va + 4)
    if not table_ok:
        hdr = struct.pack("<BBBBi", 1, PCREL_SDATA4, DW_EH_PE_omit, DW_EH_PE_omit, ptr)
    else:
        hdr = struct.pack("<BBBBiI", 1, PCREL_SDATA4, UDATA4, DATAREL_SDATA4, ptr, len(entries))
        hdr += b"".join(struct.pack("<ii", pc - hdr_va, fde - hdr_va) for pc, fde in entries)
    return hdr + b"\0" * (size - len(hdr))
